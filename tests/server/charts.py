"""Charts the service tests need besides the refund demo."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

from pausepoint import FlowChart, PausableHandler, Scope, flow_chart


class Priority(Enum):
    LOW = "low"
    HIGH = "high"


class Review(BaseModel):
    """Every kind of field the generated form knows."""

    ok: bool = Field(description="Looks right?")
    score: int = Field(ge=0, le=10, description="0 to 10")
    ratio: float = 0.5
    verdict: Literal["accept", "reject"]
    priority: Priority = Priority.LOW
    due: date | None = None
    comment: str | None = None
    tags: list[str] = Field(default_factory=list)


def _ask(question: str) -> PausableHandler:
    def execute(scope: Scope) -> Any:
        return {"question": question, "note": scope.get("note", "")}

    def resume(scope: Scope, answer: Any) -> None:
        scope[f"answer_{question[:5].lower()}"] = (
            answer.model_dump(mode="json") if hasattr(answer, "model_dump") else answer
        )

    return PausableHandler(execute, resume)


def _seed(scope: Scope) -> None:
    scope.note = scope.get("note", "")


parallel: FlowChart = (
    flow_chart("Seed", _seed, "seed")
    .add_parallel("reviews", "Reviews")
    .add_pausable_branch("legal", "LegalReview", _ask("Legal OK?"), input_schema=Review)
    .add_pausable_branch("finance", "FinanceReview", _ask("Finance OK?"))
    .end()
    .add_function("done", lambda scope: None, "finish")
    .build()
)
"""Two pauses at once: one with a schema (every field kind), one without."""


class Paid(BaseModel):
    paid: bool


def _order_id(scope: Scope) -> Any:
    return scope.get("order_id", "none")


payment: FlowChart = (
    flow_chart("Seed", _seed, "seed")
    .add_pausable_function(
        "AwaitPayment",
        _ask("Paid?"),
        "await-payment",
        input_schema=Paid,
        key=lambda scope: f"order:{_order_id(scope)}",
    )
    .build()
)
"""Waits under the business key ``order:<order_id>``."""

CHARTS: dict[str, FlowChart] = {"parallel": parallel, "payment": payment}
