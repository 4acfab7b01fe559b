"""S2p, the refund chart persisted: run→pause and resume→done with every step in a store.

Contenders, each on its own file, schema or key prefix (:mod:`bench.servers`):

- the floor (:mod:`bench.floor`): plain logic, one insert / one select + update;
- pausepoint ``Runs`` over ``open_store(url)``, with the default
  ``durability="stage"`` and with ``durability="pause"``: ``await
  runs.start("refund", input)`` returns the paused record (its pause, and the
  audit its last write returned); ``await runs.resume(run_id, answer)`` the
  completed one. Awaited inside one event loop that opened the store
  beforehand, as a server would;
- LangGraph with ``SqliteSaver`` / ``PostgresSaver`` (the sync savers, set up as
  their ``from_conn_string`` does): ``graph.invoke(input, config)`` until
  ``interrupt()``, and ``graph.invoke(Command(resume=answer), config)`` on a
  thread paused beforehand, off the clock. Default durability (``"async"``).

Every contender measures both columns with the harness's policy; the resume
cases pause their runs before each batch, off the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from . import lg, pp
from .async_harness import measure_async
from .floor import Floor
from .harness import Case, Sample, Settings, measure
from .scenarios import REFUND_ANSWER, REFUND_FINAL_STATUS, REFUND_INPUT, REFUND_QUESTION, expect
from .servers import POSTGRES, REDIS, SQLITE, Places

Measured = tuple[Sample, Sample]
"""run→pause, resume→done."""


@dataclass(frozen=True)
class Contender:
    """One row of S2p: who, on which server, and how to measure it."""

    label: str
    server: str
    measure: Callable[[Places, Settings], Measured]
    langgraph: str | None = None
    """The ``langgraph.checkpoint`` module it needs (a separate package)."""


# -- the floor --------------------------------------------------------------


def _floor(floor: Floor, settings: Settings) -> Measured:
    try:
        return measure(floor.pause_case(), settings), measure(floor.resume_case(), settings)
    finally:
        floor.close()


def floor_sqlite(where: Places, settings: Settings) -> Measured:
    return _floor(Floor.sqlite(where.sqlite_path("floor")), settings)


def floor_sqlite_normal(where: Places, settings: Settings) -> Measured:
    return _floor(Floor.sqlite(where.sqlite_path("floor-normal"), "NORMAL"), settings)


def floor_postgres(where: Places, settings: Settings) -> Measured:
    return _floor(Floor.postgres(where.postgres_connect(autocommit=True)), settings)


# -- pausepoint -------------------------------------------------------------


Durability = Literal["stage", "pause"]


async def _runs(url: str, settings: Settings, durability: Durability) -> Measured:
    from pausepoint import Runs, open_store

    charts = {"refund": pp.refund_chart()}
    async with Runs(open_store(url), charts, durability=durability) as runs:
        first = await runs.start("refund", REFUND_INPUT)
        expect(first.status == "paused", "Runs.start pauses")
        expect(first.pause is not None and first.pause.data["question"] == REFUND_QUESTION, "asks")
        done = await runs.resume(first.run_id, REFUND_ANSWER)
        expect(done.status == "completed", "Runs.resume completes")
        assert done.snapshot is not None
        expect(done.snapshot["shared_state"]["status"] == REFUND_FINAL_STATUS, "refunded")

        async def paused(k: int) -> list[str]:
            return [(await runs.start("refund", REFUND_INPUT)).run_id for _ in range(k)]

        pause = await measure_async(lambda: runs.start("refund", REFUND_INPUT), settings)
        resume = await measure_async(
            lambda run_id: runs.resume(run_id, REFUND_ANSWER), settings, prepare=paused
        )
    return pause, resume


def runs_sqlite(where: Places, settings: Settings, durability: Durability = "stage") -> Measured:
    return asyncio.run(_runs(where.sqlite_url(f"pausepoint-{durability}"), settings, durability))


def runs_sqlite_normal(where: Places, settings: Settings) -> Measured:
    url = where.sqlite_url("pausepoint-normal") + "?synchronous=normal"
    return asyncio.run(_runs(url, settings, "stage"))


def runs_postgres(where: Places, settings: Settings, durability: Durability = "stage") -> Measured:
    # one schema for both durabilities: each run has its own rows, and each
    # contender fills its own batches
    return asyncio.run(_runs(where.postgres_url(), settings, durability))


def runs_redis(where: Places, settings: Settings, durability: Durability = "stage") -> Measured:
    return asyncio.run(_runs(where.redis_url(), settings, durability))


# -- LangGraph --------------------------------------------------------------


def _graph(saver: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(lg.RefundState)
    builder.add_node("receive", lg._receive)
    builder.add_node("approve", lg._approve)
    builder.add_node("process", lg._process)
    builder.add_edge(START, "receive")
    builder.add_edge("receive", "approve")
    builder.add_edge("approve", "process")
    builder.add_edge("process", END)
    return builder.compile(checkpointer=saver)


def _langgraph(saver: Any, settings: Settings) -> Measured:
    from langgraph.types import Command

    graph = _graph(saver)

    def pause(config: dict[str, Any]) -> Any:
        return graph.invoke(REFUND_INPUT, config)

    def resume(config: dict[str, Any]) -> Any:
        return graph.invoke(Command(resume=REFUND_ANSWER), config)

    def paused(k: int) -> list[dict[str, Any]]:
        configs = lg._configs(k)
        for config in configs:
            pause(config)
        return configs

    config = lg._configs(1)[0]
    stopped = pause(config)
    expect(stopped["__interrupt__"][0].value["question"] == REFUND_QUESTION, "LangGraph pauses")
    expect(resume(config)["status"] == REFUND_FINAL_STATUS, "LangGraph completes from its store")
    return (
        measure(Case(pause, prepare=lg._configs), settings),
        measure(Case(resume, prepare=paused), settings),
    )


@contextlib.contextmanager
def _closing(conn: Any) -> Iterator[Any]:
    try:
        yield conn
    finally:
        conn.close()


def langgraph_sqlite(where: Places, settings: Settings) -> Measured:
    from langgraph.checkpoint.sqlite import SqliteSaver

    # as SqliteSaver.from_conn_string connects; setup() turns WAL on
    with _closing(sqlite3.connect(where.sqlite_path("langgraph"), check_same_thread=False)) as conn:
        saver = SqliteSaver(conn)
        saver.setup()
        return _langgraph(saver, settings)


def langgraph_postgres(where: Places, settings: Settings) -> Measured:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    # as PostgresSaver.from_conn_string connects, in this section's schema
    with where.postgres_connect(autocommit=True, prepare_threshold=0, row_factory=dict_row) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        return _langgraph(saver, settings)


# -- the rows ---------------------------------------------------------------

SQLITE_FLOOR = "sqlite3 insert / update + commit"
SQLITE_RUNS = "pausepoint Runs, SQLite"
SQLITE_RUNS_PAUSE = "pausepoint Runs, SQLite, durability=pause"
SQLITE_LANGGRAPH = "LangGraph + SqliteSaver"
POSTGRES_FLOOR = "psycopg insert / update (autocommit)"
POSTGRES_RUNS = "pausepoint Runs, PostgreSQL"
POSTGRES_RUNS_PAUSE = "pausepoint Runs, PostgreSQL, durability=pause"
POSTGRES_LANGGRAPH = "LangGraph + PostgresSaver"
REDIS_RUNS = "pausepoint Runs, Redis"
REDIS_RUNS_PAUSE = "pausepoint Runs, Redis, durability=pause"

CONTENDERS = (
    Contender(SQLITE_FLOOR, SQLITE, floor_sqlite),
    Contender(SQLITE_RUNS, SQLITE, runs_sqlite),
    Contender(SQLITE_RUNS_PAUSE, SQLITE, functools.partial(runs_sqlite, durability="pause")),
    Contender(SQLITE_LANGGRAPH, SQLITE, langgraph_sqlite, "sqlite"),
    Contender("sqlite3, synchronous = NORMAL", SQLITE, floor_sqlite_normal),
    Contender("pausepoint Runs, SQLite ?synchronous=normal", SQLITE, runs_sqlite_normal),
    Contender(POSTGRES_FLOOR, POSTGRES, floor_postgres),
    Contender(POSTGRES_RUNS, POSTGRES, runs_postgres),
    Contender(POSTGRES_RUNS_PAUSE, POSTGRES, functools.partial(runs_postgres, durability="pause")),
    Contender(POSTGRES_LANGGRAPH, POSTGRES, langgraph_postgres, "postgres"),
    Contender(REDIS_RUNS, REDIS, runs_redis),
    Contender(REDIS_RUNS_PAUSE, REDIS, functools.partial(runs_redis, durability="pause")),
)


def langgraph_missing(module: str | None) -> str | None:
    """Why a LangGraph contender cannot run (LangGraph or its saver package missing)."""
    if module is None:
        return None
    if lg.UNAVAILABLE is not None:
        return lg.UNAVAILABLE
    try:
        __import__(f"langgraph.checkpoint.{module}")
    except ImportError:
        return "n/a (pip install 'pausepoint[bench]')"
    return None


NOTES = [
    "every contender on its own SQLite file (WAL, default synchronous = FULL) in a temporary "
    "directory, or in a fresh PostgreSQL schema / Redis key prefix, removed afterwards",
    "synchronous = NORMAL rows: commits do not wait for the disk (safe across a crash of the "
    "process, not a power cut); the targets compare FULL with FULL",
    "floor: the plain-Python logic; run→pause = one INSERT of its JSON, resume→done = one "
    "SELECT + one UPDATE … WHERE status = 'paused', each statement its own transaction; "
    "no audit, no progress checkpoints, no lease",
    "pausepoint: await Runs.start / Runs.resume in one event loop, the store opened "
    "beforehand. durability=stage (the default) writes one transaction per stage transition: "
    "a start = the create with its claim, the journal entry of 'receive', the pause (record, "
    "inbox row, its journal entry, audit) = 3; a resume = the claim, the entry of 'approve', "
    "the outcome with the entry of 'process' and the audit = 3 (the store tests count 3 / 4 "
    "on the demo chart, one stage longer, with PostgreSQL's own statistics). "
    "durability=pause writes the claim and the outcome only: 2 per start, 2 per resume. "
    "The outcome's transaction returns the audit: nothing is read back",
    "the machine has 2 cores shared with other work, and commit times follow the disk: "
    "absolute figures move from run to run; the targets compare rows of one run "
    "(ratios to the floor, or to LangGraph)",
    "LangGraph: the sync savers, connected as their from_conn_string does; invoke until "
    "interrupt(), and invoke(Command(resume=...)) on a thread paused beforehand, off the clock",
]
