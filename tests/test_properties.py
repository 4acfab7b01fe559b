"""Properties of checkpoints, checked with Hypothesis.

- Any JSON state a stage writes survives run → checkpoint → ``json.dumps`` /
  ``json.loads`` → resume in a fresh executor, unchanged.
- With a declared state type (pydantic model or dataclass), datetime, date,
  Decimal, UUID, Enum and nested models come back exactly: same types, same
  values, same UTC offsets, same Decimal exponents.
- A mangled checkpoint either resumes or raises a ``PausepointError`` (nothing
  else), and the original checkpoint still resumes to completion.

The profile comes from ``HYPOTHESIS_PROFILE``: ``fast`` (default, a few seconds)
or ``thorough`` (many more examples, for a nightly run).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import hashlib
import json
import os
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from pausepoint import (
    FlowChart,
    FlowChartExecutor,
    PausableHandler,
    PausepointError,
    flow_chart,
)
from pausepoint.engine._json import canonical_json
from pausepoint.engine.chart import structure_of

settings.register_profile(
    "fast", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

# -- strategies: JSON values ----------------------------------------------------

FINITE_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | FINITE_FLOATS | st.text(max_size=12)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """JSON values: str keys, finite floats, lists (never tuples), nested."""
    return st.recursive(
        JSON_SCALARS,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


STATE_KEYS = st.text(min_size=1, max_size=10).filter(lambda key: not key.startswith("_"))


def kind_of(value: Any) -> str:
    """The JSON type of a value (``bool`` is not ``int`` here)."""
    return {
        type(None): "null",
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
        list: "list",
        dict: "dict",
    }[type(value)]


JSON_OF_KIND: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers(),
    "float": FINITE_FLOATS,
    "str": st.text(max_size=12),
    "list": st.lists(json_values(4), max_size=3),
    "dict": st.dictionaries(st.text(max_size=8), json_values(4), max_size=3),
}


def same_json(a: Any, b: Any) -> bool:
    """Equal, and equal as JSON text too: ``1`` is not ``1.0`` nor ``True``, key order counts."""
    return a == b and json.dumps(a) == json.dumps(b)


# -- (a) any JSON state survives a checkpoint ------------------------------------


def json_chart(written: dict[str, Any], pause_data: Any) -> FlowChart:
    def write(scope: Any) -> None:
        for key, value in written.items():
            scope[key] = value

    def ask(scope: Any) -> Any:
        return pause_data

    def answer(scope: Any, given: Any) -> None:
        assert given == {"ok": True}

    def read_back(scope: Any) -> None:
        for key in written:
            scope[key]  # every key is readable after the resume

    return (
        flow_chart("Write", write, "write")
        .add_pausable_function("Ask", PausableHandler(execute=ask, resume=answer), "ask")
        .add_function("ReadBack", read_back, "read-back")
        .build()
    )


@given(
    input=st.dictionaries(STATE_KEYS, json_values(), max_size=3),
    written=st.dictionaries(STATE_KEYS, json_values(), max_size=6),
    pause_data=json_values().filter(lambda value: value is not None),
)
def test_json_state_survives_checkpoint_and_fresh_resume(
    input: dict[str, Any], written: dict[str, Any], pause_data: Any
) -> None:
    """JSON state written by a stage comes back equal after json.dumps/loads and a fresh resume."""
    chart = json_chart(written, pause_data)
    expected = {**input, **written}
    executor = FlowChartExecutor(chart)
    assert executor.run_sync(input=input) == "paused"
    checkpoint = executor.get_checkpoint()
    assert checkpoint is not None
    assert same_json(checkpoint["shared_state"], expected)
    assert same_json(checkpoint["pause_data"], pause_data)
    loaded = json.loads(json.dumps(checkpoint))
    assert same_json(loaded, checkpoint)

    fresh = FlowChartExecutor(chart)
    assert fresh.resume_sync(loaded, {"ok": True}) == "completed"
    assert same_json(fresh.get_state(), expected)
    snapshot = fresh.get_snapshot()
    assert same_json(snapshot["shared_state"], expected)
    assert same_json(snapshot["input"], input)
    assert snapshot["run_id"] == checkpoint["run_id"]
    assert same_json(json.loads(json.dumps(snapshot)), snapshot)


# -- (b) a declared state type round-trips exactly ------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    street: str
    since: date
    level: Level


class Customer(BaseModel):
    id: UUID
    address: Address
    previous: list[Address] = []


NIL_UUID = UUID(int=0)


class TypedState(BaseModel):
    when: datetime = datetime(2000, 1, 1)
    day: date = date(2000, 1, 1)
    amount: Decimal = Decimal("0")
    id: UUID = NIL_UUID
    color: Color = Color.RED
    level: Level = Level.LOW
    customer: Customer | None = None
    history: list[datetime] = []


@dataclasses.dataclass
class Place:
    city: str
    founded: date


@dataclasses.dataclass
class TypedRecord:
    when: datetime = datetime(2000, 1, 1)
    day: date = date(2000, 1, 1)
    amount: Decimal = Decimal("0")
    id: UUID = NIL_UUID
    color: Color = Color.RED
    level: Level = Level.LOW
    customer: Customer | None = None
    place: Place | None = None
    history: list[datetime] = dataclasses.field(default_factory=list)


# pydantic writes UTC offsets to the minute: second offsets (some pre-1900
# zoneinfo zones) do not round-trip, so the strategy keeps to whole minutes.
TIMEZONES = (
    st.none()
    | st.just(UTC)
    | st.builds(
        timezone, st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timedelta(minutes=m))
    )
)
DATETIMES = st.datetimes(timezones=TIMEZONES)
DECIMALS = st.decimals(allow_nan=False, allow_infinity=False)
ADDRESSES = st.builds(
    Address, street=st.text(max_size=10), since=st.dates(), level=st.sampled_from(Level)
)
CUSTOMERS = st.builds(
    Customer, id=st.uuids(), address=ADDRESSES, previous=st.lists(ADDRESSES, max_size=2)
)
TYPED_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "when": DATETIMES,
    "day": st.dates(),
    "amount": DECIMALS,
    "id": st.uuids(),
    "color": st.sampled_from(Color),
    "level": st.sampled_from(Level),
    "customer": st.none() | CUSTOMERS,
    "history": st.lists(DATETIMES, max_size=3),
}
RECORD_VALUES = {
    **TYPED_VALUES,
    "place": st.none() | st.builds(Place, city=st.text(max_size=10), founded=st.dates()),
}


def assert_exact(got: Any, want: Any, where: str = "state") -> None:
    """Equal with the same types, UTC offsets and Decimal exponents, all the way down."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, datetime):
        assert got == want, where
        assert got.utcoffset() == want.utcoffset(), f"{where}: offset {got!r} != {want!r}"
    elif isinstance(want, Decimal):
        assert str(got) == str(want), f"{where}: {got!r} != {want!r}"
    elif isinstance(want, BaseModel):
        for name in type(want).model_fields:
            assert_exact(getattr(got, name), getattr(want, name), f"{where}.{name}")
    elif dataclasses.is_dataclass(want):
        for field in dataclasses.fields(want):
            assert_exact(
                getattr(got, field.name), getattr(want, field.name), f"{where}.{field.name}"
            )
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_exact(g, w, f"{where}[{index}]")
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_exact(got[key], want[key], f"{where}.{key}")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def typed_chart(state_type: type[Any], written: dict[str, Any]) -> FlowChart:
    def write(scope: Any) -> None:
        for key, value in written.items():
            scope[key] = value

    def ask(scope: Any) -> dict[str, Any]:
        return {"question": "Keep it?"}

    def answer(scope: Any, given: Any) -> None:
        scope.kept = given["ok"]

    def check(scope: Any) -> None:
        for key, value in written.items():
            assert_exact(scope[key], value, key)  # typed values inside stages too

    return (
        flow_chart("Write", write, "write")
        .add_pausable_function("Ask", PausableHandler(execute=ask, resume=answer), "ask")
        .add_function("Check", check, "check")
        .build(state=state_type)
    )


def typed_round_trip(state_type: type[Any], written: dict[str, Any]) -> None:
    chart = typed_chart(state_type, written)
    executor = FlowChartExecutor(chart)
    assert executor.run_sync(input={"note": "typed"}) == "paused"
    checkpoint = executor.get_checkpoint()
    assert checkpoint is not None
    loaded = json.loads(json.dumps(checkpoint))
    assert same_json(loaded, checkpoint)

    fresh = FlowChartExecutor(chart)
    assert fresh.resume_sync(loaded, {"ok": True}) == "completed"
    state = fresh.get_state()
    assert_exact({key: state[key] for key in written}, written)
    assert state["kept"] is True
    assert state["note"] == "typed"
    json.dumps(fresh.get_snapshot())


@given(written=st.fixed_dictionaries({}, optional=TYPED_VALUES))
def test_pydantic_state_type_round_trips_exactly(written: dict[str, Any]) -> None:
    """Fields of a pydantic state type come back with the same types and values after a resume."""
    typed_round_trip(TypedState, written)


@given(written=st.fixed_dictionaries({}, optional=RECORD_VALUES))
def test_dataclass_state_type_round_trips_exactly(written: dict[str, Any]) -> None:
    """Fields of a dataclass state type come back with the same types and values after a resume."""
    typed_round_trip(TypedRecord, written)


# -- (c) a mangled checkpoint: resumes or a PausepointError, nothing else -------

ANSWER = {"ok": True}


def remember(scope: Any, answer: Any) -> None:
    scope.last_answer = answer["ok"]


def ask_with(data: Any) -> PausableHandler:
    return PausableHandler(execute=lambda scope: data, resume=remember)


def refund_chart(state: type[Any] | None = None) -> FlowChart:
    def classify(scope: Any) -> dict[str, Any]:
        scope.risk = "high" if scope.amount > 500 else "low"
        return {"question": f"Approve ${scope.amount}?", "risk": scope.risk}

    def process(scope: Any) -> None:
        scope.refunded = scope.amount if scope.last_answer else 0

    return (
        flow_chart("Refund", lambda scope: setattr(scope, "received", True), "receive")
        .add_pausable_function(
            "Approve", PausableHandler(execute=classify, resume=remember), "approve"
        )
        .add_function("Process", process, "process")
        .build(state=state)
    )


class RefundState(BaseModel):
    amount: Decimal = Decimal("0")
    refunded: Decimal = Decimal("0")
    when: datetime = datetime(2000, 1, 1)


def kitchen_chart() -> FlowChart:
    """A pause in a decider branch, a parallel fork, a selector's subflow, an isolated subflow, a loop."""
    audit = (
        flow_chart("Audit", lambda scope: setattr(scope, "audited", True), "prepare")
        .add_pausable_function("SignOff", ask_with({"question": "Sign off?"}), "sign-off")
        .add_function(
            "Archive", lambda scope: setattr(scope, "archived", scope.last_answer), "archive"
        )
        .build()
    )
    payment = (
        flow_chart("Payment", lambda scope: setattr(scope, "fee", 1), "prepare")
        .add_pausable_function("ApprovePayment", ask_with({"question": "Pay?"}), "approve-payment")
        .add_function(
            "Charge", lambda scope: setattr(scope, "paid", scope.amount + scope.fee), "charge"
        )
        .build()
    )

    def tick(scope: Any) -> None:
        scope.rounds = scope.get("rounds", 0) + 1

    def check_round(scope: Any, answer: Any) -> None:
        remember(scope, answer)
        if scope.rounds >= 2:
            scope.break_loop()

    return (
        flow_chart("Kitchen", lambda scope: setattr(scope, "started", True), "start")
        .add_decider_function(
            "Route", lambda scope: "big" if scope.amount > 500 else "small", "route"
        )
        .add_pausable_branch("big", "BigApproval", ask_with({"question": "Big one?"}))
        .add_function_branch("small", "Small", lambda scope: setattr(scope, "small", True))
        .end()
        .add_parallel("reviews", "Reviews")
        .add_pausable_branch("review-a", "ReviewA", ask_with("Review A?"))
        .add_pausable_branch("review-b", "ReviewB", ask_with(["b", 2]))
        .add_function_branch("review-c", "ReviewC", lambda scope: setattr(scope, "c", 3))
        .end()
        .add_selector_function("Notify", lambda scope: ["email", "audit"], "notify")
        .add_function_branch("email", "Email", lambda scope: setattr(scope, "emailed", True))
        .add_subflow_branch("audit", audit, "Audit")
        .add_function_branch("sms", "Sms", lambda scope: setattr(scope, "texted", True))
        .end()
        .add_subflow(
            "payment",
            payment,
            "Payment",
            input_mapper=lambda state: {"amount": state["amount"]},
            output_mapper=lambda state: {"paid": state["paid"]},
        )
        .add_function("Tick", tick, "tick")
        .add_pausable_function(
            "Check",
            PausableHandler(execute=lambda scope: {"round": scope.rounds}, resume=check_round),
            "check",
        )
        .loop_to("tick", max_iterations=5)
        .add_function("Finish", lambda scope: setattr(scope, "finished", True), "finish")
        .build()
    )


@dataclasses.dataclass(frozen=True)
class Case:
    """A chart, an executor setting, and one valid checkpoint of it."""

    name: str
    chart: FlowChart
    checkpoint: dict[str, Any]
    signing_key: bytes | None = None

    def executor(self) -> FlowChartExecutor:
        return FlowChartExecutor(self.chart, signing_key=self.signing_key)


def pending(checkpoint: dict[str, Any]) -> list[str]:
    return [pause["stage_id"] for pause in checkpoint["pauses"]]


def resume_to_completion(executor: FlowChartExecutor, checkpoint: dict[str, Any]) -> None:
    """Resume, answering every pending pause, until the run completes."""
    for _ in range(20):
        answers = {stage_id: ANSWER for stage_id in pending(checkpoint)}
        if executor.resume_sync(checkpoint, answers=answers) == "completed":
            return
        next_checkpoint = executor.get_checkpoint()
        assert next_checkpoint is not None
        checkpoint = json.loads(json.dumps(next_checkpoint))
    raise AssertionError("the run did not complete in 20 resumes")


@functools.cache
def cases() -> tuple[Case, ...]:
    """Valid checkpoints: every pause of the kitchen chart (answered one at a time), and refunds."""
    found: list[Case] = []
    for name, chart, key, input in (
        ("refund", refund_chart(), None, {"amount": 299}),
        ("signed refund", refund_chart(), b"k", {"amount": 299}),
        ("typed refund", refund_chart(RefundState), None, {"amount": "299.10"}),
        ("kitchen", kitchen_chart(), None, {"amount": 900}),
    ):
        executor = FlowChartExecutor(chart, signing_key=key)
        status = executor.run_sync(input=input)
        step = 0
        while status == "paused":
            checkpoint = executor.get_checkpoint()
            assert checkpoint is not None
            checkpoint = json.loads(json.dumps(checkpoint))
            found.append(Case(f"{name} #{step}", chart, checkpoint, key))
            first = pending(checkpoint)[0]
            executor = FlowChartExecutor(chart, signing_key=key)
            status = executor.resume_sync(checkpoint, ANSWER, stage_id=first)
            step += 1
        assert status == "completed"
    return tuple(found)


def test_the_cases_cover_every_kind_of_pause() -> None:
    """The checkpoints mangled below include pauses in every building block."""
    paused = {stage_id for case in cases() for stage_id in pending(case.checkpoint)}
    assert paused == {
        "approve",
        "big",
        "review-a",
        "review-b",
        "audit/sign-off",
        "payment/approve-payment",
        "check",
    }
    assert any(len(pending(case.checkpoint)) == 2 for case in cases())
    assert any(case.checkpoint["continuation"].get("loops") for case in cases())


Mutation = tuple[str, tuple[Any, ...], Any]


@st.composite
def mangled(draw: st.DrawFn, checkpoint: dict[str, Any]) -> tuple[dict[str, Any], list[Mutation]]:
    """A deep copy of ``checkpoint`` with 1-3 mutations, each at the end of a random walk.

    The walk starts at the top, picks a key (or index), and either stops there
    or goes on into the value while it is a non-empty container. At the stop it
    deletes the entry, replaces it with a JSON value of another type, truncates
    it (a list) or changes it (an int).
    """
    result = copy.deepcopy(checkpoint)
    done: list[Mutation] = []
    for _ in range(draw(st.integers(1, 3))):
        parent: Any = result
        path: tuple[Any, ...] = ()
        while True:
            keys = list(parent) if isinstance(parent, dict) else list(range(len(parent)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            path += (key,)
            child = parent[key]
            if isinstance(child, dict | list) and child and draw(st.booleans()):
                parent = child
                continue
            break
        if not path:
            continue
        key = path[-1]
        value = parent[key]
        operations = ["delete", "replace"]
        if isinstance(value, list) and value:
            operations.append("truncate")
        if type(value) is int:
            operations.append("change")
        operation = draw(st.sampled_from(operations))
        if operation == "delete":
            del parent[key]
            done.append(("delete", path, None))
        elif operation == "replace":
            kind = draw(st.sampled_from([k for k in JSON_OF_KIND if k != kind_of(value)]))
            new = draw(JSON_OF_KIND[kind])
            parent[key] = new
            done.append(("replace", path, new))
        elif operation == "truncate":
            size = draw(st.integers(0, len(value) - 1))
            parent[key] = value[:size]
            done.append(("truncate", path, size))
        else:
            new = draw(
                st.sampled_from([value + 1, value - 1, -value - 1, 0, 2**31, -(10**20)])
                | st.integers()
            )
            if new == value:
                new = value + 1
            parent[key] = new
            done.append(("change", path, new))
    return result, done


def case_and_mangled() -> st.SearchStrategy[tuple[Case, dict[str, Any], list[Mutation]]]:
    return st.deferred(
        lambda: st.sampled_from(cases()).flatmap(
            lambda case: mangled(case.checkpoint).map(lambda m: (case, m[0], m[1]))
        )
    )


def try_resume(
    executor: FlowChartExecutor, checkpoint: Any, stage_ids: list[str], *, by_stage: bool = False
) -> None:
    """Resume, answering the original's pauses; a PausepointError is accepted, nothing else is.

    ``by_stage`` answers only the first one, named by ``stage_id=``; otherwise
    all of them go in ``answers=``.
    """
    try:
        if by_stage:
            status = executor.resume_sync(checkpoint, ANSWER, stage_id=stage_ids[0])
        else:
            status = executor.resume_sync(checkpoint, answers={s: ANSWER for s in stage_ids})
    except PausepointError:
        assert executor.status in ("idle", "failed")
        return
    assert status in ("paused", "completed")
    json.dumps(executor.get_snapshot())
    executor.get_narrative()
    executor.get_metrics()
    if status == "paused":
        json.dumps(executor.get_checkpoint())


@given(mangling=case_and_mangled(), by_stage=st.booleans())
def test_mangled_checkpoint_resumes_or_raises_pausepoint_error(
    mangling: tuple[Case, dict[str, Any], list[Mutation]], by_stage: bool
) -> None:
    """Mangled: resume succeeds or raises a PausepointError; the original still completes."""
    case, bad, mutations = mangling
    original = copy.deepcopy(case.checkpoint)
    bad_before = copy.deepcopy(bad)
    stage_ids = pending(case.checkpoint)
    executor = case.executor()
    try_resume(executor, bad, stage_ids, by_stage=by_stage)
    assert same_json(bad, bad_before), mutations
    assert same_json(case.checkpoint, original), mutations
    resume_to_completion(executor, copy.deepcopy(case.checkpoint))
    assert executor.status == "completed"


# -- (d) every single mutation, swept -------------------------------------------

REPLACEMENTS: tuple[Any, ...] = (None, True, -1, 1.5, "x", [], ["x"], {})


def walk(value: Any, path: tuple[Any, ...] = ()) -> Any:
    """Yield the path of every entry inside a JSON value, outermost first."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        yield (*path, key)
        if isinstance(child, dict | list):
            yield from walk(child, (*path, key))


def swept_paths(case: Case) -> list[tuple[Any, ...]]:
    """Every path, but tree nodes only in the first and the last checkpoint of each chart.

    The tree of each kitchen checkpoint repeats the one before it, and nested
    nodes go through the same checks as top-level ones.
    """
    sweep_tree = case.name.endswith(" #0") or case.name == "kitchen #6"
    return [
        path
        for path in walk(case.checkpoint)
        if path[0] != "execution_tree"
        or (sweep_tree and len(path) <= 3)
        # a node's pause and resume records, at any depth (their seq once escaped as a TypeError)
        or (sweep_tree and len(path) >= 2 and path[-2] in ("pause", "resume"))
    ]


def with_mutation(checkpoint: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    result = copy.deepcopy(checkpoint)
    parent: Any = result
    for key in path[:-1]:
        parent = parent[key]
    if new is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(new)
    return result


DELETE: Any = object()


def test_every_single_mutation_resumes_or_raises_pausepoint_error() -> None:
    """Each entry of each checkpoint deleted or replaced by each kind of value: resume or PausepointError.

    One executor takes every mangled checkpoint of a case, then completes the original.
    """
    for case in cases():
        executor = case.executor()
        stage_ids = pending(case.checkpoint)
        for path in swept_paths(case):
            for new in (DELETE, *REPLACEMENTS):
                bad = with_mutation(case.checkpoint, path, new)
                before = json.dumps(bad)
                try_resume(executor, bad, stage_ids)
                assert json.dumps(bad) == before, (case.name, path, new)
        resume_to_completion(executor, copy.deepcopy(case.checkpoint))
        assert executor.status == "completed"


TREE_REPLACEMENTS: tuple[Any, ...] = (
    *REPLACEMENTS,
    False,
    2**70,
    float("nan"),
    ("x",),
    {1: "x"},
    ["x", 1],
    {"seq": True},
)


def test_quick_tree_copy_agrees_with_the_full_checks() -> None:
    """Every tree entry mangled: the one-pass copy gives what json_copy and _check_tree give, or defers.

    It must never accept a tree the full checks refuse, nor copy one differently;
    and it must take every valid tree (the fast path of each resume).
    """
    from pausepoint.engine._json import NotJSONError, json_copy
    from pausepoint.engine.checkpoint import _check_tree, _quick_tree_copy
    from pausepoint.errors import CheckpointFormatError

    def full(tree: Any) -> Any:
        try:
            copied = json_copy(tree)
            _check_tree(copied, "execution_tree")
        except (NotJSONError, CheckpointFormatError):
            return None
        return copied

    retried = {  # a node with the records of a retried stage and of a rule-chosen branch
        "id": "r",
        "name": "R",
        "kind": "decider",
        "status": "done",
        "seq": 9,
        "attempts": [
            {"phase": "execute", "attempt": 1, "of": 2, "error": "E", "ms": 0.5, "seq": 8}
        ],
        "evidence": {
            "chose": ["a"],
            "default": False,
            "checked": [{"key": "k", "op": "==", "ok": False, "expected": 2}],
            "matched": [
                {
                    "rule": 0,
                    "then": "a",
                    "checks": [{"key": "k", "op": "<", "ok": True, "expected": 3}],
                }
            ],
        },
    }
    trees = [(case.name, case.checkpoint["execution_tree"]) for case in cases()]
    for name, tree in [*trees, ("retried", [retried])]:
        assert full(tree) is not None, name
        assert _quick_tree_copy(tree) == tree, name
        for path in walk(tree):
            parent: Any = tree
            for key in path:
                parent = parent[key]
            additions = [(1, "x"), ("extra", ("x",)), ("extra", {"k": float("inf")})]
            grown = [parent | {k: v} for k, v in additions] if isinstance(parent, dict) else []
            for new in (DELETE, *TREE_REPLACEMENTS, *grown):
                bad = with_mutation({"t": tree}, ("t", *path), new)["t"]
                quick, slow = _quick_tree_copy(bad), full(bad)
                if quick is not None:
                    assert slow is not None, (name, path, new)
                    assert canonical_json(quick) == canonical_json(slow), (name, path, new)


def test_nodes_built_in_place_equal_their_dataclass_construction() -> None:
    """function_stage and pausable_stage fill a slots twin in place: each gives what the dataclass gives.

    Every field set (none left empty), the same values, the dataclass's type, and
    still frozen; with and without a retry, a time limit and the pausable options.
    """
    from pausepoint import PausableHandler, Retry
    from pausepoint.engine._nodes import People, function_stage, pausable_stage
    from pausepoint.engine.chart import FunctionStage, PausableStage

    async def later(scope: Any) -> None:
        return None

    def fields(node: Any) -> dict[str, Any]:
        return {name: getattr(node, name) for name in type(node).__slots__}

    retry = Retry(attempts=2)
    for fn, retry_of, limit in [(_noop, None, None), (later, retry, 2.0), (_noop, None, 1.5)]:
        built = function_stage("S", fn, "s", "what", retry_of, limit)
        assert type(built) is FunctionStage
        assert fields(built) == fields(
            FunctionStage(
                id="s",
                name="S",
                description="what",
                fn=fn,
                is_async=fn is later,
                retry=retry_of,
                time_limit=limit,
            )
        )
        assert built == dataclasses.replace(built)
        with pytest.raises(dataclasses.FrozenInstanceError):
            built.id = "t"  # type: ignore[misc]

    handler = PausableHandler(execute=_noop, resume=lambda scope, answer: None)
    people = People(assignees=["ann"], notify=["ops"], remind_every=60.0)
    for options in [
        {},
        {"retry": retry, "retry_resume": True, "time_limit": 3.0, "people": people},
    ]:
        made = pausable_stage("P", handler, "p", None, None, 10.0, None, **options)  # type: ignore[arg-type]
        assert type(made) is PausableStage
        expected = PausableStage(
            id="p",
            name="P",
            description=None,
            execute=handler.execute,
            resume=handler.resume,
            execute_is_async=False,
            resume_is_async=False,
            timeout=10.0,
            retry=made.retry,
            retry_resume=made.retry_resume,
            time_limit=made.time_limit,
            assignees=made.assignees,
            notify=made.notify,
            remind_every=made.remind_every,
            escalate_after=made.escalate_after,
            escalate_to=made.escalate_to,
        )
        assert fields(made) == fields(expected)
        assert made == expected
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.kind = "stage"  # type: ignore[misc]


# -- (d) the fingerprint is the SHA-256 of the chart's canonical structure ----------

STAGE_IDS = st.text(min_size=1, max_size=8).filter(lambda id: "/" not in id)


def _noop(scope: Any) -> None:
    return None


@given(
    ids=st.lists(STAGE_IDS, min_size=4, max_size=8, unique=True),
    default=st.booleans(),
    keyed=st.booleans(),
)
def test_fingerprint_is_sha256_of_the_canonical_structure(
    ids: list[str], default: bool, keyed: bool
) -> None:
    """Whatever the ids (quotes, accents, emoji), the fingerprint hashes canonical_json(structure_of(steps))."""
    start, decider, items, *branches = ids
    routed = flow_chart("Start", _noop, start).add_decider_function("Route", _noop, decider)
    for key in branches:
        routed.add_function_branch(key, key, _noop)
    if default:
        routed.set_default(branches[-1])
    chart = (
        routed.end()
        .add_for_each(items, "items", _noop, "Items", key="sku" if keyed else None)
        .loop_to(start)
        .build()
    )
    expected = hashlib.sha256(canonical_json(structure_of(chart.steps))).hexdigest()
    assert chart.fingerprint == expected
