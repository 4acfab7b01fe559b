"""A stage far longer than the lease runs once on real ``pausepoint worker`` processes.

Two workers (prefork, two pool processes each) on a Redis broker and a
PostgreSQL store, with a 3 s lease and beat in both sending a sweep every
second: a sync stage of 12 s keeps its claim, so no sweep takes its run over.
"""

from __future__ import annotations

import time
from typing import Any

import celery_lease_charts
import pytest
from celery_charts import AFTER_PAUSE
from celery_support import SideLog, Worker, combo, start_workers, wait_until

from pausepoint import Runs, open_store

pytestmark = pytest.mark.slow

pp_celery = pytest.importorskip("pausepoint.celery")

LEASE = 3.0
STAGE_SECONDS = 12.0


def with_lease_charts(worker: Worker) -> Worker:
    """Have ``worker`` load this test's charts instead of ``celery_charts``."""
    worker.command[worker.command.index("celery_charts")] = "celery_lease_charts"
    return worker


def sweeps_done(workers: list[Worker]) -> int:
    """How many sweeps the workers logged as done."""
    return sum(
        "pausepoint.sweep[" in line and " succeeded " in line
        for worker in workers
        for line in worker.text().splitlines()
    )


@pytest.mark.parametrize(("broker_kind", "store_kind"), [combo("redis", "postgres")])
async def test_a_12_s_sync_stage_with_a_3_s_lease_runs_once_while_beat_sweeps_every_second(
    workers: Any, app: Any, store_url: str, side_log: SideLog
) -> None:
    """The run completes, each stage ran once in one process, and nothing was recovered."""
    options = {"beat": True, "lease": LEASE, "sweep_every": 1.0}
    pair = [with_lease_charts(workers(name, **options)) for name in ("w1", "w2")]
    start_workers(pair)
    async with Runs(open_store(store_url), celery_lease_charts.charts) as runs:
        record = await runs.start(
            "blocking", {"side_log": str(side_log.path), "slow_seconds": STAGE_SECONDS}
        )
        assert record.pause is not None
        run_id = record.run_id
        await pp_celery.CeleryDispatcher(app).resume(
            run_id, {"approved": True}, actor="kim", pause_id=record.pause.id
        )
        await wait_until(lambda: side_log.pids(run_id, "slow-start"), 30, "the stage to start")
        sweeps_before = sweeps_done(pair)
        began = time.monotonic()

        async def finished() -> bool:
            now = await runs.get(run_id)
            kinds = [event.kind for event in now.audit]
            assert "recovered" not in kinds, f"the run was taken over: {kinds}"
            assert side_log.counts()[(run_id, "slow-start")] == 1, side_log.lines()
            return now.status not in ("running", "paused")

        await wait_until(finished, STAGE_SECONDS + 60, "the run to finish")
        got = await runs.get(run_id)

    assert time.monotonic() - began >= STAGE_SECONDS - 1  # the stage really held its process
    sweeps = sweeps_done(pair) - sweeps_before
    assert sweeps >= STAGE_SECONDS / 2, f"beat did not sweep throughout: {sweeps} sweeps"
    assert got.status == "completed", got
    assert [event.kind for event in got.audit] == ["started", "paused", "resumed", "completed"]
    counts = side_log.counts()
    assert {what: counts[(run_id, what)] for what in AFTER_PAUSE} == dict.fromkeys(AFTER_PAUSE, 1)
    [pid] = set(side_log.pids(run_id, "slow-start") + side_log.pids(run_id, "step3"))
    assert any(worker.owns(pid) for worker in pair)
