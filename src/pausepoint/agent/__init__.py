"""Agents that pause for a person: a tool-calling loop as a pausepoint chart.

>>> from pausepoint.agent import agent_chart, ask_human, tool, OpenAIChatModel
>>> @tool(requires_approval=True)
... def refund_order(order_id: str, amount: float) -> str:
...     '''Refund an order.'''
...     return payments.refund(order_id, amount)
>>> chart = agent_chart(OpenAIChatModel(url, key, "gpt-4o-mini"),
...                     [lookup_order, refund_order, ask_human], system="You are ...")
>>> rec = await Runs(store, charts={"support": chart}).start("support", {"prompt": "..."})

The loop is model → tools → model until the model answers without tool calls.
``ask_human`` pauses the run with the model's question and resumes with the
answer as the tool's result; a tool marked ``requires_approval`` pauses
before it runs (approve, edit the arguments, or reject). Each pause is an
ordinary pausepoint pause: in the inbox, the CLI and the review page, and
resumable in any process, exactly once through ``Runs``.

Not imported by ``import pausepoint``; :class:`OpenAIChatModel` needs ``httpx``.
"""

from __future__ import annotations

from ._errors import (
    AgentError,
    AgentSetupError,
    AgentTurnLimitError,
    ModelError,
    ScriptExhaustedError,
    ToolCallError,
)
from ._loop import ApprovalDecision, HumanAnswer, agent_chart
from ._messages import AssistantMessage, Message, ToolCall, ToolSpec, tool_call
from ._models import ChatModel, ModelCall, ScriptedModel, ScriptedReply
from ._openai import OpenAIChatModel
from ._tools import ApprovalRule, Tool, ask_human, tool
from ._transcript import transcript

__all__ = [
    "AgentError",
    "AgentSetupError",
    "AgentTurnLimitError",
    "ApprovalDecision",
    "ApprovalRule",
    "AssistantMessage",
    "ChatModel",
    "HumanAnswer",
    "Message",
    "ModelCall",
    "ModelError",
    "OpenAIChatModel",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ScriptedReply",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "ToolSpec",
    "agent_chart",
    "ask_human",
    "tool",
    "tool_call",
    "transcript",
]
