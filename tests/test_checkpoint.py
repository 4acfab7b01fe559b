"""Bad checkpoints and bad answers: a clear, specific error, and nothing is lost.

Every test hands the executor something wrong, checks the error's type and that
its message names the field or stage to blame, then resumes the original
checkpoint to completion (with the same executor) to show that the failed
attempt changed neither the checkpoint nor the executor's ability to go on.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from pausepoint import (
    ChartMismatchError,
    CheckpointError,
    CheckpointFinishedError,
    CheckpointFormatError,
    CheckpointSignatureError,
    CheckpointVersionError,
    FlowChart,
    FlowChartExecutor,
    PausableHandler,
    PausepointError,
    ResumeInputError,
    ResumeTargetError,
    flow_chart,
)

# -- the refund chart ---------------------------------------------------------


class Approval(BaseModel):
    """What a manager answers."""

    approved: bool
    approver: str


def receive(scope: Any) -> None:
    scope.received = True


def classify(scope: Any) -> dict[str, Any] | None:
    scope.risk_level = "high" if scope.amount > 500 else "low"
    if scope.amount > 100:
        return {"question": f"Approve ${scope.amount} refund?", "risk_level": scope.risk_level}
    return None


def decide_refund(scope: Any, answer: Any) -> None:
    scope.answer_type = type(answer).__name__
    approval = answer if isinstance(answer, Approval) else Approval.model_validate(answer)
    scope.approved = approval.approved
    scope.approver = approval.approver


def process(scope: Any) -> None:
    scope.refunded = scope.amount if scope.get("approved", True) else 0


def refund_chart(*, input_schema: type[Any] | None = Approval) -> FlowChart:
    return (
        flow_chart("ReceiveRequest", receive, "receive")
        .add_pausable_function(
            "ManagerApproval",
            PausableHandler(execute=classify, resume=decide_refund),
            "approve",
            "Pause for manager review",
            input_schema=input_schema,
        )
        .add_function("ProcessRefund", process, "process")
        .build()
    )


CHART = refund_chart()
ANSWER = {"approved": True, "approver": "Kim"}
INPUT = {"order_id": "ORD-1", "amount": 299}

REQUIRED_FIELDS = (
    "format_version",
    "chart_name",
    "chart_fingerprint",
    "run_id",
    "status",
    "input",
    "shared_state",
    "paused_stage_id",
    "pause_data",
    "pauses",
    "execution_tree",
    "continuation",
    "started_at",
    "paused_at",
)


async def paused_checkpoint(
    chart: FlowChart = CHART, *, signing_key: bytes | None = None, **input: Any
) -> dict[str, Any]:
    executor = FlowChartExecutor(chart, signing_key=signing_key)
    assert await executor.run(input={**INPUT, **input}) == "paused"
    checkpoint = executor.get_checkpoint()
    assert checkpoint is not None
    return dict(checkpoint)


async def assert_resumes(
    executor: FlowChartExecutor, checkpoint: dict[str, Any], pristine: dict[str, Any]
) -> None:
    """The checkpoint is unchanged and still resumes to a completed refund."""
    assert checkpoint == pristine
    assert await executor.resume(checkpoint, ANSWER) == "completed"
    state = executor.get_snapshot()["shared_state"]
    assert state["approved"] is True
    assert state["approver"] == "Kim"
    assert state["refunded"] == 299
    assert checkpoint == pristine


async def assert_refused(
    bad: Any,
    error: type[PausepointError],
    match: str,
    *,
    signing_key: bytes | None = None,
    original: dict[str, Any] | None = None,
) -> PausepointError:
    """Resuming ``bad`` raises ``error``; ``bad`` is untouched; the original still resumes."""
    executor = FlowChartExecutor(CHART, signing_key=signing_key)
    if original is None:
        original = await paused_checkpoint(signing_key=signing_key)
    pristine = copy.deepcopy(original)
    bad_before = copy.deepcopy(bad)
    with pytest.raises(error, match=match) as caught:
        await executor.resume(bad, ANSWER)
    assert bad == bad_before
    assert executor.status == "idle"
    assert executor.get_checkpoint() is None
    await assert_resumes(executor, original, pristine)
    return caught.value


def mutated(checkpoint: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    bad = copy.deepcopy(checkpoint)
    change(bad)
    return bad


# -- the checkpoint is a dict ----------------------------------------------------


async def test_required_fields_are_the_checkpoint_fields() -> None:
    """The list the tests below walk is exactly what an unsigned checkpoint holds."""
    checkpoint = await paused_checkpoint()
    assert set(checkpoint) == set(REQUIRED_FIELDS)
    assert json.loads(json.dumps(checkpoint)) == checkpoint


@pytest.mark.parametrize("bad", [[], ["format_version", 1], "checkpoint", None, 42, b"{}"])
async def test_not_a_dict_is_refused(bad: Any) -> None:
    """Anything but a dict is a CheckpointFormatError naming what it got."""
    await assert_refused(bad, CheckpointFormatError, f"is a dict.*not a {type(bad).__name__}")


async def test_a_json_string_is_refused_with_a_hint() -> None:
    """Passing the JSON text instead of the parsed dict says to json.loads it."""
    checkpoint = await paused_checkpoint()
    await assert_refused(
        json.dumps(checkpoint), CheckpointFormatError, "json.loads", original=checkpoint
    )


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
async def test_missing_field_is_named(field: str) -> None:
    """Each required field, when missing, is a CheckpointFormatError whose .field names it."""
    checkpoint = await paused_checkpoint()
    bad = mutated(checkpoint, lambda cp: cp.pop(field))
    error = await assert_refused(bad, CheckpointFormatError, re.escape(field), original=checkpoint)
    assert isinstance(error, CheckpointFormatError)
    assert error.field == field


WRONG_TYPES: list[tuple[str, Any]] = [
    ("format_version", "1"),
    ("format_version", 1.0),
    ("format_version", True),
    ("format_version", None),
    ("chart_name", 5),
    ("chart_name", None),
    ("chart_fingerprint", 123),
    ("chart_fingerprint", ["abc"]),
    ("run_id", 7),
    ("run_id", {"id": "x"}),
    ("status", 1),
    ("status", "running"),
    ("status", ["paused"]),
    ("input", ["order_id"]),
    ("input", "ORD-1"),
    ("shared_state", []),
    ("shared_state", "amount=299"),
    ("shared_state", {"amount": (2, 9, 9)}),
    ("shared_state", {"amount": float("nan")}),
    ("shared_state", {1: "one"}),
    ("paused_stage_id", 3),
    ("paused_stage_id", None),
    ("pause_data", (1, 2)),
    ("pause_data", {"when": datetime(2024, 1, 1)}),
    ("pause_data", float("inf")),
    ("pauses", {}),
    ("pauses", "approve"),
    ("pauses", []),
    ("pauses", [5]),
    ("pauses", [{"stage_id": "approve", "data": {}, "paused_at": 1.0}]),
    ("pauses", [{"pause_id": "p", "stage_id": 1, "data": {}, "paused_at": 1.0}]),
    ("pauses", [{"pause_id": "p", "stage_id": "approve", "paused_at": 1.0}]),
    ("pauses", [{"pause_id": "p", "stage_id": "approve", "data": {}, "paused_at": "now"}]),
    ("execution_tree", {}),
    ("execution_tree", [5]),
    ("execution_tree", [{"id": 1, "name": "x", "kind": "stage", "status": "done"}]),
    ("execution_tree", [{"id": "x", "name": "x", "kind": "thing", "status": "done"}]),
    ("continuation", []),
    ("continuation", {}),
    ("continuation", {"i": "1", "node": {}}),
    ("started_at", "yesterday"),
    ("started_at", True),
    ("started_at", None),
    ("paused_at", [1.0]),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
async def test_field_of_wrong_type_is_named(field: str, value: Any) -> None:
    """A field holding the wrong kind of value is a CheckpointFormatError naming that field."""
    checkpoint = await paused_checkpoint()
    bad = mutated(checkpoint, lambda cp: cp.__setitem__(field, value))
    error = await assert_refused(bad, CheckpointFormatError, re.escape(field), original=checkpoint)
    assert isinstance(error, CheckpointError)
    assert error.field is not None
    assert error.field.startswith(field)


# -- the checkpoint must fit the chart -----------------------------------------


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(cp: dict[str, Any]) -> None:
        target: Any = cp
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _unknown_stage(cp: dict[str, Any]) -> None:
    cp["paused_stage_id"] = "ghost"
    cp["pauses"][0]["stage_id"] = "ghost"


def _two_pauses(cp: dict[str, Any]) -> None:
    cp["pauses"].append({**cp["pauses"][0], "stage_id": "process"})


@pytest.mark.parametrize(
    ("change", "field", "match"),
    [
        (_set(("paused_stage_id",), "ghost"), "paused_stage_id", "paused_stage_id.*'ghost'"),
        (_unknown_stage, "pauses", "pauses.*'ghost'"),
        (_two_pauses, "pauses", "pauses.*'process'"),
        (_set(("continuation", "node", "stage_id"), "ghost"), "continuation.node", "'ghost'"),
        (_set(("continuation", "i"), 7), "continuation.i", r"continuation\.i.*\b7\b"),
        (_set(("continuation", "i"), -1), "continuation.i", r"continuation\.i"),
        (_set(("continuation", "i"), 0), "continuation.node.t", "stage 'receive'"),
        (_set(("continuation", "i"), 2), "continuation.node.t", "stage 'process'"),
        (_set(("continuation", "node", "t"), 99), "continuation.node.t", "stage 'approve'"),
        (_set(("continuation", "node", "t"), 0), "continuation.node.t", "stage 'approve'"),
        (_set(("continuation", "node", "t"), -1), "continuation.node.t", "stage 'approve'"),
        (_set(("continuation", "node", "t"), "1"), "continuation.node.t", "stage 'approve'"),
        (_set(("continuation", "node"), None), "continuation.node", r"continuation\.node"),
        (_set(("continuation", "loops"), {"0": 1}), "continuation.loops", r"loops"),
        (_set(("execution_tree", 1, "id"), "ghost"), "continuation.node.t", "stage 'approve'"),
        (_set(("execution_tree", 1, "status"), "asleep"), "execution_tree[1]", "'asleep'"),
        (_set(("execution_tree", 1, "pause"), {"at": 1}), "execution_tree[1].pause", "pause"),
        (_set(("execution_tree", 0, "writes"), [1]), "execution_tree[0].writes", "writes"),
    ],
)
async def test_checkpoint_that_does_not_fit_the_chart(
    change: Callable[[dict[str, Any]], None], field: str, match: str
) -> None:
    """Unknown stage ids, continuations pointing nowhere and bad tree indexes name the field."""
    checkpoint = await paused_checkpoint()
    bad = mutated(checkpoint, change)
    error = await assert_refused(bad, CheckpointFormatError, match, original=checkpoint)
    assert isinstance(error, CheckpointFormatError)
    assert error.field == field


async def test_pause_data_must_mirror_the_first_pause() -> None:
    """pause_data that differs from pauses[0].data is refused, like paused_stage_id is."""
    checkpoint = await paused_checkpoint()
    bad = mutated(checkpoint, _set(("pause_data", "question"), "Approve $1 refund?"))
    error = await assert_refused(bad, CheckpointFormatError, "pause_data", original=checkpoint)
    assert isinstance(error, CheckpointFormatError)
    assert error.field == "pause_data"


@pytest.mark.parametrize("version", [2, 99, 0, -1])
async def test_unreadable_format_version(version: int) -> None:
    """A format_version this pausepoint cannot read is a CheckpointVersionError saying which."""
    checkpoint = await paused_checkpoint()
    bad = mutated(checkpoint, _set(("format_version",), version))
    error = await assert_refused(
        bad, CheckpointVersionError, rf"format_version {version}\b", original=checkpoint
    )
    assert isinstance(error, CheckpointVersionError)
    assert (error.found, error.supported, error.field) == (version, 1, "format_version")


async def test_checkpoint_of_another_chart() -> None:
    """A checkpoint made by another chart is a ChartMismatchError naming both charts."""
    other = (
        flow_chart("OtherChart", receive, "receive")
        .add_pausable_function(
            "ManagerApproval", PausableHandler(execute=classify, resume=decide_refund), "approve"
        )
        .build()
    )
    assert other.fingerprint != CHART.fingerprint
    bad = await paused_checkpoint(other)
    error = await assert_refused(bad, ChartMismatchError, "another chart.*'OtherChart'")
    assert isinstance(error, ChartMismatchError)
    assert (error.expected, error.found) == (CHART.fingerprint, other.fingerprint)
    assert error.field == "chart_fingerprint"


async def test_changed_fingerprint_is_another_chart() -> None:
    """An edited fingerprint is refused as belonging to another chart."""
    checkpoint = await paused_checkpoint()
    bad = mutated(checkpoint, _set(("chart_fingerprint",), "0" * 64))
    await assert_refused(bad, ChartMismatchError, "fingerprint 000000000000", original=checkpoint)


# -- a finished run has nothing to resume -------------------------------------


async def test_snapshot_of_a_completed_run() -> None:
    """Passing the snapshot of a run that completed is a CheckpointFinishedError."""
    done = FlowChartExecutor(CHART)
    assert await done.run(input={**INPUT, "amount": 50}) == "completed"
    assert done.get_checkpoint() is None
    await assert_refused(done.get_snapshot(), CheckpointFinishedError, "already completed")


async def test_snapshot_of_a_resumed_and_completed_run() -> None:
    """The snapshot after the resume finished is refused too, and the old checkpoint is not."""
    checkpoint = await paused_checkpoint()
    done = FlowChartExecutor(CHART)
    assert await done.resume(copy.deepcopy(checkpoint), ANSWER) == "completed"
    snapshot = done.get_snapshot()
    error = await assert_refused(
        snapshot, CheckpointFinishedError, rf"{snapshot['run_id']}.*completed", original=checkpoint
    )
    assert isinstance(error, CheckpointFinishedError)
    assert error.field == "status"


@pytest.mark.parametrize("status", ["completed", "failed"])
async def test_checkpoint_marked_finished(status: str) -> None:
    """A checkpoint whose status says the run finished is a CheckpointFinishedError."""
    checkpoint = await paused_checkpoint()
    bad = mutated(checkpoint, _set(("status",), status))
    await assert_refused(bad, CheckpointFinishedError, f"already {status}", original=checkpoint)


# -- signing -------------------------------------------------------------------

KEY = b"k"


async def test_signed_checkpoint_resumes() -> None:
    """A signing executor signs its checkpoint and resumes it (and its own next one)."""
    checkpoint = await paused_checkpoint(signing_key=KEY)
    assert isinstance(checkpoint.get("signature"), str)
    await assert_resumes(
        FlowChartExecutor(CHART, signing_key=KEY), checkpoint, copy.deepcopy(checkpoint)
    )


def _drop_signature(cp: dict[str, Any]) -> None:
    del cp["signature"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_set(("shared_state", "amount"), 2999), "changed after signing"),
        (_set(("shared_state", "risk_level"), "high"), "changed after signing"),
        (_set(("pause_data", "question"), "Approve $1 refund?"), "changed after signing"),
        (_set(("pauses", 0, "data", "risk_level"), "none"), "changed after signing"),
        (_set(("input", "amount"), 1), "changed after signing"),
        (_set(("signature",), "0" * 64), "changed after signing"),
        (_set(("signature",), 12345), "not signed"),
        (_drop_signature, "not signed"),
    ],
)
async def test_tampered_signed_checkpoint(
    change: Callable[[dict[str, Any]], None], match: str
) -> None:
    """A signed checkpoint changed in any way, or unsigned, is a CheckpointSignatureError."""
    checkpoint = await paused_checkpoint(signing_key=KEY)
    bad = mutated(checkpoint, change)
    error = await assert_refused(
        bad, CheckpointSignatureError, match, signing_key=KEY, original=checkpoint
    )
    assert isinstance(error, CheckpointSignatureError)
    assert error.field == "signature"


async def test_checkpoint_signed_with_another_key() -> None:
    """A checkpoint signed with another key is a CheckpointSignatureError."""
    checkpoint = await paused_checkpoint(signing_key=KEY)
    other = await paused_checkpoint(signing_key=b"other key")
    await assert_refused(
        other, CheckpointSignatureError, "another key", signing_key=KEY, original=checkpoint
    )


async def test_unsigned_checkpoint_to_signing_executor() -> None:
    """An executor with a key refuses checkpoints made without one."""
    checkpoint = await paused_checkpoint(signing_key=KEY)
    unsigned = await paused_checkpoint()
    await assert_refused(
        unsigned, CheckpointSignatureError, "not signed", signing_key=KEY, original=checkpoint
    )


async def test_executor_with_other_key_refuses() -> None:
    """The same checkpoint, resumed by an executor with another key, is refused; ours still works."""
    checkpoint = await paused_checkpoint(signing_key=KEY)
    pristine = copy.deepcopy(checkpoint)
    with pytest.raises(CheckpointSignatureError, match="signature"):
        await FlowChartExecutor(CHART, signing_key=b"K").resume(checkpoint, ANSWER)
    with pytest.raises(CheckpointSignatureError, match="signature"):
        await FlowChartExecutor(CHART, signing_key="other").resume(checkpoint, ANSWER)
    await assert_resumes(FlowChartExecutor(CHART, signing_key=KEY.decode()), checkpoint, pristine)


# -- typed state ---------------------------------------------------------------


class RefundState(BaseModel):
    order_id: str = ""
    amount: Decimal = Decimal("0")
    requested_at: datetime = datetime(2000, 1, 1)
    refunded: Decimal = Decimal("0")


@dataclasses.dataclass
class RefundRecord:
    order_id: str = ""
    amount: Decimal = Decimal("0")
    requested_at: datetime = datetime(2000, 1, 1)
    refunded: Decimal = Decimal("0")


def stamp(scope: Any) -> None:
    scope.requested_at = datetime(2024, 5, 17, 9, 30)
    scope.amount = Decimal("299.10")


@pytest.mark.parametrize("state_type", [RefundState, RefundRecord])
@pytest.mark.parametrize(
    ("key", "value"),
    [("requested_at", "not a date"), ("amount", "lots"), ("requested_at", [2024, 5, 17])],
)
async def test_typed_state_value_that_fails_its_type(
    state_type: type[Any], key: str, value: Any
) -> None:
    """A tampered state value that fails the declared type is a CheckpointFormatError naming it."""
    chart = (
        flow_chart("TypedRefund", stamp, "stamp")
        .add_pausable_function(
            "ManagerApproval", PausableHandler(execute=classify, resume=decide_refund), "approve"
        )
        .add_function("ProcessRefund", process, "process")
        .build(state=state_type)
    )
    checkpoint = await paused_checkpoint(chart)
    assert checkpoint["shared_state"]["requested_at"] == "2024-05-17T09:30:00"
    pristine = copy.deepcopy(checkpoint)
    bad = mutated(checkpoint, _set(("shared_state", key), value))
    executor = FlowChartExecutor(chart)
    with pytest.raises(CheckpointFormatError, match=rf"shared_state.*{key}") as caught:
        await executor.resume(bad, ANSWER)
    assert caught.value.field == "shared_state"
    assert checkpoint == pristine
    assert await executor.resume(checkpoint, ANSWER) == "completed"
    state = executor.get_state()
    assert state["requested_at"] == datetime(2024, 5, 17, 9, 30)
    assert state["refunded"] == Decimal("299.10")
    assert type(state["refunded"]) is Decimal


# -- values JSON cannot hold, and composite stages ------------------------------


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("execution_tree", 0, "extra"), (1, 2), "execution_tree"),
        (("execution_tree", 1, "reads"), ("amount",), "execution_tree"),
        (("continuation", "node", "brk"), (1,), "continuation"),
        (("continuation", "extra"), {7: "seven"}, "continuation"),
        (("pauses", 0, "extra"), datetime(2024, 1, 1), "pauses"),
        (("input", "when"), datetime(2024, 1, 1), "input"),
        (("shared_state", "amount"), Decimal("299"), "shared_state"),
    ],
)
async def test_values_json_cannot_hold_are_refused(
    path: tuple[Any, ...], value: Any, field: str
) -> None:
    """A checkpoint dict holding a tuple, datetime or non-str key anywhere is a CheckpointFormatError.

    Such a dict cannot come from json.loads, but may come from another loader;
    the executor is left idle, not stuck running.
    """
    checkpoint = await paused_checkpoint()
    bad = mutated(checkpoint, _set(path, value))
    error = await assert_refused(bad, CheckpointFormatError, re.escape(field), original=checkpoint)
    assert isinstance(error, CheckpointFormatError)
    assert error.field is not None
    assert error.field.startswith(field)


def route(scope: Any) -> str:
    return "manager" if scope.amount > 100 else "auto"


def tick(scope: Any) -> None:
    scope.rounds = scope.get("rounds", 0) + 1


def check_round(scope: Any, answer: Any) -> None:
    if scope.rounds >= 2:
        scope.break_loop()


DECIDER_CHART = (
    flow_chart("Receive", receive, "receive")
    .add_decider_function("Route", route, "route")
    .add_function_branch("auto", "Auto", process)
    .add_pausable_branch(
        "manager", "Manager", PausableHandler(execute=classify, resume=decide_refund)
    )
    .end()
    .build()
)
LOOP_CHART = (
    flow_chart("Tick", tick, "tick")
    .add_pausable_function(
        "Check",
        PausableHandler(execute=lambda scope: {"round": scope.rounds}, resume=check_round),
        "check",
    )
    .loop_to("tick", max_iterations=3)
    .build()
)


@pytest.mark.parametrize("branch", [["manager"], {"manager": 1}, None, 1, "ghost", "auto"])
async def test_decider_branch_that_is_not_a_branch(branch: Any) -> None:
    """A decider frame naming no pausable branch (even a list, unhashable) names the field."""
    checkpoint = await paused_checkpoint(DECIDER_CHART)
    assert checkpoint["continuation"]["node"]["branch"] == "manager"
    pristine = copy.deepcopy(checkpoint)
    bad = mutated(checkpoint, _set(("continuation", "node", "branch"), branch))
    executor = FlowChartExecutor(DECIDER_CHART)
    with pytest.raises(CheckpointFormatError, match=r"continuation\.node") as caught:
        await executor.resume(bad, ANSWER)
    assert caught.value.field is not None
    assert caught.value.field.startswith("continuation.node")
    assert checkpoint == pristine
    assert await executor.resume(checkpoint, ANSWER) == "completed"
    assert executor.get_state()["approved"] is True


async def loop_checkpoint_in_round_two() -> dict[str, Any]:
    executor = FlowChartExecutor(LOOP_CHART)
    assert await executor.run() == "paused"
    first = executor.get_checkpoint()
    assert first is not None
    assert await executor.resume(first, {}) == "paused"
    checkpoint = executor.get_checkpoint()
    assert checkpoint is not None
    assert checkpoint["continuation"]["loops"] == {"2": 1}
    return dict(checkpoint)


@pytest.mark.parametrize(
    "loops",
    [
        {"\u00b2": 1},
        {"\u0662": 1},
        {"2": -1},
        {"2": "1"},
        {"2": True},
        {"0": 1},
        {"9": 1},
        [2, 1],
        {2: 1},
    ],
)
async def test_loop_counts_that_name_no_loop(loops: Any) -> None:
    """Loop counts keyed by anything but the index of a loop_to (as ASCII digits) name the field."""
    checkpoint = await loop_checkpoint_in_round_two()
    pristine = copy.deepcopy(checkpoint)
    bad = mutated(checkpoint, _set(("continuation", "loops"), loops))
    executor = FlowChartExecutor(LOOP_CHART)
    with pytest.raises(CheckpointFormatError, match=r"continuation\.loops") as caught:
        await executor.resume(bad, {})
    assert caught.value.field in ("continuation", "continuation.loops")
    assert checkpoint == pristine
    assert await executor.resume(checkpoint, {}) == "completed"
    assert executor.get_state()["rounds"] == 2


# -- the answer ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "locs"),
    [
        ({"approved": "perhaps", "approver": "Kim"}, [["approved"]]),
        ({"approved": True}, [["approver"]]),
        ({}, [["approved"], ["approver"]]),
        ("yes", [[]]),
        (None, [[]]),
    ],
)
async def test_answer_failing_input_schema(answer: Any, locs: list[list[Any]]) -> None:
    """An answer that fails the stage's input_schema is a ResumeInputError with pydantic's details."""
    checkpoint = await paused_checkpoint()
    pristine = copy.deepcopy(checkpoint)
    executor = FlowChartExecutor(CHART)
    with pytest.raises(ResumeInputError, match=r"stage 'approve'.*Approval") as caught:
        await executor.resume(checkpoint, answer)
    error = caught.value
    assert error.stage_id == "approve"
    assert [detail["loc"] for detail in error.errors] == locs
    assert all(detail["msg"] and detail["type"] for detail in error.errors)
    assert json.loads(json.dumps(error.errors)) == error.errors
    for loc in locs:
        if loc:
            assert re.search(re.escape(loc[0]), str(error))
    assert executor.status == "idle"
    await assert_resumes(executor, checkpoint, pristine)


async def test_resume_handler_receives_the_validated_model() -> None:
    """With an input_schema, resume gets the model instance (coerced), not the raw dict."""
    checkpoint = await paused_checkpoint()
    executor = FlowChartExecutor(CHART)
    assert await executor.resume(checkpoint, {"approved": "true", "approver": "Kim"}) == "completed"
    state = executor.get_state()
    assert state["answer_type"] == "Approval"
    assert state["approved"] is True
    tree = executor.get_snapshot()["execution_tree"]
    assert tree[1]["resume"]["input_keys"] == ["approved", "approver"]


async def test_input_schema_adapter_is_made_once_per_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Resumes of charts built anew reuse one adapter per schema; an unhashable schema still validates."""
    from typing import Annotated

    import pydantic

    from pausepoint.engine.contracts import schema_adapter

    made: list[Any] = []
    real = pydantic.TypeAdapter

    def counting(schema: Any) -> Any:
        made.append(schema)
        return real(schema)

    monkeypatch.setattr(pydantic, "TypeAdapter", counting)

    class Fresh(Approval):
        """A schema no earlier test made an adapter for."""

    for _ in range(3):
        chart = refund_chart(input_schema=Fresh)
        checkpoint = await paused_checkpoint(chart)
        executor = FlowChartExecutor(chart)
        assert await executor.resume(checkpoint, dict(ANSWER)) == "completed"
    assert made == [Fresh]
    assert chart.find_stage("approve").input_json_schema() == real(Fresh).json_schema()  # type: ignore[union-attr]
    assert made == [Fresh]

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]  # as a FieldInfo-like annotation may be

    unhashable: Any = Annotated[int, Unhashable()]
    assert schema_adapter(unhashable).validate_python("3") == 3
    assert schema_adapter(unhashable).validate_python("4") == 4


async def test_without_schema_resume_gets_the_raw_answer() -> None:
    """Without an input_schema the answer reaches resume as given."""
    chart = refund_chart(input_schema=None)
    checkpoint = await paused_checkpoint(chart)
    executor = FlowChartExecutor(chart)
    assert await executor.resume(checkpoint, dict(ANSWER)) == "completed"
    assert executor.get_state()["answer_type"] == "dict"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stage_id": "process"}, "'process' is not paused.*'approve'"),
        ({"stage_id": "ghost"}, "'ghost' is not paused"),
        ({"answers": {"ghost": ANSWER}}, "'ghost', which is not pending"),
        ({"answers": {}}, "answers must map"),
    ],
)
async def test_answer_for_a_stage_that_is_not_paused(kwargs: dict[str, Any], match: str) -> None:
    """Naming a stage that is not paused is a ResumeTargetError listing the pending ones."""
    checkpoint = await paused_checkpoint()
    pristine = copy.deepcopy(checkpoint)
    executor = FlowChartExecutor(CHART)
    args = () if "answers" in kwargs else (ANSWER,)
    with pytest.raises(ResumeTargetError, match=match) as caught:
        await executor.resume(checkpoint, *args, **kwargs)
    assert caught.value.pending == ("approve",)
    await assert_resumes(executor, checkpoint, pristine)


async def test_resume_without_an_answer() -> None:
    """Leaving out the answer is a ResumeTargetError naming the pending stage."""
    checkpoint = await paused_checkpoint()
    pristine = copy.deepcopy(checkpoint)
    executor = FlowChartExecutor(CHART)
    with pytest.raises(ResumeTargetError, match=r"needs an input.*'approve'"):
        await executor.resume(checkpoint)
    await assert_resumes(executor, checkpoint, pristine)


# -- the family ----------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        CheckpointError,
        CheckpointFormatError,
        CheckpointVersionError,
        CheckpointSignatureError,
        CheckpointFinishedError,
        ChartMismatchError,
        ResumeInputError,
        ResumeTargetError,
    ],
)
def test_errors_are_pausepoint_errors(error: type[Exception]) -> None:
    """One `except PausepointError` catches every refusal; none is a bare builtin lookup error."""
    assert issubclass(error, PausepointError)
    assert not issubclass(error, KeyError | TypeError | AttributeError)
