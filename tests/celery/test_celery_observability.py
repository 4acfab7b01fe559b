"""Metrics and traces of runs driven by real Celery workers (prefork pool, real broker)."""

from __future__ import annotations

import socket
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
