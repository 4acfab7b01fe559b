"""``python -m bench.profile_runs [sqlite|postgres|redis] [start|resume|pending]``: where a durable op's time goes.

Two passes over ``--runs`` operations on a fresh store (:mod:`bench.servers`):

1. *Wall time*, no profiler: every ``Store`` method is wrapped to add up the
   time its ``await`` takes; the rest of the op is pausepoint's own work on the
   event loop (executor, ``Runs``, encoding). On SQLite, the store's worker-thread
   side is timed too (statements, ``BEGIN IMMEDIATE``/``COMMIT``), so the
   difference is the hop to the thread and back. On PostgreSQL, statements sent
   by psycopg cursors are counted (each one a round trip, plus ``BEGIN`` and
   ``COMMIT`` for a write).
2. *cProfile* of the event loop's thread, functions with the most own time;
   on SQLite also of the store's worker thread (statements, JSON, commits).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import pstats
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from . import pp
from .scenarios import REFUND_ANSWER, REFUND_INPUT
from .servers import POSTGRES, REDIS, SQLITE, Places, down, places

STORE_METHODS = (
    "create",
    "get",
    "update",
    "append_steps",
    "journal",
    "replace",
    "append_audit",
    "audit",
    "list_pending",
)


class Clock:
    """Adds up wall time and calls per label."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, label: str, ns: int) -> None:
        self.ns[label] += ns
        self.calls[label] += 1

    def wrap_async(self, label: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return await method(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter_ns() - started)

        return timed

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter_ns() - started)

        return timed


def _url(where: Places, backend: str) -> str:
    if backend == SQLITE:
        return where.sqlite_url("profile")
    if backend == POSTGRES:
        return where.postgres_url()
    return where.redis_url()


def _instrument_drivers(backend: str, clock: Clock) -> Callable[[], None]:
    """Time the SQLite worker thread's side, or count psycopg statements; return an undo."""
    undo: list[Callable[[], None]] = []

    def patch(owner: Any, name: str, replacement: Any) -> None:
        original = getattr(owner, name)
        setattr(owner, name, replacement(original))
        undo.append(lambda: setattr(owner, name, original))

    if backend == SQLITE:
        from pausepoint.stores import sqlite

        patch(sqlite.SQLiteStore, "_call", lambda f: clock.wrap("  in the worker thread", f))
        patch(sqlite, "_drive", lambda f: clock.wrap("    one transaction", f))
        patch(sqlite, "_execute", lambda f: clock.wrap("      its statements", f))
    elif backend == POSTGRES:
        import psycopg

        patch(psycopg.AsyncCursor, "execute", lambda f: clock.wrap_async("  cursor.execute", f))
        patch(
            psycopg.AsyncCursor,
            "executemany",
            lambda f: clock.wrap_async("  cursor.executemany", f),
        )

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


async def _ops(runs: Any, what: str, count: int) -> Callable[[], Any]:
    """Prepare ``count`` operations of kind ``what``; return a coroutine function doing them."""
    if what == "start":

        async def starts() -> None:
            for _ in range(count):
                await runs.start("refund", REFUND_INPUT)

        return starts
    paused = [(await runs.start("refund", REFUND_INPUT)).run_id for _ in range(count)]
    if what == "resume":

        async def resumes() -> None:
            for run_id in paused:
                await runs.resume(run_id, REFUND_ANSWER)

        return resumes

    async def pages() -> None:
        for _ in range(count):
            await runs.pending(limit=50)

    return pages


async def _wall(url: str, backend: str, what: str, count: int) -> None:
    from pausepoint import Runs, open_store

    clock = Clock()
    store = open_store(url)
    for name in STORE_METHODS:
        setattr(store, name, clock.wrap_async(f"store.{name}", getattr(store, name)))
    async with Runs(store, {"refund": pp.refund_chart()}) as runs:
        warm = await _ops(runs, what, 20)
        await warm()
        ops = await _ops(runs, what, count)
        clock.ns.clear()
        clock.calls.clear()
        undo = _instrument_drivers(backend, clock)
        started = time.perf_counter_ns()
        try:
            await ops()
        finally:
            total = time.perf_counter_ns() - started
            undo()
    in_store = sum(ns for label, ns in clock.ns.items() if label.startswith("store."))
    print(f"{backend} {what}: {count} ops, {total / count / 1000:,.0f} µs each (wall, no profiler)")
    print(f"  {'':34}{'µs/op':>9}{'calls/op':>10}")
    for label in sorted(clock.ns, key=lambda k: (not k.startswith("store."), -clock.ns[k])):
        print(
            f"  {label:34}{clock.ns[label] / count / 1000:9,.0f}{clock.calls[label] / count:10.1f}"
        )
    rest = (total - in_store) / count / 1000
    print(f"  {'outside the store (event loop)':34}{rest:9,.0f}")


async def _profiled(url: str, what: str, count: int, top: int, sort: str) -> None:
    from pausepoint import Runs, open_store

    store = open_store(url)
    # the SQLite store's one worker thread (a private detail, fine for a profiler)
    worker = getattr(store, "_thread", None)
    loop = asyncio.get_running_loop()
    async with Runs(store, {"refund": pp.refund_chart()}) as runs:
        warm = await _ops(runs, what, 20)
        await warm()
        ops = await _ops(runs, what, count)
        profiler, in_worker = cProfile.Profile(), cProfile.Profile()
        if worker is not None:
            await loop.run_in_executor(worker, in_worker.enable)
        profiler.enable()
        await ops()
        profiler.disable()
        if worker is not None:
            await loop.run_in_executor(worker, in_worker.disable)
    print(f"\ncProfile, event loop thread, {count} ops, top {top} by {sort}:")
    pstats.Stats(profiler).strip_dirs().sort_stats(sort).print_stats(top)
    if worker is not None:
        print(f"\ncProfile, the SQLite store's worker thread, top {top} by {sort}:")
        pstats.Stats(in_worker).strip_dirs().sort_stats(sort).print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_runs")
    parser.add_argument("backend", choices=(SQLITE, POSTGRES, REDIS), nargs="?", default=SQLITE)
    parser.add_argument("what", choices=("start", "resume", "pending"), nargs="?", default="start")
    parser.add_argument("--runs", type=int, default=1000, help="operations per pass")
    parser.add_argument("--top", type=int, default=25, help="cProfile rows to print")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--no-cprofile", action="store_true", help="only the wall-time pass")
    args = parser.parse_args()
    reason = down(args.backend)
    if reason is not None:
        raise SystemExit(f"{args.backend}: {reason}")
    with places("profile") as where:
        url = _url(where, args.backend)
        asyncio.run(_wall(url, args.backend, args.what, args.runs))
    if not args.no_cprofile:
        with places("profile") as where:
            url = _url(where, args.backend)
            asyncio.run(_profiled(url, args.what, args.runs, args.top, args.sort))


if __name__ == "__main__":
    main()
