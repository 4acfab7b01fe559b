"""The notification options of the CLI: --notify, --base-url, --notify-secret-file, the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pausepoint.cli import app
from pausepoint.notify import verify_signature

from .receivers import Receiver

CHARTS = "notifications.cli_charts"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver().start()
    yield made
    made.stop()


def call(tmp_path: Path, *args: str, **env: str) -> Any:
    environ = {"PAUSEPOINT_STORE": f"sqlite:///{tmp_path / 'runs.db'}", **env}
    return CliRunner().invoke(app, list(args), env=environ)


def test_a_paused_run_is_notified_by_pausepoint_sweep(tmp_path: Path, receiver: Receiver) -> None:
    """`run` writes the notification (PAUSEPOINT_NOTIFY); `sweep --notify-secret-file` sends it."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    started = call(
        tmp_path,
        "run",
        "plain",
        "--charts",
        CHARTS,
        "--input",
        '{"amount": 3}',
        "--json",
        PAUSEPOINT_NOTIFY=receiver.url(),
        PAUSEPOINT_BASE_URL="https://pp.test",
    )
    assert started.exit_code == 0, started.output
    run_id = json.loads(started.stdout)["run_id"]
    assert receiver.requests == []
    swept = call(
        tmp_path, "sweep", "--charts", CHARTS, "--json", "--notify-secret-file", str(secret)
    )
    assert swept.exit_code == 0, swept.output
    report = json.loads(swept.stdout)
    assert report["notified"] == 1
    (got,) = receiver.requests
    assert got.json["link"] == f"https://pp.test/runs/{run_id}"
    verify_signature(
        "s3cret",
        got.body,
        timestamp=got.headers["X-Pausepoint-Timestamp"],
        signature=got.headers["X-Pausepoint-Signature"],
    )


def test_urls_are_chosen_when_the_pause_is_written(tmp_path: Path, receiver: Receiver) -> None:
    """A pause written without URLs is not notified by a sweep given --notify later."""
    started = call(tmp_path, "run", "plain", "--charts", CHARTS, "--input", '{"amount": 1}')
    assert started.exit_code == 0, started.output
    swept = call(
        tmp_path,
        "sweep",
        "--charts",
        CHARTS,
        "--json",
        "--notify",
        receiver.url(),
        "--base-url",
        "https://pp.test",
    )
    assert swept.exit_code == 0, swept.output
    assert json.loads(swept.stdout)["notified"] == 0  # that pause was written without URLs
    assert receiver.requests == []


@pytest.mark.parametrize("command", ["sweep", "serve"])
def test_a_bad_notify_url_is_one_error_line(tmp_path: Path, command: str) -> None:
    """A URL no sender understands stops the command with a clear message."""
    outcome = call(tmp_path, command, "--charts", CHARTS, "--notify", "hooks.example/x")
    assert outcome.exit_code == 1
    assert "has no scheme" in outcome.output
