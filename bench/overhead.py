"""Fixed costs: import time, and a sync stage called inline versus in a worker thread.

Import time is the wall time of a fresh ``python -c CODE`` minus that of
``python -c pass`` (the interpreter's own start-up), best of several runs each:
the best run is the one least disturbed by the rest of the machine. Every
module loads from cached bytecode, as in an installed package: the children
write their ``.pyc`` files to a temporary ``PYTHONPYCACHEPREFIX`` (never next
to the sources, and even when ``PYTHONDONTWRITEBYTECODE`` is set), and one
untimed run fills it first.

The thread hop is why the executor calls sync stages inline: a stage run
through ``asyncio.to_thread`` pays for the hand-off to a worker thread and
back to the loop on every call.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .harness import Case

ROOT = Path(__file__).resolve().parent.parent

IMPORTS = {
    "bare": "pass",
    "import pausepoint": "import pausepoint",
    "pausepoint API": "from pausepoint import flow_chart, FlowChartExecutor",
    "LangGraph API": (
        "from langgraph.graph import StateGraph; from langgraph.types import Command, interrupt; "
        "from langgraph.checkpoint.memory import InMemorySaver"
    ),
}
"""Label → code run by ``python -c``; ``bare`` is the baseline."""


def import_env(pycache: str) -> dict[str, str]:
    """The environment for the children: bytecode cached under ``pycache``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def best_start_ns(code: str, runs: int, env: dict[str, str]) -> int:
    """Best wall time of ``runs`` fresh interpreters running ``code``, after one untimed run."""
    command = [sys.executable, "-c", code]
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    best = None
    for _ in range(runs):
        started = time.perf_counter_ns()
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        elapsed = time.perf_counter_ns() - started
        best = elapsed if best is None else min(best, elapsed)
    assert best is not None
    return best


def _stage(state: dict[str, Any]) -> None:
    state["x"] = state["x"] + 1


def inline_case() -> Case:
    state = {"x": 0}

    async def call() -> None:
        _stage(state)

    return Case(call)


def to_thread_case() -> Case:
    state = {"x": 0}

    async def call() -> None:
        await asyncio.to_thread(_stage, state)

    return Case(call)
