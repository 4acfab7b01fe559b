"""Log lines about a run carry run_id, chart and stage, through stdlib logging."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint import PausableHandler, Runs, flow_chart, open_store
from pausepoint.logs import (
    JSONFormatter,
    RunContextFilter,
    TextFormatter,
    configure_logging,
    run_context,
)

app_log = logging.getLogger("pp_test_app")


def receive(scope: Any) -> None:
    app_log.info("received %s", scope.order_id)


def ask(scope: Any) -> dict[str, Any]:
    app_log.warning("asking a person")
    return {"question": "ok?"}


def decide(scope: Any, answer: Any) -> None:
    app_log.info("answered")
    scope.ok = answer["ok"]


CHART = (
    flow_chart("Receive", receive, "receive")
    .add_pausable_function("Ask", PausableHandler(execute=ask, resume=decide), "ask")
    .build()
)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The application's own handler, with pausepoint's filter and JSON formatter added."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RunContextFilter())
    handler.setFormatter(JSONFormatter())
    app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    yield stream
    app_log.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_lines_logged_by_stages_name_run_chart_and_stage(captured: io.StringIO) -> None:
    """A stage's own log lines, in start and in resume, carry its run, chart and stage."""
    async with Runs(open_store("memory://"), {"orders": CHART}) as runs:
        record = await runs.start("orders", {"order_id": "ORD-1"}, run_id="run-1")
        await runs.resume(record.run_id, {"ok": True})
    found = lines(captured)
    assert [(e["message"], e["run_id"], e["chart"], e["stage"]) for e in found] == [
        ("received ORD-1", "run-1", "orders", "receive"),
        ("asking a person", "run-1", "orders", "ask"),
        ("answered", "run-1", "orders", "ask"),
    ]
    first = found[0]
    assert first["level"] == "INFO"
    assert first["logger"] == "pp_test_app"
    assert first["time"].endswith("Z")


def test_lines_outside_a_run_have_empty_context(captured: io.StringIO) -> None:
    """Outside a run the three fields are there, and null; extra= values are kept."""
    app_log.info("idle", extra={"queue": "q1"})
    [entry] = lines(captured)
    assert entry["run_id"] is None
    assert entry["chart"] is None
    assert entry["stage"] is None
    assert entry["queue"] == "q1"


def test_run_context_marks_lines_and_extra_wins(captured: io.StringIO) -> None:
    """run_context() marks the lines of a block; an explicit extra run_id wins over it."""
    with run_context("run-9", "orders"):
        app_log.info("inside")
        app_log.info("other", extra={"run_id": "run-7"})
    app_log.info("after")
    assert [(e["message"], e["run_id"], e["chart"]) for e in lines(captured)] == [
        ("inside", "run-9", "orders"),
        ("other", "run-7", "orders"),
        ("after", None, None),
    ]


def test_json_lines_keep_the_traceback(captured: io.StringIO) -> None:
    """An exception logged with exc_info keeps its traceback in one JSON line."""
    try:
        raise ValueError("bad")
    except ValueError:
        app_log.exception("failed")
    [entry] = lines(captured)
    assert "ValueError: bad" in entry["exc_info"]


def test_text_format_appends_the_context() -> None:
    """The text format appends [run_id=… chart=… stage=…] when set, nothing otherwise."""
    record = logging.makeLogRecord({"msg": "hi", "levelname": "INFO", "name": "x"})
    RunContextFilter().filter(record)
    assert TextFormatter().format(record).endswith("x: hi")
    with run_context("run-1", "orders"):
        record = logging.makeLogRecord({"msg": "hi", "levelname": "INFO", "name": "x"})
        RunContextFilter().filter(record)
    assert TextFormatter().format(record).endswith("x: hi [run_id=run-1 chart=orders]")


def test_configure_logging_refuses_unknown_formats() -> None:
    with pytest.raises(ValueError, match="'json' or 'text'"):
        configure_logging("xml")


CHARTS_SOURCE = """
import logging
from pausepoint import OnTimeout, PausableHandler, flow_chart

log = logging.getLogger("pp_cli_app")

def ask(scope):
    return {"question": "ok?"}

def decide(scope, answer):
    log.info("default answer applied: %s", answer["ok"])

charts = {
    "timed": flow_chart("Start", lambda scope: None, "start")
    .add_pausable_function(
        "Review", PausableHandler(execute=ask, resume=decide), "review",
        timeout=0.01, on_timeout=OnTimeout.resume_with({"ok": False}),
    )
    .build()
}
"""


@pytest.mark.parametrize("command", ["sweep"])
def test_sweep_writes_json_logs_with_the_run(tmp_path: Path, command: str) -> None:
    """`pausepoint sweep --log-format json`: the expired run's stage logs a line naming it."""
    (tmp_path / "pp_log_charts.py").write_text(CHARTS_SOURCE)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def pp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pausepoint", *args, "--store", store],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )

    started = pp("run", "timed", "--charts", "pp_log_charts", "--run-id", "r-1")
    assert started.returncode == 0, started.stderr
    done = pp(command, "--charts", "pp_log_charts", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    mine = [e for e in entries if e["logger"] == "pp_cli_app"]
    assert len(mine) == 1, done.stderr
    assert mine[0]["message"] == "default answer applied: False"
    assert (mine[0]["run_id"], mine[0]["chart"], mine[0]["stage"]) == ("r-1", "timed", "review")
