"""OpenTelemetry traces of runs, across pauses, processes and Celery workers (extra ``otel``).

Needs ``pip install 'pausepoint[otel]'``. Configure a tracer provider the usual
way (``opentelemetry.trace.set_tracer_provider``, or ``opentelemetry-instrument``)
and every ``Runs`` of the process traces its runs; nothing else to call.

* Each run segment (start → pause, resume → next pause or end, a recovery) is
  a span ``pausepoint.run <chart>``, the child of whatever span is current
  (an HTTP request, a Celery task), with one child span ``pausepoint.stage
  <stage_id>`` per stage it runs.
* Attributes: ``pausepoint.run_id``, ``pausepoint.engine.chart``, ``pausepoint.stage_id``,
  ``pausepoint.pause_id`` where one applies (the pause a segment answers, or
  the one a start made; a pausable stage's), ``pausepoint.segment`` (``start``,
  ``resume``, ``recover``), ``pausepoint.status``, ``pausepoint.pauses_pending``
  on a segment that ends paused and, on stages, ``pausepoint.attempt``. A failed attempt that is retried is an event
  ``pausepoint.retry`` on its stage's span; an error is recorded on the span
  and sets its status.
* A segment that pauses keeps its span context (W3C ``traceparent``) in the
  run's record; the segment that resumes the run, in any process, links to it,
  so the segments of one run are found from any of them.
* ``CeleryDispatcher`` sends the current trace context with its tasks, and the
  worker runs the task under it: a resume answered over HTTP and run by a
  worker is one trace, HTTP request → task → run segment → stages.
* ``create_app`` instruments the FastAPI app when this extra is installed.

To trace without a global provider, pass ``Runs(observer=TracingObserver(provider))``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context, trace
    from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "pausepoint.otel needs OpenTelemetry: pip install 'pausepoint[otel]'"
    ) from error

from . import __version__
from .durable._observe import Outcome, RunObserver, Segment, SegmentKind, describe_error
from .stores.base import StoredRun

if TYPE_CHECKING:
    from .durable.records import RunRecord
    from .engine.trace import TreeNode

__all__ = ["TRACE_META_KEY", "TracingObserver", "auto_tracing", "trace_context", "trace_headers"]

TRACE_META_KEY = "traceparent"
"""Where a paused run's record keeps the span context of the segment that paused it."""

_PROPAGATOR = TraceContextTextMapPropagator()


class TracingObserver(RunObserver):
    """Traces every run segment and its stages with ``tracer_provider`` (default: the global one)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("pausepoint", __version__, tracer_provider)

    def segment(self, record: StoredRun, kind: SegmentKind) -> Segment:
        """Follow the segment with a span."""
        return _TracedSegment(self.tracer, record, kind)


_auto: tuple[trace.TracerProvider, TracingObserver] | None = None


def auto_tracing() -> TracingObserver | None:
    """The observer tracing with the global tracer provider, or ``None`` while none is set."""
    global _auto
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    if _auto is None or _auto[0] is not provider:
        _auto = (provider, TracingObserver(provider))
    return _auto[1]


def trace_headers() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``), to send with a task."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


@contextlib.contextmanager
def trace_context(headers: Mapping[str, Any]) -> Iterator[None]:
    """Make the trace context in ``headers`` (from :func:`trace_headers`) current in the block."""
    carrier = {key: value for key, value in headers.items() if isinstance(value, str)}
    if "traceparent" not in carrier:
        yield
        return
    token = context.attach(_PROPAGATOR.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


def _link_to(record: StoredRun) -> list[Link]:
    """A link to the segment that paused the run, when its record kept one."""
    traceparent = record.meta.get(TRACE_META_KEY)
    if not isinstance(traceparent, str):
        return []
    paused = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent}))
    span_context = paused.get_span_context()
    if not span_context.is_valid:
        return []
    return [Link(span_context, {"pausepoint.link": "paused segment"})]


def _fail(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, describe_error(error)))


class _TracedSegment(Segment):
    watches_stages = True

    def __init__(self, tracer: trace.Tracer, record: StoredRun, kind: SegmentKind) -> None:
        super().__init__(record, kind)
        self.tracer = tracer
        self.common = {"pausepoint.run_id": record.run_id, "pausepoint.chart": record.chart}

    def __enter__(self) -> Segment:
        attributes: dict[str, Any] = {**self.common, "pausepoint.segment": self.kind}
        answer = self.record.meta.get("answer")
        if self.kind != "start" and isinstance(answer, Mapping):
            attributes["pausepoint.pause_id"] = answer.get("pause_id") or ""
            attributes["pausepoint.stage_id"] = answer.get("stage_id") or ""
        self.span = self.tracer.start_span(
            f"pausepoint.run {self.record.chart}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=_link_to(self.record),
        )
        self.token = context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None:
            _fail(self.span, exc)
            self.span.set_attribute("pausepoint.status", "interrupted")
        context.detach(self.token)
        self.span.end()

    def stage_started(self, stage_id: str) -> tuple[Span, object]:
        span = self.tracer.start_span(
            f"pausepoint.stage {stage_id}",
            attributes={**self.common, "pausepoint.stage_id": stage_id},
        )
        return span, context.attach(trace.set_span_in_context(span))

    def stage_ended(self, handle: Any, node: TreeNode, error: BaseException | None) -> None:
        span, token = handle
        pause = node.get("pause")
        resuming = pause is not None and node.get("status") != "paused"
        phases = ("resume",) if resuming else ("run", "execute")
        failed = [a for a in node.get("attempts", ()) if a.get("phase") in phases]
        for attempt in failed:
            retried = "retry_in" in attempt
            span.add_event(
                "pausepoint.retry" if retried else "pausepoint.attempt_failed",
                {
                    "pausepoint.attempt": attempt["attempt"],
                    "pausepoint.attempts": attempt["of"],
                    "error": attempt["error"],
                    **({"pausepoint.retry_in": attempt["retry_in"]} if retried else {}),
                },
            )
        attributes: dict[str, Any] = {
            "pausepoint.attempt": max(1, len(failed) + (0 if error else 1)),
            "pausepoint.status": node.get("status") or "failed",
        }
        if pause is not None:
            attributes["pausepoint.pause_id"] = pause["pause_id"]
        span.set_attributes(attributes)
        if error is not None:
            _fail(span, error)
        context.detach(token)
        span.end()

    def outcome(self, outcome: Outcome, record: StoredRun) -> Outcome:
        changes, events = outcome
        if changes.get("status") == "paused":
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, trace.set_span_in_context(self.span))
            if "traceparent" in carrier:
                meta = {**record.meta, TRACE_META_KEY: carrier["traceparent"]}
                changes = {**changes, "meta": meta}
        return changes, events

    def ended(self, record: RunRecord) -> RunRecord:
        self.span.set_attribute("pausepoint.status", record.status)
        if record.pauses:
            ids = [pause.pause_id for pause in record.pauses]
            self.span.set_attribute("pausepoint.pauses_pending", ids)
            if self.kind == "start":
                self.span.set_attribute("pausepoint.pause_id", ids[0])
        if record.status == "failed":
            self.span.set_status(Status(StatusCode.ERROR, record.error or "failed"))
        return record
