"""``python -m bench.store_costs [--runs N] [--rounds N] [--stores ...]``: what a durable start and resume cost.

The refund chart with ``durability="pause"`` (a start is written once, when it
pauses; a resume is a claim, then the outcome), over each store in turn, in one
event loop that opened the store beforehand (:mod:`bench.servers` gives each a
fresh file, schema or key prefix). For each store and round:

* *median µs* of ``--runs`` starts, then of as many resumes of those runs, each
  operation timed on its own: wall (``perf_counter_ns``) and this process's CPU
  (``process_time_ns``, which other work on a busy machine disturbs less);
* what each operation sends the server, counted on the client, independent of
  the machine: Redis commands (by name, as the server sees them; an ``EVALSHA``
  the server did not know shows as a ``SCRIPT LOAD`` more) and round trips (one
  per request written to a connection, a pipeline being one); PostgreSQL
  statements (psycopg cursor executes, by their first word) and transactions
  (each adds a ``BEGIN`` and a ``COMMIT`` round trip to its statements);
* on Redis, the server's own time per operation (``INFO commandstats``, all
  commands but ``INFO``): alone on the server only when the bench's Redis is a
  server of its own (``PAUSEPOINT_BENCH_REDIS_URL``).

Runs under any ``src`` on ``PYTHONPATH``, so the same script measures an older
checkout beside this one (it only uses ``Runs`` and ``open_store``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import pp
from .scenarios import REFUND_ANSWER, REFUND_INPUT
from .servers import POSTGRES, REDIS, REDIS_URL, SQLITE, Places, down, places

MEMORY = "memory"


class Wire:
    """Counts what the client sends: commands or statements by name, round trips, transactions."""

    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()
        self.round_trips = 0
        self.transactions = 0

    def clear(self) -> None:
        self.commands.clear()
        self.round_trips = 0
        self.transactions = 0


@contextmanager
def _patched(owner: Any, name: str, make: Callable[[Any], Any]) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def counting(backend: str, wire: Wire) -> Iterator[None]:
    """Count ``backend``'s traffic into ``wire`` while inside."""
    if backend == REDIS:
        from redis.asyncio.connection import AbstractConnection

        def send(original: Any) -> Any:
            async def counted(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
                wire.round_trips += 1
                return await original(self, command, *args, **kwargs)

            return counted

        def pack(original: Any) -> Any:
            def counted(self: Any, *args: Any) -> Any:
                name = str(args[0]).upper()
                if name == "SCRIPT":
                    name += " " + str(args[1]).upper()
                wire.commands[name] += 1
                return original(self, *args)

            return counted

        with (
            _patched(AbstractConnection, "send_packed_command", send),
            _patched(AbstractConnection, "pack_command", pack),
        ):
            yield
    elif backend == POSTGRES:
        import psycopg

        def execute(original: Any) -> Any:
            async def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                text = query if isinstance(query, str) else query.as_string(self)
                wire.commands[text.split(None, 1)[0].upper()] += 1
                wire.round_trips += 1
                return await original(self, query, *args, **kwargs)

            return counted

        def transaction(original: Any) -> Any:
            def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
                wire.transactions += 1
                wire.round_trips += 2  # BEGIN, COMMIT
                return original(self, *args, **kwargs)

            return counted

        with (
            _patched(psycopg.AsyncCursor, "execute", execute),
            _patched(psycopg.AsyncCursor, "executemany", execute),
            _patched(psycopg.AsyncConnection, "transaction", transaction),
        ):
            yield
    else:
        yield


def _server_usec(url: str) -> float:
    """Microseconds the Redis server at ``url`` spent in commands so far (``INFO`` aside)."""
    import redis

    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")
    return sum(v["usec"] for k, v in stats.items() if k != "cmdstat_info")


def _url(where: Places, backend: str) -> str:
    if backend == MEMORY:
        return "memory://"
    if backend == SQLITE:
        return where.sqlite_url("costs")
    if backend == POSTGRES:
        return where.postgres_url()
    return where.redis_url()


async def _timed(ops: list[Callable[[], Awaitable[Any]]]) -> tuple[float, float]:
    """Median wall and median CPU (this process) µs of ``ops``, each timed on its own."""
    wall, cpu = [], []
    for op in ops:
        started, used = time.perf_counter_ns(), time.process_time_ns()
        await op()
        cpu.append(time.process_time_ns() - used)
        wall.append(time.perf_counter_ns() - started)
    return statistics.median(wall) / 1000, statistics.median(cpu) / 1000


def _per_op(wire: Wire, count: int) -> str:
    commands = ", ".join(f"{name} {n / count:g}" for name, n in sorted(wire.commands.items()))
    text = f"{wire.round_trips / count:g} round trips"
    if wire.transactions:
        text += f", {wire.transactions / count:g} transactions"
    return text + (f" ({commands})" if commands else "")


async def _measure(backend: str, url: str, runs: int, rounds: int) -> None:
    from pausepoint import Runs, open_store

    charts = {"refund": pp.refund_chart()}
    async with Runs(open_store(url), charts, durability="pause") as durable:

        def start() -> Awaitable[Any]:
            return durable.start("refund", REFUND_INPUT)

        def resume(run_id: str) -> Callable[[], Awaitable[Any]]:
            return lambda: durable.resume(run_id, REFUND_ANSWER)

        for _ in range(20):  # warm up: connections, scripts, migrations
            await durable.resume((await start()).run_id, REFUND_ANSWER)
        wire = Wire()
        usec = _server_usec(REDIS_URL) if backend == REDIS else 0.0
        with counting(backend, wire):
            paused = [(await start()).run_id for _ in range(20)]
            starts = _per_op(wire, 20)
            wire.clear()
            if backend == REDIS:
                starts += f"; server {(_server_usec(REDIS_URL) - usec) / 20:.0f} µs"
                usec = _server_usec(REDIS_URL)
            for run_id in paused:
                await durable.resume(run_id, REFUND_ANSWER)
            resumes = _per_op(wire, 20)
            if backend == REDIS:
                resumes += f"; server {(_server_usec(REDIS_URL) - usec) / 20:.0f} µs"
        print(f"{backend}: per start  {starts}")
        print(f"{backend}: per resume {resumes}")
        for number in range(1, rounds + 1):
            started = await _timed([start] * runs)
            # the runs to resume are paused again off the clock
            ids = [(await start()).run_id for _ in range(runs)]
            resumed = await _timed([resume(run_id) for run_id in ids])
            print(
                f"{backend}: round {number}, median of {runs}: "
                f"start {started[0]:,.0f} µs (CPU {started[1]:,.0f}), "
                f"resume {resumed[0]:,.0f} µs (CPU {resumed[1]:,.0f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store_costs")
    parser.add_argument("--runs", type=int, default=300, help="operations per round and kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="memory,sqlite,postgres,redis")
    args = parser.parse_args()
    for backend in args.stores.split(","):
        reason = None if backend == MEMORY else down(backend)
        if reason is not None:
            print(f"{backend}: {reason}")
            continue
        with places("costs") as where:
            asyncio.run(_measure(backend, _url(where, backend), args.runs, args.rounds))


if __name__ == "__main__":
    main()
