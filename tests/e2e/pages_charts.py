"""Charts for the page tests: a typed ticket chart (input model, typed state, raw JSON
answer) and a chart whose charge stage fails while ``FAILING`` is set."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from pausepoint import flow_chart
from pausepoint.demo import charts as demo_charts
from pausepoint.engine.chart import FlowChart, PausableHandler
from pausepoint.engine.scope import Scope

FAILING = {"charge": True}


class Ticket(BaseModel):
    """A new support ticket."""

    title: str = Field(min_length=3, description="What is wrong")
    priority: int = Field(ge=1, le=5, description="1 (low) to 5 (urgent)")


class TicketState(BaseModel):
    title: str = ""
    priority: int = 1
    owner: Any = None
    closed: bool = False


def _open(scope: Scope) -> None:
    scope.priority = scope.get("priority", 1)


def _ask_owner(scope: Scope) -> dict[str, Any]:
    return {"question": f"Who takes ticket '{scope.title}'?", "priority": scope.priority}


def _take(scope: Scope, answer: Any) -> None:
    scope.owner = answer


def _close(scope: Scope) -> None:
    scope.closed = True


ticket: FlowChart = (
    flow_chart("OpenTicket", _open, "open", "A support ticket finds an owner")
    .add_pausable_function(
        "Triage", PausableHandler(execute=_ask_owner, resume=_take), "triage", "Pick an owner"
    )
    .add_function("Close", _close, "close", "Close the ticket")
    .build(state=TicketState, input=Ticket)
)


def _load(scope: Scope) -> None:
    scope.basket = scope.get("basket", 3)


def _charge(scope: Scope) -> None:
    if FAILING["charge"]:
        raise RuntimeError("the card processor is down")
    scope.charged = True


flaky: FlowChart = (
    flow_chart("LoadBasket", _load, "load", "A checkout whose charge may fail")
    .add_function("Charge", _charge, "charge", "Charge the card")
    .build()
)

PAGE_CHARTS: dict[str, FlowChart] = {**demo_charts, "ticket": ticket, "flaky": flaky}
