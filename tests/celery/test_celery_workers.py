"""Real Celery workers (``pausepoint worker``, prefork) on real brokers and stores.

No eager mode: every task goes through Redis or RabbitMQ to two worker process
groups of two pool processes each, sharing a Redis or PostgreSQL store. The
whole broker-and-store matrix runs the smoke test; the heavy tests (500 runs
with 3 copies of each resume message; SIGKILL of a worker mid-run) run on two
combinations each, together covering every broker and every store.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any
from urllib.parse import urlsplit

import celery_charts
import pytest
from celery_support import (
    ALL_COMBOS,
    REDIS_URL,
    Proxy,
    SideLog,
    combo,
    start_workers,
    wait_until,
)

from pausepoint import Runs
from pausepoint.errors import ResumeInputError, RunNotFoundError

pytestmark = pytest.mark.slow

pp_celery = pytest.importorskip("pausepoint.celery")

BROKER_STORE = ("broker_kind", "store_kind")


async def statuses(runs: Runs, run_ids: list[str]) -> collections.Counter[str]:
    """How many of ``run_ids`` are in each status (``missing``: not started yet)."""

    limit = asyncio.Semaphore(16)  # a store's connection pool is finite

    async def status(run_id: str) -> str:
        async with limit:
            try:
                return (await runs.store.get(run_id)).status
            except RunNotFoundError:
                return "missing"

    return collections.Counter(await asyncio.gather(*(status(run_id) for run_id in run_ids)))


async def all_in(runs: Runs, run_ids: list[str], status: str) -> bool:
    return (await statuses(runs, run_ids))[status] == len(run_ids)


def assert_once_each(side_log: SideLog, run_ids: list[str], stages: tuple[str, ...]) -> None:
    counts = side_log.counts()
    wrong = {
        (run_id, what): counts[(run_id, what)]
        for run_id in run_ids
        for what in stages
        if counts[(run_id, what)] != 1
    }
    assert not wrong, (
        f"{len(wrong)} side effects did not run exactly once, e.g. {list(wrong.items())[:5]}"
    )


@pytest.mark.parametrize(BROKER_STORE, ALL_COMBOS)
async def test_two_workers_start_and_resume_runs_through_the_broker(
    workers: Any, app: Any, runs: Runs, side_log: SideLog
) -> None:
    """Starts and resumes sent by the web side's dispatcher are run by the workers, once."""
    start_workers([workers("w1"), workers("w2")])
    dispatcher = pp_celery.CeleryDispatcher(app, runs=runs)
    seed = {"side_log": str(side_log.path)}
    run_ids = [await dispatcher.start("approval", seed) for _ in range(8)]
    await wait_until(lambda: all_in(runs, run_ids, "paused"), 20, "8 runs to pause")

    with pytest.raises(ResumeInputError):  # refused before anything is sent
        await dispatcher.resume(run_ids[0], {"approved": "maybe"}, actor="kim")
    for run_id in run_ids:
        pause = (await runs.get(run_id)).pause
        assert pause is not None
        await dispatcher.resume(run_id, {"approved": True}, actor="kim", pause_id=pause.id)
    await wait_until(lambda: all_in(runs, run_ids, "completed"), 20, "8 runs to complete")

    assert_once_each(side_log, run_ids, ("receive", "approve:ask", *celery_charts.AFTER_PAUSE))
    record = await runs.get(run_ids[0])
    assert [e.actor for e in record.audit if e.kind == "resumed"] == ["kim"]


@pytest.mark.parametrize(BROKER_STORE, [combo("redis", "postgres"), combo("rabbitmq", "redis")])
async def test_500_runs_times_3_duplicate_resumes_complete_once_each(
    workers: Any, app: Any, runs: Runs, side_log: SideLog
) -> None:
    """Every message sent three times: 500 completions, each after-pause side effect once.

    Half the runs carry an idempotency key (the copies then report the first
    outcome), half do not (the copies are refused by the claim and end quietly).
    """
    pair = [workers("w1", beat=True, sweep_every=1.0), workers("w2")]
    start_workers(pair)
    seed = {"side_log": str(side_log.path)}
    semaphore = asyncio.Semaphore(20)

    async def start_one(index: int) -> tuple[str, str]:
        async with semaphore:
            record = await runs.start("approval", seed, run_id=f"dup-{index:03d}-{time.time_ns()}")
        assert record.pause is not None
        return record.run_id, record.pause.id

    paused = await asyncio.gather(*(start_one(i) for i in range(500)))
    run_ids = [run_id for run_id, _ in paused]

    dispatcher = pp_celery.CeleryDispatcher(app)  # no pre-check: every copy is sent
    started = time.monotonic()
    for index, (run_id, pause_id) in enumerate(paused):
        key = f"key-{run_id}" if index % 2 else None
        for _ in range(3):  # adjacent copies: picked up at the same moment by different processes
            await dispatcher.resume(
                run_id, {"approved": True}, actor="kim", pause_id=pause_id, idempotency_key=key
            )
    await wait_until(
        lambda: all_in(runs, run_ids, "completed"), 90, "500 runs to complete", every=0.5
    )
    elapsed = time.monotonic() - started

    assert_once_each(side_log, run_ids, celery_charts.AFTER_PAUSE)
    audits = [await runs.store.audit(run_id) for run_id in run_ids]
    resumed = collections.Counter(sum(e.kind == "resumed" for e in audit) for audit in audits)
    assert resumed == {1: 500}
    refused = sum(e.kind == "resume_refused" for audit in audits for e in audit)
    # the 250 runs without a key: both copies refused by the claim, and audited;
    # with a key, the copies report the first outcome instead
    assert refused == 500, refused
    for worker in pair:  # copies end quietly: no failure, no retry
        assert "ERROR/" not in worker.text(), worker.tail()
        assert "Retry in" not in worker.text(), worker.tail()
    pids = {pid for _, what, pid in side_log.lines() if what == "step3"}
    print(f"1500 messages, 500 completions in {elapsed:.1f}s by {len(pids)} processes")
    assert len(pids) >= 2  # both workers (several processes) did the work


@pytest.mark.parametrize(BROKER_STORE, [combo("rabbitmq", "postgres"), combo("redis", "redis")])
async def test_a_worker_killed_mid_run_leaves_the_run_to_the_other_after_the_lease(
    workers: Any, app: Any, runs: Runs, side_log: SideLog
) -> None:
    """SIGKILL of a whole worker during ``slow``: the other one's sweep recovers the run.

    Only the stage in flight (``slow``) runs twice; the answer and the stages
    after the pause that had finished run once; the audit shows the recovery.
    """
    options = {"beat": True, "lease": 2.0, "sweep_every": 0.5}
    pair = [workers("w1", **options), workers("w2", **options)]
    start_workers(pair)
    record = await runs.start("approval", {"side_log": str(side_log.path), "slow_seconds": 3})
    assert record.pause is not None
    await pp_celery.CeleryDispatcher(app).resume(
        record.run_id, {"approved": True}, actor="kim", pause_id=record.pause.id
    )
    await wait_until(
        lambda: side_log.pids(record.run_id, "slow-start"), 20, "the slow stage to start"
    )
    [pid] = side_log.pids(record.run_id, "slow-start")
    [victim] = [worker for worker in pair if worker.owns(pid)]
    [survivor] = [worker for worker in pair if worker is not victim]
    killed_at = time.monotonic()
    victim.kill()  # every process of it, at once; asserts none survives

    await wait_until(
        lambda: all_in(runs, [record.run_id], "completed"), 30, "the run to be recovered"
    )
    took = time.monotonic() - killed_at
    assert took >= 2.0  # not before the lease lapsed

    counts = side_log.counts()
    run_id = record.run_id
    assert counts[(run_id, "slow-start")] == 2  # the stage in flight at the kill, again
    for what in ("receive", "approve:ask", "approve:answer", "step1", "slow-end", "step3"):
        assert counts[(run_id, what)] == 1, what
    assert all(survivor.owns(pid) for pid in side_log.pids(run_id, "step3"))
    kinds = [e.kind for e in (await runs.get(run_id)).audit]
    assert kinds.count("resumed") == 1
    assert kinds.count("recovered") == 1
    assert kinds[-1] == "completed"


@pytest.mark.parametrize(BROKER_STORE, [combo("redis", "redis")])
async def test_resume_is_retried_with_backoff_while_the_store_is_down(
    store_url: str, workers: Any, app: Any, runs: Runs, side_log: SideLog
) -> None:
    """StoreUnavailableError: the task retries (1 s, 2 s, ... with jitter) and succeeds later."""
    parts = urlsplit(store_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    proxied = store_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    assert proxied != store_url
    worker = workers("w1", store=proxied, concurrency=1)
    start_workers([worker])
    record = await runs.start("approval", {"side_log": str(side_log.path)})
    assert record.pause is not None

    # the proxy is not started: the worker's store is unreachable
    await pp_celery.CeleryDispatcher(app).resume(
        record.run_id, {"approved": True}, actor="kim", pause_id=record.pause.id
    )
    await wait_until(
        lambda: worker.text().count("Retry in") >= 2, 20, "two retries in the worker's log"
    )
    assert "StoreUnavailableError" in worker.text()
    assert (await runs.get(record.run_id)).status == "paused"
    proxy.start()
    try:
        await wait_until(
            lambda: all_in(runs, [record.run_id], "completed"), 30, "the retried resume"
        )
    finally:
        proxy.stop()
    assert_once_each(side_log, [record.run_id], celery_charts.AFTER_PAUSE)


@pytest.mark.parametrize(BROKER_STORE, [combo("redis", "redis")])
async def test_task_results_are_json_run_id_and_status(
    broker: Any, store_url: str, workers: Any, runs: Runs, side_log: SideLog
) -> None:
    """With a result backend, a task's result is ``{"run_id", "status"}``; a refusal fails it."""
    backend = REDIS_URL
    worker = workers("w1")
    worker.command[worker.command.index("--") : worker.command.index("--")] = [
        "--result-backend",
        backend,
    ]
    start_workers([worker])
    app = pp_celery.make_celery_app(
        broker.url,
        store_url,
        "celery_charts",
        queue=broker.queue,
        broker_options=broker.options,
        result_backend=backend,
    )
    ids: list[str] = []
    try:
        start = app.send_task(
            "pausepoint.start",
            kwargs={"chart": "approval", "input": {"side_log": str(side_log.path)}},
        )
        ids.append(start.id)
        started = await asyncio.to_thread(start.get, timeout=20)
        assert started == {"run_id": start.id, "status": "paused"}  # the task id names the run

        answer = {"run_id": start.id, "input": {"approved": True}, "actor": "kim"}
        first = app.send_task("pausepoint.resume", kwargs=answer)
        second = app.send_task("pausepoint.resume", kwargs=answer)
        unknown = app.send_task("pausepoint.resume", kwargs={**answer, "run_id": "no-such-run"})
        ids += [first.id, second.id, unknown.id]
        outcomes = [await asyncio.to_thread(r.get, timeout=20) for r in (first, second)]
        # The task that claimed the run reports it completed; its duplicate, refused,
        # reports the run as it found it: completed, or still running if it came first.
        assert {"run_id": start.id, "status": "completed"} in outcomes
        assert {o["status"] for o in outcomes} <= {"completed", "running"}
        assert all(o["run_id"] == start.id for o in outcomes)
        assert (await runs.get(start.id)).status == "completed"
        await asyncio.to_thread(unknown.get, timeout=20, propagate=False)
        assert unknown.state == "FAILURE"
        assert "RunNotFoundError" in str(unknown.traceback)
        assert worker.text().count("Retry in") == 0  # a refusal is not retried
    finally:
        import redis

        with redis.Redis.from_url(backend) as client:
            client.delete(*(f"celery-task-meta-{task_id}" for task_id in ids))
        app.close()


@pytest.mark.parametrize(BROKER_STORE, [combo("redis", "postgres")])
async def test_the_http_service_hands_resumes_to_the_workers(
    workers: Any, app: Any, runs: Runs, side_log: SideLog
) -> None:
    """create_app(dispatcher=...): 202 "resuming" at once, a refused answer 422, a worker finishes."""
    import httpx

    from pausepoint.server import create_app

    start_workers([workers("w1")])
    dispatcher = pp_celery.CeleryDispatcher(app, runs=runs)
    web = create_app(runs, {"tok": "kim"}, dispatcher=dispatcher)
    run_id = await dispatcher.start("approval", {"side_log": str(side_log.path)})
    await wait_until(lambda: all_in(runs, [run_id], "paused"), 20, "the run to pause")
    pause = (await runs.get(run_id)).pause
    assert pause is not None

    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        auth = {"Authorization": "Bearer tok"}
        refused = await client.post(
            f"/api/runs/{run_id}/resume", json={"input": {"approved": "maybe"}}, headers=auth
        )
        assert refused.status_code == 422
        queued = await client.post(
            f"/api/runs/{run_id}/resume",
            json={"input": {"approved": True}, "pause_id": pause.id},
            headers=auth,
        )
        assert queued.status_code == 202
        assert queued.json()["status"] == "resuming"
        assert queued.json()["run_id"] == run_id
        await wait_until(lambda: all_in(runs, [run_id], "completed"), 20, "the worker to finish")
        again = await client.post(
            f"/api/runs/{run_id}/resume",
            json={"input": {"approved": True}, "pause_id": pause.id},
            headers=auth,
        )
        assert again.status_code == 409
    record = await runs.get(run_id)
    assert [e.actor for e in record.audit if e.kind == "resumed"] == ["kim"]
    assert_once_each(side_log, [run_id], ("receive", "approve:ask", *celery_charts.AFTER_PAUSE))
