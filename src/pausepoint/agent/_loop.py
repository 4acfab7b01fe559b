"""The agent loop as a chart: model → tools → model, until the model answers.

::

    start ─► model ─► tools (one item per tool call, concurrently) ─┐
               ▲                                                    │
               └──────────────────── loop ◄─────────────────────────┘

Each tool call runs as one for-each item on its own small state
(``{item, index}``): ``check`` validates the call, ``route`` sends it to
``run`` (call the tool), ``ask`` (pause: :data:`ask_human`) or
``approve_<tool>`` (pause before a call its tool's ``requires_approval`` flags). Items
that wait for a person pause with their own pause, named by the tool call's id
(stage path ``tools[<call id>]/ask``); they are answered in any order, and the
loop goes on when every call of the turn has its result.

State keys: ``messages`` (the conversation, kept once, in the OpenAI
format), ``turn`` (model calls so far), ``tool_calls`` (the current turn's
calls), ``tool_results`` (their results until the next model turn appends
them to ``messages``), ``usage`` (tokens spent over every turn, every resume
included, when the model reports them), and at the end ``answer`` and
``stop_reason``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from pausepoint.engine.builder import flow_chart
from pausepoint.engine.chart import ITEM_KEY_CHARS, ITEM_KEY_MAX, FlowChart, PausableHandler
from pausepoint.engine.scope import Scope

from ._errors import AgentError, AgentSetupError, AgentTurnLimitError, ToolCallError
from ._messages import AssistantMessage, Message, ToolCall
from ._models import ChatModel
from ._tools import Tool, content_of, tool

__all__ = ["ApprovalDecision", "HumanAnswer", "agent_chart"]

log = logging.getLogger("pausepoint.agent")

TurnLimitPolicy = Literal["error", "stop"]


class HumanAnswer(BaseModel):
    """A person's answer to a question the agent asked with ``ask_human``."""

    answer: str = Field(
        min_length=1, description="Your answer. The agent reads it as the result of its question."
    )


class ApprovalDecision(BaseModel):
    """A person's decision on a tool call that waits for approval.

    Each approval stage declares a subclass whose ``arguments`` is the tool's
    own parameter model, so edited arguments are validated before the run is
    claimed (a bad edit is a ``ResumeInputError``; the run stays paused).
    """

    decision: Literal["approve", "edit", "reject"] = Field(
        description="approve: run the call as proposed · edit: run it with the arguments "
        "below · reject: do not run it (the agent is told the reason)"
    )
    arguments: dict[str, Any] | None = Field(
        default=None,
        description="For edit: every argument to run the call with, as a JSON object.",
    )
    reason: str | None = Field(
        default=None, description="Why; the agent reads it. Give one when rejecting."
    )

    @field_validator("arguments", mode="before")
    @classmethod
    def _parse_json_text(cls, value: Any) -> Any:
        """Accept the arguments as JSON text too, as a form's text area sends them."""
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"the arguments are not valid JSON: {exc}") from None
        return value

    @model_validator(mode="after")
    def _edit_needs_arguments(self) -> ApprovalDecision:
        if self.decision == "edit" and self.arguments is None:
            raise ValueError("an edit needs the arguments to run the call with")
        return self


def agent_chart(
    model: ChatModel,
    tools: Iterable[Tool | Any],
    *,
    system: str | None = None,
    max_turns: int = 20,
    name: str = "Agent",
    on_turn_limit: TurnLimitPolicy = "error",
) -> FlowChart:
    """Build a chart that runs a tool-calling agent and pauses wherever a person is needed.

    Start it with ``{"prompt": "..."}`` (a user message) and/or
    ``{"messages": [...]}`` (a conversation to continue, OpenAI format). It
    ends when the model replies without tool calls: ``answer`` holds the
    reply, ``stop_reason`` is ``"answered"``. ``usage`` sums the tokens the
    model reported for each call (``prompt_tokens``, ``completion_tokens``).

    A tool that raises, an unknown tool, arguments that are not JSON or do
    not fit the tool's parameters: each becomes the tool's result message
    (``Error: ...``) so the model can recover; none fails the run. A model
    that fails (:class:`ModelError`) fails the run.

    Args:
        model: The model adapter (:class:`ChatModel`); rebuilt in every process
            that resumes, so it must keep no conversation state.
        tools: :class:`Tool` objects (plain functions are wrapped with
            :func:`tool`); add :data:`ask_human` to let the model ask a person.
        system: The system message, put first unless the conversation given
            as input already starts with one.
        max_turns: At most this many model calls. When the model still asks
            for tools in its ``max_turns``-th reply, those tools do not run and:
        on_turn_limit: ``"error"`` (default): the run fails with a ``StageError``
            caused by :class:`AgentTurnLimitError`; ``"stop"``: the run completes
            with ``stop_reason == "max_turns"`` and ``answer`` ``None``, each
            unrun call answered "not run" so the conversation stays valid.
        name: The chart's name (also its first stage's).

    Returns:
        The chart; register it with ``Runs`` or run it with ``FlowChartExecutor``.

    Raises:
        AgentSetupError: Two tools share a name, a tool is not callable,
            ``max_turns`` is below 1, or ``model`` has no ``complete``.
    """
    if max_turns < 1:
        raise AgentSetupError(f"agent {name!r}: max_turns must be at least 1, not {max_turns}")
    if on_turn_limit not in ("error", "stop"):
        raise AgentSetupError(
            f"agent {name!r}: on_turn_limit must be 'error' or 'stop', not {on_turn_limit!r}"
        )
    if not callable(getattr(model, "complete", None)):
        raise AgentSetupError(f"agent {name!r}: {model!r} has no complete(messages, tools) method")
    by_name: dict[str, Tool] = {}
    for item in tools:
        wrapped = item if isinstance(item, Tool) else tool(item)
        if wrapped.name in by_name:
            raise AgentSetupError(f"agent {name!r}: two tools are named {wrapped.name!r}")
        by_name[wrapped.name] = wrapped
    loop = _Loop(model, by_name, system, max_turns, on_turn_limit)
    return (
        flow_chart(name, loop.start, "start", "Seed the conversation from the input")
        .add_function("Model", loop.model_turn, "model", "Ask the model for its next step")
        .add_for_each(
            "tools",
            "tool_calls",
            loop.tool_call_chart(),
            "Tools",
            results_key="tool_results",
            key="key",
            description="Run this turn's tool calls; pause where a person must answer",
        )
        .loop_to("model", max_iterations=max_turns)
        .build()
    )


class _Loop:
    """The stage functions of one agent chart, sharing its model and tools."""

    def __init__(
        self,
        model: ChatModel,
        tools: Mapping[str, Tool],
        system: str | None,
        max_turns: int,
        on_turn_limit: TurnLimitPolicy,
    ) -> None:
        self.model = model
        self.tools = dict(tools)
        self.specs = [t.spec for t in self.tools.values()]
        self.system = system
        self.max_turns = max_turns
        self.on_turn_limit = on_turn_limit
        self.human_tools = frozenset(
            t.name for t in self.tools.values() if t.asks_human or t.requires_approval is not False
        )

    # -- the main loop ------------------------------------------------------------

    def start(self, scope: Scope) -> None:
        """Seed ``messages`` from the input's ``messages`` and ``prompt``."""
        given = scope.get("messages")
        prompt = scope.get("prompt")
        if given is None and prompt is None:
            raise AgentError(
                "start the agent with {'prompt': '...'} or {'messages': [...]} as input"
            )
        messages: list[Message] = []
        if given is not None:
            if not isinstance(given, list) or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) for m in given
            ):
                raise AgentError("input 'messages' must be a list of chat messages with a 'role'")
            messages.extend(given)
        if self.system is not None and not (messages and messages[0]["role"] == "system"):
            messages.insert(0, {"role": "system", "content": self.system})
        if prompt is not None:
            messages.append({"role": "user", "content": str(prompt)})
            del scope["prompt"]  # it lives on in messages (and in the run's input)
        scope.messages = messages
        scope.turn = 0

    async def model_turn(self, scope: Scope) -> None:
        """Append the last turn's tool results, ask the model, record its reply."""
        messages: list[Message] = scope.messages
        results = scope.get("tool_results")
        if results is not None:
            messages.extend(results)
            del scope["tool_results"]
        turn: int = scope.turn + 1
        reply = await self.model.complete(messages, self.specs)
        if reply.usage:
            spent: dict[str, int] = dict(scope.get("usage") or {})
            for key, count in reply.usage.items():
                spent[key] = spent.get(key, 0) + count
            scope.usage = spent
        calls = _numbered(reply.tool_calls, turn)
        if reply.content:
            scope.narrate(f'"{_short(reply.content)}"')
        for call in calls:
            shown = call.arguments if isinstance(call.arguments, Mapping) else {}
            scope.narrate(f"calls {_signature(call.name, shown)}")
        messages.append(AssistantMessage(reply.content, calls).to_message())
        scope.turn = turn
        if not calls:
            scope.messages = messages
            self._finish(scope, reply.content or "", "answered")
            return
        if turn >= self.max_turns:
            if self.on_turn_limit == "error":
                scope.messages = messages
                raise AgentTurnLimitError(
                    f"the model still called tools ({', '.join(c.name for c in calls)}) in "
                    f"its reply of turn {turn}, the last one max_turns={self.max_turns} allows",
                    max_turns=self.max_turns,
                )
            note = f"Not run: the agent reached its limit of {self.max_turns} turns."
            messages.extend(_tool_message(call.id or "", note) for call in calls)
            scope.messages = messages
            self._finish(scope, None, "max_turns")
            return
        scope.messages = messages
        keys = _keys_of(calls)
        scope.tool_calls = [
            self._item(call, key, reply.content) for call, key in zip(calls, keys, strict=True)
        ]

    def _finish(self, scope: Scope, answer: str | None, reason: str) -> None:
        scope.answer = answer
        scope.stop_reason = reason
        if "tool_calls" in scope:
            del scope["tool_calls"]
        scope.break_loop()

    def _item(self, call: ToolCall, key: str, said: str | None) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": call.id,
            "key": key,
            "name": call.name,
            "arguments": call.arguments,
        }
        if not isinstance(call.arguments, str):
            item["arguments"] = dict(call.arguments)
        if said and call.name in self.human_tools:
            item["context"] = said  # shown to the person beside the question
        return item

    # -- one tool call ------------------------------------------------------------

    def tool_call_chart(self) -> FlowChart:
        """Return the chart each tool call runs: check → route → run | ask | approve_<tool>."""
        builder = (
            flow_chart("Check call", self.check, "check", "Validate the call's tool and arguments")
            .add_decider_function("Route call", self.route, "route")
            .add_function_branch("run", "Run tool", self.run, "Call the tool")
        )
        if any(t.asks_human for t in self.tools.values()):
            builder = builder.add_pausable_branch(
                "ask",
                "Ask human",
                PausableHandler(self.ask, self.answered),
                "Ask a person the model's question",
                input_schema=HumanAnswer,
            )
        for t in self.tools.values():
            if t.requires_approval is not False:
                builder = builder.add_pausable_branch(
                    f"approve_{t.name}",
                    f"Approve {t.name}",
                    PausableHandler(self.propose, self.decided),
                    f"A person approves, edits or rejects a call of {t.name}",
                    input_schema=_approval_schema(t),
                )
        return builder.end().build()

    def check(self, scope: Scope) -> None:
        """Write the call's validated arguments to ``args``, or what is wrong to ``error``."""
        call = scope.item
        found = self.tools.get(call["name"])
        if found is None:
            known = ", ".join(self.tools) or "none"
            scope.error = str(
                ToolCallError(
                    f"there is no tool named {call['name']!r}; the tools are: {known}",
                    tool=call["name"],
                )
            )
            return
        try:
            scope.args = found.dump(found.validate(call["arguments"]))
        except ToolCallError as exc:
            scope.error = str(exc)

    def route(self, scope: Scope) -> str:
        """Pick the branch: ``run`` (also to report an error), ``ask`` or ``approve_<tool>``."""
        if scope.get("error") is not None:
            return "run"
        found = self.tools[scope.item["name"]]
        if found.asks_human:
            return "ask"
        return f"approve_{found.name}" if found.needs_approval(scope.args) else "run"

    async def run(self, scope: Scope) -> None:
        """Call the tool, or report the call's error; write the tool message to ``result``."""
        call = scope.item
        error = scope.get("error")
        if error is not None:
            content = f"Error: {error}"
        else:
            content = await self._invoke(self.tools[call["name"]], scope.args)
        scope.narrate(f"{call['name']} returned {_short(content)}")
        scope.result = _tool_message(call["id"], content)

    def ask(self, scope: Scope) -> dict[str, Any]:
        """Pause with the model's question."""
        call, args = scope.item, scope.args
        data: dict[str, Any] = {"question": args["question"], "tool_call_id": call["id"]}
        if args.get("choices"):
            data["choices"] = args["choices"]
        if call.get("context"):
            data["context"] = call["context"]
        return data

    def answered(self, scope: Scope, answer: HumanAnswer) -> None:
        """The person's answer becomes the tool's result."""
        scope.narrate(f'the person answered "{_short(answer.answer)}"')
        scope.result = _tool_message(scope.item["id"], answer.answer)

    def propose(self, scope: Scope) -> dict[str, Any]:
        """Pause with the proposed call, before it runs."""
        call, args = scope.item, scope.args
        data: dict[str, Any] = {
            "question": f"Approve {_signature(call['name'], args)}?",
            "tool": call["name"],
            "arguments": args,
            "tool_call_id": call["id"],
        }
        if call.get("context"):
            data["context"] = call["context"]
        return data

    async def decided(self, scope: Scope, decision: ApprovalDecision) -> None:
        """Run the call as proposed or as edited, or tell the model it was rejected."""
        call = scope.item
        found = self.tools[call["name"]]
        note = f" Note from the human: {decision.reason.rstrip('.')}." if decision.reason else ""
        if decision.decision == "reject":
            why = f" Reason: {decision.reason}" if decision.reason else " No reason was given."
            content = f"A human rejected this call; it did not run.{why}"
        elif decision.decision == "edit":
            assert isinstance(decision.arguments, BaseModel)  # the stage's schema says so
            edited = found.dump(decision.arguments)
            result = await self._invoke(found, edited)
            content = (
                f"A human edited the arguments to {json.dumps(edited, ensure_ascii=False)}; "
                f"the call ran with them.{note} Result: {result}"
            )
        else:
            result = await self._invoke(found, scope.args)
            content = f"A human approved this call.{note} Result: {result}"
        scope.narrate(f"the person chose {decision.decision}: {_short(content)}")
        scope.result = _tool_message(call["id"], content)

    @staticmethod
    async def _invoke(found: Tool, args: Mapping[str, Any]) -> str:
        """Run a tool on checked arguments; what it raises becomes an error message."""
        try:
            return content_of(await found.run(found.validate(args)))
        except Exception as exc:
            log.info("tool %s raised", found.name, exc_info=True)
            return f"Error: {found.name} raised {type(exc).__name__}: {exc}"


def _approval_schema(found: Tool) -> type[ApprovalDecision]:
    """The approval model of one tool: ``arguments`` is the tool's own parameter model."""
    optional_arguments: Any = found.arguments_model | None
    model: type[ApprovalDecision] = create_model(
        f"Approve_{found.name}",
        __base__=ApprovalDecision,
        __doc__=f"Approve, edit or reject a call of {found.name}.",
        arguments=(
            optional_arguments,
            Field(
                default=None,
                description=f"For edit: every argument of {found.name} to run it with, "
                "as a JSON object.",
            ),
        ),
    )
    return model


def _numbered(calls: Sequence[ToolCall], turn: int) -> list[ToolCall]:
    """Give every call a unique id in its turn: the model's own, or ``call_<turn>_<n>``."""
    seen: set[str] = set()
    numbered = []
    for index, call in enumerate(calls):
        call_id = call.id or f"call_{turn}_{index}"
        while call_id in seen:
            call_id = f"{call_id}_{index}"
        seen.add(call_id)
        numbered.append(ToolCall(call_id, call.name, call.arguments))
    return numbered


_NOT_IN_KEYS = re.compile(f"[^{ITEM_KEY_CHARS}]")


def _keys_of(calls: Sequence[ToolCall]) -> list[str]:
    """Name each call's stages in paths (``tools[<key>]/ask``): its id, made path-safe and unique."""
    keys: list[str] = []
    for call in calls:
        base = _NOT_IN_KEYS.sub("_", call.id or "")[:ITEM_KEY_MAX] or "call"
        key, n = base, 0
        while key in keys:
            n += 1
            key = f"{base[: ITEM_KEY_MAX - 10]}_{n}"
        keys.append(key)
    return keys


def _tool_message(call_id: str, content: str) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _short(text: str, limit: int = 100) -> str:
    """One line of at most ``limit`` characters, for the narrative."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _signature(name: str, args: Mapping[str, Any], limit: int = 200) -> str:
    """``refund_order(order_id="ORD-1", amount=900)``, shortened past ``limit``."""
    shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    text = f"{name}({shown})"
    return text if len(text) <= limit else text[: limit - 2] + "…)"
