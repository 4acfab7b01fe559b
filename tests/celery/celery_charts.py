"""The charts the Celery workers of these tests run (``--charts celery_charts``).

Every stage appends one line ``"<run_id> <what> <pid>"`` to the file named by
the run's ``side_log`` input, in one ``write`` with ``O_APPEND``, so the tests
count side effects across worker processes (and kills) and see which process
ran what.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from pydantic import BaseModel

from pausepoint import PausableHandler, Scope, flow_chart


class Decision(BaseModel):
    """What a reviewer answers."""

    approved: bool
    note: str = ""


log = logging.getLogger("celery_charts")


def record(scope: Scope, what: str) -> None:
    log.info("side effect %s", what)
    fd = os.open(scope.side_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{scope.run_id} {what} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def stage(what: str) -> Any:
    def run(scope: Scope) -> None:
        record(scope, what)

    return run


def ask(scope: Scope) -> Any:
    record(scope, "approve:ask")
    return {"question": "Approve?"}


def answer(scope: Scope, decision: Decision) -> None:
    record(scope, "approve:answer")
    scope.approved = decision.approved


async def slow(scope: Scope) -> None:
    """Sleeps ``slow_seconds`` (input; default 0) between two records."""
    record(scope, "slow-start")
    await asyncio.sleep(scope.get("slow_seconds", 0))
    record(scope, "slow-end")


approval = (
    flow_chart("Receive", stage("receive"), "receive")
    .add_pausable_function(
        "Approve", PausableHandler(ask, answer), "approve", input_schema=Decision
    )
    .add_function("Step1", stage("step1"), "step1")
    .add_function("Slow", slow, "slow")
    .add_function("Step3", stage("step3"), "step3")
    .build()
)
"""receive → approve (pausable, Decision) → step1 → slow → step3."""


def note(scope: Scope, answer: Any) -> None:
    record(scope, f"{scope.stage_id}:answer")


twice = (
    flow_chart("Receive", stage("receive"), "receive")
    .add_pausable_function("Approve", PausableHandler(ask, note), "approve")
    .add_pausable_function("Confirm", PausableHandler(ask, note), "confirm")
    .add_function("Finish", stage("finish"), "finish")
    .build()
)
"""receive → approve (pausable) → confirm (pausable) → finish: a run with two pauses."""

charts = {"approval": approval, "twice": twice}

AFTER_PAUSE = ("approve:answer", "step1", "slow-start", "slow-end", "step3")
"""What runs once per resume, in order."""
