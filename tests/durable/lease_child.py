"""Charts of the lease tests, and the child processes they start.

Every stage records a side effect with :func:`runs_child.record` (one line
``"<run_id> <what>"`` appended to the run's ``side_log``), so the tests count
executions across processes, kills and stops.

Each chart is receive → approve (pausable) → step1 → slow → step3, where
``slow`` records ``slow-start``, holds its process for a while in its own way,
then records ``slow-end``:

* ``sync``: a sync stage in ``time.sleep``;
* ``blocking``: an ``async def`` stage that blocks the event loop in ``time.sleep``;
* ``cpu``: a sync stage burning CPU in a pure-Python loop;
* ``async``: an ``async def`` stage awaiting ``asyncio.sleep``, the loop left free.

How long ``slow`` holds is the run's ``slow_seconds`` input, a list: the
first attempt holds ``slow_seconds[0]``, a second one (after a takeover)
``slow_seconds[1]``, and so on (the last value repeats), so a process that
takes a run over need not wait as long as the one it replaced.

Usage: ``python lease_child.py COMMAND URL LEASE [ARGS...]``; the child logs
``pausepoint``'s warnings to stderr as ``<logger> <LEVEL> <message>`` lines.

``resume URL LEASE RUN_ID``
    Resume RUN_ID (actor ``child``) with ``lease_seconds=LEASE``; print one
    JSON line ``{"status": ...}``, or ``{"error": <type>, "message": ...}``
    when the resume raised a ``PausepointError``.
``recover URL LEASE EVERY``
    Call ``recover()`` every EVERY seconds until terminated; print one JSON
    line ``{"recovered": [...]}`` per call (the first one says it is sweeping).

This module is also the charts module of ``pausepoint sweep --charts lease_child``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for runs_child

from pausepoint import FlowChart, Runs, Scope, flow_chart, open_store
from pausepoint.errors import PausepointError
from runs_child import Decision, ask, record, stage


def hold_for(scope: Scope) -> float:
    """How long this attempt at ``slow`` holds: by how many attempts came before it."""
    seconds = list(scope.slow_seconds)
    attempts = 0
    with open(scope.side_log) as lines:
        attempts = sum(1 for line in lines if line.split() == [scope.run_id, "slow-start"])
    return float(seconds[min(attempts, len(seconds) - 1)])


def slow_sync(scope: Scope) -> None:
    """Sleep in a sync stage."""
    seconds = hold_for(scope)
    record(scope, "slow-start")
    time.sleep(seconds)
    record(scope, "slow-end")


async def slow_blocking(scope: Scope) -> None:
    """Block the event loop from an async stage."""
    seconds = hold_for(scope)
    record(scope, "slow-start")
    time.sleep(seconds)  # deliberately blocks the loop  # noqa: ASYNC251
    record(scope, "slow-end")


async def slow_async(scope: Scope) -> None:
    """Wait in an async stage, leaving the event loop free."""
    seconds = hold_for(scope)
    record(scope, "slow-start")
    await asyncio.sleep(seconds)
    record(scope, "slow-end")


def slow_cpu(scope: Scope) -> None:
    """Burn CPU in pure Python (holding the GIL but for the interpreter's switches)."""
    seconds = hold_for(scope)
    record(scope, "slow-start")
    deadline = time.monotonic() + seconds
    x = 0
    while time.monotonic() < deadline:
        for i in range(10_000):
            x = (x * 31 + i) % 1_000_003
    record(scope, "slow-end")


def approval(slow: Any) -> FlowChart:
    """receive → approve (pausable, Decision) → step1 → slow → step3."""
    return (
        flow_chart("Receive", stage("receive"), "receive")
        .add_pausable_function("Approve", ask("approve"), "approve", input_schema=Decision)
        .add_function("Step1", stage("step1"), "step1")
        .add_function("Slow", slow, "slow")
        .add_function("Step3", stage("step3"), "step3")
        .build()
    )


charts = {
    "sync": approval(slow_sync),
    "blocking": approval(slow_blocking),
    "cpu": approval(slow_cpu),
    "async": approval(slow_async),
}

AFTER_PAUSE = ("approve:answer", "step1", "slow-start", "slow-end", "step3")
"""The side effects of a resume, in order."""


# -- child commands ----------------------------------------------------------


async def resume(url: str, lease: float, run_id: str) -> None:
    async with Runs(open_store(url), charts, lease_seconds=lease) as runs:
        try:
            done = await runs.resume(run_id, {"approved": True, "note": "child"}, actor="child")
        except PausepointError as exc:
            report = {"error": type(exc).__name__, "message": str(exc)}
        else:
            report = {"status": done.status}
    print(json.dumps(report), flush=True)


async def recover(url: str, lease: float, every: float) -> None:
    async with Runs(open_store(url), charts, lease_seconds=lease) as runs:
        while True:
            print(json.dumps({"recovered": await runs.recover()}), flush=True)
            await asyncio.sleep(every)


def main(argv: list[str]) -> None:
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s"
    )
    command, url, lease, *args = argv
    if command == "resume":
        asyncio.run(resume(url, float(lease), args[0]))
    elif command == "recover":
        asyncio.run(recover(url, float(lease), float(args[0])))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
