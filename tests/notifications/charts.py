"""Charts of the notification tests (also imported by their child process)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from pausepoint import FlowChart, PausableHandler, flow_chart
from pausepoint.engine.scope import Scope


class Decision(BaseModel):
    approved: bool


def _ask(scope: Scope) -> dict[str, Any]:
    return {"question": f"refund {scope.amount}?", "amount": scope.amount}


def _apply(scope: Scope, answer: Decision) -> None:
    scope.approved = answer.approved


def approval(
    notify: Sequence[str] = (),
    *,
    assignees: Sequence[str] | None = ("managers",),
    **people: Any,
) -> FlowChart:
    """receive → approve (pausable, notifying) → pay."""
    return (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "Approve",
            PausableHandler(execute=_ask, resume=_apply),
            "approve",
            input_schema=Decision,
            assignees=assignees,
            notify=list(notify) or None,
            **people,
        )
        .add_function("Pay", lambda scope: None, "pay")
        .build()
    )
