"""OpenTelemetry spans of runs: one per segment, one per stage, linked across pauses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pausepoint import PausableHandler, Retry, Runs, flow_chart, open_store
from pausepoint.durable._observe import Observers
from pausepoint.engine.executor import FlowChartExecutor
from pausepoint.otel import TracingObserver


def ask(scope: Any) -> dict[str, Any]:
    return {"question": "ok?"}


def keep(scope: Any, answer: Any) -> None:
    scope.ok = answer["ok"]


TWICE = (
    flow_chart("Receive", lambda scope: None, "receive")
    .add_pausable_function("Approve", PausableHandler(execute=ask, resume=keep), "approve")
    .add_pausable_function("Confirm", PausableHandler(execute=ask, resume=keep), "confirm")
    .add_function("Finish", lambda scope: None, "finish")
    .build()
)

flaky_calls = {"n": 0}


def flaky(scope: Any) -> None:
    flaky_calls["n"] += 1
    if flaky_calls["n"] == 1:
        raise ConnectionError("first try fails")


def explode(scope: Any) -> None:
    raise RuntimeError("the ledger is on fire")


FLAKY = (
    flow_chart("Fetch", flaky, "fetch", retry=Retry(attempts=3, backoff=0))
    .add_function("Explode", explode, "explode")
    .build()
)
CHARTS = {"twice": TWICE, "flaky": FLAKY}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(exporter))
    yield made
    made.shutdown()


def runs_of(provider: TracerProvider, store: Any) -> Runs:
    """A Runs that traces with ``provider``; each one stands for another process."""
    return Runs(store, CHARTS, observer=TracingObserver(provider))


def attrs(span: ReadableSpan) -> Any:
    assert span.attributes is not None
    return span.attributes


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def segments(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith("pausepoint.run ")]


def stages_of(spans: tuple[ReadableSpan, ...], segment: ReadableSpan) -> list[str]:
    assert segment.context is not None
    return [
        span.name
        for span in sorted(spans, key=lambda s: s.start_time or 0)
        if span.parent is not None and span.parent.span_id == segment.context.span_id
    ]


async def test_three_segments_linked_with_a_span_per_stage(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Start, resume, resume from three Runs: three linked segment spans, one span per stage."""
    store = open_store("memory://")
    record = await runs_of(provider, store).start("twice", run_id="run-1")
    assert record.pause is not None
    first_pause = record.pause.id
    record = await runs_of(provider, store).resume("run-1", {"ok": True}, pause_id=first_pause)
    assert record.pause is not None
    second_pause = record.pause.id
    record = await runs_of(provider, store).resume("run-1", {"ok": True})
    assert record.status == "completed"

    spans = exporter.get_finished_spans()
    one, two, three = sorted(segments(spans), key=lambda s: s.start_time or 0)
    assert {s.name for s in (one, two, three)} == {"pausepoint.run twice"}
    assert [attrs(s)["pausepoint.segment"] for s in (one, two, three)] == [
        "start",
        "resume",
        "resume",
    ]
    for segment in (one, two, three):
        assert segment.attributes is not None
        assert segment.attributes["pausepoint.run_id"] == "run-1"
        assert segment.attributes["pausepoint.chart"] == "twice"
    assert attrs(one)["pausepoint.pause_id"] == first_pause
    assert attrs(two)["pausepoint.pause_id"] == first_pause
    assert attrs(two)["pausepoint.pauses_pending"] == (second_pause,)
    assert attrs(three)["pausepoint.pause_id"] == second_pause
    assert [attrs(one)["pausepoint.status"], attrs(three)["pausepoint.status"]] == [
        "paused",
        "completed",
    ]
    # each segment links to the one that paused the run before it
    assert one.links == ()
    assert [link.context.span_id for link in two.links] == [span_id(one)]
    assert [link.context.span_id for link in three.links] == [span_id(two)]

    assert stages_of(spans, one) == ["pausepoint.stage receive", "pausepoint.stage approve"]
    assert stages_of(spans, two) == ["pausepoint.stage approve", "pausepoint.stage confirm"]
    assert stages_of(spans, three) == ["pausepoint.stage confirm", "pausepoint.stage finish"]
    stage_spans = [s for s in spans if s.name.startswith("pausepoint.stage ")]
    assert len(stage_spans) == 6
    approve = next(s for s in stage_spans if s.name == "pausepoint.stage approve")
    assert approve.attributes is not None
    assert attrs(approve)["pausepoint.stage_id"] == "approve"
    assert attrs(approve)["pausepoint.pause_id"] == first_pause
    assert attrs(approve)["pausepoint.status"] == "paused"
    assert attrs(approve)["pausepoint.attempt"] == 1


async def test_retries_and_errors_are_recorded_on_the_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A retried attempt is an event on its stage; a failure sets the error status."""
    flaky_calls["n"] = 0
    record = await runs_of(provider, open_store("memory://")).start("flaky")
    assert record.status == "failed"
    spans = {span.name: span for span in exporter.get_finished_spans()}
    fetch = spans["pausepoint.stage fetch"]
    assert [event.name for event in fetch.events] == ["pausepoint.retry"]
    assert fetch.events[0].attributes is not None
    assert "ConnectionError: first try fails" in str(fetch.events[0].attributes["error"])
    assert fetch.attributes is not None
    assert attrs(fetch)["pausepoint.attempt"] == 2
    assert fetch.status.status_code is StatusCode.UNSET
    explode_span = spans["pausepoint.stage explode"]
    assert explode_span.status.status_code is StatusCode.ERROR
    assert [event.name for event in explode_span.events] == ["exception"]
    run = spans["pausepoint.run flaky"]
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None
    assert attrs(run)["pausepoint.status"] == "failed"


async def test_tracing_follows_the_global_provider_by_itself(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a provider nothing is traced; once one is set, every Runs traces its runs."""
    store = open_store("memory://")
    async with Runs(store, CHARTS) as runs:
        await runs.start("twice")
        assert exporter.get_finished_spans() == ()
        monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
        await runs.start("twice")
    assert len(segments(exporter.get_finished_spans())) == 1


def test_an_unobserved_segment_runs_on_a_plain_executor() -> None:
    """With no observer wanting stages, the engine's own executor runs: nothing per stage."""
    from pausepoint.durable._observe import _NOTHING, Segment

    segment = Segment(_NOTHING.record, "start")
    assert type(segment.executor(TWICE)) is FlowChartExecutor
    assert not Observers().segment(_NOTHING.record, "start").watches_stages or _wanted()


def _wanted() -> bool:
    from pausepoint import logs

    return logs._stages_wanted  # a RunContextFilter exists: the log context wants stages
