"""pausepoint.celery without a broker: settings, task options, task bodies, the CLI command.

The task bodies are called directly here (no broker, no worker) to pin what
each returns; distribution is tested with real workers in test_celery_workers.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celery_charts
import pytest
from typer.testing import CliRunner

from pausepoint.cli import app as cli_app
from pausepoint.errors import (
    ResumeInputError,
    RunError,
    RunNotFoundError,
    StoreUnavailableError,
)

celery = pytest.importorskip("celery")
pp_celery = pytest.importorskip("pausepoint.celery")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def local_app(sqlite_url: str) -> Iterator[Any]:
    """An app whose tasks are called in this process, on a SQLite store."""
    made = pp_celery.make_celery_app("memory://", sqlite_url, celery_charts.charts, queue="q1")
    yield made
    pp_celery._on_process_shutdown()  # what the worker_process_shutdown signal does
    made.close()


def test_app_speaks_json_acks_late_and_prefetches_one(local_app: Any) -> None:
    conf = local_app.conf
    assert conf.task_serializer == conf.result_serializer == "json"
    assert conf.accept_content == conf.result_accept_content == ["json"]
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.task_default_queue == "q1"
    assert conf.task_routes == {"pausepoint.*": {"queue": "q1"}}
    for name in ("pausepoint.start", "pausepoint.resume"):
        task = local_app.tasks[name]
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
        assert task.serializer == "json"
        assert task.autoretry_for == (StoreUnavailableError,)
        assert task.retry_backoff is True
        assert task.max_retries == 10
    sweep = conf.beat_schedule["pausepoint-sweep"]
    assert sweep["task"] == "pausepoint.sweep"
    assert sweep["schedule"] == 10.0
    assert sweep["options"] == {"queue": "q1", "expires": 10.0}
    assert local_app.tasks["pausepoint.sweep"].acks_late is False


def test_settings_come_from_the_environment_and_arguments_win() -> None:
    env = {
        "PAUSEPOINT_BROKER": "amqp://guest:guest@127.0.0.1:5672//",
        "PAUSEPOINT_STORE": "postgresql://postgres@127.0.0.1/test",
        "PAUSEPOINT_CHARTS": "celery_charts",
        "PAUSEPOINT_QUEUE": "runs",
        "PAUSEPOINT_LEASE": "12.5",
        "PAUSEPOINT_SWEEP_EVERY": "3",
    }
    settings = pp_celery.CelerySettings.from_env(env, queue="other")
    assert settings.broker_url == env["PAUSEPOINT_BROKER"]
    assert settings.store_url == env["PAUSEPOINT_STORE"]
    assert settings.charts == "celery_charts"
    assert (settings.queue, settings.lease_seconds, settings.sweep_every) == ("other", 12.5, 3.0)
    with pytest.raises(ValueError, match="PAUSEPOINT_BROKER"):
        pp_celery.CelerySettings.from_env({})
    with pytest.raises(ValueError, match="PAUSEPOINT_LEASE='soon' is not a number"):
        pp_celery.CelerySettings.from_env({**env, "PAUSEPOINT_LEASE": "soon"})


def test_celery_dash_a_finds_the_app_built_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    """``celery -A pausepoint.celery worker`` works with the settings in the environment."""
    from celery.app.utils import find_app

    monkeypatch.setenv("PAUSEPOINT_BROKER", "memory://")
    monkeypatch.setenv("PAUSEPOINT_STORE", sqlite_url)
    monkeypatch.setenv("PAUSEPOINT_QUEUE", "from-env")
    monkeypatch.setattr(pp_celery, "_env_app", None)
    found = find_app("pausepoint.celery")
    try:
        assert found is pp_celery.app
        assert found.conf.task_default_queue == "from-env"
        assert "pausepoint.resume" in found.tasks
    finally:
        found.close()


def test_importing_pausepoint_and_its_cli_does_not_import_celery() -> None:
    code = "import sys, pausepoint, pausepoint.cli; assert 'celery' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_tasks_return_run_id_and_status_and_duplicates_end_quietly(local_app: Any) -> None:
    """A second start or resume of the same run is not an error: it reports the status."""
    start = local_app.tasks["pausepoint.start"]
    resume = local_app.tasks["pausepoint.resume"]
    side = {"side_log": "/dev/null"}
    assert start(chart="approval", input=side, run_id="r1") == {"run_id": "r1", "status": "paused"}
    assert start(chart="approval", input=side, run_id="r1") == {"run_id": "r1", "status": "paused"}
    done = resume(run_id="r1", input={"approved": True}, actor="kim")
    assert done == {"run_id": "r1", "status": "completed"}
    again = resume(run_id="r1", input={"approved": False}, actor="lee")
    assert again == {"run_id": "r1", "status": "completed"}


def test_refusals_that_retrying_cannot_fix_fail_the_task(local_app: Any) -> None:
    resume = local_app.tasks["pausepoint.resume"]
    with pytest.raises(RunNotFoundError):
        resume(run_id="nope", input={"approved": True})
    local_app.tasks["pausepoint.start"](
        chart="approval", input={"side_log": "/dev/null"}, run_id="r2"
    )
    with pytest.raises(ResumeInputError, match="approved"):
        resume(run_id="r2", input={"approved": "maybe"})


def test_errors_keep_their_type_and_facts_across_processes() -> None:
    """A pool process pickles a task's error for the worker: RunNotFoundError stays one."""
    import pickle

    error = pickle.loads(pickle.dumps(RunNotFoundError("no run 'x'", run_id="x")))
    assert type(error) is RunNotFoundError
    assert (str(error), error.run_id) == ("no run 'x'", "x")
    refused = ResumeInputError("bad", stage_id="approve", errors=[{"loc": ["approved"]}])
    again = pickle.loads(pickle.dumps(refused))
    assert (type(again), again.stage_id, again.errors) == (
        ResumeInputError,
        "approve",
        refused.errors,
    )


def test_the_sweep_task_applies_the_settings_retention(sqlite_url: str, tmp_path: Path) -> None:
    """retention= in the settings reaches the workers' Runs; a bad policy is refused at once."""
    app = pp_celery.make_celery_app(
        "memory://", sqlite_url, celery_charts.charts, retention={"paused": 0.01}
    )
    try:
        started = app.tasks[pp_celery.START_TASK](
            chart="approval", input={"side_log": str(tmp_path / "side.log")}
        )
        assert started["status"] == "paused"
        time.sleep(0.05)
        assert app.tasks["pausepoint.sweep"]() == {
            "expired": [],
            "recovered": [],
            "purged": 1,
            "escalated": [],
            "reminded": [],
            "notified": 0,
            "notify_retrying": 0,
            "notify_failed": 0,
        }
    finally:
        pp_celery._on_process_shutdown()
        app.close()
    with pytest.raises(ValueError, match="'running' is not a status runs can be purged in"):
        pp_celery.CelerySettings(
            broker_url="memory://", store_url=sqlite_url, retention={"running": 1}
        )


def test_sweep_task_reports_what_it_did(local_app: Any) -> None:
    assert local_app.tasks["pausepoint.sweep"]() == {
        "expired": [],
        "recovered": [],
        "purged": 0,
        "escalated": [],
        "reminded": [],
        "notified": 0,
        "notify_retrying": 0,
        "notify_failed": 0,
    }


async def test_dispatcher_precheck_refuses_like_runs_resume_and_sends_nothing(
    local_app: Any, sqlite_url: str
) -> None:
    from pausepoint import Runs, open_store

    async with Runs(open_store(sqlite_url), celery_charts.charts) as runs:
        rec = await runs.start("approval", {"side_log": "/dev/null"})
        sent: list[tuple[str, dict[str, Any]]] = []
        dispatcher = pp_celery.CeleryDispatcher(local_app, runs=runs)
        dispatcher._send = lambda name, kwargs: sent.append((name, kwargs)) or "task-1"
        with pytest.raises(ResumeInputError):
            await dispatcher.resume(rec.run_id, {"approved": "maybe"}, actor="kim")
        with pytest.raises(RunNotFoundError):
            await dispatcher.resume("missing", {"approved": True})
        with pytest.raises(RunError, match="no chart is registered as 'nope'"):
            await dispatcher.start("nope", {})
        assert sent == []
        task_id = await dispatcher.resume(
            rec.run_id, {"approved": True}, actor="kim", pause_id=rec.pause.id
        )
        assert task_id == "task-1"
        assert sent == [
            (
                "pausepoint.resume",
                {
                    "run_id": rec.run_id,
                    "input": {"approved": True},
                    "actor": "kim",
                    "pause_id": rec.pause.id,
                    "idempotency_key": None,
                    "stage_id": None,
                },
            )
        ]
        audit = (await runs.get(rec.run_id)).audit
        assert [e.kind for e in audit] == ["started", "paused", "resume_refused"]
        assert (await runs.get(rec.run_id)).status == "paused"  # sending is not resuming


# -- the command line ------------------------------------------------------------------


def test_worker_command_is_listed_and_documents_its_options() -> None:
    result = CliRunner().invoke(cli_app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--broker", "--store", "--charts", "--concurrency", "--beat", "--lease"):
        assert option in result.output


def test_worker_command_refuses_bad_charts_before_starting_anything() -> None:
    result = CliRunner().invoke(
        cli_app,
        ["worker", "--broker", "memory://", "--store", "memory://", "--charts", "no_such_module"],
    )
    assert result.exit_code == 1
    assert "error: cannot import charts module 'no_such_module': no such module" in result.output


def test_worker_command_needs_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAUSEPOINT_BROKER", raising=False)
    result = CliRunner().invoke(cli_app, ["worker", "--store", "memory://"])
    assert result.exit_code == 2
    assert "--broker" in result.output
