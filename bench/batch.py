"""Answering many pauses in one batch: ``python -m bench.batch [--quick] [--pauses N]``.

For each store (PostgreSQL, then SQLite for reference), in a fresh schema / file:

1. ``pauses`` refund runs are started, each to its approval pause (not timed);
2. all of them are answered in one ``Runs.resume_many`` call (one answer,
   ``concurrency`` runs driven at once; each run then finishes its last stage);
   the time is that one call, from this process;
3. as many again are answered through ``POST /api/runs/resume-batch`` of the
   app served in this process (httpx's ASGI transport: no sockets), which adds
   the request and response bodies to step 2.

Each figure is checked: every item ``done`` and every run ``completed``.
``--quick`` (CI smoke) answers 40 pauses: its figures are only indicative.
A PostgreSQL that does not answer gives an ``n/a`` row.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

from pausepoint import Runs, open_store

from . import pp
from .scenarios import REFUND_ANSWER, REFUND_INPUT, expect
from .servers import POSTGRES, SQLITE, down, places

FULL_PAUSES = 1000
QUICK_PAUSES = 40
CONCURRENCY = 8


async def _paused(runs: Runs, n: int) -> list[tuple[str, str]]:
    items = []
    for _ in range(n):
        record = await runs.start("refund", REFUND_INPUT)
        expect(record.pause is not None, "the refund run pauses")
        assert record.pause is not None
        items.append((record.run_id, record.pause.pause_id))
    return items


async def _check(runs: Runs, items: Sequence[tuple[str, str]], statuses: list[str]) -> None:
    expect(statuses == ["done"] * len(items), f"every item done, not {set(statuses)}")
    for run_id, _ in items[:: max(1, len(items) // 20)]:
        expect((await runs.get(run_id)).status == "completed", "the answered run completed")


async def _measure(url: str, n: int, concurrency: int) -> tuple[float, float]:
    """Seconds for one batch of ``n`` through Runs.resume_many, then through the route."""
    import httpx

    from pausepoint.server import create_app

    async with Runs(open_store(url), {"refund": pp.refund_chart()}) as runs:
        items = await _paused(runs, n)
        started = time.perf_counter()
        results = await runs.resume_many(
            items, REFUND_ANSWER, actor="bench", concurrency=concurrency
        )
        direct = time.perf_counter() - started
        await _check(runs, items, [r.status for r in results])

        items = await _paused(runs, n)
        app = create_app(runs, {"tok": "bench"}, session_secret="bench", metrics=False)
        transport = httpx.ASGITransport(app=app)
        body: dict[str, Any] = {
            "items": [{"run_id": r, "pause_id": p} for r, p in items],
            "input": REFUND_ANSWER,
        }
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            started = time.perf_counter()
            response = await client.post(
                "/api/runs/resume-batch",
                json=body,
                headers={"Authorization": "Bearer tok"},
                timeout=600,
            )
            routed = time.perf_counter() - started
        expect(response.status_code == 200, f"the route answers 200, not {response.text}")
        await _check(runs, items, [r["status"] for r in response.json()["results"]])
    return direct, routed


def _row(store: str, how: str, n: int, seconds: float) -> str:
    return f"batch  {store:<11} {how:<44} {n:>6,} pauses  {seconds:8.2f} s  {n / seconds:8,.0f} resumes/s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40 pauses")
    parser.add_argument("--pauses", type=int, default=None, help="pauses per batch")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args(argv)
    n = args.pauses or (QUICK_PAUSES if args.quick else FULL_PAUSES)
    print(f"pausepoint: {n:,} pauses answered in one batch{' (quick mode)' if args.quick else ''}")
    for store, label in ((POSTGRES, "PostgreSQL"), (SQLITE, "SQLite")):
        why = down(store)
        if why is not None:
            print(f"batch  {label:<11} {why}")
            continue
        with places("batch") as where:
            url = where.postgres_url() if store == POSTGRES else where.sqlite_url("batch")
            direct, routed = asyncio.run(_measure(url, n, args.concurrency))
        print(_row(label, f"Runs.resume_many, concurrency {args.concurrency}", n, direct))
        print(_row(label, "POST /api/runs/resume-batch (in-process ASGI)", n, routed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
