"""What every contender shares: chain sizes, the refund chart's input, answer and outcome.

S1, a linear chain: N stages, each reads ``x`` and writes ``x + 1``; the run
starts from ``{"x": 0}`` and must end with ``x == N``.

S2, the refund chart of DESIGN.md: ``receive`` → ``approve`` (pausable: a
refund over $100 waits for a manager) → ``process``. The run pauses at
``approve`` with a question; the answer approves it; ``process`` then marks
the refund done. Every contender's stages do the same reads and writes.
"""

from __future__ import annotations

from typing import Any

CHAIN_SIZES = (10, 100, 1000)

REFUND_INPUT: dict[str, Any] = {"order_id": "ORD-1", "amount": 299}
REFUND_ANSWER: dict[str, Any] = {"approved": True, "approver": "Kim"}
REFUND_QUESTION = "Approve $299 refund?"
REFUND_FINAL_STATUS = "refunded"


def risk_of(amount: int) -> str:
    """The refund chart's risk rule, the same for every contender."""
    return "high" if amount > 500 else "low"


def expect(condition: bool, what: str) -> None:
    """Refuse to time a contender whose logic went wrong (asserts vanish under ``-O``)."""
    if not condition:
        raise RuntimeError(f"benchmark sanity check failed: {what}")
