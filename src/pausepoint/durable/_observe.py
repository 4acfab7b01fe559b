"""What ``Runs`` tells observers (metrics, traces, log context) about the runs it drives.

A *segment* is one stretch of a run in one process: start → first pause or
end, resume → next pause or end, or a recovery of a run whose process died.
``Runs`` opens one :class:`Segment` per segment (``with observer.segment(record,
kind) as segment``), builds its executor with :meth:`Segment.executor`, lets it
add to the record's changes when the segment's outcome is written
(:meth:`Segment.outcome`), and reports the outcome (:meth:`Segment.ended`).
An exception leaving the ``with`` (a lost claim, the store gone) reaches
``__exit__``. Runs that end outside a segment (cancelled while paused, expired)
are reported by :meth:`RunObserver.run_ended`.

Stages are reported only to segments that ask (:attr:`Segment.watches_stages`):
their executor is an :class:`ObservedExecutor`, whose stage runner
(:class:`ObservedStageRunner`) wraps the engine's stage calls. A plain ``FlowChartExecutor`` is untouched, so runs nobody
observes stage by stage pay nothing per stage.

Observers come from three places, combined by :class:`Observers`: the one given
to ``Runs(observer=...)``, those added process-wide with :func:`add_observer`
(``pausepoint.metrics.enable_metrics`` adds one), and OpenTelemetry tracing,
switched on by itself when the application configured a tracer provider.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

from pausepoint.engine._frames import PauseFrame
from pausepoint.engine._run import ChartRun, Env
from pausepoint.engine._stages import StageRunner
from pausepoint.engine.chart import Decider, FlowChart, FunctionStage, PausableStage, Selector
from pausepoint.engine.executor import FlowChartExecutor
from pausepoint.engine.scope import Scope
from pausepoint.engine.trace import TreeNode
from pausepoint.stores.base import AuditEvent, StoredRun

if TYPE_CHECKING:
    from .records import RunRecord

__all__ = [
    "ObservedExecutor",
    "ObservedStageRunner",
    "Observers",
    "RunObserver",
    "Segment",
    "SegmentKind",
    "add_observer",
    "metric_stage",
    "remove_observer",
    "trace_context",
    "trace_headers",
]

SegmentKind = Literal["start", "resume", "recover"]
"""How a segment began: a new run, an answer to a pause, or a take-over after a crash."""

Outcome = tuple[dict[str, Any], list[AuditEvent]]
"""The changes to a run's record and the audit events that go with them."""


class Segment:
    """One segment of one run, as one observer follows it; every method does nothing here.

    Args:
        record: The run's record as claimed for this segment.
        kind: How the segment began.
    """

    watches_stages = False
    """Whether :meth:`stage_started`/:meth:`stage_ended` are wanted (they cost per stage)."""

    def __init__(self, record: StoredRun, kind: SegmentKind) -> None:
        self.record = record
        self.kind = kind

    def __enter__(self) -> Segment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def executor(self, chart: FlowChart, **options: Any) -> FlowChartExecutor:
        """Return the executor that runs this segment."""
        if self.watches_stages:
            return ObservedExecutor(self, chart, **options)
        return FlowChartExecutor(chart, **options)

    def stage_started(self, stage_id: str) -> Any:
        """A stage (or a decider's function, or a pausable's execute/resume) begins.

        Returns:
            Anything; it is handed back to :meth:`stage_ended`.
        """
        return None

    def stage_ended(self, handle: Any, node: TreeNode, error: BaseException | None) -> None:
        """The stage ended; ``node`` is its execution-tree node (status, attempts, pause)."""

    def outcome(self, outcome: Outcome, record: StoredRun) -> Outcome:
        """Return the outcome ``Runs`` writes, with what this observer adds to it.

        ``record`` is the run's record as last written by this segment.
        """
        return outcome

    def ended(self, record: RunRecord) -> RunRecord:
        """The segment's outcome was written: ``record.status`` says how it ended."""
        return record


class RunObserver:
    """Follows the runs of a ``Runs``; subclass it and override what you need."""

    def segment(self, record: StoredRun, kind: SegmentKind) -> Segment | None:
        """Return how this observer follows a segment that begins, or ``None`` to skip it."""
        return None

    def run_ended(self, record: StoredRun) -> None:
        """A run ended outside any segment: cancelled while paused, or expired."""


_NOTHING = Segment(
    StoredRun(
        run_id="", chart="", fingerprint="", status="running", created_at=0.0, updated_at=0.0
    ),
    "start",
)

_PROCESS_OBSERVERS: list[RunObserver] = []


def add_observer(observer: RunObserver) -> None:
    """Let ``observer`` follow the runs of every ``Runs`` of this process (once)."""
    if observer not in _PROCESS_OBSERVERS:
        _PROCESS_OBSERVERS.append(observer)


def remove_observer(observer: RunObserver) -> None:
    """Undo :func:`add_observer`."""
    if observer in _PROCESS_OBSERVERS:
        _PROCESS_OBSERVERS.remove(observer)


class Observers(RunObserver):
    """What ``Runs`` calls: its own observer, the process-wide ones, and tracing."""

    def __init__(self, own: RunObserver | None = None) -> None:
        self.own = own

    def _all(self) -> list[RunObserver]:
        from pausepoint.logs import LOG_CONTEXT

        found: list[RunObserver] = [LOG_CONTEXT, *_PROCESS_OBSERVERS]
        if self.own is not None:
            found.append(self.own)
        tracing = _tracing()
        if tracing is not None:
            found.append(tracing)
        return found

    def segment(self, record: StoredRun, kind: SegmentKind) -> Segment:
        """Return one segment standing for every observer's (a no-op one if none follows it)."""
        segments = [
            segment
            for observer in self._all()
            if (segment := observer.segment(record, kind)) is not None
        ]
        if not segments:
            return _NOTHING
        return segments[0] if len(segments) == 1 else _Segments(record, kind, segments)

    def run_ended(self, record: StoredRun) -> None:
        """Tell every observer."""
        for observer in self._all():
            observer.run_ended(record)


def _tracing() -> RunObserver | None:
    """The tracing observer, when OpenTelemetry is loaded and a tracer provider is set.

    ``opentelemetry`` is never imported here: an application that configured
    tracing has imported it already.
    """
    if "opentelemetry.trace" not in sys.modules:
        return None
    from pausepoint.otel import auto_tracing

    return auto_tracing()


def trace_headers() -> dict[str, str]:
    """The current trace context as headers to send with a task; empty without OpenTelemetry."""
    if "opentelemetry.trace" not in sys.modules:
        return {}
    from pausepoint.otel import trace_headers

    return trace_headers()


def trace_context(headers: Mapping[str, Any]) -> AbstractContextManager[None]:
    """Make the trace context sent in ``headers`` current; nothing without OpenTelemetry."""
    if "opentelemetry.trace" not in sys.modules or not headers.get("traceparent"):
        return contextlib.nullcontext()
    from pausepoint.otel import trace_context

    return trace_context(headers)


class _Segments(Segment):
    """Several observers' segments as one; each sees every call, in order (ended in reverse)."""

    def __init__(self, record: StoredRun, kind: SegmentKind, segments: Sequence[Segment]) -> None:
        super().__init__(record, kind)
        self.segments = list(segments)
        self.watching = [segment for segment in segments if segment.watches_stages]
        self.watches_stages = bool(self.watching)

    def __enter__(self) -> Segment:
        for segment in self.segments:
            segment.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for segment in reversed(self.segments):
            segment.__exit__(exc_type, exc, traceback)

    def stage_started(self, stage_id: str) -> Any:
        return [segment.stage_started(stage_id) for segment in self.watching]

    def stage_ended(self, handle: Any, node: TreeNode, error: BaseException | None) -> None:
        for segment, own in reversed(list(zip(self.watching, handle, strict=True))):
            segment.stage_ended(own, node, error)

    def outcome(self, outcome: Outcome, record: StoredRun) -> Outcome:
        for segment in self.segments:
            outcome = segment.outcome(outcome, record)
        return outcome

    def ended(self, record: RunRecord) -> RunRecord:
        for segment in self.segments:
            record = segment.ended(record)
        return record


class ObservedExecutor(FlowChartExecutor):
    """An executor whose stage runner reports each stage it runs to a segment."""

    def __init__(self, segment: Segment, chart: FlowChart, **options: Any) -> None:
        super().__init__(chart, **options)
        self._observe = functools.partial(ObservedStageRunner, segment)


class ObservedStageRunner(StageRunner):
    """A stage runner that reports each stage it runs to a segment.

    Only the methods that call user functions are wrapped: a function stage,
    a pausable stage's ``execute`` or ``resume``, and a decider's or selector's
    function (not the branches it chose, which report their own stages).
    """

    def __init__(self, segment: Segment, run: ChartRun, answers: dict[str, Any]) -> None:
        super().__init__(run, answers)
        self._segment = segment

    async def stage(self, node: FunctionStage, env: Env, tree: list[TreeNode]) -> None:
        position = len(tree)
        handle = self._segment.stage_started(env.prefix + node.id)
        try:
            await super().stage(node, env, tree)
        except BaseException as exc:
            self._segment.stage_ended(handle, _node_at(tree, position), exc)
            raise
        self._segment.stage_ended(handle, tree[position], None)

    async def pausable(
        self, node: PausableStage, env: Env, tree: list[TreeNode], frame: PauseFrame | None
    ) -> PauseFrame | None:
        path = env.prefix + node.id
        if frame is not None and path not in self._answers:
            return await super().pausable(node, env, tree, frame)  # still waiting: nothing runs
        position = len(tree) if frame is None else frame["t"]
        handle = self._segment.stage_started(path)
        try:
            pending = await super().pausable(node, env, tree, frame)
        except BaseException as exc:
            self._segment.stage_ended(handle, _node_at(tree, position), exc)
            raise
        self._segment.stage_ended(handle, tree[position], None)
        return pending

    async def route(
        self, node: Decider | Selector, record: TreeNode, env: Env, path: str
    ) -> tuple[Any, Scope]:
        handle = self._segment.stage_started(path)
        try:
            chosen = await super().route(node, record, env, path)
        except BaseException as exc:
            self._segment.stage_ended(handle, record, exc)
            raise
        self._segment.stage_ended(handle, record, None)
        return chosen


def _node_at(tree: list[TreeNode], position: int) -> TreeNode:
    """The node a stage appended at ``position``, or an empty one if it failed before that."""
    return tree[position] if position < len(tree) else cast(TreeNode, {})


_ITEM = re.compile(r"\[[^\]]*\]")


def metric_stage(stage_id: str) -> str:
    """A stage path with for-each item labels blanked, so a metric label stays bounded.

    ``invoices[7]/approve`` and ``invoices[INV-7]/approve`` both give ``invoices[]/approve``.
    """
    return _ITEM.sub("[]", stage_id) if "[" in stage_id else stage_id


def describe_error(error: BaseException) -> str:
    """``Type: message``, as the trace writes failures."""
    return f"{type(error).__name__}: {error}"
