"""Charts of test_controls.py and test_foreach.py, and the child process their cross-process tests start.

Stages record side effects as one line ``"<run_id> <what>"`` appended (one
``write`` with ``O_APPEND``) to a log file, so the tests count executions
across processes: the ``slow`` chart takes the file from its ``side_log``
input, the ``batch`` chart's items carry it (an item sees only its own state).

Usage: ``python controls_child.py COMMAND URL [ARGS...]``

``start URL RUN_ID SIDE_LOG``
    Start a ``slow`` run with id RUN_ID and drive it; print its final status.
``answer URL NAME RUN_ID STAGE_ID...``
    Print "ready", wait for a line on stdin, then answer each paused item
    STAGE_ID of RUN_ID once, retrying while another process holds the run;
    print one JSON line ``{"answered": [...], "claimed": N}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from typing import Any

from pausepoint import FlowChart, PausableHandler, Runs, Scope, flow_chart, open_store
from pausepoint.errors import RunAlreadyClaimedError

SLOW_STAGES = 40
SLOW_SECONDS = 0.05


def record(path: str, run_id: str, what: str) -> None:
    """Append ``"<run_id> <what>"`` to the log at ``path`` in one write."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{run_id} {what}\n".encode())
    finally:
        os.close(fd)


# -- slow: a run to cancel while it runs ------------------------------------------


def _slow_step(n: int) -> Any:
    async def step(scope: Scope) -> None:
        await asyncio.sleep(SLOW_SECONDS)
        record(scope.side_log, scope.run_id, f"step{n}")
        scope[f"step{n}"] = True

    return step


def slow() -> FlowChart:
    """``SLOW_STAGES`` async stages, each sleeping ``SLOW_SECONDS`` and recording itself."""
    builder = flow_chart("Step0", _slow_step(0), "step0")
    for n in range(1, SLOW_STAGES):
        builder.add_function(f"Step{n}", _slow_step(n), f"step{n}")
    return builder.build()


# -- batch: a for-each whose items may pause --------------------------------------


def _check_execute(scope: Scope) -> Any:
    item = scope.item
    if item["review"]:
        return {"question": f"Approve invoice {item['n']}?", "n": item["n"]}
    return None


def _check_resume(scope: Scope, answer: Any) -> None:
    record(scope.item["log"], scope.run_id, f"answer:{scope.item['n']}")
    scope.approved = answer["approved"]
    scope.approver = answer["approver"]


def _after(scope: Scope) -> None:
    item = scope.item
    record(item["log"], scope.run_id, f"after:{item['n']}")
    scope.result = {
        "n": item["n"],
        "approved": scope.get("approved", True),
        "approver": scope.get("approver"),
    }


def _load(scope: Scope) -> None:
    scope.loaded = len(scope.items)


def _total(scope: Scope) -> None:
    scope.approved_count = sum(1 for result in scope.results if result["approved"])


def batch_body() -> FlowChart:
    """Check (pausable: pauses when the item needs a review) → After (records, sets result)."""
    return (
        flow_chart("Check", PausableHandler(_check_execute, _check_resume), "check")
        .add_function("After", _after, "after")
        .build()
    )


def batch(concurrency: int | None = 10) -> FlowChart:
    """Load → Invoices (for each of ``items``, into ``results``) → Total."""
    return (
        flow_chart("Load", _load, "load")
        .add_for_each(
            "invoices",
            "items",
            batch_body(),
            "Invoices",
            concurrency=concurrency,
            results_key="results",
        )
        .add_function("Total", _total, "total")
        .build()
    )


def batch_items(log: str, total: int = 100, reviewed: int = 30) -> list[dict[str, Any]]:
    """``total`` invoices, ``reviewed`` of them (spread out) needing a review."""
    review = set(random.Random(7).sample(range(total), reviewed))
    return [{"n": n, "review": n in review, "log": log} for n in range(total)]


def item_of(stage_id: str) -> int:
    """The item number in a for-each stage path: ``invoices[7]/check`` → 7."""
    return int(stage_id.split("[", 1)[1].split("]", 1)[0])


def answer_for(stage_id: str, approver: str) -> dict[str, Any]:
    """The answer the tests give an item: every third invoice is refused."""
    return {"approved": item_of(stage_id) % 3 != 0, "approver": approver}


def charts() -> dict[str, FlowChart]:
    return {"slow": slow(), "batch": batch()}


# -- child commands --------------------------------------------------------------


async def start(url: str, run_id: str, side_log: str) -> None:
    async with Runs(open_store(url), charts()) as runs:
        done = await runs.start("slow", {"side_log": side_log}, run_id=run_id, actor="child")
        print(done.status, flush=True)


async def answer(url: str, name: str, run_id: str, stage_ids: list[str]) -> None:
    async with Runs(open_store(url), charts()) as runs:
        await runs.store.list_pending(limit=1)  # connect (and migrate) before the start line
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        answered: list[str] = []
        claimed = 0
        for stage_id in stage_ids:
            while True:
                try:
                    await runs.resume(
                        run_id, answer_for(stage_id, name), stage_id=stage_id, actor=name
                    )
                except RunAlreadyClaimedError:
                    claimed += 1
                    await asyncio.sleep(random.uniform(0.005, 0.03))
                    continue
                answered.append(stage_id)
                break
        print(json.dumps({"answered": answered, "claimed": claimed}), flush=True)


def main(argv: list[str]) -> None:
    command, url, *args = argv
    if command == "start":
        asyncio.run(start(url, args[0], args[1]))
    elif command == "answer":
        asyncio.run(answer(url, args[0], args[1], args[2:]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
