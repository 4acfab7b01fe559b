"""The model adapter protocol, and a scripted model for tests and examples."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

from ._errors import ScriptExhaustedError
from ._messages import AssistantMessage, ToolSpec

__all__ = ["ChatModel", "ModelCall", "ScriptedModel", "ScriptedReply"]


@runtime_checkable
class ChatModel(Protocol):
    """What the agent needs of a model: one reply to a conversation.

    An implementation must:

    * leave ``messages`` unchanged (they are the run's state);
    * return the reply, with an id on every tool call when the model gives
      one (the agent numbers calls without one);
    * raise :class:`~pausepoint.agent.ModelError` (or a subclass) when the
      model cannot be reached or replies in a shape it does not understand,
      after any retries it makes. The run then fails with a ``StageError``
      caused by it; nothing is retried by the agent.

    A new model object may be created for every resume, in another process:
    keep no conversation state in it.
    """

    async def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AssistantMessage:
        """Return the model's reply to ``messages`` (OpenAI format), offering ``tools``."""
        ...


ScriptedReply: TypeAlias = (
    "AssistantMessage | str | Callable[[Sequence[Mapping[str, Any]]], AssistantMessage | str]"
)
"""A reply, plain text (a final answer), or a function of the conversation returning one."""


@dataclass(frozen=True, slots=True)
class ModelCall:
    """What a :class:`ScriptedModel` was sent once.

    Attributes:
        messages: A copy of the conversation it was sent.
        tools: The names of the tools it was offered.
    """

    messages: list[dict[str, Any]]
    tools: list[str]


class ScriptedModel:
    """Replays scripted replies: for tests, examples and benchmarks.

    The reply given is chosen by how many assistant messages the conversation
    already holds, not by how often this object was called: a fresh
    ``ScriptedModel`` built in another process to resume a run carries on
    where the script left off.

    A reply may be a function of the conversation, to assert what the model
    was sent (an ``AssertionError`` fails the run) or to reply with what a
    person answered.

    Args:
        replies: The script, one reply per model turn.
        record: Keep a copy of every conversation sent, in :attr:`calls`.
    """

    def __init__(self, replies: Sequence[ScriptedReply], *, record: bool = True) -> None:
        self.replies = list(replies)
        self.record = record
        self.calls: list[ModelCall] = []

    async def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AssistantMessage:
        """Return the scripted reply for this point of the conversation.

        Raises:
            ScriptExhaustedError: The conversation is past the end of the script.
        """
        if self.record:
            self.calls.append(
                ModelCall(json.loads(json.dumps(list(messages))), [t.name for t in tools])
            )
        turn = sum(1 for message in messages if message.get("role") == "assistant")
        if turn >= len(self.replies):
            raise ScriptExhaustedError(
                f"the scripted model has {len(self.replies)} replies and was asked for "
                f"reply {turn + 1}"
            )
        reply = self.replies[turn]
        if callable(reply):
            reply = reply(messages)
        return AssistantMessage(content=reply) if isinstance(reply, str) else reply
