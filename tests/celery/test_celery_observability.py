"""Metrics and traces of runs driven by real Celery workers (prefork pool, real broker)."""

from __future__ import annotations

import gc
import socket
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery_support import SideLog, combo, wait_until
from prometheus_client.parser import text_string_to_metric_families

from pausepoint import Runs
from pausepoint.errors import RunNotFoundError

pytestmark = pytest.mark.slow

pp_celery = pytest.importorskip("pausepoint.celery")

BROKER_STORE = ("broker_kind", "store_kind")


async def all_in(runs: Runs, run_ids: list[str], status: str) -> bool:
    for run_id in run_ids:
        try:
            if (await runs.store.get(run_id)).status != status:
                return False
        except RunNotFoundError:  # its start task has not run yet
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize(BROKER_STORE, [combo("redis", "redis")])
async def test_worker_exports_the_metrics_of_every_pool_process(
    workers: Any, app: Any, runs: Runs, side_log: SideLog, tmp_path: Path
) -> None:
    """--metrics-port sums what all prefork pool processes counted (multiprocess mode)."""
    port = free_port()
    worker = workers("w1", concurrency=2, options=["--metrics-port", str(port)])
    (tmp_path / "metrics").mkdir()
    worker.start(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    worker.wait_ready()
    dispatcher = pp_celery.CeleryDispatcher(app, runs=runs)
    seed = {"side_log": str(side_log.path)}
    run_ids = [await dispatcher.start("approval", seed) for _ in range(6)]

    await wait_until(lambda: all_in(runs, run_ids, "paused"), 30, "6 runs to pause")
    for run_id in run_ids:
        await dispatcher.resume(run_id, {"approved": True}, actor="kim")

    def counted() -> bool:
        samples = scrape(port)
        return value(samples, "pausepoint_runs_total", chart="approval", status="completed") == 6

    await wait_until(counted, 30, "the exporter to count 6 completed runs")
    samples = scrape(port)
    assert value(samples, "pausepoint_runs_total", chart="approval", status="started") == 6
    assert value(samples, "pausepoint_resume_duration_seconds_count", chart="approval") == 6
    assert (
        value(samples, "pausepoint_stage_duration_seconds_count", chart="approval", stage="step1")
        == 6
    )
    pids = {pid for _, what, pid in side_log.lines() if what == "step1"}
    assert pids <= set(worker_pids(worker)), "the stages ran in the worker's pool"
    assert list((tmp_path / "metrics").glob("*.db")), "pool processes wrote their files"


def worker_pids(worker: Any) -> list[int]:
    from celery_support import live_members

    return live_members(worker.pid)


@pytest.mark.parametrize(BROKER_STORE, [combo("redis", "redis")])
async def test_resumes_through_celery_are_three_linked_segments(
    broker: Any, store_url: str, runs: Runs, side_log: SideLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP start, two HTTP resumes run by a Celery worker: three linked segments, traced end to end.

    The worker runs in a thread of this process (a real broker, a real store),
    so the SDK's in-memory exporter sees its spans; a thread does not inherit
    the request's context, so the trace reaches it only through the task's headers.
    """
    pytest.importorskip("opentelemetry.sdk")
    from celery.contrib.testing.worker import start_worker
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pausepoint.server import create_app

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)

    celery_app = pp_celery.make_celery_app(
        broker.url, store_url, "celery_charts", queue=broker.queue, broker_options=broker.options
    )
    web = create_app(
        runs,
        {"tok": "kim"},
        dispatcher=pp_celery.CeleryDispatcher(celery_app, runs=runs),
    )
    headers = {"Authorization": "Bearer tok"}
    transport = httpx.ASGITransport(app=web)
    with start_worker(
        celery_app,
        pool="solo",
        perform_ping_check=False,
        queues=[broker.queue],
        shutdown_timeout=30,
    ):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            started = await client.post(
                "/api/runs",
                json={"chart": "twice", "input": {"side_log": str(side_log.path)}},
                headers=headers,
            )
            assert started.status_code == 201, started.text
            run_id = started.json()["run_id"]
            for step in ("confirm", None):
                queued = await client.post(
                    f"/api/runs/{run_id}/resume",
                    json={"input": {"approved": True}},
                    headers=headers,
                )
                assert queued.status_code == 202, queued.text

                async def moved_on(step: str | None = step) -> bool:
                    record = await runs.get(run_id)
                    if step is None:
                        return record.status == "completed"
                    return record.pause is not None and record.pause.stage_id == step

                await wait_until(moved_on, 30, f"the run to reach {step or 'its end'}")
    celery_app.close()
    provider.force_flush()
    # The worker thread's own store connections are closed by a worker-process
    # shutdown signal a thread never gets: collect them here, not in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()

    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans if span.context is not None}
    segments = sorted(
        (s for s in spans if s.name == "pausepoint.run twice"), key=lambda s: s.start_time or 0
    )
    assert len(segments) == 3
    one, two, three = segments
    assert [link.context.span_id for link in two.links] == [one.context.span_id]
    assert [link.context.span_id for link in three.links] == [two.context.span_id]

    def stage_names(segment: Any) -> list[str]:
        return [
            span.name
            for span in sorted(spans, key=lambda s: s.start_time or 0)
            if span.parent is not None and span.parent.span_id == segment.context.span_id
        ]

    assert stage_names(one) == ["pausepoint.stage receive", "pausepoint.stage approve"]
    assert stage_names(two) == ["pausepoint.stage approve", "pausepoint.stage confirm"]
    assert stage_names(three) == ["pausepoint.stage confirm", "pausepoint.stage finish"]

    # each resumed segment continues the trace of the HTTP request that answered it
    for segment in (two, three):
        assert segment.parent is not None
        request = by_id[segment.parent.span_id]
        assert request.name.startswith("POST /api/runs/{run_id}/resume"), request.name
        assert segment.context is not None
        assert segment.context.trace_id == request.context.trace_id
    assert one.parent is not None
    assert by_id[one.parent.span_id].name.startswith("POST /api/runs")


@pytest.mark.parametrize(BROKER_STORE, [combo("redis", "redis")])
async def test_worker_json_logs_name_the_run_chart_and_stage(
    workers: Any, app: Any, runs: Runs, side_log: SideLog
) -> None:
    """--log-format json: a stage's own log line in a pool process names its run, chart, stage."""
    import json

    worker = workers("w1", concurrency=2, options=["--log-format", "json"])
    worker.start()
    worker.wait_ready()
    dispatcher = pp_celery.CeleryDispatcher(app, runs=runs)
    run_id = await dispatcher.start("approval", {"side_log": str(side_log.path)})
    await wait_until(lambda: all_in(runs, [run_id], "paused"), 30, "the run to pause")

    def stage_lines() -> list[dict[str, Any]]:
        found = []
        for line in worker.text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry["logger"] == "celery_charts":
                    found.append(entry)
        return found

    await wait_until(lambda: len(stage_lines()) >= 2, 30, "the stages' log lines")
    assert [(e["message"], e["run_id"], e["chart"], e["stage"]) for e in stage_lines()] == [
        ("side effect receive", run_id, "approval", "receive"),
        ("side effect approve:ask", run_id, "approval", "approve"),
    ]
    # Celery's own log lines go through the same handler (its banner is printed, not logged)
    ready = [line for line in worker.text().splitlines() if " ready." in line]
    assert ready
    assert all(line.startswith("{") for line in ready)
