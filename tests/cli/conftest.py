"""Fixtures for the CLI tests: a store in tmp_path, a charts module, two ways to call the CLI.

``cli`` invokes the Typer app in this process (CliRunner); ``pp`` runs
``python -m pausepoint`` as a real subprocess with ``cwd=tmp_path``. Both
point ``PAUSEPOINT_STORE`` at a SQLite file in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pausepoint.cli import app

CHARTS_MODULE = "pp_cli_charts"

CHARTS_SOURCE = '''
"""Charts for the CLI tests."""

from pausepoint import OnTimeout, PausableHandler, flow_chart


def ask(scope):
    return {"question": f"Review {scope.item}?"}


def decide(scope, answer):
    scope.verdict = answer["verdict"]


def explode(scope):
    raise RuntimeError("the ledger is on fire")


timed = (
    flow_chart("Start", lambda scope: None, "start")
    .add_pausable_function(
        "Review",
        PausableHandler(execute=ask, resume=decide),
        "review",
        timeout=0.05,
        on_timeout=OnTimeout.cancel(),
    )
    .build()
)

review = (
    flow_chart("Start", lambda scope: None, "start")
    .add_pausable_function("Review", PausableHandler(execute=ask, resume=decide), "review")
    .build()
)

fragile = flow_chart("Explode", explode, "explode").build()

charts = {"timed": timed, "review": review, "fragile": fragile}
'''


@dataclass
class Outcome:
    """What a command did: exit code and its two streams."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_line(self) -> str:
        """The one line a user mistake prints; fails if there is more (or a traceback)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: "), self.stderr
        assert "Traceback" not in self.stderr + self.stdout
        return lines[0]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def charts_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A charts module (timed, review, fragile) importable as ``pp_cli_charts``."""
    (tmp_path / f"{CHARTS_MODULE}.py").write_text(CHARTS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, CHARTS_MODULE, raising=False)
    yield CHARTS_MODULE
    sys.modules.pop(CHARTS_MODULE, None)


@pytest.fixture
def cli(store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Outcome]:
    """Invoke the app in-process, with the test's store and wide output."""
    monkeypatch.setenv("PAUSEPOINT_STORE", store_url)
    monkeypatch.delenv("PAUSEPOINT_CHARTS", raising=False)
    for name in (
        "PAUSEPOINT_TOKENS",
        "PAUSEPOINT_TOKENS_FILE",
        "PAUSEPOINT_PUBLIC_READ",
        "PAUSEPOINT_SESSION_SECRET",
        "PAUSEPOINT_SESSION_SECRETS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Outcome:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def subprocess_env(store_url: str, tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PAUSEPOINT_STORE", "PAUSEPOINT_CHARTS")
        and not k.startswith(("PAUSEPOINT_TOKENS", "PAUSEPOINT_SESSION", "PAUSEPOINT_PUBLIC"))
    }
    env["PAUSEPOINT_STORE"] = store_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def pp(tmp_path: Path, subprocess_env: dict[str, str]) -> Callable[..., Outcome]:
    """Run ``python -m pausepoint ARGS`` in a new process, in tmp_path."""
    (tmp_path / f"{CHARTS_MODULE}.py").write_text(CHARTS_SOURCE)

    def run(*args: str) -> Outcome:
        done = subprocess.run(
            [sys.executable, "-m", "pausepoint", *args],
            cwd=tmp_path,
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)

    return run
