"""Parallel for-each: order, concurrency, per-item state, failures, and items that pause.

The batch of 100 invoices, 30 of which wait for a person, is the chart of
``controls_child.py``; its stages log their side effects to a file, so the
tests count them across resumes and processes.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import controls_child
from _charts import Log, checkpoint_of, resume_fresh, roundtrip, run_fresh
from _processes import release_together
from controls_child import answer_for, batch, batch_items, item_of
from pausepoint import (
    CheckpointFormatError,
    FlowChartExecutor,
    PausableHandler,
    Runs,
    Scope,
    StageError,
    flow_chart,
    open_store,
)
from stores.support import DURABLE, fresh_store_url

CHILD = str(Path(controls_child.__file__))


def side_effects(side_log: Path, run_id: str) -> Counter[str]:
    """How often each side effect was logged for ``run_id``."""
    found: Counter[str] = Counter()
    if side_log.exists():
        for line in side_log.read_text().splitlines():
            rid, _, what = line.partition(" ")
            if rid == run_id:
                found[what] += 1
    return found


def foreach(body: Any, *, concurrency: int | None = None) -> Any:
    return (
        flow_chart("Load", Log().stage("load"), "load")
        .add_for_each(
            "batch", "items", body, "Batch", concurrency=concurrency, results_key="results"
        )
        .build()
    )


# -- running items -------------------------------------------------------------------


async def test_results_are_collected_in_item_order() -> None:
    """Items finish in any order; results follow the items' order."""

    async def double(scope: Scope) -> None:
        await asyncio.sleep((10 - scope.index) * 0.002)  # later items finish first
        scope.result = scope.item * 2

    executor = await run_fresh(foreach(double), {"items": list(range(10))})
    assert executor.status == "completed"
    assert executor.get_state()["results"] == [n * 2 for n in range(10)]
    narrative = executor.get_narrative()
    assert "Batch ran for 10 items." in narrative
    assert narrative[-1] == "Batch collected 10 results into results."


@pytest.mark.parametrize(("concurrency", "expected"), [(3, 3), (1, 1), (None, 12)])
async def test_concurrency_bound_is_respected(concurrency: int | None, expected: int) -> None:
    """At most ``concurrency`` items run at once; without it, all of them."""
    running = 0
    highest = 0

    async def body(scope: Scope) -> None:
        nonlocal running, highest
        running += 1
        highest = max(highest, running)
        await asyncio.sleep(0.01)
        running -= 1
        scope.result = scope.index

    executor = await run_fresh(foreach(body, concurrency=concurrency), {"items": list(range(12))})
    assert executor.get_state()["results"] == list(range(12))
    assert highest == expected


async def test_each_item_has_its_own_state() -> None:
    """An item sees only ``item`` and ``index``; its keys never reach the chart's state or another item."""
    seen: list[tuple[Any, Any]] = []

    def first(scope: Scope) -> None:
        seen.append((scope.get("secret"), scope.get("scratch")))
        scope.scratch = scope.item["name"]

    async def second(scope: Scope) -> None:
        await asyncio.sleep(0.001 * scope.index)
        scope.result = f"{scope.index}:{scope.scratch}"

    body = flow_chart("First", first, "first").add_function("Second", second, "second").build()
    items = [{"name": name} for name in ("a", "b", "c")]
    executor = await run_fresh(foreach(body), {"items": items, "secret": "s3cr3t"})
    state = executor.get_state()
    assert state["results"] == ["0:a", "1:b", "2:c"]
    assert seen == [(None, None)] * 3
    assert set(state) == {"items", "secret", "results"}
    assert [node["id"] for node in executor.get_snapshot()["execution_tree"][1]["children"]] == [
        "batch[0]",
        "batch[1]",
        "batch[2]",
    ]


async def test_a_failing_item_fails_the_for_each_naming_the_item() -> None:
    """An item that raises is a StageError with the item's path; the other items still finish."""
    finished: list[int] = []

    async def body(scope: Scope) -> None:
        await asyncio.sleep(0.001)
        if scope.item == 3:
            raise ValueError("bad invoice")
        finished.append(scope.item)
        scope.result = scope.item

    executor = FlowChartExecutor(foreach(body))
    with pytest.raises(
        StageError, match=r"stage 'batch\[3\]/each' \(Batch\) raised: ValueError: bad invoice"
    ) as info:
        await executor.run({"items": list(range(6))})
    assert info.value.stage_id == "batch[3]/each"
    assert sorted(finished) == [0, 1, 2, 4, 5]
    tree = executor.get_snapshot()["execution_tree"]
    assert tree[1]["status"] == "failed"
    assert tree[1]["children"][3]["status"] == "failed"
    assert "results" not in executor.get_state()
    assert "Batch failed: ValueError: bad invoice." in executor.get_narrative()


async def test_items_key_must_hold_a_list() -> None:
    """A missing or non-list items key is a StageError naming key and type; an empty list gives no results."""
    with pytest.raises(StageError, match="needs a list in state key 'items', found dict"):
        await run_fresh(foreach(Log().stage("x")), {"items": {"a": 1}})
    executor = await run_fresh(foreach(Log().stage("x")), {"items": []})
    assert executor.get_state()["results"] == []


async def test_an_item_without_result_gives_none() -> None:
    """An item that leaves no ``result`` contributes ``None``."""
    executor = await run_fresh(foreach(Log().stage("x", other=1)), {"items": [1, 2]})
    assert executor.get_state()["results"] == [None, None]


# -- items that pause ------------------------------------------------------------------


async def test_100_items_30_pausing_answered_one_by_one_in_random_order(tmp_path: Path) -> None:
    """Every answer goes through JSON into a fresh executor; each item's after-pause work runs once."""
    side_log = tmp_path / "side.log"
    items = batch_items(str(side_log))
    reviewed = sorted(item["n"] for item in items if item["review"])
    chart = batch()
    executor = await run_fresh(chart, {"items": items}, run_id="b1")
    checkpoint = checkpoint_of(executor)
    pending = [pause["stage_id"] for pause in checkpoint["pauses"]]
    assert len(pending) == 30
    assert sorted(item_of(stage_id) for stage_id in pending) == reviewed
    assert all(stage_id == f"invoices[{item_of(stage_id)}]/check" for stage_id in pending)
    pause_ids = {pause["stage_id"]: pause["pause_id"] for pause in checkpoint["pauses"]}
    assert checkpoint["pauses"][0]["data"]["question"].startswith("Approve invoice ")
    after_first_run = side_effects(side_log, "b1")
    assert after_first_run == Counter({f"after:{n}": 1 for n in range(100) if n not in reviewed})

    order = pending[:]
    random.Random(1).shuffle(order)
    for answered, stage_id in enumerate(order, start=1):
        executor = await resume_fresh(
            chart, checkpoint, answer_for(stage_id, "kim"), stage_id=stage_id
        )
        if answered < len(order):
            checkpoint = checkpoint_of(executor)
            left = {pause["stage_id"]: pause["pause_id"] for pause in checkpoint["pauses"]}
            assert len(left) == 30 - answered
            assert all(pause_ids[stage_id] == pause_id for stage_id, pause_id in left.items())
    assert executor.status == "completed"

    found = side_effects(side_log, "b1")
    assert found == Counter(
        {f"after:{n}": 1 for n in range(100)} | {f"answer:{n}": 1 for n in reviewed}
    )
    state = executor.get_state()
    results = state["results"]
    assert [result["n"] for result in results] == list(range(100))
    for result in results:
        expected = answer_for(f"x[{result['n']}]", "kim") if result["n"] in reviewed else None
        assert result["approved"] == (expected["approved"] if expected else True)
        assert result["approver"] == (expected["approver"] if expected else None)
    assert state["approved_count"] == sum(1 for result in results if result["approved"])
    narrative = executor.get_narrative()
    assert narrative.count('Check paused: "Approve invoice 0?"') <= 1
    assert sum(1 for line in narrative if line.startswith("Check paused")) == 30
    assert "Invoices collected 100 results into results." in narrative
    assert narrative[-1] == "Total wrote approved_count."
    metrics = executor.get_metrics()
    assert (metrics["pause_count"], metrics["resume_count"]) == (30, 30)


async def test_several_items_answered_in_one_resume(tmp_path: Path) -> None:
    """``answers={stage_id: input}`` answers many items at once; the rest stay pending."""
    side_log = tmp_path / "side.log"
    chart = batch(concurrency=None)
    executor = await run_fresh(chart, {"items": batch_items(str(side_log))}, run_id="b2")
    pending = [pause["stage_id"] for pause in checkpoint_of(executor)["pauses"]]
    first, rest = pending[:20], pending[20:]
    executor = await resume_fresh(
        chart, checkpoint_of(executor), answers={s: answer_for(s, "a") for s in first}
    )
    assert sorted(p["stage_id"] for p in checkpoint_of(executor)["pauses"]) == sorted(rest)
    executor = await resume_fresh(
        chart, checkpoint_of(executor), answers={s: answer_for(s, "b") for s in rest}
    )
    assert executor.status == "completed"
    assert len(executor.get_state()["results"]) == 100
    assert set(side_effects(side_log, "b2").values()) == {1}


# -- keyed items ------------------------------------------------------------------------


def keyed(key: Any) -> Any:
    """Orders whose items are named by their ``sku``; ``ask`` pauses when an item says so."""

    def ask(scope: Scope) -> Any:
        return {"question": f"Ship {scope.item['sku']}?"} if scope.item.get("ask") else None

    def answered(scope: Scope, answer: Any) -> None:
        scope.result = f"{scope.item['sku']}:{answer['ok']}"

    def done(scope: Scope) -> None:
        scope.result = scope.get("result") or scope.item["sku"]

    body = (
        flow_chart("Ask", PausableHandler(ask, answered), "ask")
        .add_function("Done", done, "done")
        .build()
    )
    return (
        flow_chart("Load", Log().stage("load"), "load")
        .add_for_each("lines", "items", body, "Lines", key=key, results_key="results")
        .build()
    )


ORDER = [{"sku": "A-1", "ask": True}, {"sku": "B-2"}, {"sku": "C.3", "ask": True}]


@pytest.mark.parametrize("key", ["sku", lambda item: item["sku"]], ids=["field", "function"])
async def test_keyed_items_pause_under_their_key_and_resume_in_any_order(key: Any) -> None:
    """With ``key=``, item paths use the key; answers by path in reverse order; results keep item order."""
    chart = keyed(key)
    executor = await run_fresh(chart, {"items": ORDER})
    checkpoint = checkpoint_of(executor)
    assert [p["stage_id"] for p in checkpoint["pauses"]] == ["lines[A-1]/ask", "lines[C.3]/ask"]
    tree = checkpoint["execution_tree"][1]["children"]
    assert [node["id"] for node in tree] == ["lines[A-1]", "lines[B-2]", "lines[C.3]"]
    assert chart.find_stage("lines[C.3]/ask") is chart.find_stage("lines/ask")
    executor = await resume_fresh(chart, checkpoint, {"ok": "yes"}, stage_id="lines[C.3]/ask")
    checkpoint = checkpoint_of(executor)
    assert [p["stage_id"] for p in checkpoint["pauses"]] == ["lines[A-1]/ask"]
    executor = await resume_fresh(chart, checkpoint, {"ok": "no"}, stage_id="lines[A-1]/ask")
    assert executor.status == "completed"
    assert executor.get_state()["results"] == ["A-1:no", "B-2", "C.3:yes"]


def test_keyed_and_positional_for_each_have_different_fingerprints() -> None:
    """Keys change stage paths, so a checkpoint of one never resumes on the other."""
    assert keyed("sku").fingerprint != keyed(None).fingerprint
    assert keyed("sku").fingerprint == keyed(lambda item: item["sku"]).fingerprint


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ([{"sku": "A"}, {"sku": "A"}], "item 1: its key 'A' is item 0's key too"),
        ([{"sku": "A"}, {"sku": "a/b"}], "item 1: its key 'a/b' is not 1 to 100 of"),
        ([{"sku": ""}], "item 0: its key '' is not 1 to 100 of"),
        ([{"sku": "A"}, {"name": "x"}], "item 1: its key function raised KeyError"),
    ],
    ids=["duplicate", "slash", "empty", "missing"],
)
async def test_bad_item_keys_fail_the_for_each_naming_the_item(
    items: list[Any], problem: str
) -> None:
    """A duplicate, unusable or missing key is a StageError naming the for-each and the item."""
    executor = FlowChartExecutor(keyed("sku"))
    with pytest.raises(StageError, match=re.escape(f"for-each 'lines' (Lines): {problem}")) as info:
        await executor.run({"items": items})
    assert info.value.stage_id == "lines"
    assert executor.get_snapshot()["execution_tree"][1]["status"] == "failed"


async def test_a_keyed_item_path_that_was_tampered_with_is_refused() -> None:
    """A checkpoint whose item record no longer names an item of the for-each is malformed."""
    chart = keyed("sku")
    checkpoint = checkpoint_of(await run_fresh(chart, {"items": ORDER}))
    renamed = roundtrip(checkpoint)
    renamed["execution_tree"][1]["children"][0]["id"] = "other[A-1]"
    with pytest.raises(CheckpointFormatError, match=r"does not point at item 0 of 'lines'"):
        await resume_fresh(chart, renamed, {"ok": "yes"}, stage_id="lines[A-1]/ask")
    swapped = roundtrip(checkpoint)  # item 0's frame pointing at item 2's record
    swapped["continuation"]["node"]["items"]["0"]["t"] = 2
    with pytest.raises(CheckpointFormatError, match=r"items\.0\.t' does not point at item 0"):
        await resume_fresh(chart, swapped, {"ok": "yes"}, stage_id="lines[A-1]/ask")
    executor = await resume_fresh(chart, checkpoint, {"ok": "yes"}, stage_id="lines[A-1]/ask")
    assert executor.status == "paused"  # the checkpoint as it was still resumes


# -- through Runs, from two processes ------------------------------------------------------


@pytest.fixture(params=DURABLE)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_store_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[Runs]:
    async with Runs(open_store(store_url), controls_child.charts()) as opened:
        yield opened


async def test_runs_inbox_and_answers_from_two_processes(
    runs: Runs, store_url: str, tmp_path: Path
) -> None:
    """The inbox lists the 30 pauses; two processes answer them in random order, each exactly once."""
    side_log = tmp_path / "side.log"
    items = batch_items(str(side_log))
    record = await runs.start("batch", {"items": items}, run_id="batch-1", actor="api")
    assert record.status == "paused"
    assert len(record.pauses) == 30

    first = await runs.pending(chart="batch", limit=20)
    second = await runs.pending(chart="batch", limit=20, cursor=first.next_cursor)
    inbox = [entry.pause.stage_id for entry in [*first.items, *second.items]]
    assert len(inbox) == len(set(inbox)) == 30
    assert second.next_cursor is None
    assert sorted(inbox) == sorted(pause.stage_id for pause in record.pauses)

    order = inbox[:]
    random.Random(2).shuffle(order)
    halves = {"p0": order[::2], "p1": order[1::2]}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            CHILD,
            "answer",
            store_url,
            name,
            "batch-1",
            *stage_ids,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for name, stage_ids in halves.items()
    ]
    reports = await release_together(children, seconds=240)
    assert [child.returncode for child in children] == [0, 0]
    assert [sorted(report["answered"]) for report in reports] == [
        sorted(halves["p0"]),
        sorted(halves["p1"]),
    ]

    done = await runs.get("batch-1")
    assert done.status == "completed"
    assert not (await runs.pending(chart="batch")).items
    resumed = [event for event in done.audit if event.kind == "resumed"]
    assert Counter(event.data["stage_id"] for event in resumed) == Counter(inbox)
    assert {event.actor for event in resumed} == {"p0", "p1"}
    reviewed = sorted(item["n"] for item in items if item["review"])
    assert side_effects(side_log, "batch-1") == Counter(
        {f"after:{n}": 1 for n in range(100)} | {f"answer:{n}": 1 for n in reviewed}
    )
    assert done.snapshot is not None
    results = done.snapshot["shared_state"]["results"]
    assert [result["n"] for result in results] == list(range(100))
    by_stage = {item_of(event.data["stage_id"]): event.actor for event in resumed}
    for result in results:
        if result["n"] in by_stage:
            assert result == {
                "n": result["n"],
                **answer_for(f"x[{result['n']}]", str(by_stage[result["n"]])),
            }
        else:
            assert result == {"n": result["n"], "approved": True, "approver": None}
