"""Bytes on disk per paused refund run in SQLite, and which tables and columns hold them.

Each contender gets a fresh SQLite file (WAL). It starts one refund run to its
pause (which creates the tables), then ``runs`` more; after each of the two
steps every connection is closed and the WAL checkpointed into the file
(``PRAGMA wal_checkpoint(TRUNCATE)``). The figure is the file's growth between
the two, per run: pages, so it counts B-tree slack and index entries as the
disk does. ``synchronous = NORMAL`` throughout: it changes when commits reach
the disk, not what they write.

The breakdown reads SQLite's ``dbstat`` table at both points: per table and
index, the pages used (``pgsize``) and the bytes of its records (``payload``);
per text column, the bytes of its values (``length(CAST(col AS BLOB))``), the
JSON ones split by their top-level keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import durable, pp
from .floor import Floor
from .scenarios import REFUND_INPUT, expect
from .servers import Places

FILE = "file B/run"
RECORDS = "records B/run"
COLUMNS = (FILE, RECORDS)

PP_STAGE = "pausepoint Runs, SQLite"
PP_PAUSE = "pausepoint Runs, SQLite, durability=pause"
LANGGRAPH = "LangGraph + SqliteSaver"

# pausepoint's tables, in the order the breakdown lists them
_TABLES = ("runs", "steps", "audit", "pending")
_NAMES = {"runs": "record", "steps": "journal", "audit": "audit", "pending": "inbox row"}
# JSON columns split by their top-level keys (the checkpoint, a journal entry's data)
_SPLIT = {("runs", "checkpoint"), ("steps", "data")}


@dataclass
class Usage:
    """What one contender's runs added to its file, per run."""

    file: float
    records: float
    pages: dict[str, float] = field(default_factory=dict)
    """Pages per table or index, in bytes."""
    payload: dict[str, float] = field(default_factory=dict)
    """Record bytes per table or index."""
    columns: dict[str, float] = field(default_factory=dict)
    """Bytes per ``table.column`` (text columns)."""
    keys: dict[str, dict[str, float]] = field(default_factory=dict)
    """Bytes per top-level key of the JSON columns in ``_SPLIT``."""


@dataclass(frozen=True)
class _Point:
    pages: int
    pages_by_name: dict[str, int]
    payload_by_name: dict[str, int]
    columns: dict[str, int]
    keys: dict[str, dict[str, int]]


def _checkpointed(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn


def _split(text: str) -> dict[str, int]:
    """Bytes of each top-level member of a JSON object, as ``"key":value`` in compact JSON."""
    doc = json.loads(text)
    return {
        key: len(json.dumps({key: value}, separators=(",", ":"), ensure_ascii=False).encode()) - 2
        for key, value in doc.items()
    }


def _point(path: Path, tables: tuple[str, ...]) -> _Point:
    with contextlib.closing(_checkpointed(path)) as conn:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        stats = conn.execute(
            "SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name"
        ).fetchall()
        columns: dict[str, int] = {}
        keys: dict[str, dict[str, int]] = {}
        for table in tables:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            for column in (row[1] for row in info if row[2].upper() == "TEXT"):
                (total,) = conn.execute(
                    f"SELECT coalesce(sum(length(CAST({column} AS BLOB))), 0) FROM {table}"
                ).fetchone()
                columns[f"{table}.{column}"] = total
                if (table, column) in _SPLIT:
                    split: dict[str, int] = {}
                    query = f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
                    for (text,) in conn.execute(query):
                        for key, count in _split(text).items():
                            split[key] = split.get(key, 0) + count
                    keys[f"{table}.{column}"] = split
    return _Point(
        pages * page_size,
        {name: size for name, size, _ in stats},
        {name: payload for name, _, payload in stats},
        columns,
        keys,
    )


def _per_run(before: Mapping[str, int], after: Mapping[str, int], runs: int) -> dict[str, float]:
    return {name: (after[name] - before.get(name, 0)) / runs for name in after}


def _usage(before: _Point, after: _Point, runs: int) -> Usage:
    payload = _per_run(before.payload_by_name, after.payload_by_name, runs)
    return Usage(
        file=(after.pages - before.pages) / runs,
        records=sum(payload.values()),
        pages=_per_run(before.pages_by_name, after.pages_by_name, runs),
        payload=payload,
        columns=_per_run(before.columns, after.columns, runs),
        keys={
            name: _per_run(before.keys.get(name, {}), split, runs)
            for name, split in after.keys.items()
        },
    )


def _measure(
    path: Path, tables: tuple[str, ...], start: Callable[[int], object], runs: int
) -> Usage:
    start(1)
    before = _point(path, tables)
    start(runs)
    return _usage(before, _point(path, tables), runs)


# -- contenders ------------------------------------------------------------------


def floor(where: Places, runs: int) -> Usage:
    made = Floor.sqlite(where.sqlite_path("disk-floor"), "NORMAL")
    try:
        # an idle autocommit connection holds no snapshot: the checkpoint can truncate
        return _measure(
            where.sqlite_path("disk-floor"),
            ("floor_runs",),
            lambda k: [made.pause() for _ in range(k)],
            runs,
        )
    finally:
        made.close()


def pausepoint(where: Places, runs: int, durability: durable.Durability) -> Usage:
    path = where.sqlite_path(f"disk-{durability}")
    url = f"sqlite:///{path}?synchronous=normal"

    async def started(k: int) -> None:
        from pausepoint import Runs, open_store

        charts = {"refund": pp.refund_chart()}
        async with Runs(open_store(url), charts, durability=durability) as durable_runs:
            for _ in range(k):
                record = await durable_runs.start("refund", REFUND_INPUT)
            expect(record.status == "paused", "Runs.start pauses")

    return _measure(path, _TABLES, lambda k: asyncio.run(started(k)), runs)


def langgraph(where: Places, runs: int) -> Usage:
    from langgraph.checkpoint.sqlite import SqliteSaver

    from . import lg

    path = where.sqlite_path("disk-langgraph")
    threads = iter(lg._configs(runs + 1))

    def start(k: int) -> None:
        with contextlib.closing(sqlite3.connect(path, check_same_thread=False)) as conn:
            saver = SqliteSaver(conn)
            saver.setup()  # WAL, as its from_conn_string does
            conn.execute("PRAGMA synchronous = NORMAL")
            graph = durable._graph(saver)
            for _ in range(k):
                stopped = graph.invoke(REFUND_INPUT, next(threads))
                expect("__interrupt__" in stopped, "LangGraph pauses")

    return _measure(path, ("checkpoints", "writes"), start, runs)


# -- the report -------------------------------------------------------------------


def _bytes(value: float) -> str:
    return f"{value:,.0f}"


def _listing(parts: Mapping[str, float], *, least: float = 1.0) -> str:
    shown = sorted(((v, k) for k, v in parts.items() if v >= least), reverse=True)
    return " · ".join(f"{k} {_bytes(v)}" for v, k in shown)


def breakdown(label: str, usage: Usage) -> Iterator[str]:
    """Lines saying where a contender's bytes are, per run: pages, then each table's records."""
    tables = sorted({name.split(".", 1)[0] for name in usage.columns}, key=_order)
    named = {_NAMES.get(t, t): usage.pages.get(t, 0.0) for t in tables}
    indexes = {
        name: size
        for name, size in usage.pages.items()
        if name not in tables and name != "sqlite_schema"
    }
    yield (
        f"{label}: {_bytes(usage.file)} B/run on disk = pages of "
        + _listing({**named, "indexes": sum(indexes.values())})
        + f"; indexes: {_listing(indexes) or 'no new pages'}"
    )
    for table in tables:
        columns = {
            name.split(".", 1)[1]: size
            for name, size in usage.columns.items()
            if name.startswith(f"{table}.")
        }
        records = usage.payload.get(table, 0.0)
        yield (
            f"{label}, {_NAMES.get(table, 'row')} ({table}, {_bytes(records)} B of records): "
            f"{_listing(columns)} · numbers, record headers {_bytes(records - sum(columns.values()))}"
        )
    for name, split in usage.keys.items():
        what = "checkpoint" if name == "runs.checkpoint" else "journal entries' data"
        yield f"{label}, inside the {what}: {_listing(split)}"


def _order(table: str) -> int:
    return _TABLES.index(table) if table in _TABLES else len(_TABLES)


NOTES = [
    "file B/run: growth of the SQLite file per paused run, after closing every connection "
    "and PRAGMA wal_checkpoint(TRUNCATE): whole pages, so B-tree slack and index entries "
    "count; records B/run: the bytes of the rows and index entries themselves (dbstat "
    "payload). {runs:,} runs, after one that creates the tables; synchronous = NORMAL",
    "floor: the S2p floor's row (its JSON and two partial indexes); LangGraph: SqliteSaver's "
    "checkpoints and writes tables for a thread paused at interrupt()",
]
