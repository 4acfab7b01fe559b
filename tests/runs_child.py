"""Charts of test_runs.py, and the child process its cross-process tests start.

Every stage records a side effect as one line ``"<run_id> <what>"`` appended
(one ``write`` with ``O_APPEND``) to the file named by the run's ``side_log``
input, so the tests can count executions across processes and crashes.

Usage: ``python runs_child.py COMMAND URL [ARGS...]``

``race URL NAME RUN_ID...``
    Print "ready", wait for a line on stdin, resume every run once with actor
    NAME; print one JSON line ``{"won": [...], "claimed": [...]}``.
``kill URL RUN_ID``
    Resume RUN_ID with ``lease_seconds=1`` and a ``slow`` stage that sleeps
    for a minute; the parent kills this process while ``slow`` runs.
``expire URL``
    Print "ready", wait for a line on stdin, call ``expire_due`` once; print
    the ids it acted on as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from pydantic import BaseModel

from pausepoint import FlowChart, OnTimeout, PausableHandler, Runs, Scope, flow_chart, open_store
from pausepoint.errors import RunAlreadyClaimedError

SLOW_SECONDS = 0.0
"""How long the ``slow`` stage sleeps; the ``kill`` child raises it so it can be killed there."""


class Decision(BaseModel):
    """What a reviewer answers."""

    approved: bool
    note: str = ""


def record(scope: Scope, what: str) -> None:
    """Append ``"<run_id> <what>"`` to the run's side-effect log in one write."""
    fd = os.open(scope.side_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{scope.run_id} {what}\n".encode())
    finally:
        os.close(fd)


def stage(what: str) -> Any:
    """A plain stage that records ``what``."""

    def run(scope: Scope) -> None:
        record(scope, what)

    return run


def ask(name: str) -> PausableHandler:
    """A pausable handler that asks ``name?`` and records and keeps the answer."""

    def execute(scope: Scope) -> Any:
        record(scope, f"{name}:ask")
        return {"question": f"{name}?", "amount": scope.get("amount", 0)}

    def resume(scope: Scope, answer: Any) -> None:
        if isinstance(answer, Decision):
            answer = answer.model_dump()
        record(scope, f"{name}:answer")
        scope[name] = answer

    return PausableHandler(execute, resume)


async def slow(scope: Scope) -> None:
    """Record the start, sleep ``SLOW_SECONDS``, record the end."""
    record(scope, "slow-start")
    await asyncio.sleep(SLOW_SECONDS)
    record(scope, "slow-end")


def boom(scope: Scope) -> None:
    """A stage that always fails."""
    record(scope, "explode")
    raise RuntimeError("boom")


def approval(*, extra_stage: bool = False) -> FlowChart:
    """receive → approve (pausable, Decision schema) → step1 → slow → step3 [→ step4]."""
    builder = (
        flow_chart("Receive", stage("receive"), "receive")
        .add_pausable_function("Approve", ask("approve"), "approve", input_schema=Decision)
        .add_function("Step1", stage("step1"), "step1")
        .add_function("Slow", slow, "slow")
        .add_function("Step3", stage("step3"), "step3")
    )
    if extra_stage:
        builder = builder.add_function("Step4", stage("step4"), "step4")
    return builder.build()


def chain() -> FlowChart:
    """receive → first (pausable) → second (pausable) → done."""
    return (
        flow_chart("Receive", stage("receive"), "receive")
        .add_pausable_function("First", ask("first"), "first")
        .add_pausable_function("Second", ask("second"), "second")
        .add_function("Done", stage("done"), "done")
        .build()
    )


def fork() -> FlowChart:
    """receive → reviews (legal ∥ finance, both pausable) → join."""
    return (
        flow_chart("Receive", stage("receive"), "receive")
        .add_parallel("reviews", "Reviews")
        .add_pausable_branch("legal", "Legal", ask("legal"))
        .add_pausable_branch("finance", "Finance", ask("finance"))
        .end()
        .add_function("Join", stage("join"), "join")
        .build()
    )


def deadline(policy: OnTimeout | None) -> FlowChart:
    """receive → wait (pausable, 50 ms timeout, ``policy``) → after."""
    return (
        flow_chart("Receive", stage("receive"), "receive")
        .add_pausable_function(
            "Wait", ask("wait"), "wait", input_schema=Decision, timeout=0.05, on_timeout=policy
        )
        .add_function("After", stage("after"), "after")
        .build()
    )


def failing() -> FlowChart:
    """receive → approve (pausable) → explode (raises)."""
    return (
        flow_chart("Receive", stage("receive"), "receive")
        .add_pausable_function("Approve", ask("approve"), "approve")
        .add_function("Explode", boom, "explode")
        .build()
    )


def charts() -> dict[str, FlowChart]:
    """Every chart of the tests, by the name runs refer to them with."""
    return {
        "approval": approval(),
        "chain": chain(),
        "fork": fork(),
        "deadline_resume": deadline(OnTimeout.resume_with({"approved": False, "note": "late"})),
        "deadline_fail": deadline(OnTimeout.fail()),
        "deadline_cancel": deadline(OnTimeout.cancel()),
        "deadline_default": deadline(None),
        "failing": failing(),
    }


# -- child commands ----------------------------------------------------------


async def race(url: str, name: str, run_ids: list[str]) -> None:
    async with Runs(open_store(url), charts()) as runs:
        await runs.store.list_pending(limit=1)  # connect (and migrate) before the start line
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        won: list[str] = []
        claimed: list[str] = []
        for run_id in run_ids:
            try:
                done = await runs.resume(run_id, {"approved": True, "note": name}, actor=name)
            except RunAlreadyClaimedError:
                claimed.append(run_id)
            else:
                assert done.status == "completed", done
                won.append(run_id)
        print(json.dumps({"won": won, "claimed": claimed}), flush=True)


async def kill(url: str, run_id: str) -> None:
    global SLOW_SECONDS
    SLOW_SECONDS = 60.0
    async with Runs(open_store(url), charts(), lease_seconds=1) as runs:
        await runs.resume(run_id, {"approved": True, "note": "child"}, actor="child")
    raise SystemExit("the slow stage finished: the parent should have killed this process")


async def expire(url: str) -> None:
    async with Runs(open_store(url), charts()) as runs:
        await runs.store.list_pending(limit=1)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        print(json.dumps(await runs.expire_due()), flush=True)


def main(argv: list[str]) -> None:
    command, url, *args = argv
    if command == "race":
        asyncio.run(race(url, args[0], args[1:]))
    elif command == "kill":
        asyncio.run(kill(url, args[0]))
    elif command == "expire":
        asyncio.run(expire(url))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
