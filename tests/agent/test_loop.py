"""The agent loop on the executor: pauses for people, approvals, limits, tool errors."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pausepoint import FlowChartExecutor
from pausepoint.agent import (
    AgentSetupError,
    AgentTurnLimitError,
    AssistantMessage,
    ScriptedModel,
    ScriptExhaustedError,
    agent_chart,
    ask_human,
    tool,
    tool_call,
    transcript,
)
from pausepoint.errors import ResumeInputError, StageError

from . import charts
from .charts import echo_results, lookup_order, refund_order


def roundtrip(checkpoint: Any) -> Any:
    """What a store gives back: the checkpoint through JSON text."""
    return json.loads(json.dumps(checkpoint))


def tool_messages(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}


@pytest.fixture(autouse=True)
def _no_refunds() -> None:
    charts.REFUNDS.clear()
    charts.pair_model.calls.clear()


async def paused_refund() -> dict[str, Any]:
    executor = FlowChartExecutor(charts.refund)
    assert await executor.run({"prompt": "ORD-1 arrived broken"}) == "paused"
    checkpoint = executor.get_checkpoint()
    assert checkpoint is not None
    copied: dict[str, Any] = roundtrip(checkpoint)
    return copied


# -- the plain loop ------------------------------------------------------------


async def test_the_loop_ends_when_the_model_answers_without_tools() -> None:
    """model → tool → model: the final reply is the answer; messages hold the whole chain."""
    model = ScriptedModel(
        [AssistantMessage(None, [tool_call("lookup_order", {"order_id": "ORD-2"})]), echo_results]
    )
    executor = FlowChartExecutor(agent_chart(model, [lookup_order], system="Be brief."))
    assert await executor.run({"prompt": "What did Bo order?"}) == "completed"
    state = executor.get_state()
    assert state["stop_reason"] == "answered"
    assert state["turn"] == 2
    assert [m["role"] for m in state["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert state["messages"][2]["tool_calls"] == [
        {
            "id": "call_1_0",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order_id":"ORD-2"}'},
        }
    ]
    assert json.loads(state["messages"][3]["content"])["customer"] == "Bo"
    assert state["answer"].startswith("Done. {")
    assert not {"prompt", "tool_calls", "tool_results"} & set(state)
    sent = model.calls[1]
    assert sent.tools == ["lookup_order"]
    assert sent.messages == state["messages"][:4]


async def test_input_messages_continue_a_conversation_and_keep_their_system_message() -> None:
    """Given messages starting with a system message, no second system message is added."""
    model = ScriptedModel(["Hello again."])
    chart = agent_chart(model, [], system="ignored, the conversation has one")
    history = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    executor = FlowChartExecutor(chart)
    await executor.run({"messages": history, "prompt": "Still there?"})
    assert [m.get("content") for m in executor.get_state()["messages"]] == [
        "Be kind.",
        "Hi",
        "Still there?",
        "Hello again.",
    ]


async def test_an_agent_without_input_says_what_to_pass() -> None:
    """Neither prompt nor messages: the first stage fails naming both."""
    executor = FlowChartExecutor(agent_chart(ScriptedModel(["x"]), []))
    with pytest.raises(StageError, match=r"\{'prompt': '...'\} or \{'messages': \[...\]\}"):
        await executor.run({})


# -- ask_human -----------------------------------------------------------------


async def test_ask_human_pauses_with_the_question_and_the_answer_is_the_tool_result() -> None:
    """The pause data carries the question; the answer comes back as the tool's message."""
    executor = FlowChartExecutor(charts.ask)
    assert await executor.run({"prompt": "Paint my bike"}) == "paused"
    checkpoint = roundtrip(executor.get_checkpoint())
    [pause] = checkpoint["pauses"]
    assert pause["stage_id"] == "tools[call_1_0]/ask"  # named by the call id
    assert pause["data"] == {
        "question": "Which colour should the bike be?",
        "tool_call_id": "call_1_0",
        "context": "I need to know the colour first.",
    }
    resumed = FlowChartExecutor(charts.ask)
    assert await resumed.resume(checkpoint, {"answer": "green"}) == "completed"
    state = resumed.get_state()
    assert tool_messages(state["messages"]) == {"call_1_0": "green"}
    assert state["answer"] == "Painting the bike green."
    narrative = resumed.get_narrative()
    assert 'Ask human paused: "Which colour should the bike be?"' in narrative
    assert "Ask human resumed by input {answer}." in narrative
    # the reasoning chain, in the engine's own narrative, in the order it happened
    said = narrative.index('Model: "I need to know the colour first."')
    called = narrative.index('Model: calls ask_human(question="Which colour should the bike be?")')
    asked = narrative.index('Ask human paused: "Which colour should the bike be?"')
    answered = narrative.index('Ask human: the person answered "green"')
    final = narrative.index('Model: "Painting the bike green."')
    assert said < called < asked < answered < final
    assert transcript(state["messages"]) == [
        "User: Paint my bike",
        "Model: I need to know the colour first.",
        'Model asked a human: "Which colour should the bike be?"',
        'Human answered: "green"',
        "Model: Painting the bike green.",
    ]


async def test_an_empty_answer_is_refused_and_the_run_stays_paused() -> None:
    """The answer schema needs text: a blank answer is a ResumeInputError, then a real one works."""
    executor = FlowChartExecutor(charts.ask)
    await executor.run({"prompt": "Paint my bike"})
    checkpoint = roundtrip(executor.get_checkpoint())
    with pytest.raises(ResumeInputError, match="answer"):
        await FlowChartExecutor(charts.ask).resume(checkpoint, {"answer": ""})
    again = FlowChartExecutor(charts.ask)
    assert await again.resume(checkpoint, {"answer": "red"}) == "completed"


# -- approvals -----------------------------------------------------------------


async def test_approval_pauses_before_the_tool_runs_with_the_proposed_call() -> None:
    """Nothing is refunded while the call waits; the pause shows the call and the model's words."""
    checkpoint = await paused_refund()
    assert charts.REFUNDS == []
    [pause] = checkpoint["pauses"]
    assert pause["stage_id"] == "tools[call_b]/approve_refund_order"
    assert pause["data"] == {
        "question": 'Approve refund_order(order_id="ORD-1", amount=900.0)?',
        "tool": "refund_order",
        "arguments": {"order_id": "ORD-1", "amount": 900.0},
        "tool_call_id": "call_b",
        "context": "The order qualifies; refunding in full.",
    }


async def test_approve_runs_the_call_as_proposed() -> None:
    """approve: the tool runs with the model's arguments; the model reads that a human approved."""
    executor = FlowChartExecutor(charts.refund)
    assert await executor.resume(await paused_refund(), {"decision": "approve"}) == "completed"
    assert charts.REFUNDS == [("ORD-1", 900.0)]
    assert tool_messages(executor.get_state()["messages"])["call_b"] == (
        "A human approved this call. Result: refunded $900.00 on ORD-1"
    )
    # the narrative names what the person gave, not the schema's defaults
    assert "Approve refund_order resumed by input {decision}." in executor.get_narrative()


async def test_edit_runs_the_call_with_the_edited_arguments() -> None:
    """edit: the tool runs with the person's arguments (JSON text accepted), and the model is told."""
    executor = FlowChartExecutor(charts.refund)
    answer = {
        "decision": "edit",
        "arguments": '{"order_id": "ORD-1", "amount": 450}',
        "reason": "half: it still works",
    }
    assert await executor.resume(await paused_refund(), answer) == "completed"
    assert charts.REFUNDS == [("ORD-1", 450.0)]
    content = tool_messages(executor.get_state()["messages"])["call_b"]
    assert content == (
        'A human edited the arguments to {"order_id": "ORD-1", "amount": 450.0}; the call ran '
        "with them. Note from the human: half: it still works. Result: refunded $450.00 on ORD-1"
    )
    assert executor.get_state()["answer"] == f"Done. {content}"
    narrative = executor.get_narrative()
    assert "Approve refund_order resumed by input {decision, arguments, reason}." in narrative


async def test_edited_arguments_are_validated_before_anything_runs() -> None:
    """An edit that does not fit the tool's parameters is refused; the run stays paused."""
    checkpoint = await paused_refund()
    bad = {"decision": "edit", "arguments": {"order_id": "ORD-1", "amount": "lots"}}
    with pytest.raises(ResumeInputError, match=r"arguments\.amount") as caught:
        await FlowChartExecutor(charts.refund).resume(checkpoint, bad)
    assert caught.value.errors[0]["loc"] == ["arguments", "amount"]
    with pytest.raises(ResumeInputError, match="an edit needs the arguments"):
        await FlowChartExecutor(charts.refund).resume(checkpoint, {"decision": "edit"})
    assert charts.REFUNDS == []
    executor = FlowChartExecutor(charts.refund)
    assert await executor.resume(checkpoint, {"decision": "approve"}) == "completed"


async def test_reject_does_not_run_the_call_and_the_model_sees_why() -> None:
    """reject: no refund; the tool message says a human rejected it, with the reason."""
    executor = FlowChartExecutor(charts.refund)
    answer = {"decision": "reject", "reason": "the customer kept the bike"}
    assert await executor.resume(await paused_refund(), answer) == "completed"
    assert charts.REFUNDS == []
    assert tool_messages(executor.get_state()["messages"])["call_b"] == (
        "A human rejected this call; it did not run. Reason: the customer kept the bike"
    )
    assert "refund_order: A human rejected this call" in "\n".join(
        transcript(executor.get_state()["messages"])
    )


async def test_two_parallel_approvals_answered_in_reverse_order() -> None:
    """Two calls in one turn pause together, keyed by call; answering the second first keeps
    the first pending, and the loop goes on only when both are answered."""
    executor = FlowChartExecutor(charts.pair)
    assert await executor.run({"prompt": "Refund both"}) == "paused"
    checkpoint = roundtrip(executor.get_checkpoint())
    pauses = {p["data"]["tool_call_id"]: p["stage_id"] for p in checkpoint["pauses"]}
    assert pauses == {
        "c1": "tools[c1]/approve_refund_order",
        "c2": "tools[c2]/approve_refund_order",
    }

    second = FlowChartExecutor(charts.pair)
    status = await second.resume(
        checkpoint, {"decision": "reject", "reason": "too small"}, stage_id=pauses["c2"]
    )
    assert status == "paused"
    checkpoint = roundtrip(second.get_checkpoint())
    assert [p["stage_id"] for p in checkpoint["pauses"]] == [pauses["c1"]]
    assert len(charts.pair_model.calls) == 1  # the model waits for both answers
    assert charts.REFUNDS == []

    first = FlowChartExecutor(charts.pair)
    assert await first.resume(checkpoint, {"decision": "approve"}) == "completed"
    messages = first.get_state()["messages"]
    assert [m.get("tool_call_id") for m in messages if m["role"] == "tool"] == ["c1", "c2"]
    assert charts.REFUNDS == [("ORD-1", 900.0)]
    assert len(charts.pair_model.calls) == 2
    assert first.get_state()["answer"] == (
        "Done. A human approved this call. Result: refunded $900.00 on ORD-1 | "
        "A human rejected this call; it did not run. Reason: too small"
    )


async def test_parallel_pauses_can_be_answered_at_once() -> None:
    """answers={...} answers both pending calls in one resume."""
    executor = FlowChartExecutor(charts.pair)
    await executor.run({"prompt": "Refund both"})
    checkpoint = roundtrip(executor.get_checkpoint())
    answers = {p["stage_id"]: {"decision": "approve"} for p in checkpoint["pauses"]}
    resumed = FlowChartExecutor(charts.pair)
    assert await resumed.resume(checkpoint, answers=answers) == "completed"
    assert sorted(charts.REFUNDS) == [("ORD-1", 900.0), ("ORD-2", 40.0)]


async def test_model_call_ids_become_safe_unique_stage_names() -> None:
    """Ids with characters paths cannot hold, and ids the model repeats, still give each call
    its own stage path; the tool messages keep the ids the model gave."""
    model = ScriptedModel(
        [
            AssistantMessage(
                None,
                [
                    tool_call("refund_order", {"order_id": "ORD-1", "amount": 900}, id="a/b c"),
                    tool_call("refund_order", {"order_id": "ORD-2", "amount": 950}, id="a_b_c"),
                    tool_call("refund_order", {"order_id": "ORD-3", "amount": 990}, id="a_b_c"),
                ],
            ),
            echo_results,
        ]
    )
    chart = agent_chart(model, [refund_order])
    executor = FlowChartExecutor(chart)
    assert await executor.run({"prompt": "Refund all three"}) == "paused"
    checkpoint = roundtrip(executor.get_checkpoint())
    pauses = {p["data"]["tool_call_id"]: p["stage_id"] for p in checkpoint["pauses"]}
    assert pauses == {
        "a/b c": "tools[a_b_c]/approve_refund_order",
        "a_b_c": "tools[a_b_c_1]/approve_refund_order",
        "a_b_c_2": "tools[a_b_c_2]/approve_refund_order",
    }
    answers = {stage_id: {"decision": "approve"} for stage_id in pauses.values()}
    resumed = FlowChartExecutor(chart)
    assert await resumed.resume(checkpoint, answers=answers) == "completed"
    tool_ids = [m["tool_call_id"] for m in resumed.get_state()["messages"] if m["role"] == "tool"]
    assert tool_ids == ["a/b c", "a_b_c", "a_b_c_2"]


# -- limits and failures ---------------------------------------------------------


def looping_model() -> ScriptedModel:
    return ScriptedModel(
        [
            AssistantMessage(f"try {n}", [tool_call("lookup_order", {"order_id": "ORD-2"})])
            for n in range(10)
        ]
    )


async def test_max_turns_fails_the_run_with_a_turn_limit_error() -> None:
    """The model still calling tools in its max_turns-th reply fails the run; those tools don't run."""
    executor = FlowChartExecutor(agent_chart(looping_model(), [lookup_order], max_turns=3))
    with pytest.raises(StageError, match=r"AgentTurnLimitError: .*turn 3.*max_turns=3") as caught:
        await executor.run({"prompt": "loop"})
    assert isinstance(caught.value.__cause__, AgentTurnLimitError)
    assert caught.value.__cause__.max_turns == 3
    assert caught.value.stage_id == "model"
    messages = executor.get_state()["messages"]
    assert sum(m["role"] == "assistant" for m in messages) == 3
    assert sum(m["role"] == "tool" for m in messages) == 2


async def test_max_turns_can_stop_the_run_instead() -> None:
    """on_turn_limit="stop": completed, stop_reason max_turns, unrun calls answered "Not run"."""
    chart = agent_chart(looping_model(), [lookup_order], max_turns=2, on_turn_limit="stop")
    executor = FlowChartExecutor(chart)
    assert await executor.run({"prompt": "loop"}) == "completed"
    state = executor.get_state()
    assert state["stop_reason"] == "max_turns"
    assert state["answer"] is None
    assert state["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_2_0",
        "content": "Not run: the agent reached its limit of 2 turns.",
    }


async def test_a_tool_that_raises_gives_the_model_an_error_message() -> None:
    """A tool's exception becomes the tool message; the model carries on and the run completes."""
    model = ScriptedModel(
        [AssistantMessage(None, [tool_call("lookup_order", {"order_id": "ORD-404"})]), echo_results]
    )
    executor = FlowChartExecutor(agent_chart(model, [lookup_order]))
    assert await executor.run({"prompt": "Where is ORD-404?"}) == "completed"
    assert executor.get_state()["answer"] == (
        "Done. Error: lookup_order raised KeyError: 'ORD-404'"
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(
            tool_call("cancel_order", {"order_id": "ORD-1"}),
            "Error: there is no tool named 'cancel_order'; the tools are: lookup_order",
            id="unknown-tool",
        ),
        pytest.param(
            tool_call("lookup_order", '{"order_id": "ORD-1"'),
            "Error: the arguments of lookup_order are not valid JSON",
            id="not-json",
        ),
        pytest.param(
            tool_call("lookup_order", "[1, 2]"),
            "Error: the arguments of lookup_order must be a JSON object, not list",
            id="not-an-object",
        ),
        pytest.param(
            tool_call("lookup_order", {"id": "ORD-1"}),
            "Error: invalid arguments for lookup_order: order_id: Field required; "
            "id: Extra inputs are not permitted",
            id="wrong-arguments",
        ),
    ],
)
async def test_a_malformed_call_is_returned_to_the_model(call: Any, error: str) -> None:
    """Unknown tool, non-JSON or ill-fitting arguments: the model reads why, the run goes on."""
    model = ScriptedModel([AssistantMessage(None, [call]), echo_results])
    executor = FlowChartExecutor(agent_chart(model, [lookup_order]))
    assert await executor.run({"prompt": "go"}) == "completed"
    [content] = tool_messages(executor.get_state()["messages"]).values()
    assert content.startswith(error)


async def test_a_malformed_approval_call_is_refused_without_asking_anyone() -> None:
    """Invalid arguments to a tool needing approval go back to the model; no pause."""
    model = ScriptedModel(
        [AssistantMessage(None, [tool_call("refund_order", {"order_id": "ORD-1"})]), echo_results]
    )
    executor = FlowChartExecutor(agent_chart(model, [refund_order]))
    assert await executor.run({"prompt": "go"}) == "completed"
    assert "amount: Field required" in executor.get_state()["answer"]


async def test_a_script_that_runs_out_fails_the_run_clearly() -> None:
    """More turns than replies: StageError caused by ScriptExhaustedError."""
    model = ScriptedModel(
        [AssistantMessage(None, [tool_call("lookup_order", {"order_id": "ORD-2"})])]
    )
    executor = FlowChartExecutor(agent_chart(model, [lookup_order]))
    with pytest.raises(StageError, match="has 1 replies and was asked for reply 2") as caught:
        await executor.run({"prompt": "go"})
    assert isinstance(caught.value.__cause__, ScriptExhaustedError)


# -- sync and async tools, concurrency ---------------------------------------------


async def test_sync_and_async_tools_of_one_turn_run_concurrently() -> None:
    """Calls of one turn run at once: two async tools that wait for each other both finish."""
    import asyncio

    both = asyncio.Event()
    arrived: list[str] = []

    @tool
    async def meet(name: str) -> str:
        """Wait until both callers arrived."""
        arrived.append(name)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 5)
        return f"{name} met"

    @tool
    def shout(text: str) -> str:
        """Shout."""
        return text.upper()

    model = ScriptedModel(
        [
            AssistantMessage(
                None,
                [
                    tool_call("meet", {"name": "a"}),
                    tool_call("meet", {"name": "b"}),
                    tool_call("shout", {"text": "hi"}),
                ],
            ),
            echo_results,
        ]
    )
    executor = FlowChartExecutor(agent_chart(model, [meet, shout]))
    assert await executor.run({"prompt": "go"}) == "completed"
    assert executor.get_state()["answer"] == "Done. a met | b met | HI"


# -- set-up mistakes -----------------------------------------------------------------


def test_duplicate_tool_names_are_refused() -> None:
    """Two tools with one name: AgentSetupError at build time."""
    with pytest.raises(AgentSetupError, match="two tools are named 'lookup_order'"):
        agent_chart(ScriptedModel([]), [lookup_order, tool(lookup_order.fn)])


def test_max_turns_below_one_is_refused() -> None:
    """max_turns=0 cannot run a single turn."""
    with pytest.raises(AgentSetupError, match="max_turns must be at least 1"):
        agent_chart(ScriptedModel([]), [], max_turns=0)


def test_a_model_without_complete_is_refused() -> None:
    """Passing something that is not a ChatModel is caught when the chart is built."""
    with pytest.raises(AgentSetupError, match="has no complete"):
        agent_chart(object(), [])  # type: ignore[arg-type]


def test_plain_functions_become_tools_and_the_chart_is_stable() -> None:
    """A plain function is wrapped; the same tools give the same fingerprint in every build."""

    def add(a: int, b: int) -> int:
        return a + b

    one = agent_chart(ScriptedModel([]), [add, refund_order, ask_human])
    two = agent_chart(ScriptedModel([]), [add, refund_order, ask_human])
    assert one.fingerprint == two.fingerprint
    assert one.find_stage("tools[call_3_1]/approve_refund_order") is not None
    assert one.find_stage("tools[0]/ask") is not None


async def test_approval_can_depend_on_the_arguments() -> None:
    """requires_approval=rule: small refunds run at once, a large one waits for a person."""
    made: list[float] = []

    @tool(requires_approval=lambda args: args["amount"] > 100)
    def refund(order_id: str, amount: float) -> str:
        """Refund."""
        made.append(amount)
        return "ok"

    model = ScriptedModel(
        [
            AssistantMessage(
                None,
                [
                    tool_call("refund", {"order_id": "A", "amount": 20}),
                    tool_call("refund", {"order_id": "B", "amount": 500}),
                ],
            ),
            echo_results,
        ]
    )
    chart = agent_chart(model, [refund])
    executor = FlowChartExecutor(chart)
    assert await executor.run({"prompt": "refund"}) == "paused"
    checkpoint = roundtrip(executor.get_checkpoint())
    assert [p["stage_id"] for p in checkpoint["pauses"]] == ["tools[call_1_1]/approve_refund"]
    assert made == [20.0]
    resumed = FlowChartExecutor(chart)
    assert await resumed.resume(checkpoint, {"decision": "approve"}) == "completed"
    assert made == [20.0, 500.0]
    assert resumed.get_state()["answer"] == "Done. ok | A human approved this call. Result: ok"
