"""``python -m bench.lifecycle [--quick] [--stores sqlite,postgres,redis]``: listing and purging.

For each store, in a fresh file / schema / key prefix:

1. load ``completed`` completed runs (changed 31 to 60 days ago), plus ``others``
   failed and paused runs (changed in the last day). Every run has a snapshot of
   about 1 KB, four audit events and four journal entries, written with the
   store's own insert statements, a thousand runs per transaction (SQL) or one
   run per script (Redis), so loading is fast and the rows are what ``Runs``
   writes;
2. the first page (``limit=50``) of ``runs.list`` for several filters, and of
   the inbox: the median and the slowest of ``repeat`` calls, in ms;
3. the store's size on disk (SQLite: the file and its WAL after a checkpoint;
   PostgreSQL: every table and index of the schema; Redis: ``used_memory`` of
   the server, which other keys share);
4. ``runs.purge(status="completed", older_than=30 days)``, which erases every
   completed run in batches of 500: runs per second, and the longest and median
   batch (one batch is one transaction: the longest any lock is held);
5. the size after the purge, then after ``VACUUM`` (SQLite) or ``VACUUM`` and
   ``VACUUM FULL`` (PostgreSQL), each with how long it took.

``--quick`` loads 2,000 completed runs and 400 others; the full run 100,000 and
20,000. The machine is shared and noisy: compare figures from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pausepoint
from pausepoint import Runs, open_store
from pausepoint.stores import AuditEvent, PauseEntry, Store, StoredRun
from pausepoint.stores.base import JournalEntry

from .servers import POSTGRES, POSTGRES_URL, REDIS, REDIS_URL, SQLITE, down, places

DAY = 86400.0
PAGE = 50
BATCH = 500


@dataclass(frozen=True)
class Sizes:
    completed: int
    others: int
    repeat: int


FULL = Sizes(completed=100_000, others=20_000, repeat=30)
QUICK = Sizes(completed=2_000, others=400, repeat=10)


@dataclass
class Report:
    store: str
    loaded: int = 0
    load_s: float = 0.0
    pages: dict[str, tuple[float, float]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    purged: int = 0
    purge_s: float = 0.0
    batches: list[float] = field(default_factory=list)
    vacuum_s: dict[str, float] = field(default_factory=dict)


def _snapshot(i: int) -> dict[str, Any]:
    state = {
        "order_id": f"ORD-{i:08d}",
        "amount": 100 + i % 900,
        "risk_level": "high" if i % 3 else "low",
        "approved": True,
        "approver": "kim",
        "refund_status": "refunded",
        "notes": "x" * 600,
    }
    return {"status": "completed", "shared_state": state, "execution_tree": [], "narrative": []}


def _run(i: int, now: float) -> tuple[StoredRun, list[AuditEvent], list[JournalEntry]]:
    """Run ``i``: completed for the first ones, then failed and paused in turn."""
    chart = "refund" if i % 2 else "expense"
    input_ = {"order_id": f"ORD-{i:08d}", "amount": 100 + i % 900}
    base: dict[str, Any] = {
        "run_id": f"run-{i:08d}",
        "chart": chart,
        "fingerprint": "f" * 64,
        "meta": {"v": 2, "input": input_},
    }
    events = [
        AuditEvent(kind=kind, at=now, actor="kim" if kind == "resumed" else None, data={})
        for kind in ("started", "paused", "resumed", "completed")
    ]
    steps = [
        JournalEntry(kind="stage", stage_id=stage, at=now, data={"w": {"k": i}})
        for stage in ("receive", "approve", "process", "notify")
    ]
    return StoredRun(status="completed", created_at=now, updated_at=now, **base), events, steps


def runs_to_load(sizes: Sizes) -> Iterator[tuple[StoredRun, list[AuditEvent], list[JournalEntry]]]:
    now = time.time()
    for i in range(sizes.completed):
        changed = now - 31 * DAY - (29 * DAY) * i / max(sizes.completed, 1)
        run, events, steps = _run(i, changed)
        yield (
            StoredRun(**{**_fields(run), "created_at": changed - 60, "updated_at": changed}),
            events,
            steps,
        )
    for j in range(sizes.others):
        i = sizes.completed + j
        changed = now - DAY * j / max(sizes.others, 1)
        run, events, steps = _run(i, changed)
        fields = {**_fields(run), "created_at": changed - 60, "updated_at": changed}
        if j % 2:
            fields.update(status="failed", error="RuntimeError: ledger down", stage="process")
        else:
            pause = PauseEntry(
                pause_id=f"p-{i}",
                stage_id="approve",
                data={"question": f"Approve ORD-{i:08d}?"},
                created_at=changed,
                key=f"order:ORD-{i:08d}",
            )
            fields.update(
                status="paused",
                pauses=(pause,),
                stage="approve",
                checkpoint={"shared_state": _snapshot(i)["shared_state"]},
                snapshot=None,
            )
            events, steps = events[:2], steps[:2]
        yield StoredRun(**fields), events, steps


def _fields(run: StoredRun) -> dict[str, Any]:
    return {name: getattr(run, name) for name in run.__dataclass_fields__} | {
        "snapshot": _snapshot(int(run.run_id[4:]))
    }


async def load(store: Store, kind: str, sizes: Sizes) -> None:
    """Write every run with the store's own statements, in large transactions."""
    items = list(runs_to_load(sizes))
    if kind == REDIS:
        from pausepoint.stores.redis import RedisStore

        assert isinstance(store, RedisStore)
        for start in range(0, len(items), 200):
            await asyncio.gather(
                *(
                    store._write(run, None, events, steps)
                    for run, events, steps in items[start : start + 200]
                )
            )
        return
    from pausepoint.stores._sql import PlannedStore

    assert isinstance(store, PlannedStore)
    plans = store._plans

    def chunk(part: Sequence[tuple[StoredRun, list[AuditEvent], list[JournalEntry]]]) -> Any:
        for run, events, steps in part:
            yield from plans.create(run, events, steps)

    for start in range(0, len(items), 1000):
        await store._run(chunk(items[start : start + 1000]), write=True)


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    """Median and slowest of ``repeat`` calls, in ms (after one warm-up call)."""
    await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def size_of(kind: str, url: str, schema: str) -> int:
    if kind == SQLITE:
        path = url[len("sqlite:///") :]
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    if kind == POSTGRES:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchone()
        assert row is not None
        return int(row[0])
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        return int(client.info("memory")["used_memory"])


def analyze(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for table in ("runs", "pending", "audit", "steps"):
            conn.execute(f'ANALYZE "{schema}".{table}')


def vacuum(kind: str, url: str, schema: str, full: bool) -> float:
    started = time.perf_counter()
    if kind == SQLITE:
        with sqlite3.connect(url[len("sqlite:///") :], isolation_level=None) as conn:
            conn.execute("VACUUM")
    else:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for table in ("runs", "pending", "audit", "steps", "signals"):
                conn.execute(f'VACUUM {"FULL " if full else ""}"{schema}".{table}')
    return time.perf_counter() - started


async def measure(kind: str, sizes: Sizes) -> Report:
    report = Report(kind)
    with places("lifecycle") as where:
        url = {
            SQLITE: lambda: where.sqlite_url("runs") + "?synchronous=normal",
            POSTGRES: where.postgres_url,
            REDIS: where.redis_url,
        }[kind]()
        store = open_store(url)
        async with Runs(store, {}) as runs:
            started = time.perf_counter()
            await load(store, kind, sizes)
            report.load_s = time.perf_counter() - started
            report.loaded = sizes.completed + sizes.others
            if kind == POSTGRES:  # statistics, as autovacuum keeps them on a store in use
                analyze(where.schema)
            filters: dict[str, dict[str, Any]] = {
                "failed": {"status": "failed"},
                "completed": {"status": "completed"},
                "completed, one chart": {"status": "completed", "chart": "refund"},
                "failed at a stage": {"status": "failed", "stage": "process"},
                "any status": {},
                "completed, older than 45 d": {
                    "status": "completed",
                    "older_than": timedelta(days=45),
                },
            }
            for label, kwargs in filters.items():
                report.pages[label] = await timed(
                    lambda kw=kwargs: runs.list(limit=PAGE, **kw), sizes.repeat
                )
            report.pages["inbox (paused)"] = await timed(
                lambda: runs.pending(limit=PAGE), sizes.repeat
            )
            plain = url.split("?")[0] if kind == SQLITE else url
            report.sizes["loaded"] = size_of(kind, plain, where.schema)

            original = store.purge

            async def timed_purge(**kwargs: Any) -> tuple[str, ...]:
                begun = time.perf_counter()
                erased = await original(**kwargs)
                report.batches.append((time.perf_counter() - begun) * 1000)
                return erased

            store.purge = timed_purge  # type: ignore[method-assign]  # time every batch
            started = time.perf_counter()
            report.purged = await runs.purge(
                status="completed", older_than=timedelta(days=30), batch=BATCH
            )
            report.purge_s = time.perf_counter() - started
            report.sizes["after purge"] = size_of(kind, plain, where.schema)
            if kind == SQLITE:
                report.vacuum_s["VACUUM"] = vacuum(kind, plain, where.schema, False)
                report.sizes["after VACUUM"] = size_of(kind, plain, where.schema)
            elif kind == POSTGRES:
                report.vacuum_s["VACUUM"] = vacuum(kind, plain, where.schema, False)
                report.sizes["after VACUUM"] = size_of(kind, plain, where.schema)
                report.vacuum_s["VACUUM FULL"] = vacuum(kind, plain, where.schema, True)
                report.sizes["after VACUUM FULL"] = size_of(kind, plain, where.schema)
            report.pages["completed, after the purge"] = await timed(
                lambda: runs.list(status="completed", limit=PAGE), sizes.repeat
            )
    return report


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def render(reports: Sequence[Report], sizes: Sizes) -> str:
    lines = [
        f"machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, pausepoint {pausepoint.__version__}, "
        f"SQLite {sqlite3.sqlite_version}",
        f"store: {sizes.completed:,} completed runs + {sizes.others:,} failed and paused; "
        f"first page = limit {PAGE}, median / slowest of {sizes.repeat} calls",
        "",
    ]
    for r in reports:
        lines.append(f"== {r.store}: {r.loaded:,} runs loaded in {r.load_s:.1f} s")
        for label, (median, worst) in r.pages.items():
            lines.append(f"  first page, {label:<28} {median:8.2f} ms  (slowest {worst:.2f} ms)")
        purge_rate = r.purged / r.purge_s if r.purge_s else 0.0
        lines.append(
            f"  purge {r.purged:,} completed runs: {r.purge_s:.1f} s, {purge_rate:,.0f} runs/s, "
            f"{len(r.batches)} batches of {BATCH}"
        )
        if r.batches:
            lines.append(
                f"  longest batch (lock held) {max(r.batches):.1f} ms, "
                f"median {statistics.median(r.batches):.1f} ms"
            )
        for label, size in r.sizes.items():
            extra = f"  ({r.vacuum_s[label[6:]]:.1f} s)" if label[6:] in r.vacuum_s else ""
            lines.append(f"  size {label:<20} {_mb(size)}{extra}")
        lines.append("")
    if any(r.store == REDIS for r in reports):
        lines.append("redis sizes are the server's used_memory (shared with other keys)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,400 runs instead of 120,000")
    parser.add_argument(
        "--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres, redis"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    reports = []
    for kind in args.stores.split(","):
        why = down(kind)
        if why:
            print(f"{kind}: {why}")
            continue
        reports.append(asyncio.run(measure(kind, sizes)))
    print(render(reports, sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
