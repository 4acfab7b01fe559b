"""Durable runs v2 in one process: the journal, history, durability, and a claim that holds.

The cross-process checks (sweepers in other processes, kill -9, SIGSTOP, Celery)
are in ``tests/durable/``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pausepoint import (
    FlowChart,
    PausableHandler,
    RunExistsError,
    Runs,
    Scope,
    flow_chart,
    open_store,
)
from pausepoint.demo import chart as refund
from stores.support import fresh_store_url

DURABLE_AND_MEMORY = ["memory", "sqlite", "postgres", "redis"]


@pytest.fixture(params=DURABLE_AND_MEMORY)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with fresh_store_url(request.param, tmp_path) as url:
        yield url


async def test_history_lists_each_stage_pause_and_answer(url: str) -> None:
    async with Runs(open_store(url), {"refund": refund}) as runs:
        rec = await runs.start("refund", {"order_id": "ORD-1", "amount": 900})
        assert [(s.index, s.kind, s.stage_id) for s in await runs.history(rec.run_id)] == [
            (0, "stage", "receive"),
            (1, "paused", "approve"),
        ]
        await runs.resume(rec.run_id, {"approved": True, "approver": "Kim"}, actor="kim")
        steps = await runs.history(rec.run_id)
    assert [(s.kind, s.stage_id, s.actor) for s in steps] == [
        ("stage", "receive", None),
        ("paused", "approve", None),
        ("resumed", "approve", "kim"),
        ("stage", "process", None),
        ("stage", "notify", None),
    ]
    assert [s.index for s in steps] == [0, 1, 2, 3, 4]
    assert all(a.at <= b.at for a, b in itertools.pairwise(steps))


def growing_chart(turns: int) -> FlowChart:
    """A loop that adds a message to a conversation every turn."""

    def start(scope: Scope) -> None:
        scope.messages = []
        scope.turn = 0

    def talk(scope: Scope) -> None:
        scope.messages = [*scope.messages, {"role": "tool", "content": "x" * 200}]
        scope.turn += 1

    def check(scope: Scope) -> None:
        if scope.turn >= turns:
            scope.break_loop()

    return (
        flow_chart("Start", start, "start")
        .add_function("Talk", talk, "talk")
        .add_function("Check", check, "check")
        .loop_to("talk")
        .build()
    )


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
async def test_a_growing_conversation_is_journalled_once_not_per_stage(url: str) -> None:
    """Each message is written about once: the journal holds what changed, not the state."""
    async with Runs(open_store(url), {"talk": growing_chart(60)}) as runs:
        rec = await runs.start("talk", {})
        assert rec.status == "completed"
        journal = await runs.store.journal(rec.run_id)
    assert len(journal) == 1 + 2 * 60  # start, then talk and check each turn
    entries = [json.dumps(dict(e.data)) for e in journal]
    assert sum(entry.count("x" * 200) for entry in entries) == 60  # each message once
    final = len(json.dumps(rec.snapshot))
    written = sum(map(len, entries)) + final
    assert written < 3 * final, (written, final)


def crashing_chart(log: list[str], crash: dict[str, bool]) -> FlowChart:
    """receive → ask (pausable) → a → b → c; ``b`` cancels its task once (a process dying)."""

    def stage(name: str) -> Any:
        async def run(scope: Scope) -> None:
            log.append(name)
            if name == "b" and crash.pop("b", False):
                raise asyncio.CancelledError  # the process goes away mid-stage
            scope[name] = True

        return run

    def ask(scope: Scope) -> dict[str, str]:
        log.append("ask")
        return {"question": "go?"}

    def answer(scope: Scope, given: Any) -> None:
        log.append("answer")
        scope.answer = given

    return (
        flow_chart("Receive", stage("receive"), "receive")
        .add_pausable_function("Ask", PausableHandler(ask, answer), "ask")
        .add_function("A", stage("a"), "a")
        .add_function("B", stage("b"), "b")
        .add_function("C", stage("c"), "c")
        .build()
    )


@pytest.mark.parametrize(
    ("durability", "again"),
    [
        ("stage", ["b"]),  # only the stage in flight runs again
        ("pause", ["answer", "a", "b"]),  # every stage since the claim runs again
    ],
)
@pytest.mark.parametrize("url", ["sqlite", "postgres", "redis"], indirect=True)
async def test_recovery_repeats_what_the_durability_did_not_keep(
    url: str, durability: Any, again: list[str]
) -> None:
    log: list[str] = []
    chart = crashing_chart(log, {"b": True})
    dead = Runs(open_store(url), {"c": chart}, lease_seconds=30, durability=durability)
    rec = await dead.start("c", {})
    with pytest.raises(asyncio.CancelledError):
        await dead.resume(rec.run_id, {"ok": True}, actor="kim")
    await dead.aclose()
    assert log == ["receive", "ask", "answer", "a", "b"]
    async with Runs(open_store(url), {"c": chart}, durability=durability) as runs:
        assert await runs.recover() == []  # the lease has not lapsed
        assert await runs.recover(now=time.time() + 31) == [rec.run_id]
        done = await runs.get(rec.run_id)
    assert done.status == "completed"
    assert log == ["receive", "ask", "answer", "a", "b", *again, "c"]
    assert done.snapshot is not None
    state = done.snapshot["shared_state"]
    assert state["answer"] == {"ok": True}
    assert {state["a"], state["b"], state["c"]} == {True}
    assert [e.kind for e in done.audit] == [
        "started",
        "paused",
        "resumed",
        "recovered",
        "completed",
    ]


@pytest.mark.parametrize("url", ["sqlite", "postgres", "redis"], indirect=True)
async def test_a_stage_that_blocks_the_loop_keeps_its_claim(url: str) -> None:
    """A sync stage blocks the event loop past the lease; the lease thread keeps the claim.

    Another Runs, on its own loop in another thread (as another process would), sweeps
    all the while and finds nothing stale.
    """
    ran: Counter[str] = Counter()

    def block(scope: Scope) -> None:
        ran["block"] += 1
        time.sleep(3.0)  # 5 leases, without ever yielding to the loop

    chart = flow_chart("Block", block, "block").build()
    taken: list[str] = []
    stop = threading.Event()

    def sweeper() -> None:
        async def sweep() -> None:
            async with Runs(open_store(url), {"b": chart}, lease_seconds=0.6) as other:
                while not stop.is_set():
                    taken.extend(await other.recover())
                    await asyncio.sleep(0.1)

        asyncio.run(sweep())

    thread = threading.Thread(target=sweeper)
    thread.start()
    try:
        async with Runs(open_store(url), {"b": chart}, lease_seconds=0.6) as runs:
            rec = await runs.start("b", {})
    finally:
        stop.set()
        thread.join(timeout=30)
    assert rec.status == "completed"
    assert taken == []
    assert ran == {"block": 1}
    assert [e.kind for e in rec.audit] == ["started", "completed"]


@pytest.mark.parametrize("url", ["memory", "sqlite"], indirect=True)
async def test_a_running_run_reads_as_of_its_last_finished_stage(url: str) -> None:
    release = asyncio.Event()
    reached = asyncio.Event()

    def first(scope: Scope) -> None:
        scope.first = "done"

    async def wait(scope: Scope) -> None:
        reached.set()
        await release.wait()
        scope.second = "done"

    chart = flow_chart("First", first, "first").add_function("Wait", wait, "wait").build()
    async with Runs(open_store(url), {"w": chart}) as runs:
        started = asyncio.create_task(runs.start("w", {"n": 1}, run_id="r"))
        await asyncio.wait_for(reached.wait(), 30)
        live = await runs.get("r")
        release.set()
        done = await started
    assert live.status == "running"
    assert live.snapshot is not None
    assert live.snapshot["shared_state"] == {"n": 1, "first": "done"}
    assert [node["id"] for node in live.snapshot["execution_tree"]] == ["first"]
    assert done.snapshot is not None
    assert done.snapshot["shared_state"] == {"n": 1, "first": "done", "second": "done"}


@pytest.mark.parametrize("url", ["memory", "sqlite"], indirect=True)
async def test_with_durability_pause_a_new_run_is_written_when_it_pauses(url: str) -> None:
    """One write for a start; a taken run id is found then, and the first run is untouched."""
    async with Runs(open_store(url), {"refund": refund}, durability="pause") as runs:
        rec = await runs.start("refund", {"order_id": "ORD-1", "amount": 900}, run_id="r1")
        assert rec.status == "paused"
        assert [e.kind for e in rec.audit] == ["started", "paused"]
        assert [e.seq for e in rec.audit] == [1, 2]
        assert rec.audit == (await runs.get("r1")).audit
        assert [s.kind for s in await runs.history("r1")] == ["paused"]
        with pytest.raises(RunExistsError, match="durability='pause'"):
            await runs.start("refund", {"order_id": "ORD-2", "amount": 900}, run_id="r1")
        again = await runs.get("r1")
        assert again.snapshot is not None
        assert again.snapshot["shared_state"]["order_id"] == "ORD-1"
        done = await runs.resume("r1", {"approved": True, "approver": "Kim"}, actor="kim")
        assert done.status == "completed"
        assert [s.kind for s in await runs.history("r1")] == ["paused", "resumed"]
