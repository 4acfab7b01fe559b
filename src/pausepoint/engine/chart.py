"""The immutable chart: node types, structural fingerprint and Mermaid diagram.

A chart is a sequence of steps. A step is a stage (plain, pausable, decider,
selector, parallel fork, subflow) or a loop edge back to an earlier stage of
the same sequence. Branches of deciders, selectors and forks are single stages
or subflows; their key is their stage id.

Charts are built by :mod:`pausepoint.engine.builder`; nothing here runs user code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pausepoint.errors import ChartError

if TYPE_CHECKING:
    from .scope import Scope
    from .state import StateCodec

__all__ = [
    "Branch",
    "Contract",
    "Decider",
    "FlowChart",
    "ForEach",
    "FunctionStage",
    "LoopBack",
    "Node",
    "OnTimeout",
    "Parallel",
    "PausableHandler",
    "PausableStage",
    "Retry",
    "Selector",
    "Step",
    "Subflow",
    "chart_path",
]

PATH_SEPARATOR = "/"
_ITEM_INDEX = re.compile(r"\[[^\[\]/]*\]")
ITEM_KEY_CHARS = "A-Za-z0-9_.:@+-"  # a regex character-class body
ITEM_KEY_MAX = 100
ITEM_KEY = re.compile(f"[{ITEM_KEY_CHARS}]{{1,{ITEM_KEY_MAX}}}")
"""What a for-each item key may be: it becomes part of stage paths (``tools[call_7]/ask``)."""


def chart_path(path: str) -> str:
    """The chart's path of a stage path: for-each items dropped (``tools[7]/ask`` → ``tools/ask``)."""
    return _ITEM_INDEX.sub("", path)


@dataclass(frozen=True, slots=True)
class PausableHandler:
    """A pausable stage's two phases, as a plain pair of functions.

    Attributes:
        execute: ``(scope) -> pause data | None``; sync or async.
        resume: ``(scope, input) -> None``; sync or async.
    """

    execute: Callable[[Scope], Any]
    resume: Callable[[Scope, Any], Any]


@dataclass(frozen=True, slots=True)
class OnTimeout:
    """What happens when a pause passes its deadline (applied by ``Runs.expire_due``).

    Build one with :meth:`resume_with`, :meth:`fail` or :meth:`cancel`.

    Attributes:
        action: ``"resume"`` with ``input`` as the answer, ``"fail"`` the run,
            or ``"cancel"`` it (status ``expired``).
        input: The default answer for ``"resume"``.
    """

    action: Literal["resume", "fail", "cancel"]
    input: Any = None

    @classmethod
    def resume_with(cls, input: Any) -> OnTimeout:
        """Resume with ``input`` as if a person had answered it."""
        return cls("resume", input)

    @classmethod
    def fail(cls) -> OnTimeout:
        """Mark the run failed."""
        return cls("fail")

    @classmethod
    def cancel(cls) -> OnTimeout:
        """Stop the run; its status becomes ``expired``."""
        return cls("cancel")


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a failing stage is tried, and how long to wait between tries.

    ``Retry(attempts=3, backoff=0.5)`` tries three times, waiting 0.5 s, then
    1 s. Each failed attempt is kept in the execution tree (``attempts``) and
    told in the narrative; the writes of a failed attempt are undone before the
    next one (in-place changes to containers excepted). When every attempt
    fails, the last failure is the ``StageError``.

    Attributes:
        attempts: Tries in all, the first included (at least 1).
        backoff: Seconds to wait after the first failure; each later wait is
            ``factor`` times the one before, and none is longer than ``max_backoff``.
        factor: How much each wait grows (at least 1).
        max_backoff: The longest single wait, in seconds.
        jitter: Wait a random time between 0 and the computed wait instead,
            so many runs failing together do not retry together.
        on: The exception types that are retried; any other fails the stage at
            once. A stage that runs past its ``time_limit`` fails with ``TimeoutError``.
    """

    attempts: int = 3
    backoff: float = 0.0
    factor: float = 2.0
    max_backoff: float = 30.0
    jitter: bool = False
    on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if isinstance(self.on, type):
            object.__setattr__(self, "on", (self.on,))
        problems = [
            "attempts must be an int of at least 1"
            if type(self.attempts) is not int or self.attempts < 1
            else "",
            "backoff and max_backoff must not be negative"
            if self.backoff < 0 or self.max_backoff < 0
            else "",
            "factor must be at least 1" if self.factor < 1 else "",
            "on must be exception types"
            if not isinstance(self.on, tuple)
            or not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.on)
            else "",
        ]
        message = "; ".join(problem for problem in problems if problem)
        if message:
            raise ChartError(f"Retry: {message}")

    def delay(self, failed: int) -> float:
        """Return the seconds to wait after failed attempt number ``failed`` (1-based)."""
        wait = min(self.max_backoff, self.backoff * self.factor ** (failed - 1))
        if not self.jitter:
            return wait
        import random

        return random.uniform(0.0, wait)


@dataclass(frozen=True, slots=True)
class Contract:
    """A chart's declared input or output model, with its pydantic adapter built once.

    Attributes:
        model: The pydantic model (or any type pydantic validates).
        adapter: ``pydantic.TypeAdapter(model)``.
    """

    model: type[Any]
    adapter: Any

    def json_schema(self) -> dict[str, Any]:
        """Return the model's JSON Schema."""
        schema: dict[str, Any] = self.adapter.json_schema()
        return schema


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionStage:
    """A plain stage.

    ``inline`` (computed) marks the executor's fast path: a sync stage with
    neither a retry policy nor a time limit, called directly on the loop.
    """

    id: str
    name: str
    description: str | None
    fn: Callable[..., Any]
    is_async: bool
    retry: Retry | None = None
    time_limit: float | None = None
    inline: bool = field(init=False, default=False)
    kind: Literal["stage"] = "stage"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inline", runs_inline(self.is_async, self.retry, self.time_limit))


def runs_inline(is_async: bool, retry: Retry | None, time_limit: float | None) -> bool:
    """Whether a stage takes the executor's fast path (``FunctionStage.inline``)."""
    return not is_async and retry is None and time_limit is None


@dataclass(frozen=True, slots=True, kw_only=True)
class PausableStage:
    """A stage that may pause the run for a human.

    ``timeout`` is how long a *pause* may wait for its answer (applied by
    ``Runs.expire_due``); ``time_limit`` is how long ``execute`` or ``resume``
    may *run*. ``retry`` applies to ``execute``, and to ``resume`` as well when
    ``retry_resume`` is set. ``key``, given the stage's scope when it pauses,
    returns the business key the pause waits under (``Runs.resume_by_key``).
    ``assignees`` (names of people or groups, or a function of the scope
    returning them) says who may answer; ``notify``, ``remind_every``,
    ``escalate_after`` and ``escalate_to`` are applied by ``Runs`` (its sweep).
    """

    id: str
    name: str
    description: str | None
    execute: Callable[..., Any]
    resume: Callable[..., Any]
    execute_is_async: bool
    resume_is_async: bool
    input_schema: type[Any] | None = None
    timeout: float | None = None
    on_timeout: OnTimeout | None = None
    retry: Retry | None = None
    retry_resume: bool = False
    time_limit: float | None = None
    key: Callable[[Any], str] | None = None
    assignees: tuple[str, ...] | Callable[[Any], Any] = ()
    notify: tuple[str, ...] = ()
    remind_every: float | None = None
    escalate_after: float | None = None
    escalate_to: tuple[str, ...] = ()
    kind: Literal["pausable"] = "pausable"

    def input_json_schema(self) -> dict[str, Any] | None:
        """Return the JSON Schema of the expected resume input, if the stage declares one."""
        if self.input_schema is None:
            return None
        from .contracts import schema_adapter  # contracts imports this module

        schema: dict[str, Any] = schema_adapter(self.input_schema).json_schema()
        return schema


@dataclass(frozen=True, slots=True, kw_only=True)
class Subflow:
    """A whole chart mounted as one stage; its stage ids are prefixed by this id."""

    id: str
    name: str
    description: str | None
    chart: FlowChart
    input_mapper: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    output_mapper: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    kind: Literal["subflow"] = "subflow"

    @property
    def isolated(self) -> bool:
        """Whether the subflow runs on its own state (a mapper is set)."""
        return self.input_mapper is not None or self.output_mapper is not None


Branch: TypeAlias = "FunctionStage | PausableStage | Subflow"
"""What a decider, selector or fork branch may be."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decider:
    """Runs ``fn``, which returns the key of the one branch to take."""

    id: str
    name: str
    description: str | None
    fn: Callable[..., Any]
    is_async: bool
    branches: Mapping[str, Branch]
    default: str | None = None
    retry: Retry | None = None
    time_limit: float | None = None
    kind: Literal["decider"] = "decider"


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Runs ``fn``, which returns the keys of the branches to run concurrently."""

    id: str
    name: str
    description: str | None
    fn: Callable[..., Any]
    is_async: bool
    branches: Mapping[str, Branch]
    default: str | None = None
    retry: Retry | None = None
    time_limit: float | None = None
    kind: Literal["selector"] = "selector"


@dataclass(frozen=True, slots=True, kw_only=True)
class Parallel:
    """Runs every branch concurrently and joins when all are done."""

    id: str
    name: str
    description: str | None
    branches: Mapping[str, Branch]
    kind: Literal["parallel"] = "parallel"


@dataclass(frozen=True, slots=True, kw_only=True)
class ForEach:
    """Runs ``body`` once per item of a state list, concurrently, and collects the results.

    Each item runs on its own state, seeded with ``item`` and ``index``; what
    it leaves under ``result`` is collected, in item order, into
    ``results_key``. Items may pause, each with its own pause: the stage path
    of item ``n``'s stages is ``{id}[n]/{stage}``, or ``{id}[k]/{stage}`` with
    ``key`` giving each item's key ``k``.
    """

    id: str
    name: str
    description: str | None
    items_key: str
    body: FlowChart
    results_key: str
    concurrency: int | None = None
    key: Callable[[Any], str] | None = None
    kind: Literal["foreach"] = "foreach"


Node: TypeAlias = (
    "FunctionStage | PausableStage | Decider | Selector | Parallel | Subflow | ForEach"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopBack:
    """The edge that closes a loop: go back to ``target`` (an earlier stage of this sequence).

    Attributes:
        target: Id of the stage the loop goes back to.
        target_name: Its display name.
        target_index: Its position in the sequence.
        max_iterations: How often the loop may go back before ``LoopLimitError``.
    """

    target: str
    target_name: str
    target_index: int
    max_iterations: int


Step: TypeAlias = "Node | LoopBack"


@dataclass(frozen=True, slots=True, eq=False)
class FlowChart:
    """An immutable, validated chart; build one with :func:`pausepoint.flow_chart`.

    Attributes:
        name: The chart's name (its first stage's name).
        steps: The top-level sequence.
        fingerprint: Structural hash of ids, kinds and edges; equal for equal
            structures in every process and Python version, different when a
            stage, branch, subflow or loop is added, removed or moved.
        codec: How state values are checked and encoded (from ``state=``).
        redact: State keys never shown in narrative, tree or snapshot.
        input_contract: The declared input model (``build(input=...)``), if any.
        output_contract: The declared output model (``build(output=...)``), if any.
        nesting: How deep charts are mounted in this one (0: no subflow or for-each).
    """

    name: str
    steps: tuple[Step, ...]
    fingerprint: str
    codec: StateCodec
    redact: frozenset[str] = field(default_factory=frozenset)
    input_contract: Contract | None = None
    output_contract: Contract | None = None
    nesting: int = 0
    _stage_index: dict[str, Node] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )  # path -> stage, filled by the first find_stage

    def input_schema(self) -> dict[str, Any] | None:
        """Return the JSON Schema of the run input the chart accepts, or ``None`` if undeclared."""
        return None if self.input_contract is None else self.input_contract.json_schema()

    def output_schema(self) -> dict[str, Any] | None:
        """Return the JSON Schema of the output the chart returns, or ``None`` if undeclared."""
        return None if self.output_contract is None else self.output_contract.json_schema()

    def stages(self) -> Iterator[tuple[str, Node]]:
        """Yield ``(path, node)`` for every stage, branches and subflow stages included."""
        yield from _walk(self.steps, "", [])

    def find_stage(self, path: str) -> Node | None:
        """Return the stage at ``path`` (``payment/approve`` inside subflows), or ``None``.

        For-each item paths (``invoices[7]/approve``) name the body's stage.
        """
        index = self._stage_index
        if not index:
            index.update(_walk(self.steps, "", []))
        return index.get(chart_path(path) if "[" in path else path)

    def to_mermaid(self, *, highlight: frozenset[str] | set[str] = frozenset()) -> str:
        """Return the chart as a Mermaid ``flowchart`` definition.

        Args:
            highlight: Stage paths to mark as taken (e.g. the path a run went).
        """
        return _Mermaid(highlight).render(self)


_BRANCHING = (Decider, Selector, Parallel)
_ROUTED = (Decider, Selector)


def structure_of(steps: tuple[Step, ...]) -> list[Any]:
    """Describe a sequence by ids, kinds and edges only: what the fingerprint hashes.

    :func:`_structure_json` writes the same description straight as canonical
    JSON: a change here must be made there too (``test_fingerprints_are_pinned``
    holds the two to the same bytes).
    """
    described: list[Any] = []
    for step in steps:
        if isinstance(step, LoopBack):
            described.append({"loop_to": step.target})
            continue
        described.append(_structure_of_node(step))
    return described


def _structure_of_node(node: Node) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": node.id, "kind": node.kind}
    if isinstance(node, _BRANCHING):
        entry["branches"] = {key: _structure_of_node(b) for key, b in node.branches.items()}
    if isinstance(node, _ROUTED) and node.default is not None:
        entry["default"] = node.default
    if isinstance(node, Subflow):
        entry["isolated"] = node.isolated
        entry["chart"] = structure_of(node.chart.steps)
    if isinstance(node, ForEach):
        entry["chart"] = structure_of(node.body.steps)
        if node.key is not None:  # keyed items have other stage paths
            entry["keyed"] = True
    return entry


def fingerprint_of(steps: tuple[Step, ...]) -> str:
    """Return the structural fingerprint of a sequence (hex SHA-256).

    It is the SHA-256 of ``canonical_json(structure_of(steps))``, the text
    written by :func:`_structure_json` without building the dicts or running
    the JSON encoder: every chart pays for it at ``build()``, a process that
    builds its chart for each run pays it on each, and the encoder's set-up
    alone cost more than the rest of the build's checks.
    """
    return hashlib.sha256(_structure_json(steps).encode("ascii")).hexdigest()


def _structure_json(steps: tuple[Step, ...]) -> str:
    """Return ``canonical_json(structure_of(steps))`` as text: sorted keys, no spaces, ASCII."""
    return (
        "["
        + ",".join(
            [
                '{"loop_to":' + _quote(step.target) + "}"
                if isinstance(step, LoopBack)
                else _node_json(step)
                for step in steps
            ]
        )
        + "]"
    )


def _node_json(node: Node) -> str:
    # _structure_of_node's keys in sorted order: branches, chart, default, id, isolated, keyed, kind
    head = tail = ""
    if isinstance(node, _BRANCHING):
        branches = node.branches
        head = (
            '"branches":{'
            + ",".join([_quote(key) + ":" + _node_json(branches[key]) for key in sorted(branches)])
            + "},"
        )
        if isinstance(node, _ROUTED) and node.default is not None:
            head += '"default":' + _quote(node.default) + ","
    elif isinstance(node, Subflow):
        head = '"chart":' + _structure_json(node.chart.steps) + ","
        tail = ',"isolated":' + ("true" if node.isolated else "false")
    elif isinstance(node, ForEach):
        head = '"chart":' + _structure_json(node.body.steps) + ","
        if node.key is not None:
            tail = ',"keyed":true'
    return "{" + head + '"id":' + _quote(node.id) + tail + ',"kind":' + _quote(node.kind) + "}"


def _walk(
    steps: tuple[Step, ...], prefix: str, found: list[tuple[str, Node]]
) -> list[tuple[str, Node]]:
    """Append ``(path, node)`` of every stage of ``steps`` to ``found``, and return it.

    A list, not nested generators: ``find_stage`` builds its index from it on
    the first resume of every chart built in the process.
    """
    for step in steps:
        if not isinstance(step, LoopBack):
            _walk_node(step, prefix, found)
    return found


def _walk_node(node: Node, prefix: str, found: list[tuple[str, Node]]) -> None:
    path = prefix + node.id
    found.append((path, node))
    if isinstance(node, _BRANCHING):
        for branch in node.branches.values():
            _walk_node(branch, prefix, found)
    elif isinstance(node, Subflow):
        _walk(node.chart.steps, path + PATH_SEPARATOR, found)
    elif isinstance(node, ForEach):
        _walk(node.body.steps, path + PATH_SEPARATOR, found)


class _Mermaid:
    """Renders a chart as Mermaid, subflows as subgraphs."""

    _SHAPES: Mapping[str, tuple[str, str]] = {
        "stage": ('["', '"]'),
        "pausable": ('[/"', '"/]'),
        "decider": ('{"', '"}'),
        "selector": ('{{"', '"}}'),
        "parallel": ('[["', '"]]'),
    }

    def __init__(self, highlight: frozenset[str] | set[str]) -> None:
        self.highlight = highlight
        self.lines: list[str] = ["flowchart TD"]
        self.taken: list[str] = []

    def render(self, chart: FlowChart) -> str:
        self._sequence(chart.steps, "", "  ")
        self.lines.append("  classDef taken fill:#d1fae5,stroke:#047857,stroke-width:2px")
        if self.taken:
            self.lines.append(f"  class {','.join(self.taken)} taken")
        return "\n".join(self.lines)

    @staticmethod
    def _ident(path: str) -> str:
        return "n_" + "".join(ch if ch.isalnum() else "_" for ch in path) + f"_{len(path)}"

    @staticmethod
    def _label(text: str) -> str:
        return text.replace('"', "#quot;")

    def _node(self, node: Node, prefix: str, indent: str) -> tuple[str, str]:
        """Emit a node; return the Mermaid ids edges enter and leave it by."""
        path = prefix + node.id
        ident = self._ident(path)
        if path in self.highlight:
            self.taken.append(ident)
        if isinstance(node, Subflow | ForEach):
            label = self._label(node.name)
            body = node.chart if isinstance(node, Subflow) else node.body
            if isinstance(node, ForEach):
                label += f" (for each of {self._label(node.items_key)})"
            self.lines.append(f'{indent}subgraph {ident}["{label}"]')
            entry, exit_ = self._sequence(body.steps, path + PATH_SEPARATOR, indent + "  ")
            self.lines.append(f"{indent}end")
            return entry, exit_
        opening, closing = self._SHAPES[node.kind]
        label = self._label(node.name) + (" ⏸" if node.kind == "pausable" else "")
        self.lines.append(f"{indent}{ident}{opening}{label}{closing}")
        if not isinstance(node, Decider | Selector | Parallel):
            return ident, ident
        join = ident + "_join"
        self.lines.append(f"{indent}{join}(( ))")
        for key, branch in node.branches.items():
            entry, exit_ = self._node(branch, prefix, indent)
            self.lines.append(f'{indent}{ident} -->|"{self._label(key)}"| {entry}')
            self.lines.append(f"{indent}{exit_} --> {join}")
        return ident, join

    def _sequence(self, steps: tuple[Step, ...], prefix: str, indent: str) -> tuple[str, str]:
        entries: dict[str, str] = {}
        first = last = ""
        for step in steps:
            if isinstance(step, LoopBack):
                self.lines.append(f'{indent}{last} -.->|"loop"| {entries[step.target]}')
                continue
            entry, exit_ = self._node(step, prefix, indent)
            entries[step.id] = entry
            if last:
                self.lines.append(f"{indent}{last} --> {entry}")
            first = first or entry
            last = exit_
        return first, last
