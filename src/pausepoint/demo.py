"""The refund-approval chart used by ``pausepoint demo``, the examples and the docs.

A refund request is received; refunds over $100 wait for a manager, who
approves or rejects; then the refund is processed and the customer notified.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .engine.builder import flow_chart
from .engine.chart import FlowChart, PausableHandler
from .engine.scope import Scope

__all__ = ["RefundDecision", "chart", "charts"]


class RefundDecision(BaseModel):
    """A manager's answer to a refund request."""

    approved: bool = Field(description="Pay the refund?")
    approver: str = Field(min_length=1, description="Who decided")
    note: str | None = Field(default=None, description="Anything the customer should know")


def receive(scope: Scope) -> None:
    """Take the request; fill in a sample order when none is given."""
    scope.order_id = scope.get("order_id", "ORD-2024-7891")
    scope.amount = scope.get("amount", 900)


async def classify(scope: Scope) -> dict[str, Any] | None:
    """Classify the risk; pause for a manager when the amount is over $100."""
    scope.risk_level = "high" if scope.amount > 500 else "low"
    if scope.amount > 100:
        return {
            "question": f"Approve ${scope.amount} refund for {scope.order_id}?",
            "order_id": scope.order_id,
            "amount": scope.amount,
            "risk_level": scope.risk_level,
        }
    scope.approved, scope.approver = True, "auto-approved"
    return None


async def record_decision(scope: Scope, answer: RefundDecision) -> None:
    """Keep the manager's decision."""
    scope.approved = answer.approved
    scope.approver = answer.approver
    if answer.note:
        scope.note = answer.note


def process(scope: Scope) -> None:
    """Refund or reject."""
    scope.refund_status = "refunded" if scope.approved else "rejected"


def notify(scope: Scope) -> None:
    """Tell the customer."""
    scope.notified = f"customer told: refund {scope.refund_status} by {scope.approver}"


chart: FlowChart = (
    flow_chart("ReceiveRequest", receive, "receive", "Take the refund request")
    .add_pausable_function(
        "ManagerApproval",
        PausableHandler(execute=classify, resume=record_decision),
        "approve",
        "Pause for manager review",
        input_schema=RefundDecision,
    )
    .add_function("ProcessRefund", process, "process", "Refund or reject")
    .add_function("NotifyCustomer", notify, "notify", "Tell the customer")
    .build()
)

charts: dict[str, FlowChart] = {"refund": chart}
"""The charts module convention: ``--charts pausepoint.demo`` serves these."""
