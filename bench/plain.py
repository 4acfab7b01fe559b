"""The floor: the same logic as plain function calls over a dict.

A pause is ``json.dumps`` of ``{"stage", "state", "pause_data"}``; a resume is
``json.loads`` of that string and the remaining calls. No trace, no checks:
what is left when every feature is taken away.
"""

from __future__ import annotations

import json
from typing import Any

from .harness import Case
from .scenarios import (
    REFUND_ANSWER,
    REFUND_FINAL_STATUS,
    REFUND_INPUT,
    REFUND_QUESTION,
    expect,
    risk_of,
)

NAME = "plain Python"


# -- S1: linear chain ------------------------------------------------------


def _step(state: dict[str, Any]) -> None:
    state["x"] = state["x"] + 1


def chain_case(n: int) -> Case:
    stages = [_step] * n

    def run() -> dict[str, Any]:
        state = {"x": 0}
        for stage in stages:
            stage(state)
        return state

    expect(run()["x"] == n, f"plain chain of {n} ends with x == {n}")
    return Case(run)


# -- S2: refund chart ------------------------------------------------------


def _receive(state: dict[str, Any]) -> None:
    state["status"] = "received" if state["order_id"] else "invalid"


def _approve_execute(state: dict[str, Any]) -> dict[str, Any] | None:
    amount = state["amount"]
    state["risk_level"] = risk_of(amount)
    if amount > 100:
        return {"question": f"Approve ${amount} refund?", "risk_level": state["risk_level"]}
    return None


def _approve_resume(state: dict[str, Any], answer: dict[str, Any]) -> None:
    state["approved"] = answer["approved"]
    state["approver"] = answer["approver"]


def _process(state: dict[str, Any]) -> None:
    state["status"] = "refunded" if state["approved"] else "rejected"


def _run_to_pause() -> str:
    state = dict(REFUND_INPUT)
    _receive(state)
    data = _approve_execute(state)
    return json.dumps({"stage": "approve", "state": state, "pause_data": data})


def _resume(saved: str) -> dict[str, Any]:
    checkpoint = json.loads(saved)
    state = checkpoint["state"]
    _approve_resume(state, REFUND_ANSWER)
    _process(state)
    return state


def refund_pause_case() -> Case:
    saved = json.loads(_run_to_pause())
    expect(saved["pause_data"]["question"] == REFUND_QUESTION, "plain refund pauses")
    return Case(_run_to_pause)


def refund_resume_case() -> Case:
    saved = _run_to_pause()
    expect(_resume(saved)["status"] == REFUND_FINAL_STATUS, "plain refund completes")
    return Case(lambda: _resume(saved))


def refund_checkpoint_bytes() -> tuple[int, str]:
    """Size of the saved JSON, and what was counted."""
    return len(_run_to_pause().encode()), "len(json.dumps(dict))"
