"""A chart that handles a card number: redacted, kept at rest, needed again after the pause.

``receive`` normalises the card number from the input and files it in a nested
customer record; ``score`` writes a plain value (one more journal entry);
``approve`` pauses with the card number in its data, at the top and nested, and
takes an answer holding a CVV; ``charge`` uses both real values after the
resume and records what it saw in :data:`CHARGED`.
"""

from __future__ import annotations

from typing import Any

from pausepoint import FlowChart, PausableHandler, Scope, flow_chart

CARD = "4000-1234-5678-9010"
CARD_DIGITS = "4000123456789010"
CVV = "cvv-9Q7Z3K"
QUESTION = "Charge card of Ann Example?"
REDACT = ["card_number", "cvv"]

CHARGED: list[str] = []
"""What ``charge`` saw, one line per run that reached it."""


def receive(scope: Scope) -> None:
    scope.card_number = scope.card_number.replace("-", "")
    scope.customer = {"name": "Ann Example", "card_number": scope.card_number}


def score(scope: Scope) -> None:
    scope.risk = 3


def ask(scope: Scope) -> Any:
    return {
        "question": QUESTION,
        "card_number": scope.card_number,
        "customer": {"name": "Ann Example", "card_number": scope.card_number},
        "items": [{"card_number": scope.card_number}],
    }


def decide(scope: Scope, answer: Any) -> None:
    scope.approved = answer["approved"]
    scope.cvv = answer["cvv"]


def charge(scope: Scope) -> None:
    CHARGED.append(f"{scope.run_id} {scope.card_number} {scope.cvv}")
    scope.receipt = "r-" + scope.card_number[-4:]


def card_chart() -> FlowChart:
    return (
        flow_chart("Receive", receive, "receive")
        .add_function("Score", score, "score")
        .add_pausable_function("Approve", PausableHandler(ask, decide), "approve")
        .add_function("Charge", charge, "charge")
        .build(redact=REDACT)
    )


def answer(approved: bool = True) -> dict[str, Any]:
    return {"approved": approved, "cvv": CVV}
