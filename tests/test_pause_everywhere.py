"""A pause works everywhere: every building block, resumed from JSON in a fresh executor.

Each case runs a chart until it pauses, sends the checkpoint through JSON text,
resumes it in a new ``FlowChartExecutor`` and checks the final state, that no
stage that ran before the pause ran again, the narrative and the tree.
"""

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from _charts import (
    Log,
    assert_continues,
    checkpoint_of,
    flat,
    resume_fresh,
    roundtrip,
    run_fresh,
)
from pausepoint import (
    FlowChartExecutor,
    LoopLimitError,
    PausableHandler,
    ResumeTargetError,
    Scope,
    StageError,
    flow_chart,
)

# -- plain sequences -------------------------------------------------------


async def test_root_stage_pausable() -> None:
    """The first stage of a chart may itself pause, and the run resumes after it."""
    log = Log()
    chart = (
        flow_chart("Approve", log.pausable("approve"), "approve")
        .add_function("Process", log.stage("process", done=True), "process")
        .build()
    )
    executor = await run_fresh(chart, {"amount": 5})
    checkpoint = checkpoint_of(executor)
    assert checkpoint["paused_stage_id"] == "approve"
    assert checkpoint["pause_data"] == {"question": "approve?"}
    assert log.take() == ["approve:execute"]
    assert executor.get_narrative() == ['Approve paused: "approve?"']

    resumed = await resume_fresh(chart, checkpoint, {"approved": True})
    assert resumed.status == "completed"
    assert resumed.get_checkpoint() is None
    assert log.take() == ["approve:resume", "process"]
    assert resumed.get_state() == {"amount": 5, "approve": {"approved": True}, "done": True}
    assert resumed.get_narrative() == [
        'Approve paused: "approve?"',
        "Approve resumed by input {approved}.",
        "Approve wrote approve.",
        "Process wrote done.",
    ]
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("approve", "resumed"),
        ("process", "done"),
    ]


async def test_last_stage_pausable() -> None:
    """A pause at the last stage completes the run when resumed, with nothing after it."""
    log = Log()
    chart = (
        flow_chart("Receive", log.stage("receive", received=True), "receive")
        .add_pausable_function("Approve", log.pausable("approve"), "approve")
        .build()
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert log.take() == ["receive", "approve:execute"]

    resumed = await resume_fresh(chart, checkpoint, "yes")
    assert resumed.status == "completed"
    assert log.take() == ["approve:resume"]
    assert resumed.get_state() == {"received": True, "approve": "yes"}
    assert resumed.get_narrative() == [
        "Receive wrote received.",
        'Approve paused: "approve?"',
        "Approve resumed by input {}.",
        "Approve wrote approve.",
    ]
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("approve", "resumed"),
    ]


async def test_pausable_returning_none_continues() -> None:
    """A pausable whose execute returns None does not pause; the run goes straight on."""
    log = Log()
    chart = (
        flow_chart("Receive", log.stage("receive"), "receive")
        .add_pausable_function("Approve", log.pausable("approve", None), "approve")
        .add_function("Process", log.stage("process", done=True), "process")
        .build()
    )
    executor = await run_fresh(chart)
    assert executor.status == "completed"
    assert not executor.is_paused()
    assert executor.get_checkpoint() is None
    assert log.take() == ["receive", "approve:execute", "process"]
    assert executor.get_state() == {"done": True}
    assert executor.get_narrative() == [
        "Receive ran.",
        "Approve continued without pausing.",
        "Process wrote done.",
    ]
    assert flat(executor.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("approve", "done"),
        ("process", "done"),
    ]
    assert executor.get_metrics()["pause_count"] == 0


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (False, "Approve paused: with bool False."),
        (0, "Approve paused: with int 0."),
        (0.0, "Approve paused: with float 0.0."),
        ({}, "Approve paused: with {}."),
        ([], "Approve paused: with a list of 0."),
        ("", 'Approve paused: ""'),
    ],
    ids=repr,
)
async def test_falsy_pause_data_pauses(data: Any, said: str) -> None:
    """Any pause data but None pauses, even False, 0, {}, [] and ""; it reaches the checkpoint as is."""
    log = Log()
    chart = (
        flow_chart("Receive", log.stage("receive"), "receive")
        .add_pausable_function("Approve", log.pausable("approve", data), "approve")
        .add_function("Process", log.stage("process", done=True), "process")
        .build()
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert checkpoint["pause_data"] == data
    assert type(checkpoint["pause_data"]) is type(data)
    assert checkpoint["pauses"][0]["data"] == data
    assert type(checkpoint["pauses"][0]["data"]) is type(data)
    assert log.take() == ["receive", "approve:execute"]
    assert flat(executor.get_snapshot()["execution_tree"])[-1] == ("approve", "paused")
    assert executor.get_narrative() == ["Receive ran.", said]

    resumed = await resume_fresh(chart, checkpoint, {"ok": True})
    assert resumed.status == "completed"
    assert log.take() == ["approve:resume", "process"]
    assert resumed.get_state() == {"approve": {"ok": True}, "done": True}
    assert resumed.get_narrative() == [
        "Receive ran.",
        said,
        "Approve resumed by input {ok}.",
        "Approve wrote approve.",
        "Process wrote done.",
    ]
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("approve", "resumed"),
        ("process", "done"),
    ]


# -- deciders and selectors ------------------------------------------------


def _refund_decider_chart(log: Log) -> Any:
    return (
        flow_chart("Receive", log.stage("receive"), "receive")
        .add_decider_function(
            "Route", log.route("route", lambda s: "high" if s.amount > 500 else "low"), "route"
        )
        .add_pausable_branch("high", "ManagerReview", log.pausable("high", key="approved"))
        .add_function_branch("low", "AutoApprove", log.stage("low", approved="auto"))
        .end()
        .add_function("Process", log.stage("process", done=True), "process")
        .build()
    )


async def test_decider_branch_pausable() -> None:
    """A pausable decider branch pauses; resume runs its resume and then the stages after the decider."""
    log = Log()
    chart = _refund_decider_chart(log)
    executor = await run_fresh(chart, {"amount": 900})
    checkpoint = checkpoint_of(executor)
    assert checkpoint["paused_stage_id"] == "high"
    assert log.take() == ["receive", "route", "high:execute"]
    before = executor.get_narrative()
    assert before == ["Receive ran.", 'Route chose branch "high".', 'ManagerReview paused: "high?"']

    resumed = await resume_fresh(chart, checkpoint, "kim")
    assert resumed.status == "completed"
    assert log.take() == ["high:resume", "process"]
    assert resumed.get_state() == {"amount": 900, "approved": "kim", "done": True}
    assert resumed.get_narrative() == [
        *before,
        "ManagerReview resumed by input {}.",
        "ManagerReview wrote approved.",
        "Process wrote done.",
    ]
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("route", "done"),
        ("high", "resumed"),
        ("process", "done"),
    ]

    # the other branch of the same chart never pauses
    low = await run_fresh(chart, {"amount": 100})
    assert low.status == "completed"
    assert low.get_state() == {"amount": 100, "approved": "auto", "done": True}


async def test_decider_default_branch_pausable() -> None:
    """A key with no branch takes the set_default branch, which may pause and resume."""
    log = Log()
    chart = (
        flow_chart("Receive", log.stage("receive"), "receive")
        .add_decider_function("Route", log.route("route", lambda s: s.kind), "route")
        .add_function_branch("standard", "Standard", log.stage("standard", path="standard"))
        .add_pausable_branch("manual", "ManualReview", log.pausable("manual", key="path"))
        .set_default("manual")
        .end()
        .add_function("Process", log.stage("process", done=True), "process")
        .build()
    )
    executor = await run_fresh(chart, {"kind": "unheard-of"})
    checkpoint = checkpoint_of(executor)
    assert checkpoint["paused_stage_id"] == "manual"
    assert log.take() == ["receive", "route", "manual:execute"]
    assert 'Route chose branch "manual".' in executor.get_narrative()

    resumed = await resume_fresh(chart, checkpoint, "reviewed")
    assert resumed.status == "completed"
    assert log.take() == ["manual:resume", "process"]
    assert resumed.get_state() == {"kind": "unheard-of", "path": "reviewed", "done": True}
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("route", "done"),
        ("manual", "resumed"),
        ("process", "done"),
    ]


def _selector_chart(log: Log, *, both_pause: bool) -> Any:
    builder = (
        flow_chart("Receive", log.stage("receive"), "receive")
        .add_selector_function("Pick", log.route("pick", lambda s: ["email", "sms"]), "pick")
        .add_pausable_branch("email", "EmailReview", log.pausable("email"))
    )
    if both_pause:
        builder = builder.add_pausable_branch("sms", "SmsReview", log.pausable("sms"))
    else:
        builder = builder.add_function_branch("sms", "SendSms", log.stage("sms", sms="sent"))
    return (
        builder.add_function_branch("fax", "SendFax", log.stage("fax", fax="sent"))
        .end()
        .add_function("Join", log.stage("join", joined=True), "join")
        .build()
    )


async def test_selector_one_chosen_branch_pauses() -> None:
    """A selector runs its chosen branches; the one that pauses holds the join until resumed."""
    log = Log()
    chart = _selector_chart(log, both_pause=False)
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert [p["stage_id"] for p in checkpoint["pauses"]] == ["email"]
    calls = log.take()
    assert calls[:2] == ["receive", "pick"]
    assert sorted(calls[2:]) == ["email:execute", "sms"]
    assert checkpoint["shared_state"] == {"sms": "sent"}
    before = executor.get_narrative()
    assert before == [
        "Receive ran.",
        'Pick chose branches "email", "sms".',
        'EmailReview paused: "email?"',
        "SendSms wrote sms.",
    ]

    resumed = await resume_fresh(chart, checkpoint, "ok")
    assert resumed.status == "completed"
    assert log.take() == ["email:resume", "join"]
    assert resumed.get_state() == {"sms": "sent", "email": "ok", "joined": True}
    assert_continues(
        before,
        resumed.get_narrative(),
        ["EmailReview resumed by input {}.", "EmailReview wrote email.", "Join wrote joined."],
    )
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("pick", "done"),
        ("email", "resumed"),
        ("sms", "done"),
        ("join", "done"),
    ]


async def test_selector_both_chosen_branches_pause() -> None:
    """Two selected branches that both pause are both listed, and one resume can answer both."""
    log = Log()
    chart = _selector_chart(log, both_pause=True)
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert sorted(p["stage_id"] for p in checkpoint["pauses"]) == ["email", "sms"]
    calls = log.take()
    assert calls[:2] == ["receive", "pick"]
    assert sorted(calls[2:]) == ["email:execute", "sms:execute"]
    before = executor.get_narrative()
    assert before == [
        "Receive ran.",
        'Pick chose branches "email", "sms".',
        'EmailReview paused: "email?"',
        'SmsReview paused: "sms?"',
    ]

    resumed = await resume_fresh(chart, checkpoint, answers={"email": "e-ok", "sms": "s-ok"})
    assert resumed.status == "completed"
    calls = log.take()
    assert sorted(calls[:2]) == ["email:resume", "sms:resume"]
    assert calls[2:] == ["join"]
    assert resumed.get_state() == {"email": "e-ok", "sms": "s-ok", "joined": True}
    assert_continues(
        before,
        resumed.get_narrative(),
        [
            "EmailReview resumed by input {}.",
            "EmailReview wrote email.",
            "SmsReview resumed by input {}.",
            "SmsReview wrote sms.",
            "Join wrote joined.",
        ],
    )
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("pick", "done"),
        ("email", "resumed"),
        ("sms", "resumed"),
        ("join", "done"),
    ]
    assert resumed.get_metrics()["pause_count"] == 2
    assert resumed.get_metrics()["resume_count"] == 2


# -- subflows --------------------------------------------------------------


async def test_subflow_pause() -> None:
    """A pause inside a subflow is named by its path and resumes into the rest of the subflow and the parent."""
    log = Log()
    payment = (
        flow_chart("Check", log.stage("check", checked=True), "check")
        .add_pausable_function(
            "ApprovePayment", log.pausable("approve-payment", key="payment_ok"), "approve-payment"
        )
        .add_function("Charge", log.stage("charge", charged=True), "charge")
        .build()
    )
    chart = (
        flow_chart("Receive", log.stage("receive", received=True), "receive")
        .add_subflow("payment", payment, "Payment")
        .add_function("Ship", log.stage("ship", shipped=True), "ship")
        .build()
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert checkpoint["paused_stage_id"] == "payment/approve-payment"
    assert log.take() == ["receive", "check", "approve-payment:execute"]
    before = executor.get_narrative()

    resumed = await resume_fresh(chart, checkpoint, True)
    assert resumed.status == "completed"
    assert log.take() == ["approve-payment:resume", "charge", "ship"]
    assert resumed.get_state() == {
        "received": True,
        "checked": True,
        "payment_ok": True,
        "charged": True,
        "shipped": True,
    }
    assert resumed.get_narrative() == [
        *before,
        "ApprovePayment resumed by input {}.",
        "ApprovePayment wrote payment_ok.",
        "Charge wrote charged.",
        "Payment finished (subflow).",
        "Ship wrote shipped.",
    ]
    assert before == [
        "Receive wrote received.",
        "Payment started (subflow).",
        "Check wrote checked.",
        'ApprovePayment paused: "approve-payment?"',
    ]
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("payment", "done"),
        ("payment/check", "done"),
        ("payment/approve-payment", "resumed"),
        ("payment/charge", "done"),
        ("ship", "done"),
    ]


async def test_nested_subflows_with_mappers() -> None:
    """Two levels of isolated subflows keep their own state across the pause; only output mappers write back."""
    log = Log()
    mapped: list[str] = []

    def finalize(scope: Scope) -> None:
        log.calls.append("finalize")
        scope.result = f"{scope.item}:{scope.verdict}:{scope.inner_note}"

    def approve_resume(scope: Scope, answer: Any) -> None:
        log.calls.append("approve:resume")
        scope.verdict = "ok" if answer["ok"] else "no"

    def approve_execute(scope: Scope) -> Any:
        log.calls.append("approve:execute")
        return {"question": f"Approve {scope.item}?"}

    inner = (
        flow_chart("Prepare", log.stage("prepare", inner_note="prepared"), "prepare")
        .add_pausable_function(
            "Approve", PausableHandler(approve_execute, approve_resume), "approve"
        )
        .add_function("Finalize", finalize, "finalize")
        .build()
    )

    def outer_start(scope: Scope) -> None:
        log.calls.append("o-start")
        scope.item_name = scope.order.upper()

    def outer_end(scope: Scope) -> None:
        log.calls.append("o-end")
        scope.outer_result = f"{scope.item_name}->{scope.inner_result}"

    def inner_in(state: Any) -> dict[str, Any]:
        mapped.append("inner_in")
        return {"item": state["item_name"]}

    def inner_out(state: Any) -> dict[str, Any]:
        mapped.append("inner_out")
        return {"inner_result": state["result"]}

    outer = (
        flow_chart("OuterStart", outer_start, "o-start")
        .add_subflow("inner", inner, "Inner", input_mapper=inner_in, output_mapper=inner_out)
        .add_function("OuterEnd", outer_end, "o-end")
        .build()
    )

    def outer_in(state: Any) -> dict[str, Any]:
        mapped.append("outer_in")
        return {"order": state["order_id"]}

    def outer_out(state: Any) -> dict[str, Any]:
        mapped.append("outer_out")
        return {"payment_result": state["outer_result"]}

    def process(scope: Scope) -> None:
        log.calls.append("process")
        scope.final = scope.payment_result

    chart = (
        flow_chart("Receive", log.stage("receive", received=True), "receive")
        .add_subflow("outer", outer, "Outer", input_mapper=outer_in, output_mapper=outer_out)
        .add_function("Process", process, "process")
        .build()
    )
    executor = await run_fresh(chart, {"order_id": "ord-7"})
    checkpoint = checkpoint_of(executor)
    assert checkpoint["paused_stage_id"] == "outer/inner/approve"
    assert checkpoint["pause_data"] == {"question": "Approve ORD-7?"}
    assert checkpoint["shared_state"] == {"order_id": "ord-7", "received": True}
    assert log.take() == ["receive", "o-start", "prepare", "approve:execute"]
    assert mapped == ["outer_in", "inner_in"]

    resumed = await resume_fresh(chart, checkpoint, {"ok": True})
    assert resumed.status == "completed"
    assert log.take() == ["approve:resume", "finalize", "o-end", "process"]
    assert mapped == ["outer_in", "inner_in", "inner_out", "outer_out"]
    # the parent sees only what the outer output_mapper returned
    assert resumed.get_state() == {
        "order_id": "ord-7",
        "received": True,
        "payment_result": "ORD-7->ORD-7:ok:prepared",
        "final": "ORD-7->ORD-7:ok:prepared",
    }
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("outer", "done"),
        ("outer/o-start", "done"),
        ("outer/inner", "done"),
        ("outer/inner/prepare", "done"),
        ("outer/inner/approve", "resumed"),
        ("outer/inner/finalize", "done"),
        ("outer/o-end", "done"),
        ("process", "done"),
    ]
    narrative = resumed.get_narrative()
    assert narrative[: len(executor.get_narrative())] == executor.get_narrative()
    assert narrative[-4:] == [
        "Inner finished (subflow).",
        "OuterEnd wrote outer_result.",
        "Outer finished (subflow).",
        "Process wrote final.",
    ]


async def test_subflow_branch_of_decider_pauses() -> None:
    """A subflow mounted as a decider branch pauses; after resume the stages after the decider run."""
    log = Log()
    review = (
        flow_chart("Prepare", log.stage("prepare", prepared=True), "prepare")
        .add_pausable_function("Approve", log.pausable("approve", key="decision"), "approve")
        .add_function("Record", log.stage("record", recorded=True), "record")
        .build()
    )
    chart = (
        flow_chart("Receive", log.stage("receive", received=True), "receive")
        .add_decider_function("Route", log.route("route", lambda s: "review"), "route")
        .add_subflow_branch("review", review, "Review")
        .add_function_branch("skip", "Skip", log.stage("skip"))
        .end()
        .add_function("After", log.stage("after", after=True), "after")
        .build()
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert checkpoint["paused_stage_id"] == "review/approve"
    assert log.take() == ["receive", "route", "prepare", "approve:execute"]

    resumed = await resume_fresh(chart, checkpoint, "approved")
    assert resumed.status == "completed"
    assert log.take() == ["approve:resume", "record", "after"]
    assert resumed.get_state() == {
        "received": True,
        "prepared": True,
        "decision": "approved",
        "recorded": True,
        "after": True,
    }
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("route", "done"),
        ("review", "done"),
        ("review/prepare", "done"),
        ("review/approve", "resumed"),
        ("review/record", "done"),
        ("after", "done"),
    ]
    assert resumed.get_narrative()[-3:] == [
        "Record wrote recorded.",
        "Review finished (subflow).",
        "After wrote after.",
    ]


# -- loops -----------------------------------------------------------------


async def test_loop_with_pausable_in_body() -> None:
    """A pausable inside a loop body pauses every round; resume continues the same round and loops on."""
    calls: list[str] = []

    def start(scope: Scope) -> None:
        calls.append("start")
        scope.round = 0
        scope.approvals = []

    def inc(scope: Scope) -> None:
        calls.append("inc")
        scope.round = scope.round + 1

    def ask(scope: Scope) -> Any:
        calls.append("approve:execute")
        return {"question": f"Round {scope.round}?"}

    def answer(scope: Scope, value: Any) -> None:
        calls.append("approve:resume")
        scope.approvals = [*scope.approvals, value]

    def check(scope: Scope) -> None:
        calls.append("check")
        if scope.round >= 2:
            scope.break_loop()

    def done(scope: Scope) -> None:
        calls.append("done")
        scope.finished = True

    chart = (
        flow_chart("Start", start, "start")
        .add_function("Inc", inc, "inc")
        .add_pausable_function("Approve", PausableHandler(ask, answer), "approve")
        .add_function("Check", check, "check")
        .loop_to("inc")
        .add_function("Done", done, "done")
        .build()
    )
    executor = await run_fresh(chart)
    first = checkpoint_of(executor)
    assert first["pause_data"] == {"question": "Round 1?"}
    assert calls == ["start", "inc", "approve:execute"]
    calls.clear()

    executor = await resume_fresh(chart, first, "a1")
    second = checkpoint_of(executor)
    assert second["pause_data"] == {"question": "Round 2?"}
    assert second["pauses"][0]["pause_id"] != first["pauses"][0]["pause_id"]
    assert calls == ["approve:resume", "check", "inc", "approve:execute"]
    calls.clear()

    resumed = await resume_fresh(chart, second, "a2")
    assert resumed.status == "completed"
    assert calls == ["approve:resume", "check", "done"]
    assert resumed.get_state() == {"round": 2, "approvals": ["a1", "a2"], "finished": True}
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("start", "done"),
        ("inc", "done"),
        ("approve", "resumed"),
        ("check", "done"),
        ("inc", "loop"),
        ("inc", "done"),
        ("approve", "resumed"),
        ("check", "done"),
        ("done", "done"),
    ]
    assert resumed.get_narrative() == [
        "Start wrote round, approvals.",
        "Inc wrote round.",
        'Approve paused: "Round 1?"',
        "Approve resumed by input {}.",
        "Approve wrote approvals.",
        "Check ran.",
        "Looped back to Inc (round 2).",
        "Inc wrote round.",
        'Approve paused: "Round 2?"',
        "Approve resumed by input {}.",
        "Approve wrote approvals.",
        "Check ran.",
        "Check ended the loop.",
        "Done wrote finished.",
    ]
    metrics = resumed.get_metrics()
    assert (metrics["pause_count"], metrics["resume_count"], metrics["loop_rounds"]) == (2, 2, 1)


async def test_pausable_loop_target_pauses_every_round() -> None:
    """A pausable that is the loop target pauses each round with a new checkpoint; break_loop in resume leaves."""
    calls: list[str] = []

    def ask(scope: Scope) -> Any:
        calls.append("ask:execute")
        return {"question": f"Round {len(scope.answers) + 1}?"}

    def answer(scope: Scope, value: Any) -> None:
        calls.append("ask:resume")
        scope.answers = [*scope.answers, value["text"]]
        if value.get("done"):
            scope.break_loop()

    def start(scope: Scope) -> None:
        calls.append("start")
        scope.answers = []

    chart = (
        flow_chart("Start", start, "start")
        .add_pausable_function("Ask", PausableHandler(ask, answer), "ask")
        .add_function("Record", lambda s: calls.append("record"), "record")
        .loop_to("ask")
        .add_function("Finish", lambda s: calls.append("finish"), "finish")
        .build()
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert calls == ["start", "ask:execute"]
    calls.clear()
    pause_ids = [checkpoint["pauses"][0]["pause_id"]]

    for round_no in (1, 2):
        assert checkpoint["pause_data"] == {"question": f"Round {round_no}?"}
        before = executor.get_narrative()
        executor = await resume_fresh(chart, checkpoint, {"text": f"r{round_no}"})
        checkpoint = checkpoint_of(executor)
        assert executor.get_narrative() == [
            *before,
            "Ask resumed by input {text}.",
            "Ask wrote answers.",
            "Record ran.",
            f"Looped back to Ask (round {round_no + 1}).",
            f'Ask paused: "Round {round_no + 1}?"',
        ]
        assert calls == ["ask:resume", "record", "ask:execute"]
        calls.clear()
        pause_ids.append(checkpoint["pauses"][0]["pause_id"])

    assert checkpoint["pause_data"] == {"question": "Round 3?"}
    assert len(set(pause_ids)) == 3
    resumed = await resume_fresh(chart, checkpoint, {"text": "r3", "done": True})
    assert resumed.status == "completed"
    # break_loop in the resume leaves the loop at once: Record does not run a third time
    assert calls == ["ask:resume", "finish"]
    assert resumed.get_state() == {"answers": ["r1", "r2", "r3"]}
    assert resumed.get_narrative() == [
        *executor.get_narrative(),
        "Ask resumed by input {text, done}.",
        "Ask wrote answers.",
        "Ask ended the loop.",
        "Finish ran.",
    ]
    assert resumed.get_narrative()[:2] == ["Start wrote answers.", 'Ask paused: "Round 1?"']
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("start", "done"),
        ("ask", "resumed"),
        ("record", "done"),
        ("ask", "loop"),
        ("ask", "resumed"),
        ("record", "done"),
        ("ask", "loop"),
        ("ask", "resumed"),
        ("finish", "done"),
    ]
    metrics = resumed.get_metrics()
    assert (metrics["pause_count"], metrics["resume_count"], metrics["loop_rounds"]) == (3, 3, 2)
    assert metrics["stages"]["ask"]["count"] == 3


async def test_break_loop_in_execute_takes_effect_after_resume() -> None:
    """break_loop() called in a pausable's execute survives the checkpoint and leaves the loop after resume."""
    calls: list[str] = []

    def work(scope: Scope) -> None:
        calls.append("work")
        scope.n = scope.get("n", 0) + 1

    def gate(scope: Scope) -> Any:
        calls.append("gate:execute")
        if scope.n >= 2:
            scope.break_loop()
        return {"n": scope.n}

    def gate_resume(scope: Scope, value: Any) -> None:
        calls.append("gate:resume")
        scope.answers = [*scope.get("answers", []), value]

    chart = (
        flow_chart("Work", work, "work")
        .add_pausable_function("Gate", PausableHandler(gate, gate_resume), "gate")
        .loop_to("work")
        .add_function("Finish", lambda s: calls.append("finish"), "finish")
        .build()
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    executor = await resume_fresh(chart, checkpoint, "first")
    checkpoint = checkpoint_of(executor)
    assert checkpoint["pause_data"] == {"n": 2}
    assert calls == ["work", "gate:execute", "gate:resume", "work", "gate:execute"]
    calls.clear()
    before = executor.get_narrative()
    assert before[-2:] == ["Work wrote n.", "Gate paused: with {n}."]

    resumed = await resume_fresh(chart, checkpoint, "second")
    assert resumed.status == "completed"
    # the resume ran (its write kept), then the loop was left: no third "work"
    assert calls == ["gate:resume", "finish"]
    assert resumed.get_state() == {"n": 2, "answers": ["first", "second"]}
    assert resumed.get_narrative() == [
        *before,
        "Gate resumed by input {}.",
        "Gate wrote answers.",
        "Gate ended the loop.",
        "Finish ran.",
    ]
    assert flat(resumed.get_snapshot()["execution_tree"])[-3:] == [
        ("work", "done"),
        ("gate", "resumed"),
        ("finish", "done"),
    ]


async def test_loop_limit_raises() -> None:
    """A loop that goes back more often than max_iterations raises LoopLimitError naming its target."""
    ticks: list[int] = []
    chart = (
        flow_chart("Tick", lambda s: ticks.append(1), "tick")
        .loop_to("tick", max_iterations=3)
        .add_function("Never", lambda s: ticks.append(99), "never")
        .build()
    )
    executor = FlowChartExecutor(chart)
    with pytest.raises(LoopLimitError) as info:
        await executor.run()
    assert isinstance(info.value, StageError)
    assert info.value.limit == 3
    assert info.value.stage_id == "tick"
    assert "'tick'" in str(info.value)
    assert ticks == [1, 1, 1, 1]
    assert executor.status == "failed"
    assert executor.get_snapshot()["status"] == "failed"


async def test_loop_limit_counts_across_resumes() -> None:
    """Loop rounds travel in the checkpoint: resuming in fresh executors does not reset the limit."""
    log = Log()
    chart = (
        flow_chart("Ask", log.pausable("ask"), "ask")
        .loop_to("ask", max_iterations=2)
        .add_function("Never", log.stage("never"), "never")
        .build()
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    for _ in range(2):
        executor = await resume_fresh(chart, checkpoint, "again")
        checkpoint = checkpoint_of(executor)
    last = FlowChartExecutor(chart)
    with pytest.raises(LoopLimitError) as info:
        await last.resume(roundtrip(checkpoint), "again")
    assert info.value.limit == 2
    assert log.take() == ["ask:execute", *["ask:resume", "ask:execute"] * 2, "ask:resume"]


# -- parallel forks --------------------------------------------------------


def _fork_chart(log: Log, *, both_pause: bool) -> Any:
    builder = (
        flow_chart("Receive", log.stage("receive", received=True), "receive")
        .add_parallel("checks", "Checks")
        .add_pausable_branch("review-a", "ReviewA", log.pausable("review-a", key="a"))
    )
    if both_pause:
        builder = builder.add_pausable_branch(
            "review-b", "ReviewB", log.pausable("review-b", key="b")
        )
    else:
        builder = builder.add_function_branch("auto", "AutoCheck", log.stage("auto", b="auto"))
    return (
        builder.add_function_branch("audit", "Audit", log.stage("audit", audited=True))
        .end()
        .add_function("Join", log.stage("join", joined=True), "join")
        .build()
    )


async def test_parallel_one_branch_pauses() -> None:
    """In a fork where one branch pauses, the others complete once and the join waits for the resume."""
    log = Log()
    chart = _fork_chart(log, both_pause=False)
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert [p["stage_id"] for p in checkpoint["pauses"]] == ["review-a"]
    calls = log.take()
    assert calls[0] == "receive"
    assert sorted(calls[1:]) == ["audit", "auto", "review-a:execute"]
    assert checkpoint["shared_state"] == {"received": True, "b": "auto", "audited": True}
    before = executor.get_narrative()
    assert before == [
        "Receive wrote received.",
        "Checks ran 3 branches in parallel.",
        'ReviewA paused: "review-a?"',
        "AutoCheck wrote b.",
        "Audit wrote audited.",
    ]

    resumed = await resume_fresh(chart, checkpoint, "ok-a")
    assert resumed.status == "completed"
    assert log.take() == ["review-a:resume", "join"]
    assert resumed.get_state() == {
        "received": True,
        "b": "auto",
        "audited": True,
        "a": "ok-a",
        "joined": True,
    }
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("checks", "done"),
        ("review-a", "resumed"),
        ("auto", "done"),
        ("audit", "done"),
        ("join", "done"),
    ]
    assert_continues(
        before,
        resumed.get_narrative(),
        ["ReviewA resumed by input {}.", "ReviewA wrote a.", "Join wrote joined."],
    )


async def test_parallel_two_pauses_resumed_one_at_a_time() -> None:
    """Two pending pauses are answered one by one; the join runs once, after the second answer."""
    log = Log()
    chart = _fork_chart(log, both_pause=True)
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    assert [p["stage_id"] for p in checkpoint["pauses"]] == ["review-a", "review-b"]
    assert checkpoint["paused_stage_id"] == checkpoint["pauses"][0]["stage_id"]
    pause_b = checkpoint["pauses"][1]
    calls = log.take()
    assert calls[0] == "receive"
    assert sorted(calls[1:]) == ["audit", "review-a:execute", "review-b:execute"]
    before = executor.get_narrative()
    assert before == [
        "Receive wrote received.",
        "Checks ran 3 branches in parallel.",
        'ReviewA paused: "review-a?"',
        'ReviewB paused: "review-b?"',
        "Audit wrote audited.",
    ]

    halfway = await resume_fresh(chart, checkpoint, "ok-a", stage_id="review-a")
    assert halfway.status == "paused"
    second = checkpoint_of(halfway)
    assert second["pauses"] == [pause_b]  # the other pause is kept as it was
    assert second["paused_stage_id"] == "review-b"
    assert log.take() == ["review-a:resume"]
    assert flat(halfway.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("checks", "paused"),
        ("review-a", "resumed"),
        ("review-b", "paused"),
        ("audit", "done"),
    ]
    assert [p["stage_id"] for p in halfway.get_snapshot()["pauses"]] == ["review-b"]
    middle = halfway.get_narrative()
    assert_continues(before, middle, ["ReviewA resumed by input {}.", "ReviewA wrote a."])

    # with one pause pending, stage_id may be left out
    resumed = await resume_fresh(chart, second, "ok-b")
    assert resumed.status == "completed"
    assert log.take() == ["review-b:resume", "join"]
    assert_continues(
        middle,
        resumed.get_narrative(),
        ["ReviewB resumed by input {}.", "ReviewB wrote b.", "Join wrote joined."],
    )
    assert resumed.get_state() == {
        "received": True,
        "audited": True,
        "a": "ok-a",
        "b": "ok-b",
        "joined": True,
    }
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("checks", "done"),
        ("review-a", "resumed"),
        ("review-b", "resumed"),
        ("audit", "done"),
        ("join", "done"),
    ]
    metrics = resumed.get_metrics()
    assert (metrics["pause_count"], metrics["resume_count"]) == (2, 2)
    assert metrics["stages"]["join"]["count"] == 1


async def test_parallel_two_pauses_answered_at_once() -> None:
    """answers={...} answers both pending pauses of a fork in one resume; the join runs once."""
    log = Log()
    chart = _fork_chart(log, both_pause=True)
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    log.take()
    before = executor.get_narrative()

    resumed = await resume_fresh(
        chart, checkpoint, answers={"review-b": "ok-b", "review-a": "ok-a"}
    )
    assert resumed.status == "completed"
    calls = log.take()
    assert sorted(calls[:2]) == ["review-a:resume", "review-b:resume"]
    assert calls[2:] == ["join"]
    assert resumed.get_state() == {
        "received": True,
        "audited": True,
        "a": "ok-a",
        "b": "ok-b",
        "joined": True,
    }
    assert_continues(
        before,
        resumed.get_narrative(),
        [
            "ReviewA resumed by input {}.",
            "ReviewA wrote a.",
            "ReviewB resumed by input {}.",
            "ReviewB wrote b.",
            "Join wrote joined.",
        ],
    )
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("checks", "done"),
        ("review-a", "resumed"),
        ("review-b", "resumed"),
        ("audit", "done"),
        ("join", "done"),
    ]


async def test_parallel_narrative_before_pause_is_a_prefix() -> None:
    """After answering one fork branch, the narrative starts with the narrative from before the pause."""
    log = Log()
    chart = _fork_chart(log, both_pause=True)
    executor = await run_fresh(chart)
    before = executor.get_narrative()
    halfway = await resume_fresh(chart, checkpoint_of(executor), "ok-a", stage_id="review-a")
    assert halfway.get_narrative()[: len(before)] == before


async def test_parallel_two_pauses_resume_without_stage_id_is_refused() -> None:
    """With two pauses pending, resume without stage_id raises ResumeTargetError listing both."""
    log = Log()
    chart = _fork_chart(log, both_pause=True)
    checkpoint = checkpoint_of(await run_fresh(chart))
    log.take()

    executor = FlowChartExecutor(chart)
    with pytest.raises(ResumeTargetError) as info:
        await executor.resume(roundtrip(checkpoint), "ok")
    assert sorted(info.value.pending) == ["review-a", "review-b"]
    assert "'review-a'" in str(info.value)
    assert "'review-b'" in str(info.value)
    assert log.take() == []
    assert executor.status == "idle"

    # the same executor and checkpoint still work with a target
    assert await executor.resume(roundtrip(checkpoint), "ok", stage_id="review-b") == "paused"


@pytest.mark.parametrize("target", ["audit", "join", "nowhere", "checks"])
async def test_parallel_resume_naming_no_pending_stage_is_refused(target: str) -> None:
    """Naming a stage that is not pending (a real stage or none at all) raises ResumeTargetError."""
    log = Log()
    chart = _fork_chart(log, both_pause=True)
    checkpoint = checkpoint_of(await run_fresh(chart))
    log.take()
    with pytest.raises(ResumeTargetError) as info:
        await FlowChartExecutor(chart).resume(roundtrip(checkpoint), "ok", stage_id=target)
    assert repr(target) in str(info.value)
    assert sorted(info.value.pending) == ["review-a", "review-b"]
    with pytest.raises(ResumeTargetError):
        await FlowChartExecutor(chart).resume(roundtrip(checkpoint), answers={target: "ok"})
    assert log.take() == []


async def test_parallel_answered_pause_is_no_longer_pending() -> None:
    """Once one fork branch is answered, answering it again from the new checkpoint is refused."""
    log = Log()
    chart = _fork_chart(log, both_pause=True)
    checkpoint = checkpoint_of(await run_fresh(chart))
    second = checkpoint_of(await resume_fresh(chart, checkpoint, "ok-a", stage_id="review-a"))
    log.take()
    with pytest.raises(ResumeTargetError) as info:
        await FlowChartExecutor(chart).resume(second, "again", stage_id="review-a")
    assert info.value.pending == ("review-b",)
    assert log.take() == []


# -- chains, input, run id, trace -------------------------------------------


def _chain_chart(log: Log, seen: list[tuple[str, Any]]) -> Any:
    def receive(scope: Scope) -> None:
        log.calls.append("receive")
        seen.append(("receive", scope.run_id))
        scope.amount = scope.amount + 1  # the state changes; run_input does not

    def approve(scope: Scope) -> Any:
        log.calls.append("approve:execute")
        return {"question": f"Approve {scope.amount}?"}

    def approved(scope: Scope, answer: Any) -> None:
        log.calls.append("approve:resume")
        seen.append(("approve", scope.run_id))
        scope.approver = answer["by"]

    def review(scope: Scope) -> Any:
        log.calls.append("review:execute")
        return {"question": f"Review {scope.approver}'s approval?"}

    def reviewed(scope: Scope, answer: Any) -> None:
        log.calls.append("review:resume")
        seen.append(("review", scope.run_id))
        scope.reviewer = answer["by"]

    def process(scope: Scope) -> None:
        log.calls.append("process")
        seen.append(("process", scope.run_id))
        seen.append(("run_input", scope.run_input))
        seen.append(("order_id", scope.order_id))
        scope.result = f"{scope.order_id}:{scope.amount}:{scope.approver}/{scope.reviewer}"

    return (
        flow_chart("Receive", receive, "receive")
        .add_pausable_function("Approve", PausableHandler(approve, approved), "approve")
        .add_pausable_function("Review", PausableHandler(review, reviewed), "review")
        .add_function("Process", process, "process")
        .build()
    )


async def test_multi_pause_chain() -> None:
    """receive → approve (pause) → review (pause) → process, each resume in a fresh executor."""
    log, seen = Log(), list[tuple[str, Any]]()
    chart = _chain_chart(log, seen)
    executor = await run_fresh(chart, {"order_id": "ORD-1", "amount": 299})
    first = checkpoint_of(executor)
    assert first["paused_stage_id"] == "approve"
    assert first["pause_data"] == {"question": "Approve 300?"}
    assert log.take() == ["receive", "approve:execute"]
    narrative_1 = executor.get_narrative()

    executor = await resume_fresh(chart, first, {"by": "kim"})
    second = checkpoint_of(executor)
    assert second["paused_stage_id"] == "review"
    assert second["pause_data"] == {"question": "Review kim's approval?"}
    assert log.take() == ["approve:resume", "review:execute"]
    narrative_2 = executor.get_narrative()
    assert narrative_2[: len(narrative_1)] == narrative_1
    assert flat(executor.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("approve", "resumed"),
        ("review", "paused"),
    ]

    resumed = await resume_fresh(chart, second, {"by": "lee"})
    assert resumed.status == "completed"
    assert log.take() == ["review:resume", "process"]
    assert resumed.get_state() == {
        "order_id": "ORD-1",
        "amount": 300,
        "approver": "kim",
        "reviewer": "lee",
        "result": "ORD-1:300:kim/lee",
    }
    assert resumed.get_narrative() == [
        *narrative_2,
        "Review resumed by input {by}.",
        "Review wrote reviewer.",
        "Process wrote result.",
    ]
    assert narrative_2 == [
        "Receive wrote amount.",
        'Approve paused: "Approve 300?"',
        "Approve resumed by input {by}.",
        "Approve wrote approver.",
        'Review paused: "Review kim\'s approval?"',
    ]
    assert flat(resumed.get_snapshot()["execution_tree"]) == [
        ("receive", "done"),
        ("approve", "resumed"),
        ("review", "resumed"),
        ("process", "done"),
    ]
    metrics = resumed.get_metrics()
    assert (metrics["pause_count"], metrics["resume_count"]) == (2, 2)


async def test_run_input_and_run_id_kept_across_resumes() -> None:
    """scope.run_input, the state seeded from the input, and the run id survive every resume."""
    log, seen = Log(), list[tuple[str, Any]]()
    chart = _chain_chart(log, seen)
    run_input = {"order_id": "ORD-9", "amount": 10}
    executor = await run_fresh(chart, run_input, run_id="run-123")
    assert executor.run_id == "run-123"
    first = checkpoint_of(executor)
    assert first["run_id"] == "run-123"
    assert first["input"] == run_input
    executor = await resume_fresh(chart, first, {"by": "kim"})
    second = checkpoint_of(executor)
    assert second["run_id"] == "run-123"
    assert second["input"] == run_input
    resumed = await resume_fresh(chart, second, {"by": "lee"})
    assert resumed.run_id == "run-123"

    assert seen == [
        ("receive", "run-123"),
        ("approve", "run-123"),
        ("review", "run-123"),
        ("process", "run-123"),
        ("run_input", {"order_id": "ORD-9", "amount": 10}),  # the input as given
        ("order_id", "ORD-9"),  # seeded into the state
    ]
    snapshot = resumed.get_snapshot()
    assert snapshot["run_id"] == "run-123"
    assert snapshot["input"] == run_input
    assert snapshot["shared_state"]["amount"] == 11


async def test_generated_run_id_kept_across_resumes() -> None:
    """Without run_id= a random id is made once and kept by every resume."""
    log = Log()
    chart = _chain_chart(log, [])
    executor = await run_fresh(chart, {"order_id": "o", "amount": 1})
    run_id = executor.run_id
    assert len(run_id) >= 16
    executor = await resume_fresh(chart, checkpoint_of(executor), {"by": "a"})
    assert executor.run_id == run_id
    executor = await resume_fresh(chart, checkpoint_of(executor), {"by": "b"})
    assert executor.run_id == run_id
    assert executor.get_snapshot()["run_id"] == run_id


async def test_narrative_tree_and_metrics_continue_across_resume() -> None:
    """The trace after a resume in a fresh executor continues the pre-pause trace without a gap."""
    log = Log()
    chart = (
        flow_chart("Receive", log.stage("receive", order_id="ORD-1", amount=299), "receive")
        .add_pausable_function("ManagerApproval", log.pausable("approve"), "approve")
        .add_function("ProcessRefund", log.stage("process", refunded=True), "process")
        .build()
    )
    executor = await run_fresh(chart)
    checkpoint = checkpoint_of(executor)
    before = executor.get_narrative()
    assert before == [
        "Receive wrote order_id, amount.",
        'ManagerApproval paused: "approve?"',
    ]
    before_tree = executor.get_snapshot()["execution_tree"]
    assert checkpoint["execution_tree"] == before_tree
    metrics = executor.get_metrics()
    assert (metrics["pause_count"], metrics["resume_count"], metrics["paused_seconds"]) == (1, 0, 0)

    await asyncio.sleep(0.05)
    resumed = await resume_fresh(chart, checkpoint, {"approved": True, "approver": "Kim"})
    narrative = resumed.get_narrative()
    assert narrative[: len(before)] == before
    assert narrative[len(before) :] == [
        "ManagerApproval resumed by input {approved, approver}.",
        "ManagerApproval wrote approve.",
        "ProcessRefund wrote refunded.",
    ]
    assert resumed.get_snapshot()["narrative"] == narrative

    tree = resumed.get_snapshot()["execution_tree"]
    assert [node["id"] for node in tree] == ["receive", "approve", "process"]
    assert tree[0] == before_tree[0]  # the pre-pause node is carried over unchanged
    assert tree[1]["pause"] == before_tree[1]["pause"]
    assert tree[1]["status"] == "resumed"
    assert tree[1]["resume"]["input_keys"] == ["approved", "approver"]
    assert tree[1]["resume"]["writes"] == ["approve"]
    assert tree[2]["status"] == "done"

    metrics = resumed.get_metrics()
    assert metrics["pause_count"] == 1
    assert metrics["resume_count"] == 1
    assert 0.04 <= metrics["paused_seconds"] < 30
    assert metrics["stage_runs"] == 3
    assert set(metrics["stages"]) == {"receive", "approve", "process"}
    assert all(entry["count"] == 1 for entry in metrics["stages"].values())


# -- across processes --------------------------------------------------------

_CHART_MODULE = """
import os
from pausepoint import PausableHandler, flow_chart

def _note(name):
    with open(os.environ["PP_SIDE_EFFECTS"], "a") as f:
        f.write(f"{os.getpid()} {name}\\n")

def receive(scope):
    _note("receive")
    scope.total = scope.amount * 2

def ask(scope):
    _note("approve:execute")
    return {"question": f"Approve ${scope.total} refund?"}

def decide(scope, answer):
    _note("approve:resume")
    scope.approved = answer["approved"]
    scope.approver = answer["approver"]

def process(scope):
    _note("process")
    scope.status = "refunded" if scope.approved else "rejected"

chart = (
    flow_chart("ReceiveRequest", receive, "receive")
    .add_pausable_function("ManagerApproval", PausableHandler(ask, decide), "approve")
    .add_function("ProcessRefund", process, "process")
    .build()
)
"""

_START_SCRIPT = """
import json, sys
from pausepoint import FlowChartExecutor
from refund_chart import chart

executor = FlowChartExecutor(chart)
status = executor.run_sync({"order_id": "ORD-1", "amount": 150})
with open(sys.argv[1], "w") as f:
    json.dump(executor.get_checkpoint(), f)
print(json.dumps({"status": status, "narrative": executor.get_narrative()}))
"""

_RESUME_SCRIPT = """
import json, sys
from pausepoint import FlowChartExecutor
from refund_chart import chart

with open(sys.argv[1]) as f:
    checkpoint = json.load(f)
executor = FlowChartExecutor(chart)
status = executor.resume_sync(checkpoint, {"approved": True, "approver": "Kim"})
print(json.dumps({
    "status": status,
    "state": executor.get_snapshot()["shared_state"],
    "narrative": executor.get_narrative(),
}))
"""


def test_pause_in_one_process_resume_in_another(tmp_path: Any) -> None:
    """A checkpoint written to disk by one Python process is resumed by another."""
    (tmp_path / "refund_chart.py").write_text(textwrap.dedent(_CHART_MODULE))
    (tmp_path / "start.py").write_text(textwrap.dedent(_START_SCRIPT))
    (tmp_path / "resume.py").write_text(textwrap.dedent(_RESUME_SCRIPT))
    side_effects = tmp_path / "side_effects.txt"
    checkpoint_file = tmp_path / "checkpoint.json"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PP_SIDE_EFFECTS": str(side_effects)}

    def python(script: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, script, str(checkpoint_file)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    first = python("start.py")
    assert first["status"] == "paused"
    checkpoint = json.loads(checkpoint_file.read_text())
    assert checkpoint["paused_stage_id"] == "approve"
    assert checkpoint["pause_data"] == {"question": "Approve $300 refund?"}

    second = python("resume.py")
    assert second["status"] == "completed"
    assert second["state"] == {
        "order_id": "ORD-1",
        "amount": 150,
        "total": 300,
        "approved": True,
        "approver": "Kim",
        "status": "refunded",
    }
    assert second["narrative"] == [
        *first["narrative"],
        "ManagerApproval resumed by input {approved, approver}.",
        "ManagerApproval wrote approved, approver.",
        "ProcessRefund wrote status.",
    ]
    assert first["narrative"] == [
        "ReceiveRequest wrote total.",
        'ManagerApproval paused: "Approve $300 refund?"',
    ]
    lines = [line.split() for line in side_effects.read_text().splitlines()]
    assert [name for _, name in lines] == [
        "receive",
        "approve:execute",
        "approve:resume",
        "process",
    ]
    pids = [pid for pid, _ in lines]
    assert pids[0] == pids[1] != pids[2] == pids[3]  # two processes, nothing ran twice
