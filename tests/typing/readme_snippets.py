"""The README's snippets, type-checked by mypy --strict in CI (never run)."""

from __future__ import annotations

import json
from typing import Any

from pausepoint import (
    FlowChartExecutor,
    OnTimeout,
    PausableHandler,
    Runs,
    Scope,
    flow_chart,
    open_store,
)


def receive(scope: Scope) -> None:
    scope.order_id = "ORD-1"


async def classify(scope: Scope) -> dict[str, Any] | None:
    scope.risk_level = "high" if scope.amount > 500 else "low"
    if scope.amount > 100:
        return {"question": f"Approve ${scope.amount} refund?"}
    return None


async def decide_refund(scope: Scope, answer: dict[str, Any]) -> None:
    scope.approved = answer["approved"]


def process(scope: Scope) -> None:
    scope.done = True


chart = (
    flow_chart("ReceiveRequest", receive, "receive")
    .add_pausable_function(
        "ManagerApproval",
        PausableHandler(execute=classify, resume=decide_refund),
        "approve",
        "Pause for manager review",
        timeout=3600,
        on_timeout=OnTimeout.resume_with({"approved": False}),
    )
    .add_function("ProcessRefund", process, "process")
    .build()
)


async def executor_round_trip() -> list[str]:
    executor = FlowChartExecutor(chart)
    await executor.run(input={"order_id": "ORD-1", "amount": 299})
    saved = ""
    if executor.is_paused():
        checkpoint = executor.get_checkpoint()
        saved = json.dumps(checkpoint)
    executor = FlowChartExecutor(chart)
    await executor.resume(json.loads(saved), {"approved": True, "approver": "Kim"})
    snapshot = executor.get_snapshot()
    state: dict[str, Any] = snapshot["shared_state"]
    return [*executor.get_narrative(), *state]


async def durable_round_trip() -> str:
    async with Runs(open_store("sqlite:///pausepoint.db"), charts={"refund": chart}) as runs:
        rec = await runs.start("refund", {"order_id": "ORD-1", "amount": 900})
        page = await runs.pending(chart="refund", limit=50)
        assert rec.pause is not None
        rec = await runs.resume(rec.run_id, {"approved": True}, actor="kim", pause_id=rec.pause.id)
        return f"{rec.status} {len(page.items)} {page.next_cursor}"
