"""Checked stage nodes for the builder: every ``ChartError`` a single stage can raise.

:mod:`pausepoint.engine.builder` strings these into charts; here each stage's
arguments are checked (ids, callables, handlers, retry policies, time limits,
deadlines, mappers, contracts) and turned into the immutable nodes of
:mod:`pausepoint.engine.chart`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from inspect import CO_COROUTINE
from types import FunctionType, MethodType
from typing import Any, NamedTuple, cast

from pausepoint.errors import ChartError

from .chart import (
    PATH_SEPARATOR,
    Contract,
    Decider,
    FlowChart,
    ForEach,
    FunctionStage,
    Node,
    OnTimeout,
    Parallel,
    PausableStage,
    Retry,
    Selector,
    Step,
    Subflow,
    runs_inline,
)

Mapper = Callable[[Mapping[str, Any]], Mapping[str, Any]]


Seconds = float | timedelta


class People(NamedTuple):
    """Who answers a pausable stage, and who is told, as the builder was given it.

    A named tuple rather than a frozen dataclass: one is made for every pausable
    stage built, and a frozen dataclass sets each field through a call.
    """

    assignees: Sequence[str] | Callable[[Any], Any] | None = None
    notify: Sequence[str] | None = None
    remind_every: Seconds | None = None
    escalate_after: Seconds | None = None
    escalate_to: Sequence[str] | None = None

    def checked_assignees(self, id: str) -> tuple[str, ...] | Callable[[Any], Any]:
        if self.assignees is None:
            return ()
        if callable(self.assignees):
            return self.assignees
        return _names(id, "assignees", self.assignees)

    def checked_escalation(self, id: str) -> float | None:
        after = _positive(id, "escalate_after", self.escalate_after)
        if (after is None) != (not self.escalate_to):
            raise ChartError(
                f"pausable stage {id!r}: escalate_after and escalate_to go together "
                "(escalate_after=timedelta(hours=4), escalate_to=['directors'])",
                stage_id=id,
            )
        return after


def _names(id: str, what: str, names: Sequence[str] | None) -> tuple[str, ...]:
    """Check a list of names (people, groups or URLs): a list of non-empty strings."""
    if names is None:
        return ()
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise ChartError(
            f"pausable stage {id!r}: {what} must be a list of non-empty strings, "
            f"e.g. {what}=[{names!r}]; got {names!r}"
            if isinstance(names, str)
            else f"pausable stage {id!r}: {what} must be a list of non-empty strings; got {names!r}",
            stage_id=id,
        )
    return tuple(names)


def _positive(id: str, what: str, value: Seconds | None) -> float | None:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if seconds is not None and not seconds > 0:
        raise ChartError(
            f"pausable stage {id!r}: {what} must be a positive duration; got {value!r}",
            stage_id=id,
        )
    return seconds


class Guard:
    """A stage's retry policy and time limit, checked."""

    __slots__ = ("retry", "time_limit")

    def __init__(self, retry: Retry | None = None, time_limit: float | None = None) -> None:
        self.retry = retry
        self.time_limit = time_limit

    @classmethod
    def of(cls, id: str, retry: Retry | None, time_limit: float | timedelta | None) -> Guard:
        if retry is None and time_limit is None:
            return _UNGUARDED  # most stages: nothing to check, and guards are only read
        if retry is not None and not isinstance(retry, Retry):
            raise ChartError(
                f"stage {id!r}: retry must be a pausepoint.Retry, not {retry!r}", stage_id=id
            )
        return cls(retry, positive_seconds(time_limit, id, "time_limit"))


_UNGUARDED = Guard()


def is_async_callable(fn: Any) -> bool:
    """Tell whether calling ``fn`` returns an awaitable; sees through partials and callables."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if type(fn) is MethodType:
        fn = fn.__func__
    if type(fn) is FunctionType and "_is_coroutine_marker" not in fn.__dict__:
        # what inspect.iscoroutinefunction decides for a plain function, without its detours:
        # building a chart asks this of every stage function and handler method
        return bool(fn.__code__.co_flags & CO_COROUTINE)
    import inspect

    return inspect.iscoroutinefunction(fn) or (
        callable(fn) and inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
    )


def is_handler(candidate: Any) -> bool:
    return callable(getattr(candidate, "execute", None)) and callable(
        getattr(candidate, "resume", None)
    )


def check_id(id: str) -> None:
    if not isinstance(id, str) or not id:
        raise ChartError(f"stage id {id!r} must be a non-empty string", stage_id=str(id))
    if PATH_SEPARATOR in id:
        raise ChartError(
            f"stage id {id!r} contains {PATH_SEPARATOR!r}, which separates subflow paths",
            stage_id=id,
        )


class FieldKey:
    """The key of a for-each item that is a dict: one of its fields, as text."""

    __slots__ = ("field",)

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, item: Any) -> str:
        if not isinstance(item, Mapping) or self.field not in item:
            raise KeyError(f"the item has no field {self.field!r}")
        return str(item[self.field])

    def __repr__(self) -> str:
        return f"key={self.field!r}"


def check_callable(fn: Any, id: str, what: str) -> None:
    if not callable(fn):
        raise ChartError(f"{what} {id!r}: {fn!r} is not callable", stage_id=id)


def positive_seconds(value: float | timedelta | None, id: str, what: str) -> float | None:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if seconds is not None and (isinstance(seconds, bool) or not seconds > 0):
        raise ChartError(
            f"stage {id!r}: {what} must be a positive number of seconds, not {value!r}",
            stage_id=id,
        )
    return seconds


def function_stage(
    name: str,
    fn: Any,
    id: str,
    description: str | None,
    retry: Retry | None = None,
    time_limit: float | timedelta | None = None,
) -> FunctionStage:
    check_id(id)
    check_callable(fn, id, "stage")
    guard = Guard.of(id, retry, time_limit)
    node = _FunctionStageSlots()
    node.id = id
    node.name = name
    node.description = description
    node.fn = fn
    node.is_async = is_async_callable(fn)
    node.retry = guard.retry
    node.time_limit = guard.time_limit
    node.inline = runs_inline(node.is_async, guard.retry, guard.time_limit)
    node.kind = "stage"
    node.__class__ = FunctionStage  # type: ignore[assignment]  # same slots: see _FunctionStageSlots
    return cast(FunctionStage, node)


class _FunctionStageSlots:
    """A ``FunctionStage`` being filled in, before it becomes one.

    The frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    about ten times the cost of a store to a plain slot, and every chart built pays it
    for every stage. This class has the same slots in the same order and nothing else,
    so CPython lets an instance's ``__class__`` become ``FunctionStage`` once all are
    set; ``test_nodes_built_in_place_equal_their_dataclass_construction`` holds the
    two ways of making a stage to the same result.
    """

    __slots__ = FunctionStage.__slots__
    id: str
    name: str
    description: str | None
    fn: Callable[..., Any]
    is_async: bool
    retry: Retry | None
    time_limit: float | None
    inline: bool
    kind: str


def pausable_stage(
    name: str,
    handler: Any,
    id: str,
    description: str | None,
    input_schema: type[Any] | None,
    timeout: float | timedelta | None = None,
    on_timeout: OnTimeout | None = None,
    *,
    retry: Retry | None = None,
    retry_resume: bool = False,
    time_limit: float | timedelta | None = None,
    key: Callable[[Any], str] | None = None,
    people: People | None = None,
) -> PausableStage:
    check_id(id)
    people = people or People()
    if key is not None and not callable(key):
        raise ChartError(
            f"pausable stage {id!r}: key must be a function of the scope returning a str, "
            f"e.g. key=lambda scope: f'order:{{scope.order_id}}'; got {key!r}",
            stage_id=id,
        )
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if seconds is not None and seconds <= 0:
        raise ChartError(f"pausable stage {id!r}: timeout must be positive", stage_id=id)
    if on_timeout is not None and seconds is None:
        raise ChartError(f"pausable stage {id!r}: on_timeout needs a timeout", stage_id=id)
    guard = Guard.of(id, retry, time_limit)
    if retry_resume and retry is None:
        raise ChartError(
            f"pausable stage {id!r}: retry_resume=True needs a retry policy (retry=Retry(...))",
            stage_id=id,
        )
    if not is_handler(handler):
        raise ChartError(
            f"pausable stage {id!r}: the handler needs callable execute(scope) and "
            f"resume(scope, input); got {handler!r}",
            stage_id=id,
        )
    node = _PausableStageSlots()
    node.id = id
    node.name = name
    node.description = description
    node.execute = handler.execute
    node.resume = handler.resume
    node.execute_is_async = is_async_callable(handler.execute)
    node.resume_is_async = is_async_callable(handler.resume)
    node.input_schema = input_schema
    node.timeout = seconds
    node.on_timeout = on_timeout
    node.retry = guard.retry
    node.retry_resume = retry_resume
    node.time_limit = guard.time_limit
    node.key = key
    node.assignees = people.checked_assignees(id)
    node.notify = _names(id, "notify", people.notify)
    node.remind_every = _positive(id, "remind_every", people.remind_every)
    node.escalate_after = people.checked_escalation(id)
    node.escalate_to = _names(id, "escalate_to", people.escalate_to)
    node.kind = "pausable"
    node.__class__ = PausableStage  # type: ignore[assignment]  # same slots: see _FunctionStageSlots
    return cast(PausableStage, node)


class _PausableStageSlots:
    """A ``PausableStage`` being filled in, before it becomes one (see ``_FunctionStageSlots``)."""

    __slots__ = PausableStage.__slots__
    id: str
    name: str
    description: str | None
    execute: Callable[..., Any]
    resume: Callable[..., Any]
    execute_is_async: bool
    resume_is_async: bool
    input_schema: type[Any] | None
    timeout: float | None
    on_timeout: OnTimeout | None
    retry: Retry | None
    retry_resume: bool
    time_limit: float | None
    key: Callable[[Any], str] | None
    assignees: tuple[str, ...] | Callable[[Any], Any]
    notify: tuple[str, ...]
    remind_every: float | None
    escalate_after: float | None
    escalate_to: tuple[str, ...]
    kind: str


def subflow_node(
    id: str,
    chart: FlowChart,
    name: str,
    input_mapper: Mapper | None,
    output_mapper: Mapper | None,
    description: str | None,
) -> Subflow:
    check_id(id)
    if not isinstance(chart, FlowChart):
        raise ChartError(f"subflow {id!r}: expected a built FlowChart, got {chart!r}", stage_id=id)
    for mapper, what in ((input_mapper, "input_mapper"), (output_mapper, "output_mapper")):
        if mapper is not None and not callable(mapper):
            raise ChartError(f"subflow {id!r}: {what} is not callable", stage_id=id)
    return Subflow(
        id=id,
        name=name,
        description=description,
        chart=chart,
        input_mapper=input_mapper,
        output_mapper=output_mapper,
    )


_BRANCHING = (Decider, Selector, Parallel)  # a tuple: a union is rebuilt at every use


def nesting_of(steps: tuple[Step, ...]) -> int:
    """How many levels of charts are mounted in a sequence (0: none)."""
    deepest = 0
    for step in steps:
        if isinstance(step, Subflow):
            deepest = max(deepest, step.chart.nesting + 1)
        elif isinstance(step, ForEach):
            deepest = max(deepest, step.body.nesting + 1)
        elif isinstance(step, _BRANCHING):
            for branch in step.branches.values():
                if isinstance(branch, Subflow):
                    deepest = max(deepest, branch.chart.nesting + 1)
    return deepest


def contract_of(chart: str, what: str, model: type[Any] | None) -> Contract | None:
    """Build the pydantic adapter of a declared input or output model once, at build()."""
    if model is None:
        return None
    from pydantic import PydanticSchemaGenerationError, TypeAdapter

    try:
        return Contract(model, TypeAdapter(model))
    except (PydanticSchemaGenerationError, TypeError) as exc:
        raise ChartError(
            f"chart {chart!r}: {what}={model!r} is not a model pydantic can validate: {exc}"
        ) from exc


def register_ids(node: Node, ids: dict[str, str]) -> None:
    """Record a node's id and its branches' ids, refusing duplicates."""
    where = f"a {node.kind} stage"
    if node.id in ids:
        raise ChartError(
            f"duplicate stage id {node.id!r}: used by {ids[node.id]} and {where}", stage_id=node.id
        )
    ids[node.id] = where
    if isinstance(node, _BRANCHING):
        for branch in node.branches.values():
            if branch.id in ids:
                raise ChartError(
                    f"duplicate stage id {branch.id!r}: branch of {node.kind} {node.id!r} "
                    f"and {ids[branch.id]}",
                    stage_id=branch.id,
                )
            ids[branch.id] = f"a branch of {node.kind} {node.id!r}"
