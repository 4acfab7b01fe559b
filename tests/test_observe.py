"""What Runs reports to observers: segments, stages, lost claims, recoveries, runs ended outside."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from pausepoint import PausableHandler, Runs, flow_chart, open_store
from pausepoint.durable._observe import RunObserver, Segment, SegmentKind
from pausepoint.errors import RunAlreadyClaimedError
from pausepoint.stores.base import StoredRun

pytest.importorskip("prometheus_client")

from prometheus_client import REGISTRY

from pausepoint.durable._observe import _PROCESS_OBSERVERS, remove_observer
from pausepoint.metrics import OBSERVER, enable_metrics


@pytest.fixture
def metrics_on() -> Any:
    """Metrics counted once per run, whether or not a server test enabled them already."""
    was_on = OBSERVER in _PROCESS_OBSERVERS
    enable_metrics()
    yield
    if not was_on:
        remove_observer(OBSERVER)


started: dict[str, asyncio.Event] = {}


async def slow(scope: Any) -> None:
    started[scope.run_id].set()
    await asyncio.sleep(scope.seconds)


def ask(scope: Any) -> dict[str, Any]:
    return {"question": "ok?"}


SLOW = flow_chart("Slow", slow, "slow").add_function("Done", lambda s: None, "done").build()
ASK = flow_chart("Ask", PausableHandler(execute=ask, resume=lambda s, a: None), "ask").build()
CHARTS = {"slow": SLOW, "ask": ASK}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Recorder(RunObserver):
    """Writes down every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def segment(self, record: StoredRun, kind: SegmentKind) -> Segment:
        calls = self.calls

        class Seen(Segment):
            watches_stages = True

            def __enter__(self) -> Segment:
                calls.append(("enter", kind))
                return self

            def __exit__(self, exc_type: Any, *rest: Any) -> None:
                calls.append(("exit", exc_type.__name__ if exc_type else None))

            def stage_started(self, stage_id: str) -> str:
                calls.append(("stage", stage_id))
                return stage_id

            def stage_ended(self, handle: Any, node: Any, error: Any) -> None:
                calls.append(("stage_ended", handle, node.get("status")))

            def ended(self, record: Any) -> Any:
                calls.append(("ended", record.status))
                return record

        return Seen(record, kind)

    def run_ended(self, record: StoredRun) -> None:
        self.calls.append(("run_ended", record.status))


async def test_observer_sees_segments_stages_and_outcomes() -> None:
    """Start and resume are two segments; each stage is reported with its tree status."""
    recorder = Recorder()
    async with Runs(open_store("memory://"), CHARTS, observer=recorder) as runs:
        record = await runs.start("ask")
        await runs.resume(record.run_id, {})
        other = await runs.start("ask")
        await runs.cancel(other.run_id)
    assert recorder.calls == [
        ("enter", "start"),
        ("stage", "ask"),
        ("stage_ended", "ask", "paused"),
        ("ended", "paused"),
        ("exit", None),
        ("enter", "resume"),
        ("stage", "ask"),
        ("stage_ended", "ask", "resumed"),
        ("ended", "completed"),
        ("exit", None),
        ("enter", "start"),
        ("stage", "ask"),
        ("stage_ended", "ask", "paused"),
        ("ended", "paused"),
        ("exit", None),
        ("run_ended", "cancelled"),
    ]


async def test_a_lost_claim_is_counted(metrics_on: None) -> None:
    """Another process taking a run over: this one's segment ends with RunAlreadyClaimedError."""
    store = open_store("memory://")
    before = sample("pausepoint_claims_lost_total")
    started["r-1"] = asyncio.Event()
    async with Runs(store, CHARTS) as runs:
        task = asyncio.create_task(runs.start("slow", {"seconds": 0.3}, run_id="r-1"))
        await asyncio.wait_for(started["r-1"].wait(), 10)
        record = await store.get("r-1")
        await store.replace(
            dataclasses.replace(record, lease_owner="another-process"),
            expected_version=record.version,
        )
        with pytest.raises(RunAlreadyClaimedError):
            await task
    assert sample("pausepoint_claims_lost_total") == before + 1


async def test_a_recovery_is_counted_with_the_run_it_finishes(metrics_on: None) -> None:
    """A run whose process stopped is recovered: one recovery, one completed run."""
    store = open_store("memory://")
    before = sample("pausepoint_recoveries_total")
    completed = sample("pausepoint_runs_total", chart="slow", status="completed")
    started["r-2"] = asyncio.Event()
    dead = Runs(store, CHARTS, lease_seconds=0.2)
    task = asyncio.create_task(dead.start("slow", {"seconds": 30}, run_id="r-2"))
    await asyncio.wait_for(started["r-2"].wait(), 10)
    task.cancel()  # as if its process died: the record stays running, the lease lapses
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)  # past the lease
    alive = Runs(store, CHARTS, lease_seconds=5)
    record = await store.get("r-2")
    await store.replace(
        dataclasses.replace(record, meta={**record.meta, "input": {"seconds": 0}}),
        expected_version=record.version,
    )
    assert await alive.recover() == ["r-2"]
    assert (await alive.get("r-2")).status == "completed"
    assert sample("pausepoint_recoveries_total") == before + 1
    assert sample("pausepoint_runs_total", chart="slow", status="completed") == completed + 1
