"""Tools: typed Python functions the model may call, with a JSON Schema from the signature.

>>> @tool
... def lookup_order(order_id: str) -> dict[str, object]:
...     '''Find an order by its id.
...
...     Args:
...         order_id: The order's id, like ORD-1.
...     '''
...     return ORDERS[order_id]

The parameters become a pydantic model (``extra="forbid"``): its JSON Schema
is what the model sees, and every call is validated against it before the
function runs. The docstring's summary describes the tool; its ``Args:``
section describes the parameters (``Annotated[str, Field(description=...)]``
works too). Sync functions run in a worker thread, so one that blocks on I/O
never stalls the event loop; async functions are awaited.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import to_json

from ._errors import AgentError, AgentSetupError, ToolCallError
from ._messages import ToolSpec

__all__ = ["ASK_HUMAN", "ApprovalRule", "Tool", "ask_human", "content_of", "tool"]

ASK_HUMAN = "ask_human"
"""The name of the built-in tool that asks a person."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the OpenAI API accepts as a function name
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns|Return|Yields|Raises|Examples?|Notes?|Attributes):\s*$"
)
_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_RESERVED = frozenset(dir(BaseModel))

ApprovalRule: TypeAlias = "bool | Callable[[dict[str, Any]], bool]"
"""Whether a call waits for a person: always, or as a function of its arguments says."""


@dataclass(frozen=True, eq=False, slots=True)
class Tool:
    """A function the model may call. Make one with :func:`tool`.

    Calling a ``Tool`` calls the function, so a decorated function stays usable
    (and testable) as before.

    Attributes:
        name: The name the model calls it by.
        description: What it does, for the model.
        fn: The function.
        requires_approval: Pause for a person before a call (approve, edit or reject):
            ``True`` for every call, or a function of the validated arguments (a
            JSON dict) saying whether this call needs it.
        arguments_model: The pydantic model of its parameters.
        asks_human: This is the built-in :data:`ask_human`: the agent pauses instead of calling ``fn``.
    """

    name: str
    description: str
    fn: Callable[..., Any]
    requires_approval: ApprovalRule
    arguments_model: type[BaseModel]
    asks_human: bool = False
    _positional: tuple[str, ...] = ()
    _params: tuple[tuple[str, str], ...] = ()  # (model field, parameter name)
    _is_async: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments, as the model sees it."""
        return _parameters_of(self.arguments_model)

    @property
    def spec(self) -> ToolSpec:
        """The tool as :meth:`ChatModel.complete` receives it."""
        return ToolSpec(self.name, self.description, self.parameters)

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        """Tell whether a call with these (validated, JSON) arguments waits for a person."""
        rule = self.requires_approval
        return bool(rule(arguments)) if callable(rule) else bool(rule)

    def validate(self, arguments: Mapping[str, Any] | str) -> BaseModel:
        """Parse and validate the arguments the model sent.

        Raises:
            ToolCallError: They are not a JSON object or do not fit the parameters;
                the message is written for the model to correct its call.
        """
        parsed: Any = arguments
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ToolCallError(
                    f"the arguments of {self.name} are not valid JSON ({exc}); "
                    "send them as one JSON object",
                    tool=self.name,
                ) from None
        if not isinstance(parsed, Mapping):
            raise ToolCallError(
                f"the arguments of {self.name} must be a JSON object, not {type(parsed).__name__}",
                tool=self.name,
            )
        try:
            return self.arguments_model.model_validate(dict(parsed))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise ToolCallError(
                f"invalid arguments for {self.name}: {problems}", tool=self.name
            ) from None

    async def run(self, arguments: BaseModel) -> Any:
        """Call the function with validated arguments (sync ones in a worker thread).

        Raises:
            AgentError: This is :data:`ask_human`, which the agent answers by pausing.
            Exception: Whatever the function raises.
        """
        if self.asks_human:
            raise AgentError("ask_human is answered by a person: it only runs inside an agent")
        positional = [
            getattr(arguments, field) for field, _ in self._params[: len(self._positional)]
        ]
        keywords = {
            param: getattr(arguments, field)
            for field, param in self._params[len(self._positional) :]
        }
        if self._is_async:
            return await self.fn(*positional, **keywords)
        return await asyncio.to_thread(self.fn, *positional, **keywords)

    def dump(self, arguments: BaseModel) -> dict[str, Any]:
        """Return validated arguments as JSON, keyed by parameter name."""
        dumped: dict[str, Any] = arguments.model_dump(mode="json", by_alias=True)
        return dumped


@overload
def tool(
    fn: Callable[..., Any],
    /,
    *,
    requires_approval: ApprovalRule = False,
    name: str | None = None,
    description: str | None = None,
) -> Tool: ...


@overload
def tool(
    fn: None = None,
    /,
    *,
    requires_approval: ApprovalRule = False,
    name: str | None = None,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    requires_approval: ApprovalRule = False,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a typed function a tool; use as ``tool(fn)``, ``@tool`` or ``@tool(...)``.

    Args:
        fn: The function, sync or async. Its parameters must be named (no
            ``*args``/``**kwargs``); their annotations give the JSON Schema.
        requires_approval: Pause for a person before a call: they approve
            (it runs), edit the arguments (it runs with theirs), or reject it
            (the model is told why). ``True`` for every call, or a function of
            the validated arguments as a JSON dict, e.g.
            ``lambda args: args["amount"] > 500``.
        name: The name the model calls it by (default: the function's name).
        description: What it does, for the model (default: the docstring's summary).

    Returns:
        A :class:`Tool`, or a decorator making one.

    Raises:
        AgentSetupError: The name is not ``[A-Za-z0-9_-]{1,64}``, or the
            signature cannot be described (``*args``, a type pydantic does not know).
    """

    def make(target: Callable[..., Any]) -> Tool:
        return _make_tool(target, requires_approval, name, description)

    return make if fn is None else make(fn)


def _make_tool(
    fn: Callable[..., Any],
    requires_approval: ApprovalRule,
    name: str | None,
    description: str | None,
    asks_human: bool = False,
) -> Tool:
    if isinstance(fn, Tool):
        fn = fn.fn
    if not callable(fn):
        raise AgentSetupError(f"tool(): {fn!r} is not callable")
    tool_name = name or getattr(fn, "__name__", None) or type(fn).__name__
    if not _NAME.match(tool_name):
        raise AgentSetupError(
            f"tool name {tool_name!r} must be 1 to 64 letters, digits, '_' or '-' "
            "(what chat APIs accept); pass name="
        )
    summary, param_docs = _read_docstring(fn)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise AgentSetupError(f"tool {tool_name!r}: cannot read its signature: {exc}") from None
    hints = _type_hints(fn, tool_name)
    fields: dict[str, Any] = {}
    params: list[tuple[str, str]] = []
    positional: list[str] = []
    for index, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise AgentSetupError(
                f"tool {tool_name!r}: *{param.name} cannot be described to a model; "
                "give every parameter a name"
            )
        annotation = hints.get(param.name, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        default = ... if param.default is inspect.Parameter.empty else param.default
        extra: dict[str, Any] = {}
        if param_docs.get(param.name):
            extra["description"] = param_docs[param.name]
        field_name = param.name
        if field_name in _RESERVED or field_name.startswith("_"):
            field_name = f"p{index}_{param.name.lstrip('_')}"
            extra["alias"] = param.name
        fields[field_name] = (annotation, Field(default, **extra))
        params.append((field_name, param.name))
        if param.kind == param.POSITIONAL_ONLY:
            positional.append(param.name)
    try:
        model = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        _parameters_of(model)  # a type pydantic validates but cannot describe fails here
    except Exception as exc:
        raise AgentSetupError(
            f"tool {tool_name!r}: its parameters cannot be described as JSON Schema: {exc}"
        ) from None
    if requires_approval is not False and asks_human:
        raise AgentSetupError("ask_human asks a person already: it needs no approval")
    return Tool(
        name=tool_name,
        description=description or summary or tool_name.replace("_", " "),
        fn=fn,
        requires_approval=requires_approval,
        arguments_model=model,
        asks_human=asks_human,
        _positional=tuple(positional),
        _params=tuple(params),
        _is_async=_is_async(fn),
    )


def _parameters_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    schema.pop("title", None)
    return schema


def _type_hints(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    """Resolve the annotations (strings under ``from __future__ import annotations``).

    Raises:
        AgentSetupError: One names a type the function's module cannot see
            (e.g. a class defined inside another function): left unresolved,
            its arguments would go unchecked.
    """
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(type(target), "__call__", target)  # noqa: B004  # a callable object
    if not getattr(target, "__annotations__", None):
        return {}
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise AgentSetupError(
            f"tool {name!r}: cannot resolve its annotations ({type(exc).__name__}: {exc}); "
            "define the types where the function's module sees them"
        ) from None


def _is_async(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  # a callable object
    )


def _read_docstring(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """Return a Google-style docstring's text before its sections, and its ``Args:`` entries."""
    doc = inspect.getdoc(fn) or ""
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        header = _SECTION.match(line.strip())
        if header and not line.startswith((" ", "\t")):
            section, current = header.group(1), None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters", "Params"):
            match = _ARG_LINE.match(line)
            indent = len(line) - len(line.lstrip())
            if match and indent <= 4:
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif current is not None and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
    paragraphs = "\n".join(summary).strip().split("\n\n")
    text = "\n\n".join(" ".join(part.split()) for part in paragraphs if part.strip())
    return text, params


def content_of(value: Any) -> str:
    """Return a tool's result as message content: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return to_json(value, fallback=str).decode()


def _ask_human(question: str, choices: list[str] | None = None) -> str:
    """Ask a person a question and wait for their answer.

    Use it when only a person can give the information or the decision you need.
    The run pauses until someone answers; their answer is this tool's result.

    Args:
        question: The question, complete enough to answer without context.
        choices: Answers to suggest, when there are a few obvious ones.
    """
    raise AgentError("ask_human is answered by a person: it only runs inside an agent")


ask_human: Tool = _make_tool(_ask_human, False, ASK_HUMAN, None, asks_human=True)
"""The built-in tool that pauses the run with the question and resumes with the answer.

Add it to an agent's tools like any other: ``agent_chart(model, [lookup, ask_human])``.
"""
