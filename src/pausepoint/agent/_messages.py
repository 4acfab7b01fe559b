r"""What flows between the agent and a model: assistant replies, tool calls, tool specs.

The conversation itself is a list of plain dicts in the OpenAI chat format,
kept once in the run's state under ``messages``::

    {"role": "system" | "user", "content": "..."}
    {"role": "assistant", "content": "..." | None,
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "lookup_order", "arguments": "{\"order_id\": \"A1\"}"}}]}
    {"role": "tool", "tool_call_id": "call_1", "content": "..."}

so any OpenAI-compatible endpoint takes it as it is, and a checkpoint holds it as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = ["AssistantMessage", "Message", "ToolCall", "ToolSpec", "tool_call"]

Message: TypeAlias = dict[str, Any]
"""One chat message in the OpenAI format (a JSON dict)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model asked for.

    Attributes:
        id: The call's id; tool results answer it by this id. ``None`` lets the
            agent number it (``call_<turn>_<n>``), as scripted replies usually do.
        name: The tool's name.
        arguments: The arguments as a dict, or the raw text the model sent when
            it is not a JSON object (the agent then tells the model so).
    """

    id: str | None
    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)

    def arguments_json(self) -> str:
        """Return the arguments as the JSON text the OpenAI format carries."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """A model's reply: text, tool calls, or both.

    Attributes:
        content: What the model said (``None`` when it only calls tools).
        tool_calls: The tools it wants run; none means this is its final answer.
        usage: Tokens the call cost, as the model reported them
            (``{"prompt_tokens": n, "completion_tokens": m}``), when it did.
    """

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    usage: Mapping[str, int] | None = None

    def to_message(self) -> Message:
        """Return the reply as an OpenAI-format assistant message.

        Raises:
            ValueError: A tool call has no id (the agent assigns ids before this).
        """
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            calls = []
            for call in self.tool_calls:
                if call.id is None:
                    raise ValueError(f"tool call {call.name!r} has no id")
                calls.append(
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments_json()},
                    }
                )
            message["tool_calls"] = calls
        return message


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it.

    Attributes:
        name: The name the model calls it by.
        description: What it does, for the model.
        parameters: JSON Schema of its arguments (an object schema).
    """

    name: str
    description: str
    parameters: Mapping[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """Return the tool in the OpenAI ``tools`` format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


def tool_call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None
) -> ToolCall:
    """Return a :class:`ToolCall`; a shorthand for scripted replies.

    >>> AssistantMessage("Let me look.", [tool_call("lookup_order", {"order_id": "A1"})])
    """
    return ToolCall(id=id, name=name, arguments={} if arguments is None else arguments)
