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


async def lifecycle(run_id: str) -> tuple[int, int, str]:
    from datetime import timedelta

    from pausepoint import RunList, SweepReport

    keyed = (
        flow_chart("Receive", receive, "receive")
        .add_pausable_function(
            "AwaitPayment",
            PausableHandler(execute=classify, resume=decide_refund),
            "await-payment",
            key=lambda scope: f"order:{scope.order_id}",
        )
        .build()
    )
    runs = Runs(
        open_store("memory://"),
        {"refund": chart, "payment": keyed},
        retention={"completed": timedelta(days=30), ("refund", "failed"): timedelta(days=90)},
    )
    report: SweepReport = await runs.sweep()
    page: RunList = await runs.list(status="failed", chart="refund", limit=50)
    n = await runs.purge(status="completed", older_than=timedelta(days=30), dry_run=True)
    await runs.delete(run_id, actor="kim")
    rec = await runs.resume_by_key("order:ORD-7", {"paid": True}, actor="stripe")
    recs = await runs.signal(
        "order:ORD-7", {"paid": True}, actor="stripe", buffer=timedelta(minutes=10)
    )
    return n + report.purged + len(recs), len(page.items), rec.status


def people_snippet(store: Any, charts: dict[str, Any], key: str, signing: str) -> Any:
    """The README's "People" snippet."""
    from datetime import timedelta

    from pausepoint.server import Actor, create_app

    builder = flow_chart("Receive", receive, "receive")
    approval = PausableHandler(execute=classify, resume=decide_refund)
    builder.add_pausable_function(
        "Approve",
        approval,
        "approve",
        assignees=["managers"],
        notify=["mailto://ops@example.com", "jsons://hooks.example/pausepoint"],
        remind_every=timedelta(hours=4),
        escalate_after=timedelta(days=1),
        escalate_to=["directors"],
    )
    runs = Runs(
        store, charts, base_url="https://pp.example", encryption_key=key, signing_key=signing
    )
    return create_app(runs, tokens={"s3cret": "kim", "t0ken": Actor("lee", groups=["managers"])})
