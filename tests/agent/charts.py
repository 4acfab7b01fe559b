"""Agent charts the agent tests share, importable in a child process too.

Every model is a ``ScriptedModel``: its reply depends only on the conversation,
so a fresh copy of this module in another process carries on the same run.
``refund_order`` appends one line per real refund to the file named by
``AGENT_SIDE_LOG`` (when set), so tests count side effects across processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pausepoint import FlowChart
from pausepoint.agent import (
    AssistantMessage,
    ScriptedModel,
    agent_chart,
    ask_human,
    tool,
    tool_call,
)

ORDERS = {
    "ORD-1": {"order_id": "ORD-1", "customer": "Ada", "total": 900.0, "status": "delivered"},
    "ORD-2": {"order_id": "ORD-2", "customer": "Bo", "total": 40.0, "status": "delivered"},
}

REFUNDS: list[tuple[str, float]] = []
"""Refunds made in this process, in order."""


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Find an order by its id.

    Args:
        order_id: The order's id, like ORD-1.
    """
    return ORDERS[order_id]


@tool(requires_approval=True)
def refund_order(order_id: str, amount: float) -> str:
    """Refund part or all of an order.

    Args:
        order_id: The order to refund.
        amount: How much, in dollars.
    """
    REFUNDS.append((order_id, amount))
    side_log = os.environ.get("AGENT_SIDE_LOG")
    if side_log:
        fd = os.open(side_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"refund {order_id} {amount}\n".encode())
        finally:
            os.close(fd)
    return f"refunded ${amount:.2f} on {order_id}"


def last_tool_results(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The contents of the tool messages after the last assistant message."""
    tail: list[str] = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        tail.append(str(message["content"]))
    return list(reversed(tail))


def echo_results(messages: Sequence[Mapping[str, Any]]) -> str:
    """A final reply quoting the last tool results, so tests see what the model read."""
    return "Done. " + " | ".join(last_tool_results(messages))


# -- ask_human: one question, then an answer built from the person's reply ---

ask_model = ScriptedModel(
    [
        AssistantMessage(
            "I need to know the colour first.",
            [tool_call("ask_human", {"question": "Which colour should the bike be?"})],
        ),
        lambda messages: f"Painting the bike {last_tool_results(messages)[0]}.",
    ]
)
ask: FlowChart = agent_chart(
    ask_model, [ask_human], system="You paint bikes.", name="PaintAgent", max_turns=5
)

# -- one refund that needs approval ------------------------------------------

refund_model = ScriptedModel(
    [
        AssistantMessage(None, [tool_call("lookup_order", {"order_id": "ORD-1"}, id="call_a")]),
        AssistantMessage(
            "The order qualifies; refunding in full.",
            [tool_call("refund_order", {"order_id": "ORD-1", "amount": 900}, id="call_b")],
        ),
        echo_results,
    ]
)
refund: FlowChart = agent_chart(
    refund_model,
    [lookup_order, refund_order, ask_human],
    system="You are a support agent.",
    name="SupportAgent",
)

# -- two refunds proposed in one turn -----------------------------------------

pair_model = ScriptedModel(
    [
        AssistantMessage(
            "Refunding both orders.",
            [
                tool_call("refund_order", {"order_id": "ORD-1", "amount": 900}, id="c1"),
                tool_call("refund_order", {"order_id": "ORD-2", "amount": 40}, id="c2"),
            ],
        ),
        echo_results,
    ]
)
pair: FlowChart = agent_chart(pair_model, [refund_order], name="PairAgent")

charts: dict[str, FlowChart] = {"ask": ask, "refund": refund, "pair": pair}
