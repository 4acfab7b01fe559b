"""S4, a parallel for-each: items per second, without pauses and with 30 of 100 items pausing.

The chart: ``load`` → ``invoices`` (for each of 100 items: ``check``, pausable,
pauses for the 30 items that need a review → ``book`` writes the item's
result) → ``total``. Every figure is items per second over a whole run,
a fresh executor per run and per resume, the full trace on:

* ``no pauses``: no item needs a review; one ``run`` to the end.
* ``30 pause, 1 by 1``: ``run`` until 30 items wait, then each answer through
  ``json.dumps``/``json.loads`` of the checkpoint and a fresh executor, one
  item per ``resume`` (30 resumes; each rewrites the whole checkpoint).
* ``30 pause, at once``: the same 30 answers in a single ``resume(answers=...)``.

Wire it into ``python -m bench`` with :func:`rows` (see its docstring).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from pausepoint import FlowChart, FlowChartExecutor, PausableHandler, flow_chart

from .harness import Case, Sample, Settings, measure
from .scenarios import expect

CONTENDER = "pausepoint"
ITEMS = 100
PAUSING = 30
NO_PAUSES = "no pauses items/s"
ONE_BY_ONE = f"{PAUSING} pause, 1 by 1 items/s"
AT_ONCE = f"{PAUSING} pause, at once items/s"
NOTES = (
    f"a for-each over {ITEMS} items (pausable check → book), then a total; items/s over a whole "
    "run, a fresh executor per run and per resume, full trace on",
    f"'{PAUSING} pause': {PAUSING} items wait for a person; '1 by 1' answers them in "
    f"{PAUSING} resumes, each through json.dumps/json.loads of the checkpoint; 'at once' in "
    "one resume(answers=...)",
)


def _load(scope: Any) -> None:
    scope.count = len(scope.items)


def _check(scope: Any) -> dict[str, Any] | None:
    item = scope.item
    return {"question": f"Approve invoice {item['n']}?"} if item["review"] else None


def _answer(scope: Any, answer: dict[str, Any]) -> None:
    scope.approved = answer["approved"]


def _book(scope: Any) -> None:
    scope.result = {"n": scope.item["n"], "approved": scope.get("approved", True)}


def _total(scope: Any) -> None:
    scope.approved_count = sum(1 for result in scope.results if result["approved"])


def chart() -> FlowChart:
    body = (
        flow_chart("Check", PausableHandler(_check, _answer), "check")
        .add_function("Book", _book, "book")
        .build()
    )
    return (
        flow_chart("Load", _load, "load")
        .add_for_each("invoices", "items", body, "Invoices", results_key="results")
        .add_function("Total", _total, "total")
        .build()
    )


_CHART = chart()
_ANSWER = {"approved": True}


def _items(pausing: int) -> list[dict[str, Any]]:
    step = ITEMS // pausing if pausing else 0
    review = {n * step for n in range(pausing)}
    return [{"n": n, "review": n in review} for n in range(ITEMS)]


_PLAIN = {"items": _items(0)}
_PAUSING = {"items": _items(PAUSING)}


async def _run_plain() -> FlowChartExecutor:
    executor = FlowChartExecutor(_CHART)
    await executor.run(_PLAIN)
    return executor


async def _to_pause() -> str:
    executor = FlowChartExecutor(_CHART)
    await executor.run(_PAUSING)
    return json.dumps(executor.get_checkpoint())


async def _one_by_one() -> FlowChartExecutor:
    saved = await _to_pause()
    executor = FlowChartExecutor(_CHART)
    while True:
        checkpoint = json.loads(saved)
        executor = FlowChartExecutor(_CHART)
        stage_id = checkpoint["pauses"][0]["stage_id"]
        if await executor.resume(checkpoint, _ANSWER, stage_id=stage_id) != "paused":
            return executor
        saved = json.dumps(executor.get_checkpoint())


async def _at_once() -> FlowChartExecutor:
    checkpoint = json.loads(await _to_pause())
    executor = FlowChartExecutor(_CHART)
    await executor.resume(
        checkpoint, answers={pause["stage_id"]: _ANSWER for pause in checkpoint["pauses"]}
    )
    return executor


def _checked(call: Callable[[], Any], what: str) -> Case:
    executor = asyncio.run(call())
    expect(executor.status == "completed", f"for-each {what} completes")
    results = executor.get_state()["results"]
    expect(len(results) == ITEMS, f"for-each {what} collects {ITEMS} results")
    expect(executor.get_state()["approved_count"] == ITEMS, f"for-each {what} approves every item")
    return Case(call)


def cases() -> list[tuple[str, Callable[[], Case]]]:
    """``(column, make_case)`` for each figure; one call of a case handles ``ITEMS`` items."""
    return [
        (NO_PAUSES, lambda: _checked(_run_plain, "without pauses")),
        (ONE_BY_ONE, lambda: _checked(_one_by_one, "answered one by one")),
        (AT_ONCE, lambda: _checked(_at_once, "answered at once")),
    ]


def rows(settings: Settings) -> list[tuple[str, float, Sample]]:
    """Measure every case; return ``(column, items per second, sample per item)``.

    To wire it into ``bench/__main__.py``, add to ``Bench``::

        def s4(self) -> None:
            for column, per_second, sample in foreach.rows(self.settings):
                self.figures.append(Figure("S4", foreach.CONTENDER, column, per_second, "/s", sample))
            self.notes["S4"] = list(foreach.NOTES)

    and call ``s4()`` beside ``s1()``/``s2()``.
    """
    measured = []
    for column, make in cases():
        sample = measure(make(), settings).scaled(ITEMS)
        measured.append((column, 1e9 / sample.median_ns, sample))
    return measured


if __name__ == "__main__":
    import sys

    from .harness import FULL, QUICK

    chosen = QUICK if "--quick" in sys.argv else FULL
    for column, per_second, sample in rows(chosen):
        print(f"{column:<28} {per_second:>12,.0f}   ({sample.median_ns / 1000:.2f} µs/item)")
