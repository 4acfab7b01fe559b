"""Executor semantics: failures, sync and async stages, state, build errors, fingerprints."""

import asyncio
import copy
import dataclasses
import enum
import functools
import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from _charts import Log, checkpoint_of, flat, resume_fresh, roundtrip, run_fresh
from pausepoint import (
    ChartError,
    ExecutorUsageError,
    FlowChartExecutor,
    PausableHandler,
    Scope,
    StageError,
    StateError,
    StateKeyError,
    StateValueError,
    flow_chart,
)
from pausepoint.engine._json import canonical_json
from pausepoint.engine.chart import structure_of

# -- failures ----------------------------------------------------------------


def _failing_chart(log: Log, fail: dict[str, bool]) -> Any:
    def ask(scope: Scope) -> Any:
        log.calls.append("approve:execute")
        return {"question": "ok?"}

    def answer(scope: Scope, value: Any) -> None:
        log.calls.append("approve:resume")
        scope.approved = value
        if fail.get("resume"):
            raise ValueError("ledger down")

    def process(scope: Scope) -> None:
        log.calls.append("process")
        if fail.get("process"):
            raise RuntimeError("printer on fire")
        scope.done = True

    return (
        flow_chart("Receive", log.stage("receive", received=True), "receive")
        .add_pausable_function("Approve", PausableHandler(ask, answer), "approve")
        .add_function("Process", process, "process")
        .build()
    )


async def test_resume_handler_raising() -> None:
    """A raising resume is a StageError (phase "resume") chaining the original; the checkpoint stays resumable."""
    log, fail = Log(), {"resume": True}
    chart = _failing_chart(log, fail)
    checkpoint = checkpoint_of(await run_fresh(chart))
    assert log.take() == ["receive", "approve:execute"]
    untouched = copy.deepcopy(checkpoint)

    executor = FlowChartExecutor(chart)
    with pytest.raises(StageError) as info:
        await executor.resume(checkpoint, True)
    error = info.value
    assert error.stage_id == "approve"
    assert error.stage_name == "Approve"
    assert error.phase == "resume"
    assert isinstance(error.__cause__, ValueError)
    assert str(error.__cause__) == "ledger down"
    assert "'approve'" in str(error)
    assert "ledger down" in str(error)
    assert checkpoint == untouched
    assert log.take() == ["approve:resume"]

    assert executor.status == "failed"
    assert executor.get_checkpoint() is None
    snapshot = executor.get_snapshot()
    assert snapshot["status"] == "failed"
    assert snapshot["error"] is not None
    assert "ledger down" in snapshot["error"]
    assert flat(snapshot["execution_tree"]) == [("receive", "done"), ("approve", "failed")]
    assert snapshot["execution_tree"][1]["error"] == "ValueError: ledger down"
    assert snapshot["narrative"][-1] == "Approve failed: ValueError: ledger down."

    fail["resume"] = False
    resumed = await resume_fresh(chart, checkpoint, True)
    assert resumed.status == "completed"
    assert log.take() == ["approve:resume", "process"]
    assert resumed.get_state() == {"received": True, "approved": True, "done": True}
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("approve", "resumed"),
        ("process", "done"),
    ]
    assert checkpoint == untouched


async def test_stage_after_resume_raising() -> None:
    """A stage after the resumed one raising fails the resume but leaves the caller's checkpoint resumable."""
    log, fail = Log(), {"process": True}
    chart = _failing_chart(log, fail)
    checkpoint = checkpoint_of(await run_fresh(chart))
    log.take()
    untouched = copy.deepcopy(checkpoint)

    executor = FlowChartExecutor(chart)
    with pytest.raises(StageError) as info:
        await executor.resume(checkpoint, "yes")
    assert info.value.stage_id == "process"
    assert info.value.phase == "run"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "'process'" in str(info.value)
    assert checkpoint == untouched
    assert log.take() == ["approve:resume", "process"]
    snapshot = executor.get_snapshot()
    assert snapshot["status"] == "failed"
    assert flat(snapshot["execution_tree"]) == [
        ("receive", "done"),
        ("approve", "resumed"),
        ("process", "failed"),
    ]
    assert snapshot["shared_state"] == {"received": True, "approved": "yes"}

    fail["process"] = False
    resumed = await resume_fresh(chart, checkpoint, "yes")
    assert resumed.status == "completed"
    assert log.take() == ["approve:resume", "process"]
    assert resumed.get_state() == {"received": True, "approved": "yes", "done": True}


async def test_resume_raising_inside_subflow_names_the_path() -> None:
    """A resume failing inside a subflow names the stage's full path and marks the subflow failed."""

    def answer(scope: Scope, value: Any) -> None:
        raise KeyError("gone")

    inner = flow_chart("Approve", PausableHandler(lambda s: "ok?", answer), "approve").build()
    chart = flow_chart("Start", lambda s: None, "start").add_subflow("pay", inner, "Pay").build()
    checkpoint = checkpoint_of(await run_fresh(chart))
    executor = FlowChartExecutor(chart)
    with pytest.raises(StageError) as info:
        await executor.resume(checkpoint, 1)
    assert info.value.stage_id == "pay/approve"
    assert info.value.phase == "resume"
    assert isinstance(info.value.__cause__, KeyError)
    assert flat(executor.get_snapshot()["execution_tree"]) == [
        ("start", "done"),
        ("pay", "failed"),
        ("pay/approve", "failed"),
    ]


async def test_execute_raising_is_a_stage_error() -> None:
    """A raising execute is a StageError with phase "execute"; nothing after it runs."""
    log = Log()

    def ask(scope: Scope) -> Any:
        raise LookupError("no manager")

    chart = (
        flow_chart("Ask", PausableHandler(ask, lambda s, v: None), "ask")
        .add_function("After", log.stage("after"), "after")
        .build()
    )
    executor = FlowChartExecutor(chart)
    with pytest.raises(StageError) as info:
        await executor.run()
    assert (info.value.stage_id, info.value.phase) == ("ask", "execute")
    assert isinstance(info.value.__cause__, LookupError)
    assert log.take() == []
    assert executor.get_checkpoint() is None


# -- sync and async stage functions -------------------------------------------


class _AsyncCallable:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __call__(self, scope: Scope) -> None:
        await asyncio.sleep(0)
        self.log.append("callable")
        scope.from_callable = True


class _Handler:
    """A pausable handler that is not a PausableHandler: any object with execute and resume."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def execute(self, scope: Scope) -> Any:
        await asyncio.sleep(0)
        self.log.append("handler:execute")
        return {"question": "class-based?"}

    async def resume(self, scope: Scope, answer: Any) -> None:
        await asyncio.sleep(0)
        self.log.append("handler:resume")
        scope.from_handler = answer


def _mixed_chart(log: list[str]) -> Any:
    def plain(scope: Scope) -> None:
        log.append("plain")
        scope.from_plain = True

    async def coroutine(scope: Scope) -> None:
        await asyncio.sleep(0)
        log.append("async")
        scope.from_async = True

    async def with_arg(scope: Scope, label: str) -> None:
        await asyncio.sleep(0)
        log.append(label)
        scope.from_partial = label

    async def ask(scope: Scope) -> Any:
        await asyncio.sleep(0)
        log.append("ask:execute")
        return {"question": "async pause?"}

    def answer(scope: Scope, value: Any) -> None:
        log.append("ask:resume")
        scope.from_sync_resume = value

    async def route(scope: Scope) -> str:
        await asyncio.sleep(0)
        return "yes"

    return (
        flow_chart("Plain", plain, "plain")
        .add_function("Async", coroutine, "async")
        .add_function("Partial", functools.partial(with_arg, label="partial"), "partial")
        .add_function("Callable", _AsyncCallable(log), "callable")
        .add_pausable_function("Ask", PausableHandler(ask, answer), "ask")
        .add_decider_function("Route", route, "route")
        .add_pausable_branch("yes", "Handler", _Handler(log))
        .add_function_branch("no", "No", plain)
        .end()
        .add_function("Lambda", lambda s: log.append("lambda"), "lambda")
        .build()
    )


async def test_sync_and_async_stage_functions() -> None:
    """Plain functions, coroutines, partials of coroutines, async callables and async handlers all run."""
    log: list[str] = []
    chart = _mixed_chart(log)
    executor = await run_fresh(chart)
    first = checkpoint_of(executor)
    assert first["paused_stage_id"] == "ask"
    assert log == ["plain", "async", "partial", "callable", "ask:execute"]
    log.clear()

    executor = await resume_fresh(chart, first, "a1")
    second = checkpoint_of(executor)
    assert second["paused_stage_id"] == "yes"
    assert second["pause_data"] == {"question": "class-based?"}
    assert log == ["ask:resume", "handler:execute"]
    log.clear()

    resumed = await resume_fresh(chart, second, "h1")
    assert resumed.status == "completed"
    assert log == ["handler:resume", "lambda"]
    assert resumed.get_state() == {
        "from_plain": True,
        "from_async": True,
        "from_partial": "partial",
        "from_callable": True,
        "from_sync_resume": "a1",
        "from_handler": "h1",
    }


def test_run_sync_and_resume_sync() -> None:
    """run_sync and resume_sync drive async stages from code without an event loop."""
    log: list[str] = []
    chart = _mixed_chart(log)
    executor = FlowChartExecutor(chart)
    assert executor.run_sync(input={"seed": 1}) == "paused"
    first = roundtrip(executor.get_checkpoint())
    second_executor = FlowChartExecutor(chart)
    assert second_executor.resume_sync(first, "a1") == "paused"
    second = roundtrip(second_executor.get_checkpoint())
    last = FlowChartExecutor(chart)
    assert last.resume_sync(second, "h1") == "completed"
    assert last.get_state()["seed"] == 1
    assert last.get_state()["from_handler"] == "h1"
    assert log == [
        "plain",
        "async",
        "partial",
        "callable",
        "ask:execute",
        "ask:resume",
        "handler:execute",
        "handler:resume",
        "lambda",
    ]


async def test_run_sync_inside_running_loop_is_refused() -> None:
    """run_sync/resume_sync inside a running event loop raise ExecutorUsageError saying to use await."""
    log = Log()
    chart = (
        flow_chart("Ask", log.pausable("ask"), "ask").add_function("B", log.stage("b"), "b").build()
    )
    executor = FlowChartExecutor(chart)
    with pytest.raises(ExecutorUsageError) as info:
        executor.run_sync({"x": 1})
    assert "await executor.run(" in str(info.value)
    assert log.take() == []
    assert executor.status == "idle"

    assert await executor.run({"x": 1}) == "paused"
    checkpoint = checkpoint_of(executor)
    fresh = FlowChartExecutor(chart)
    with pytest.raises(ExecutorUsageError) as info:
        fresh.resume_sync(checkpoint, "yes")
    assert "await executor.resume(" in str(info.value)
    assert await fresh.resume(checkpoint, "yes") == "completed"
    assert log.take() == ["ask:execute", "ask:resume", "b"]


# -- state ---------------------------------------------------------------------


async def test_reading_unwritten_key() -> None:
    """Reading a key never written raises StateKeyError, also an AttributeError, naming key and stage."""
    seen: dict[str, Any] = {}

    def peek(scope: Scope) -> None:
        seen["getattr"] = getattr(scope, "missing", None)
        seen["get"] = scope.get("missing", "fallback")
        seen["contains"] = "missing" in scope
        try:
            scope.missing  # noqa: B018
        except AttributeError as exc:
            seen["attr"] = exc
        try:
            scope["missing"]
        except StateKeyError as exc:
            seen["item"] = exc

    def read(scope: Scope) -> None:
        scope.result = scope.absent

    chart = flow_chart("Peek", peek, "peek").add_function("Read", read, "read").build()
    executor = FlowChartExecutor(chart)
    with pytest.raises(StageError) as info:
        await executor.run()
    assert seen["getattr"] is None
    assert seen["get"] == "fallback"
    assert seen["contains"] is False
    for exc in (seen["attr"], seen["item"]):
        assert isinstance(exc, StateKeyError)
        assert isinstance(exc, AttributeError)
        assert isinstance(exc, StateError)
        assert (exc.key, exc.stage_id) == ("missing", "peek")
        assert "'missing'" in str(exc)
        assert "'peek'" in str(exc)
    cause = info.value.__cause__
    assert isinstance(cause, StateKeyError)
    assert (cause.key, cause.stage_id) == ("absent", "read")
    assert info.value.stage_id == "read"
    assert "missing" not in executor.get_state()  # a failed read writes nothing


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "path"),
    [
        pytest.param({1, 2}, "bad", id="set"),
        pytest.param((1, 2), "bad", id="tuple"),
        pytest.param(datetime(2024, 1, 1), "bad", id="datetime"),
        pytest.param(float("nan"), "bad", id="nan"),
        pytest.param(float("inf"), "bad", id="inf"),
        pytest.param(_Opaque(), "bad", id="object"),
        pytest.param(b"bytes", "bad", id="bytes"),
        pytest.param({"when": date(2024, 1, 1)}, "bad.when", id="nested-date"),
        pytest.param([1, [2, (3,)]], "bad[1][1]", id="nested-tuple"),
        pytest.param({1: "int key"}, "bad", id="int-key"),
    ],
)
async def test_non_json_value_refused_at_write(value: Any, path: str) -> None:
    """A value JSON would lose or change is refused when written, naming key (and where in it) and stage."""
    log: list[str] = []

    def write(scope: Scope) -> None:
        scope.ok = 1
        scope.bad = value
        log.append("after write")  # never reached

    chart = (
        flow_chart("Start", lambda s: None, "start")
        .add_function("Write", write, "write")
        .add_function("Later", lambda s: log.append("later"), "later")
        .build()
    )
    executor = FlowChartExecutor(chart)
    with pytest.raises(StageError) as info:
        await executor.run()
    assert info.value.stage_id == "write"
    cause = info.value.__cause__
    assert isinstance(cause, StateValueError)
    assert cause.key == "bad"
    assert cause.stage_id == "write"
    assert "'write'" in str(cause)
    assert path in str(cause)
    assert log == []
    assert executor.get_state() == {"ok": 1}


async def test_non_json_value_refused_inside_subflow() -> None:
    """A bad write inside a subflow names the stage by its full path."""
    inner = flow_chart("Write", lambda s: s.__setitem__("when", datetime.now()), "write").build()
    chart = flow_chart("Start", lambda s: None, "start").add_subflow("sub", inner, "Sub").build()
    with pytest.raises(StageError) as info:
        await FlowChartExecutor(chart).run()
    cause = info.value.__cause__
    assert isinstance(cause, StateValueError)
    assert (cause.key, cause.stage_id) == ("when", "sub/write")


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


@dataclasses.dataclass
class AddressDC:
    city: str
    zip: str


class AddressModel(BaseModel):
    city: str
    zip: str


@dataclasses.dataclass
class OrderStateDC:
    when: datetime | None = None
    day: date | None = None
    amount: Decimal = Decimal("0.00")
    ref: uuid.UUID | None = None
    tier: Tier = Tier.SILVER
    address: AddressDC | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    count: int = 7


class OrderStateModel(BaseModel):
    when: datetime | None = None
    day: date | None = None
    amount: Decimal = Decimal("0.00")
    ref: uuid.UUID | None = None
    tier: Tier = Tier.SILVER
    address: AddressModel | None = None
    notes: list[str] = []
    count: int = 7


_WHEN = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
_REF = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("state_type", "address_type"),
    [(OrderStateDC, AddressDC), (OrderStateModel, AddressModel)],
    ids=["dataclass", "pydantic"],
)
async def test_typed_state_round_trips_exactly(state_type: Any, address_type: Any) -> None:
    """datetime, date, Decimal, UUID, Enum and nested models survive a JSON checkpoint and fresh executor exactly."""
    seen: dict[str, dict[str, Any]] = {}
    fields = ("when", "day", "amount", "ref", "tier", "address", "notes", "count")

    def receive(scope: Scope) -> None:
        seen["defaults"] = {name: scope[name] for name in ("tier", "notes", "count", "when")}
        scope.when = _WHEN
        scope.day = date(2024, 5, 2)
        scope.amount = Decimal("12.30")
        scope.ref = _REF
        scope.tier = Tier.GOLD
        scope.address = address_type(city="Oslo", zip="0150")
        scope.notes = ["first"]
        scope.plain = {"json": [1, 2]}

    def ask(scope: Scope) -> Any:
        return {"question": f"Charge {scope.amount}?"}

    def answer(scope: Scope, value: Any) -> None:
        seen["resume"] = {name: scope[name] for name in fields}

    def process(scope: Scope) -> None:
        seen["process"] = {name: scope[name] for name in fields}
        scope.amount = scope.amount + Decimal("0.01")

    chart = (
        flow_chart("Receive", receive, "receive")
        .add_pausable_function("Approve", PausableHandler(ask, answer), "approve")
        .add_function("Process", process, "process")
        .build(state=state_type)
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert seen["defaults"] == {"tier": Tier.SILVER, "notes": [], "count": 7, "when": None}
    assert checkpoint["pause_data"] == {"question": "Charge 12.30?"}
    assert checkpoint["shared_state"]["amount"] == "12.30"
    assert checkpoint["shared_state"]["plain"] == {"json": [1, 2]}

    resumed = await resume_fresh(chart, checkpoint, True)
    assert resumed.status == "completed"
    expected = {
        "when": _WHEN,
        "day": date(2024, 5, 2),
        "amount": Decimal("12.30"),
        "ref": _REF,
        "tier": Tier.GOLD,
        "address": address_type(city="Oslo", zip="0150"),
        "notes": ["first"],
        "count": 7,
    }
    for phase in ("resume", "process"):
        got = seen[phase]
        assert got == expected
        for name, value in expected.items():
            assert type(got[name]) is type(value), (phase, name)
        assert str(got["amount"]) == "12.30"  # not 12.3
        assert got["when"].utcoffset() == timedelta(hours=2)
    state = resumed.get_state()
    assert state["amount"] == Decimal("12.31")
    assert type(state["address"]) is address_type
    assert resumed.get_snapshot()["shared_state"]["amount"] == "12.31"
    json.dumps(resumed.get_snapshot())  # the snapshot is JSON


@pytest.mark.parametrize(
    "state_type", [OrderStateDC, OrderStateModel], ids=["dataclass", "pydantic"]
)
async def test_typed_state_refuses_wrong_type_and_unknown_keys(state_type: Any) -> None:
    """With a state type, a declared field refuses a value of the wrong type and undeclared keys stay JSON-only."""

    def bad_amount(scope: Scope) -> None:
        scope.amount = "a lot"

    def bad_extra(scope: Scope) -> None:
        scope.extra = {1, 2}

    def unwritten(scope: Scope) -> None:
        scope.x = scope.undeclared

    for fn, key in ((bad_amount, "amount"), (bad_extra, "extra"), (unwritten, "undeclared")):
        chart = flow_chart("Write", fn, "write").build(state=state_type)
        with pytest.raises(StageError) as info:
            await FlowChartExecutor(chart).run()
        cause = info.value.__cause__
        assert isinstance(cause, StateError)
        assert (cause.key, cause.stage_id) == (key, "write")
    assert isinstance(info.value.__cause__, StateKeyError)


async def test_typed_state_input_is_checked_and_kept() -> None:
    """Run input is seeded through the state type: typed values come back typed after a resume."""
    seen: dict[str, Any] = {}

    def answer(scope: Scope, value: Any) -> None:
        seen["when"] = scope.when
        seen["amount"] = scope.amount
        seen["run_input"] = scope.run_input

    chart = flow_chart("Ask", PausableHandler(lambda s: "ok?", answer), "ask").build(
        state=OrderStateModel
    )
    executor = await run_fresh(chart, {"when": _WHEN, "amount": Decimal("5.10")})
    checkpoint = checkpoint_of(executor)
    assert checkpoint["input"] == {"when": _WHEN.isoformat(), "amount": "5.10"}
    await resume_fresh(chart, checkpoint, True)
    assert seen["when"] == _WHEN
    assert seen["amount"] == Decimal("5.10")
    assert str(seen["amount"]) == "5.10"
    assert seen["run_input"] == {"when": _WHEN.isoformat(), "amount": "5.10"}


_SECRET = "4000-1234-5678-9010"
_SECRET_DIGITS = "4000123456789010"


async def test_redacted_key_never_shown_but_still_used() -> None:
    """A redacted key never appears in narrative, tree or snapshot, yet the resumed run still sees its value."""
    charged: list[str] = []

    def receive(scope: Scope) -> None:
        scope.card_number = scope.card_number.replace("-", "")
        scope.card_kind = "visa"

    def ask(scope: Scope) -> Any:
        return {"question": "Charge this card?", "card_number": scope.card_number}

    def answer(scope: Scope, value: Any) -> None:
        charged.append(f"resume sees {scope.card_number}")
        scope.approved = value["approved"]

    def charge(scope: Scope) -> None:
        charged.append(f"charge {scope.card_number}")
        scope.receipt = "r-1"

    chart = (
        flow_chart("Receive", receive, "receive")
        .add_pausable_function("Approve", PausableHandler(ask, answer), "approve")
        .add_function("Charge", charge, "charge")
        .build(redact=["card_number"])
    )
    executor = await run_fresh(chart, {"card_number": _SECRET, "amount": 5})
    checkpoint = checkpoint_of(executor)

    def assert_hidden(executor: FlowChartExecutor) -> None:
        snapshot = executor.get_snapshot()
        for shown in (
            executor.get_narrative(),
            snapshot["execution_tree"],
            snapshot,
            executor.get_metrics(),
        ):
            text = json.dumps(shown)
            assert _SECRET not in text
            assert _SECRET_DIGITS not in text
        assert snapshot["input"] == {"card_number": "***", "amount": 5}
        assert snapshot["shared_state"]["card_number"] == "***"

    assert_hidden(executor)
    assert executor.get_snapshot()["pauses"][0]["data"] == {
        "question": "Charge this card?",
        "card_number": "***",
    }

    resumed = await resume_fresh(chart, checkpoint, {"approved": True})
    assert resumed.status == "completed"
    assert charged == [f"resume sees {_SECRET_DIGITS}", f"charge {_SECRET_DIGITS}"]
    assert resumed.get_state()["card_number"] == _SECRET_DIGITS
    assert_hidden(resumed)


# -- build-time errors -------------------------------------------------------------


def _noop(scope: Scope) -> None:
    return None


def _handler() -> PausableHandler:
    return PausableHandler(lambda s: None, lambda s, v: None)


def _open_decider() -> Any:
    builder = flow_chart("A", _noop, "a")
    builder.add_decider_function("D", lambda s: "x", "d").add_function_branch("x", "X", _noop)
    return builder


class _ExecuteOnly:
    def execute(self, scope: Scope) -> Any:
        return None


_BUILD_ERRORS: list[Any] = [
    pytest.param(
        lambda: flow_chart("A", _noop, "a").add_function("B", _noop, "a").build(),
        "a",
        id="duplicate-id",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_pausable_function("P", _handler(), "p")
            .add_function("P2", _noop, "p")
            .build()
        ),
        "p",
        id="duplicate-pausable-id",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_decider_function("D", lambda s: "a", "d")
            .add_function_branch("a", "A again", _noop)
            .end()
            .build()
        ),
        "a",
        id="branch-key-equals-earlier-stage",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_parallel("fork", "Fork")
            .add_function_branch("b", "B", _noop)
            .end()
            .add_function("B", _noop, "b")
            .build()
        ),
        "b",
        id="later-stage-equals-branch-key",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_decider_function("D", lambda s: "x", "d")
            .add_function_branch("x", "X", _noop)
            .end()
            .add_selector_function("S", lambda s: ["x"], "s")
            .add_pausable_branch("x", "X again", _handler())
            .end()
            .build()
        ),
        "x",
        id="branch-key-in-two-deciders",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_decider_function("D", lambda s: "x", "d")
            .add_function_branch("d", "Self", _noop)
        ),
        "d",
        id="branch-key-equals-decider",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_decider_function("D", lambda s: "x", "d")
            .add_function_branch("x", "X", _noop)
            .add_pausable_branch("x", "X2", _handler())
        ),
        "x",
        id="duplicate-branch-key",
    ),
    pytest.param(
        lambda: flow_chart("A", _noop, "a").loop_to("nowhere").build(),
        "nowhere",
        id="unknown-loop-target",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_decider_function("D", lambda s: "x", "d")
            .add_function_branch("x", "X", _noop)
            .end()
            .loop_to("x")
            .build()
        ),
        "x",
        id="loop-target-is-a-branch",
    ),
    pytest.param(
        lambda: flow_chart("A", _noop, "a").add_function("B", _noop, "b").loop_to("c").build(),
        "c",
        id="loop-target-later-or-unknown",
    ),
    pytest.param(
        lambda: flow_chart("A", _noop, "a").add_decider_function("D", lambda s: "x", "d").end(),
        "d",
        id="decider-without-branch",
    ),
    pytest.param(
        lambda: flow_chart("A", _noop, "a").add_selector_function("S", lambda s: [], "s").end(),
        "s",
        id="selector-without-branch",
    ),
    pytest.param(
        lambda: flow_chart("A", _noop, "a").add_parallel("p", "P").end(),
        "p",
        id="parallel-without-branch",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_decider_function("D", lambda s: "x", "d")
            .add_function_branch("x", "X", _noop)
            .set_default("zzz")
            .end()
        ),
        "d",
        id="default-names-no-branch",
    ),
    pytest.param(lambda: flow_chart("A", _noop, "a/b"), "a/b", id="slash-in-first-id"),
    pytest.param(
        lambda: flow_chart("A", _noop, "a").add_function("B", _noop, "x/y"), "x/y", id="slash-in-id"
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_decider_function("D", lambda s: "k/1", "d")
            .add_function_branch("k/1", "K", _noop)
        ),
        "k/1",
        id="slash-in-branch-key",
    ),
    pytest.param(
        lambda: flow_chart("A", _noop, "a").add_subflow(
            "s/f", flow_chart("X", _noop, "x").build(), "Sub"
        ),
        "s/f",
        id="slash-in-subflow-id",
    ),
    pytest.param(
        lambda: flow_chart("A", _noop, "a").add_pausable_function("P", _ExecuteOnly(), "p"),
        "p",
        id="handler-without-resume",
    ),
    pytest.param(
        lambda: (
            flow_chart("A", _noop, "a")
            .add_parallel("f", "F")
            .add_pausable_branch("p", "P", PausableHandler(_noop, None))  # type: ignore[arg-type]
        ),
        "p",
        id="branch-handler-without-resume",
    ),
    pytest.param(
        lambda: flow_chart("P", PausableHandler(_noop, None), "p"),  # type: ignore[arg-type]
        "p",
        id="first-stage-handler-without-resume",
    ),
    pytest.param(
        lambda: _open_decider().add_function("B", _noop, "b"),
        "d",
        id="stage-added-while-decider-open",
    ),
    pytest.param(
        lambda: _open_decider().add_pausable_function("P", _handler(), "p"),
        "d",
        id="pausable-added-while-decider-open",
    ),
    pytest.param(lambda: _open_decider().loop_to("a"), "d", id="loop-while-decider-open"),
    pytest.param(lambda: _open_decider().build(), "d", id="build-while-decider-open"),
]


@pytest.mark.parametrize(("build", "stage_id"), _BUILD_ERRORS)
def test_build_errors_name_the_stage(build: Any, stage_id: str) -> None:
    """Wiring mistakes raise ChartError at build time, naming the stage in the message and stage_id."""
    with pytest.raises(ChartError) as info:
        build()
    assert info.value.stage_id == stage_id
    assert repr(stage_id) in str(info.value)


def test_build_error_messages_explain() -> None:
    """Build errors say what to do: set_default lists the branches, an open decider asks for end()."""
    with pytest.raises(ChartError, match=r"'zzz' names no branch \(branches: x\)"):
        (
            flow_chart("A", _noop, "a")
            .add_decider_function("D", lambda s: "x", "d")
            .add_function_branch("x", "X", _noop)
            .set_default("zzz")
            .end()
        )
    with pytest.raises(ChartError, match=r"call \.end\(\)"):
        _open_decider().add_function("B", _noop, "b")
    with pytest.raises(
        ChartError, match=r"needs callable execute\(scope\) and resume\(scope, input\)"
    ):
        flow_chart("P", PausableHandler(_noop, None), "p")  # type: ignore[arg-type]
    with pytest.raises(
        ChartError, match=r"needs callable execute\(scope\) and resume\(scope, input\)"
    ):
        flow_chart("P", _ExecuteOnly(), "p")


# -- fingerprint and diagram -------------------------------------------------------

_CHART_SOURCE = """
from pausepoint import PausableHandler, flow_chart

def make(names=("Receive", "Approve", "Route", "Low", "High", "Sub", "Process"), fn=lambda s: None):
    sub = flow_chart("Inner", fn, "inner").add_pausable_function(
        "Check", PausableHandler(fn, lambda s, v: None), "check"
    ).build()
    return (
        flow_chart(names[0], fn, "receive")
        .add_pausable_function(names[1], PausableHandler(fn, lambda s, v: None), "approve")
        .add_decider_function(names[2], fn, "route")
        .add_function_branch("low", names[3], fn)
        .add_subflow_branch("high", sub, names[4])
        .set_default("low")
        .end()
        .add_subflow("sub", sub, names[5], input_mapper=lambda s: {}, output_mapper=lambda s: {})
        .add_function(names[6], fn, "process")
        .loop_to("approve")
        .build()
    )

chart = make()
"""


def _make(**kwargs: Any) -> Any:
    namespace: dict[str, Any] = {}
    exec(_CHART_SOURCE, namespace)
    return namespace["make"](**kwargs)


def test_fingerprint_equal_for_identical_charts() -> None:
    """Two separately built identical charts have the same fingerprint, whatever their names and functions."""
    first, second = _make(), _make()
    assert first is not second
    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint) == 64
    int(first.fingerprint, 16)
    renamed = _make(names=("R", "A", "D", "L", "H", "S", "P"), fn=lambda s: print("other"))
    assert renamed.fingerprint == first.fingerprint


def test_fingerprint_changes_with_structure() -> None:
    """Adding a stage, renaming an id, or adding a branch changes the fingerprint."""
    base = flow_chart("A", _noop, "a").add_function("B", _noop, "b")
    variants = {
        "base": flow_chart("A", _noop, "a").add_function("B", _noop, "b").build(),
        "added": flow_chart("A", _noop, "a")
        .add_function("B", _noop, "b")
        .add_function("C", _noop, "c")
        .build(),
        "renamed-id": flow_chart("A", _noop, "a").add_function("B", _noop, "b2").build(),
        "pausable": flow_chart("A", _noop, "a").add_pausable_function("B", _handler(), "b").build(),
        "decider": flow_chart("A", _noop, "a")
        .add_decider_function("B", _noop, "b")
        .add_function_branch("x", "X", _noop)
        .end()
        .build(),
        "decider+branch": flow_chart("A", _noop, "a")
        .add_decider_function("B", _noop, "b")
        .add_function_branch("x", "X", _noop)
        .add_function_branch("y", "Y", _noop)
        .end()
        .build(),
        "loop": flow_chart("A", _noop, "a").add_function("B", _noop, "b").loop_to("a").build(),
    }
    assert base.build().fingerprint == variants["base"].fingerprint
    fingerprints = [chart.fingerprint for chart in variants.values()]
    assert len(set(fingerprints)) == len(fingerprints)
    assert _make().fingerprint not in fingerprints


def test_fingerprint_stable_across_processes() -> None:
    """The fingerprint computed in another Python process (other hash seed) is the same."""
    script = _CHART_SOURCE + "\nprint(chart.fingerprint)\n"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == _make().fingerprint


def _every_kind() -> Any:
    """A chart with every node kind and structural option, and ids JSON must escape."""
    handler = PausableHandler(_noop, lambda s, v: None)
    inner = (
        flow_chart("Inner", _noop, "inner").add_pausable_function("Check", handler, "check").build()
    )
    return (
        flow_chart("Start", _noop, "start")
        .add_pausable_function('Ask "boss"', handler, "ask-\u00e9")
        .add_decider_function("Route", _noop, "route")
        .add_function_branch("zeta", "Z", _noop)
        .add_subflow_branch("alpha", inner, "A")
        .add_pausable_branch("Mid", "M", handler)
        .set_default("zeta")
        .end()
        .add_selector_function("Pick", _noop, "pick")
        .add_function_branch("b", "B", _noop)
        .add_function_branch("a", "A", _noop)
        .set_default("a")
        .end()
        .add_parallel("fork", "Fork")
        .add_function_branch("left", "L", _noop)
        .add_subflow_branch("right", inner, "R")
        .end()
        .add_subflow("shared", inner, "Shared")
        .add_subflow("own", inner, "Own", input_mapper=lambda s: {})
        .add_for_each("lines", "items", inner, "Lines", key="sku")
        .add_for_each("rows", "items", _noop, "Rows")
        .loop_to("ask-\u00e9")
        .add_function("End", _noop, 'say"hi\U0001f600')
        .build()
    )


def test_fingerprints_are_pinned() -> None:
    """Fingerprints never change between releases: checkpoints stored by earlier ones must match."""
    refund = (
        flow_chart("R", _noop, "receive")
        .add_pausable_function("A", _handler(), "approve")
        .add_function("P", _noop, "process")
        .add_function("N", _noop, "notify")
        .build()
    )
    # the refund chart of tests/fixtures/release-0.1.*
    assert refund.fingerprint == "5a4e344e16c59221a77af16c578f1979730cdf6e2ffe82415850f6422bccaee3"
    chart = _every_kind()
    assert chart.fingerprint == "45548f0e21cb6ed0d8740fc703faf5ea7f5b0df5abb17b323dcba5b15fb74834"
    # what the fingerprint is defined as: SHA-256 of the canonical JSON of the structure
    expected = hashlib.sha256(canonical_json(structure_of(chart.steps))).hexdigest()
    assert chart.fingerprint == expected


def test_to_mermaid_names_every_stage() -> None:
    """to_mermaid() is a Mermaid flowchart holding every stage name, subflow and branch stages included."""
    chart = _make()
    diagram = chart.to_mermaid()
    assert diagram.startswith("flowchart TD")
    for name in ("Receive", "Approve", "Route", "Low", "High", "Sub", "Process", "Inner", "Check"):
        assert name in diagram
    highlighted = chart.to_mermaid(highlight={"receive", "approve"})
    assert "class " in highlighted
    assert "taken" in highlighted


# -- break_loop -------------------------------------------------------------------


async def _ignore_progress(checkpoint: Any) -> None:
    return None


# with on_progress set the executor walks sequences through its progress-tracking path
_TRACKING = pytest.mark.parametrize(
    "on_progress", [None, _ignore_progress], ids=["plain", "tracked"]
)


@_TRACKING
async def test_break_loop_outside_a_loop_does_not_break_a_later_loop(on_progress: Any) -> None:
    """break_loop() called where no loop encloses the stage does not end a loop that comes later."""
    calls: list[str] = []

    def early(scope: Scope) -> None:
        calls.append("early")
        scope.break_loop()
        scope.n = 0

    def count(scope: Scope) -> None:
        calls.append("count")
        scope.n = scope.n + 1

    def check(scope: Scope) -> None:
        calls.append("check")
        if scope.n >= 3:
            scope.break_loop()

    chart = (
        flow_chart("Early", early, "early")
        .add_function("Count", count, "count")
        .add_function("Check", check, "check")
        .loop_to("count")
        .add_function("After", lambda s: calls.append("after"), "after")
        .build()
    )
    executor = FlowChartExecutor(chart, on_progress=on_progress)
    await executor.run()
    assert executor.status == "completed"
    assert calls == ["early", *["count", "check"] * 3, "after"]
    assert executor.get_state() == {"n": 3}


@_TRACKING
async def test_break_loop_inside_subflow_without_loop_breaks_the_parent_loop(
    on_progress: Any,
) -> None:
    """break_loop() in a subflow with no loop of its own ends the parent's loop once the subflow finishes."""
    calls: list[str] = []

    def stop(scope: Scope) -> None:
        calls.append("stop")
        scope.rounds = scope.get("rounds", 0) + 1
        if scope.rounds == 2:
            scope.break_loop()

    inner = (
        flow_chart("Stop", stop, "stop")
        .add_function("Rest", lambda s: calls.append("rest"), "rest")
        .build()
    )
    chart = (
        flow_chart("Head", lambda s: calls.append("head"), "head")
        .add_subflow("sub", inner, "Sub")
        .add_function("Tail", lambda s: calls.append("tail"), "tail")
        .loop_to("head")
        .add_function("After", lambda s: calls.append("after"), "after")
        .build()
    )
    executor = FlowChartExecutor(chart, on_progress=on_progress)
    await executor.run()
    assert executor.status == "completed"
    assert calls == ["head", "stop", "rest", "tail", "head", "stop", "rest", "after"]


async def test_narrate_adds_sentences_in_both_phases_and_survives_a_fresh_executor() -> None:
    """scope.narrate(text) shows as 'Stage: text' in execute and resume, across processes' JSON."""
    import json as _json

    def first(scope: Any) -> None:
        scope.x = 1
        scope.narrate("looked at the order")

    def ask(scope: Any) -> dict[str, str]:
        scope.narrate("needs a manager")
        return {"question": "ok?"}

    def answered(scope: Any, answer: Any) -> None:
        scope.narrate(f"manager said {answer!r}")

    chart = (
        flow_chart("First", first, "first")
        .add_pausable_function("Ask", PausableHandler(ask, answered), "ask")
        .build()
    )
    executor = FlowChartExecutor(chart)
    await executor.run()
    checkpoint = _json.loads(_json.dumps(executor.get_checkpoint()))
    fresh = FlowChartExecutor(chart)
    await fresh.resume(checkpoint, "yes")
    assert fresh.get_narrative() == [
        "First wrote x.",
        "First: looked at the order",
        "Ask: needs a manager",
        'Ask paused: "ok?"',
        "Ask resumed by input {}.",
        "Ask: manager said 'yes'",
    ]


def test_run_sync_reuses_one_loop_per_thread_and_works_from_any_thread() -> None:
    """Each thread drives its runs on one loop of its own, call after call."""
    import asyncio
    import threading

    loops: list[Any] = []

    async def where(scope: Any) -> None:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)

    chart = flow_chart("Where", where, "where").build()

    def twice() -> None:
        for _ in range(2):
            assert FlowChartExecutor(chart).run_sync() == "completed"

    twice()
    thread = threading.Thread(target=twice)
    thread.start()
    thread.join(timeout=30)
    assert len(loops) == 4
    assert loops[0] is loops[1]  # reused in the main thread
    assert loops[2] is loops[3]  # and in the other one
    assert loops[0] is not loops[2]
    assert loops[2].is_closed()  # closed when its thread ended
