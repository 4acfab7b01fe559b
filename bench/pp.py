"""pausepoint: the chart built once, a fresh executor for every run and every resume.

Runs are awaited inside one event loop (``await executor.run(...)``), as a
server would; the ``run_sync`` rows show what code without a loop pays on top
(driving the one event loop its thread keeps, from outside it). The full trace is always on: every stage adds a
node with its reads, writes and time to the execution tree.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pausepoint import FlowChart, FlowChartExecutor, PausableHandler, flow_chart

from .harness import Case
from .scenarios import (
    REFUND_ANSWER,
    REFUND_FINAL_STATUS,
    REFUND_INPUT,
    REFUND_QUESTION,
    expect,
    risk_of,
)

NAME = "pausepoint"


# -- S1: linear chain ------------------------------------------------------


def _step(scope: Any) -> None:
    scope.x = scope.x + 1


async def _async_step(scope: Any) -> None:
    scope.x = scope.x + 1


def _chain(n: int, step: Any) -> FlowChart:
    builder = flow_chart("s0", step, "s0")
    for i in range(1, n):
        builder.add_function(f"s{i}", step, f"s{i}")
    return builder.build()


def chain_case(n: int, *, async_stages: bool = False) -> Case:
    chart = _chain(n, _async_step if async_stages else _step)

    async def run() -> FlowChartExecutor:
        executor = FlowChartExecutor(chart)
        await executor.run(input={"x": 0})
        return executor

    executor = asyncio.run(run())
    expect(executor.status == "completed", "pausepoint chain completes")
    expect(executor.get_state()["x"] == n, f"pausepoint chain of {n} ends with x == {n}")
    expect(len(executor.get_snapshot()["execution_tree"]) == n, "the trace has every stage")
    return Case(run)


# -- S2: refund chart ------------------------------------------------------


def _receive(scope: Any) -> None:
    scope.status = "received" if scope.order_id else "invalid"


def _approve_execute(scope: Any) -> dict[str, Any] | None:
    amount = scope.amount
    scope.risk_level = risk_of(amount)
    if amount > 100:
        return {"question": f"Approve ${amount} refund?", "risk_level": scope.risk_level}
    return None


def _approve_resume(scope: Any, answer: dict[str, Any]) -> None:
    scope.approved = answer["approved"]
    scope.approver = answer["approver"]


def _process(scope: Any) -> None:
    scope.status = "refunded" if scope.approved else "rejected"


def refund_chart() -> FlowChart:
    return (
        flow_chart("ReceiveRequest", _receive, "receive")
        .add_pausable_function(
            "ManagerApproval",
            PausableHandler(execute=_approve_execute, resume=_approve_resume),
            "approve",
            "Pause for manager review",
        )
        .add_function("ProcessRefund", _process, "process")
        .build()
    )


_CHART = refund_chart()


async def _run_to_pause() -> str:
    executor = FlowChartExecutor(_CHART)
    await executor.run(input=REFUND_INPUT)
    return json.dumps(executor.get_checkpoint())


async def _resume(saved: str) -> FlowChartExecutor:
    executor = FlowChartExecutor(_CHART)
    await executor.resume(json.loads(saved), REFUND_ANSWER)
    return executor


def _run_to_pause_sync() -> str:
    executor = FlowChartExecutor(_CHART)
    executor.run_sync(input=REFUND_INPUT)
    return json.dumps(executor.get_checkpoint())


def _resume_sync(saved: str) -> FlowChartExecutor:
    executor = FlowChartExecutor(_CHART)
    executor.resume_sync(json.loads(saved), REFUND_ANSWER)
    return executor


async def _run_to_pause_fresh() -> str:
    executor = FlowChartExecutor(refund_chart())
    await executor.run(input=REFUND_INPUT)
    return json.dumps(executor.get_checkpoint())


def refund_pause_case(*, sync_entry: bool = False, fresh_chart: bool = False) -> Case:
    """Run → pause; ``fresh_chart``: the chart is built inside each call, as a new process has it."""
    saved = json.loads(asyncio.run(_run_to_pause()))
    expect(saved["pause_data"]["question"] == REFUND_QUESTION, "pausepoint refund pauses")
    if fresh_chart:
        return Case(_run_to_pause_fresh)
    return Case(_run_to_pause_sync if sync_entry else _run_to_pause)


def refund_resume_case(*, sync_entry: bool = False, fresh_chart: bool = False) -> Case:
    """Resume → done; ``fresh_chart``: the chart is built inside each call."""
    saved = asyncio.run(_run_to_pause())
    done = asyncio.run(_resume(saved))
    expect(done.status == "completed", "pausepoint refund completes")
    expect(done.get_state()["status"] == REFUND_FINAL_STATUS, "pausepoint refund is refunded")
    if sync_entry:
        return Case(lambda: _resume_sync(saved))

    async def resume() -> FlowChartExecutor:
        if fresh_chart:
            executor = FlowChartExecutor(refund_chart())
            await executor.resume(json.loads(saved), REFUND_ANSWER)
            return executor
        return await _resume(saved)

    return Case(resume)


def refund_checkpoint_bytes() -> tuple[int, str]:
    """Size of the saved JSON, and what was counted."""
    return len(asyncio.run(_run_to_pause()).encode()), "len(json.dumps(checkpoint))"
