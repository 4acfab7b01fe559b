"""The chart builder: footprintjs's vocabulary in snake_case.

>>> chart = (
...     flow_chart("Receive", receive, "receive")
...     .add_pausable_function("Approve", PausableHandler(ask, apply), "approve")
...     .add_function("Process", process, "process")
...     .build()
... )

Every mistake that can be seen without running the chart is a ``ChartError``
raised here, naming the stage: duplicate ids, unknown loop targets, deciders
without branches, defaults naming no branch, ids containing ``/``, bad retry
policies or time limits, charts mounted more than ``MAX_NESTING`` levels deep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pausepoint.errors import ChartError

from ._nodes import (
    FieldKey,
    Guard,
    Mapper,
    People,
    check_callable,
    check_id,
    contract_of,
    function_stage,
    is_async_callable,
    is_handler,
    nesting_of,
    pausable_stage,
    register_ids,
    subflow_node,
)
from .chart import (
    Branch,
    Decider,
    FlowChart,
    ForEach,
    LoopBack,
    Node,
    OnTimeout,
    Parallel,
    Retry,
    Selector,
    Step,
    fingerprint_of,
)
from .state import codec_for

if TYPE_CHECKING:
    from .scope import Scope

__all__ = ["BranchBuilder", "FlowChartBuilder", "flow_chart"]

DEFAULT_MAX_ITERATIONS = 1000
"""How often a loop may go back to its target unless ``loop_to`` says otherwise."""

MAX_NESTING = 32
"""How deep charts may be mounted in one another (subflows, subflow branches, for-each bodies).

Each level costs the traversal a few Python frames (and the checkpoint a level
of nested frames); the limit keeps every chart far from Python's recursion limit,
so depth is refused at ``build()`` rather than found mid-run.
"""

BranchT = TypeVar("BranchT", bound="BranchBuilder[Any]")


def flow_chart(
    name: str,
    fn_or_handler: Callable[[Scope], Any] | Any,
    id: str,
    description: str | None = None,
    *,
    input_schema: type[Any] | None = None,
    timeout: float | timedelta | None = None,
    on_timeout: OnTimeout | None = None,
    retry: Retry | None = None,
    retry_resume: bool = False,
    time_limit: float | timedelta | None = None,
    key: Callable[[Scope], str] | None = None,
    assignees: Sequence[str] | Callable[[Scope], Sequence[str]] | None = None,
    notify: Sequence[str] | None = None,
    remind_every: float | timedelta | None = None,
    escalate_after: float | timedelta | None = None,
    escalate_to: Sequence[str] | None = None,
) -> FlowChartBuilder:
    """Start a chart with its first stage.

    Args:
        name: Display name of the first stage; also the chart's name.
        fn_or_handler: A stage function, or a pausable handler (an object with
            ``execute`` and ``resume``) to make the first stage pausable.
        id: The first stage's id.
        description: What the stage does, for diagrams and docs.
        input_schema: For a pausable first stage: the model its resume input must fit.
        timeout: For a pausable first stage: how long its pauses may wait.
        on_timeout: For a pausable first stage: what happens when they have waited too long.
        retry: Try the stage again when it fails (see :class:`~pausepoint.Retry`).
        retry_resume: For a pausable first stage: retry its ``resume`` too.
        time_limit: How long the stage may run, in seconds (see ``add_function``).
        key: For a pausable first stage: its business key (see ``add_pausable_function``).
        assignees: For a pausable first stage: who may answer (see ``add_pausable_function``).
        notify: For a pausable first stage: who is told when it pauses.
        remind_every: For a pausable first stage: how often they are told again.
        escalate_after: For a pausable first stage: when an unanswered pause escalates.
        escalate_to: For a pausable first stage: who it escalates to.

    Returns:
        A builder; chain ``add_*`` calls and finish with ``build()``.
    """
    builder = FlowChartBuilder(name)
    # a handler missing a method goes the pausable way too, for the error that says so
    looks_like_handler = not callable(fn_or_handler) and (
        hasattr(fn_or_handler, "execute") or hasattr(fn_or_handler, "resume")
    )
    if is_handler(fn_or_handler) or looks_like_handler:
        return builder.add_pausable_function(
            name,
            fn_or_handler,
            id,
            description,
            input_schema=input_schema,
            timeout=timeout,
            on_timeout=on_timeout,
            retry=retry,
            retry_resume=retry_resume,
            time_limit=time_limit,
            key=key,
            assignees=assignees,
            notify=notify,
            remind_every=remind_every,
            escalate_after=escalate_after,
            escalate_to=escalate_to,
        )
    if key is not None:
        raise ChartError(f"stage {id!r}: key= is for pausable stages only", stage_id=id)
    return builder.add_function(
        name, fn_or_handler, id, description, retry=retry, time_limit=time_limit
    )


class FlowChartBuilder:
    """Accumulates stages in order; ``build()`` validates and freezes them."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._steps: list[Step | _PendingLoop] = []
        self._open_branches: BranchBuilder[Any] | None = None

    # -- stages -----------------------------------------------------------

    def add_function(
        self,
        name: str,
        fn: Callable[[Scope], Any],
        id: str,
        description: str | None = None,
        *,
        retry: Retry | None = None,
        time_limit: float | timedelta | None = None,
    ) -> FlowChartBuilder:
        """Append a plain stage; ``fn(scope)`` may be sync or async.

        Args:
            name: Display name.
            fn: The stage function.
            id: Stage id.
            description: What the stage does.
            retry: Try the stage again when it fails (see :class:`~pausepoint.Retry`).
            time_limit: How long the stage may run, in seconds (or a timedelta),
                before it fails with ``StageTimeoutError``. An async stage is
                cancelled; a sync stage then runs in a worker thread, which is
                abandoned (its later writes are dropped).
        """
        self._append(function_stage(name, fn, id, description, retry, time_limit))
        return self

    def add_pausable_function(
        self,
        name: str,
        handler: Any,
        id: str,
        description: str | None = None,
        *,
        input_schema: type[Any] | None = None,
        timeout: float | timedelta | None = None,
        on_timeout: OnTimeout | None = None,
        retry: Retry | None = None,
        retry_resume: bool = False,
        time_limit: float | timedelta | None = None,
        key: Callable[[Scope], str] | None = None,
        assignees: Sequence[str] | Callable[[Scope], Sequence[str]] | None = None,
        notify: Sequence[str] | None = None,
        remind_every: float | timedelta | None = None,
        escalate_after: float | timedelta | None = None,
        escalate_to: Sequence[str] | None = None,
    ) -> FlowChartBuilder:
        """Append a pausable stage.

        Args:
            name: Display name.
            handler: An object with ``execute(scope)`` (return data to pause,
                ``None`` to continue) and ``resume(scope, input)``, e.g. a
                :class:`~pausepoint.PausableHandler`.
            id: Stage id.
            description: What the stage waits for.
            input_schema: A pydantic model (or any type pydantic validates) the
                resume input must fit; ``resume`` then receives the validated value.
            timeout: How long a pause may wait for its answer (seconds or
                timedelta) before ``Runs.expire_due`` applies ``on_timeout``.
                Not a limit on running: that is ``time_limit``.
            on_timeout: The policy for an overdue pause; default: cancel the run.
            retry: Try ``execute`` again when it fails (see :class:`~pausepoint.Retry`).
            retry_resume: Retry ``resume`` too. Off by default: ``resume``
                applies a person's answer, and its side effects may not bear repeating.
            time_limit: How long ``execute`` and ``resume`` may each run
                (see ``add_function``).
            key: The business key a pause of this stage waits under, computed
                from the scope when the stage pauses, e.g.
                ``key=lambda scope: f"order:{scope.order_id}"``. Outside systems
                then answer with ``Runs.resume_by_key`` or ``Runs.signal``,
                knowing the key instead of the run id.
            assignees: Who may answer: names of people or groups
                (``["managers"]``), or a function of the scope returning them,
                computed when the stage pauses. Only they, or the ``admin``
                group, may answer; without assignees anyone signed in may.
                A function that raises leaves the pause unassigned (the audit
                says why) rather than failing the run.
            notify: Apprise URLs (``mailto://...``, ``slack://...``) or JSON
                webhooks (``json://`` / ``jsons://``) told when the stage
                pauses, beside ``Runs(notify=...)``; delivered by sweeps.
            remind_every: Tell them again this often while the pause waits.
            escalate_after: After this long unanswered, the pause is
                re-assigned to ``escalate_to`` (people or groups), who are told.
            escalate_to: Who an overdue pause goes to (with ``escalate_after``).
        """
        self._append(
            pausable_stage(
                name,
                handler,
                id,
                description,
                input_schema,
                timeout,
                on_timeout,
                retry=retry,
                retry_resume=retry_resume,
                time_limit=time_limit,
                key=key,
                people=People(assignees, notify, remind_every, escalate_after, escalate_to),
            )
        )
        return self

    def add_for_each(
        self,
        id: str,
        items_key: str,
        chart_or_fn: FlowChart | Callable[[Scope], Any] | Any,
        name: str,
        *,
        concurrency: int | None = None,
        results_key: str | None = None,
        key: str | Callable[[Any], str] | None = None,
        description: str | None = None,
    ) -> FlowChartBuilder:
        """Run a body once per item of the list in ``scope[items_key]``, concurrently.

        Each item runs on its own state, seeded with ``item`` and ``index``;
        what it leaves under ``result`` is collected, in item order, into
        ``results_key`` (default: ``id``). Items may pause, each with its own
        pause (stage path ``{id}[n]/{stage}``, or ``{id}[<key>]/{stage}`` with
        ``key``); the for-each joins when every item is done.

        Args:
            id: Stage id.
            items_key: The state key holding the list of items.
            chart_or_fn: A built chart, a stage function or a pausable handler
                (a function or handler becomes a one-stage body with id ``each``).
            name: Display name.
            concurrency: At most this many items run at once (default: all).
            results_key: Where the collected results go.
            key: Name items in stage paths by a key instead of their position: a
                field of each (dict) item, or a function of the item. Keys must be
                unique among the items and match ``[A-Za-z0-9_.:@+-]{1,100}``;
                otherwise the for-each fails with a ``StageError`` naming the item.
            description: What the loop does.
        """
        check_id(id)
        if isinstance(key, str):
            key = FieldKey(key)
        elif key is not None and not callable(key):
            raise ChartError(
                f"for-each {id!r}: key must be a field name or a function of the item, not {key!r}",
                stage_id=id,
            )
        if concurrency is not None and concurrency < 1:
            raise ChartError(f"for-each {id!r}: concurrency must be at least 1", stage_id=id)
        if isinstance(chart_or_fn, FlowChart):
            body = chart_or_fn
        elif callable(chart_or_fn) or is_handler(chart_or_fn):
            body = flow_chart(name, chart_or_fn, "each").build()
        else:
            raise ChartError(
                f"for-each {id!r}: the body must be a built chart, a function or a pausable "
                f"handler, not {chart_or_fn!r}",
                stage_id=id,
            )
        self._append(
            ForEach(
                id=id,
                name=name,
                description=description,
                items_key=items_key,
                body=body,
                results_key=results_key or id,
                concurrency=concurrency,
                key=key,
            )
        )
        return self

    def add_subflow(
        self,
        id: str,
        chart: FlowChart,
        name: str,
        input_mapper: Mapper | None = None,
        output_mapper: Mapper | None = None,
        description: str | None = None,
    ) -> FlowChartBuilder:
        """Mount a built chart as one stage.

        Without mappers the subflow reads and writes this chart's state. With
        ``input_mapper`` it runs on its own state seeded by the mapper, and only
        what ``output_mapper`` returns is written back.
        """
        self._append(subflow_node(id, chart, name, input_mapper, output_mapper, description))
        return self

    def add_decider_function(
        self,
        name: str,
        fn: Callable[[Scope], Any],
        id: str,
        description: str | None = None,
        *,
        retry: Retry | None = None,
        time_limit: float | timedelta | None = None,
    ) -> BranchBuilder[Decider]:
        """Append a decider: ``fn(scope)`` returns the key of the branch to take.

        Return :func:`pausepoint.decide` to have the narrative say why.
        ``retry`` and ``time_limit`` apply to ``fn`` as in ``add_function``.
        """
        return self._open(
            BranchBuilder(self, Decider, name, id, description, fn, Guard.of(id, retry, time_limit))
        )

    def add_selector_function(
        self,
        name: str,
        fn: Callable[[Scope], Any],
        id: str,
        description: str | None = None,
        *,
        retry: Retry | None = None,
        time_limit: float | timedelta | None = None,
    ) -> BranchBuilder[Selector]:
        """Append a selector: ``fn(scope)`` returns the keys of the branches to run together.

        Return :func:`pausepoint.select` to have the narrative say why.
        ``retry`` and ``time_limit`` apply to ``fn`` as in ``add_function``.
        """
        return self._open(
            BranchBuilder(
                self, Selector, name, id, description, fn, Guard.of(id, retry, time_limit)
            )
        )

    def add_parallel(
        self, id: str, name: str, description: str | None = None
    ) -> BranchBuilder[Parallel]:
        """Append a fork whose branches all run concurrently and then join."""
        return self._open(BranchBuilder(self, Parallel, name, id, description, None, Guard()))

    def loop_to(
        self, stage_id: str, *, max_iterations: int = DEFAULT_MAX_ITERATIONS
    ) -> FlowChartBuilder:
        """Close a loop back to an earlier stage of this chart; stages may follow.

        A stage leaves the loop with ``scope.break_loop()``: the loop ends once
        that stage has finished and the run goes on after this ``loop_to``.

        Args:
            stage_id: The stage to go back to.
            max_iterations: How often the loop may go back before ``LoopLimitError``.
        """
        if max_iterations < 1:
            raise ChartError(f"loop_to({stage_id!r}): max_iterations must be at least 1")
        self._check_closed()
        self._steps.append(_PendingLoop(stage_id, max_iterations))
        return self

    # -- build ------------------------------------------------------------

    def build(
        self,
        *,
        state: type[Any] | None = None,
        redact: Iterable[str] = (),
        input: type[Any] | None = None,
        output: type[Any] | None = None,
    ) -> FlowChart:
        """Validate and freeze the chart.

        Args:
            state: A dataclass or pydantic model describing the state: defaults,
                and exact types for datetime, Decimal, UUID, Enum, nested models.
            redact: State keys never shown in narrative, execution tree or snapshot.
            input: A pydantic model the run input must fit: ``run`` validates the
                input before any stage (``RunInputError``) and seeds the state
                with the validated fields, defaults included.
            output: A pydantic model the final state must fit: a run that
                completes otherwise fails with ``RunOutputError``; the model
                reads the fields it declares and ignores other keys (unless it
                forbids extras). Neither model changes the fingerprint.

        Raises:
            ChartError: The chart is empty, an id repeats, a loop target is
                unknown, charts are nested deeper than ``MAX_NESTING``, or a
                model is not one pydantic can validate.
        """
        self._check_closed()
        if not self._steps:
            raise ChartError(f"chart {self._name!r} is empty: it needs at least one stage")
        ids: dict[str, str] = {}
        steps: list[Step] = []
        for step in self._steps:
            if isinstance(step, _PendingLoop):
                steps.append(self._resolve_loop(step, steps, ids))
                continue
            assert not isinstance(step, LoopBack)  # loops are added as _PendingLoop
            register_ids(step, ids)
            steps.append(step)
        frozen = tuple(steps)
        nesting = nesting_of(frozen)
        if nesting > MAX_NESTING:
            raise ChartError(
                f"chart {self._name!r} mounts charts {nesting} levels deep (subflows, subflow "
                f"branches, for-each bodies); the limit is {MAX_NESTING}: flatten the chart"
            )
        try:
            codec = codec_for(state)
        except TypeError as exc:
            raise ChartError(f"chart {self._name!r}: {exc}") from exc
        return FlowChart(
            name=self._name,
            steps=frozen,
            fingerprint=fingerprint_of(frozen),
            codec=codec,
            redact=frozenset(redact),
            input_contract=contract_of(self._name, "input", input),
            output_contract=contract_of(self._name, "output", output),
            nesting=nesting,
        )

    # -- internals --------------------------------------------------------

    def _append(self, node: Node) -> None:
        self._check_closed()
        self._steps.append(node)

    def _open(self, branches: BranchT) -> BranchT:
        self._check_closed()
        self._open_branches = branches
        return branches

    def _check_closed(self) -> None:
        if self._open_branches is not None:
            raise ChartError(
                f"{self._open_branches.kind_name} {self._open_branches.id!r} is still open: "
                "call .end() before adding more stages",
                stage_id=self._open_branches.id,
            )

    def _close(self, node: Node) -> None:
        self._open_branches = None
        self._steps.append(node)

    def _resolve_loop(
        self, loop: _PendingLoop, steps: list[Step], ids: Mapping[str, str]
    ) -> LoopBack:
        for index, step in enumerate(steps):
            if not isinstance(step, LoopBack) and step.id == loop.target:
                return LoopBack(
                    target=loop.target,
                    target_name=step.name,
                    target_index=index,
                    max_iterations=loop.max_iterations,
                )
        where = (
            f" ({ids[loop.target]}, not a stage of the main sequence before the loop)"
            if loop.target in ids
            else ""
        )
        raise ChartError(
            f"loop_to({loop.target!r}) in chart {self._name!r}: unknown loop target{where}; "
            "a loop goes back to an earlier stage of the same sequence",
            stage_id=loop.target,
        )


NodeT = TypeVar("NodeT", Decider, Selector, Parallel)


class BranchBuilder(Generic[NodeT]):
    """Collects the branches of a decider, selector or fork until ``end()``."""

    def __init__(
        self,
        parent: FlowChartBuilder,
        node_type: type[NodeT],
        name: str,
        id: str,
        description: str | None,
        fn: Callable[..., Any] | None,
        guard: Guard,
    ) -> None:
        check_id(id)
        if node_type is not Parallel:
            check_callable(fn, id, "decider" if node_type is Decider else "selector")
        self._parent = parent
        self._type: type[NodeT] = node_type
        self.id = id
        self._name = name
        self._description = description
        self._fn = fn
        self._guard = guard
        self._branches: dict[str, Branch] = {}
        self._default: str | None = None

    @property
    def kind_name(self) -> str:
        """``decider``, ``selector`` or ``parallel``, for messages."""
        return {Decider: "decider", Selector: "selector", Parallel: "parallel"}[self._type]

    def add_function_branch(
        self,
        key: str,
        name: str,
        fn: Callable[[Scope], Any],
        description: str | None = None,
        *,
        retry: Retry | None = None,
        time_limit: float | timedelta | None = None,
    ) -> BranchBuilder[NodeT]:
        """Add a branch that is a plain stage; ``key`` is also its stage id.

        ``retry`` and ``time_limit`` work as in ``FlowChartBuilder.add_function``.
        """
        return self._add(function_stage(name, fn, key, description, retry, time_limit))

    def add_pausable_branch(
        self,
        key: str,
        name: str,
        handler: Any,
        description: str | None = None,
        *,
        input_schema: type[Any] | None = None,
        timeout: float | timedelta | None = None,
        on_timeout: OnTimeout | None = None,
        retry: Retry | None = None,
        retry_resume: bool = False,
        time_limit: float | timedelta | None = None,
        business_key: Callable[[Scope], str] | None = None,
    ) -> BranchBuilder[NodeT]:
        """Add a branch that is a pausable stage; ``key`` is also its stage id.

        The keywords work as in ``FlowChartBuilder.add_pausable_function``;
        ``business_key`` is that method's ``key=`` (here ``key`` names the branch).
        """
        return self._add(
            pausable_stage(
                name,
                handler,
                key,
                description,
                input_schema,
                timeout,
                on_timeout,
                retry=retry,
                retry_resume=retry_resume,
                time_limit=time_limit,
                key=business_key,
            )
        )

    def add_subflow_branch(
        self,
        key: str,
        chart: FlowChart,
        name: str,
        input_mapper: Mapper | None = None,
        output_mapper: Mapper | None = None,
    ) -> BranchBuilder[NodeT]:
        """Add a branch that is a whole chart; its stage ids are prefixed by ``key``."""
        return self._add(subflow_node(key, chart, name, input_mapper, output_mapper, None))

    def set_default(self, key: str) -> BranchBuilder[NodeT]:
        """Take branch ``key`` when the decider returns a key with no branch."""
        if self._type is Parallel:
            raise ChartError(
                f"parallel {self.id!r}: a fork runs every branch and has no default",
                stage_id=self.id,
            )
        self._default = key
        return self

    def end(self) -> FlowChartBuilder:
        """Close the branches and go back to the chart.

        Raises:
            ChartError: No branch was added, or the default names no branch.
        """
        if not self._branches:
            raise ChartError(f"{self.kind_name} {self.id!r} has no branch", stage_id=self.id)
        if self._default is not None and self._default not in self._branches:
            raise ChartError(
                f"{self.kind_name} {self.id!r}: default {self._default!r} names no branch "
                f"(branches: {', '.join(self._branches)})",
                stage_id=self.id,
            )
        common: dict[str, Any] = {
            "id": self.id,
            "name": self._name,
            "description": self._description,
            "branches": dict(self._branches),
        }
        node: Node
        if self._type is Parallel:
            node = Parallel(**common)
        else:
            assert self._fn is not None
            routed = Decider if self._type is Decider else Selector
            node = routed(
                **common,
                fn=self._fn,
                is_async=is_async_callable(self._fn),
                default=self._default,
                retry=self._guard.retry,
                time_limit=self._guard.time_limit,
            )
        self._parent._close(node)
        return self._parent

    def _add(self, branch: Branch) -> BranchBuilder[NodeT]:
        if branch.id in self._branches or branch.id == self.id:
            raise ChartError(
                f"{self.kind_name} {self.id!r}: duplicate branch key {branch.id!r}",
                stage_id=branch.id,
            )
        self._branches[branch.id] = branch
        return self


class _PendingLoop:
    __slots__ = ("max_iterations", "target")

    def __init__(self, target: str, max_iterations: int) -> None:
        self.target = target
        self.max_iterations = max_iterations
