"""A support agent that asks a person before refunding over $500, answered from another process.

    python examples/agent_refund.py                   # start → pause → answer in a second process
    python examples/agent_refund.py start             # only start; answer later, or on the review page
    python examples/agent_refund.py answer RUN_ID [approve | reject REASON | edit AMOUNT]

The model is scripted (``ScriptedModel``), so the example runs offline; swap in
``OpenAIChatModel(base_url, api_key, "gpt-4o-mini")`` for a real one. The run
lives in ``pausepoint-agent-demo.db`` (the embedded SQLite store): the first
process starts it and exits while the refund waits for approval; a second
process, knowing only the run id, answers it. The chart is at module level, so
``pausepoint serve --charts agent_refund --store sqlite:///pausepoint-agent-demo.db``
(run from ``examples/``) shows the same run on the review page.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pausepoint import Runs, open_store
from pausepoint.agent import (
    AssistantMessage,
    ScriptedModel,
    agent_chart,
    ask_human,
    tool,
    tool_call,
    transcript,
)

STORE = os.environ.get("PAUSEPOINT_STORE", "sqlite:///pausepoint-agent-demo.db")
REFUND_LIMIT = 500.0

ORDERS = {
    "ORD-2024-7891": {"item": "Tablet", "total": 900.0, "status": "delivered", "days_ago": 3},
}


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Find an order: item, total, status and how many days ago it was delivered.

    Args:
        order_id: The order's id, like ORD-2024-7891.
    """
    return {"order_id": order_id, **ORDERS[order_id]}


@tool(requires_approval=lambda args: args["amount"] > REFUND_LIMIT)
def refund_order(order_id: str, amount: float, reason: str) -> dict[str, Any]:
    """Refund an order. Refunds over $500 wait for a manager's approval.

    Args:
        order_id: The order to refund.
        amount: How much, in dollars.
        reason: Why, in a few words, for the records.
    """
    return {"refund_id": f"RF-{order_id[-4:]}", "order_id": order_id, "amount": amount}


def final_reply(messages: Sequence[Mapping[str, Any]]) -> str:
    """The scripted model's last turn: say what happened to the refund."""
    outcome = str(messages[-1]["content"])
    if "Result: " not in outcome:  # rejected
        return "I'm sorry: a manager declined the refund. I've passed your case to our team."
    refund = json.loads(outcome.split("Result: ", 1)[1])
    return (
        f"Your refund {refund['refund_id']} of ${refund['amount']:.2f} is on its way. "
        "Sorry about the cracked screen!"
    )


model = ScriptedModel(
    [
        AssistantMessage(
            "Let me look up that order.",
            [tool_call("lookup_order", {"order_id": "ORD-2024-7891"})],
        ),
        AssistantMessage(
            "The tablet was delivered 3 days ago, within the return window. "
            "I'll refund the full $900.",
            [
                tool_call(
                    "refund_order",
                    {"order_id": "ORD-2024-7891", "amount": 900, "reason": "cracked screen"},
                )
            ],
        ),
        final_reply,
    ]
)

chart = agent_chart(
    model,
    [lookup_order, refund_order, ask_human],
    system="You are a support agent for an electronics shop. Be brief and kind.",
    name="SupportAgent",
    max_turns=8,
)
charts = {"support": chart}

PROMPT = "Hi, my order ORD-2024-7891 arrived with a cracked screen. Can I get a refund?"


async def start() -> str:
    async with Runs(open_store(STORE), charts) as runs:
        record = await runs.start("support", {"prompt": PROMPT}, actor="web-chat")
        assert record.pause is not None, "a $900 refund always waits for a manager"
        print(f"[pid {os.getpid()}] run {record.run_id} is {record.status}")
        print(f"[pid {os.getpid()}]   waiting at {record.pause.stage_id!r}")
        print(f"[pid {os.getpid()}]   question: {record.pause.data['question']}")
        print(f"[pid {os.getpid()}]   the agent said: {record.pause.data.get('context')}")
        page = await runs.pending(chart="support")
        print(f"[pid {os.getpid()}]   inbox: {len(page.items)} waiting; this process exits now")
        return record.run_id


async def answer(run_id: str, decision: Sequence[str]) -> None:
    async with Runs(open_store(STORE), charts) as runs:
        waiting = await runs.get(run_id)
        assert waiting.pause is not None, f"run {run_id} is {waiting.status}, not waiting"
        print(f"[pid {os.getpid()}] found run {run_id} waiting: {waiting.pause.data['question']}")
        verdict = decision[0] if decision else "approve"
        reply: dict[str, Any] = {"decision": verdict}
        if verdict == "reject":
            reply["reason"] = " ".join(decision[1:]) or "needs photos of the damage first"
        elif verdict == "edit":
            arguments = dict(waiting.pause.data["arguments"], amount=float(decision[1]))
            reply |= {"arguments": arguments, "reason": "partial refund agreed by phone"}
        print(f"[pid {os.getpid()}] manager Kim answers {reply}")
        record = await runs.resume(run_id, reply, actor="kim", pause_id=waiting.pause.id)
        assert record.snapshot is not None
        state = record.snapshot["shared_state"]
        print(f"[pid {os.getpid()}] run is {record.status}: {state['answer']}")
        print("conversation:")
        for line in transcript(state["messages"]):
            print(f"  {line}")
        print("narrative:")
        for line in record.snapshot["narrative"]:
            print(f"  {line}")
        print(
            "audit: "
            + " → ".join(f"{e.kind}{f' by {e.actor}' if e.actor else ''}" for e in record.audit)
        )


if __name__ == "__main__":
    command = sys.argv[1:] or ["demo"]
    if command[0] == "demo":
        run_id = asyncio.run(start())
        subprocess.run([sys.executable, __file__, "answer", run_id], check=True)
    elif command[0] == "start":
        asyncio.run(start())
    elif command[0] == "answer" and len(command) >= 2:
        asyncio.run(answer(command[1], command[2:]))
    else:
        sys.exit(
            f"usage: {sys.argv[0]} [demo | start | answer RUN_ID [approve|reject REASON|edit AMOUNT]]"
        )
