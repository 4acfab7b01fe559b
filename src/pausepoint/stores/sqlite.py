"""A store in one SQLite file, shared safely by any number of processes on one machine.

The URL names the file as SQLAlchemy does: ``sqlite:///runs.db`` is relative to
the working directory, ``sqlite:////var/lib/app/runs.db`` absolute.
``?synchronous=normal`` trades durability across power cuts for faster commits
(see :class:`SQLiteStore`).

Each store object owns one connection, used only from its own worker thread, so
the event loop never blocks on disk. The file runs in WAL mode (readers never
wait for the writer); every write is a ``BEGIN IMMEDIATE`` transaction, which
takes the file's write lock up front, so writers from several processes queue
(up to ``busy_timeout``) instead of failing midway. Statements and plans are the
ones the PostgreSQL store runs (:mod:`pausepoint.stores._sql`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from pausepoint.stores._common import dump_json, pop_query_param, unavailable
from pausepoint.stores._sql import Plan, PlannedStore, Query, Rows, SqlPlans
from pausepoint.stores.base import LeaseRenewer

__all__ = ["MIGRATIONS", "SQLiteStore"]

T = TypeVar("T")

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE {runs} (run_id TEXT PRIMARY KEY, chart TEXT NOT NULL, "
        "fingerprint TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL, "
        "created_at REAL NOT NULL, updated_at REAL NOT NULL, checkpoint TEXT, "
        "pauses TEXT NOT NULL, snapshot TEXT, error TEXT, lease_owner TEXT, lease_until REAL, "
        "meta TEXT NOT NULL, due_at REAL, audit_seq INTEGER NOT NULL)",
        "CREATE INDEX runs_due ON {runs} (due_at, run_id) WHERE due_at IS NOT NULL",
        "CREATE INDEX runs_stale ON {runs} (lease_until, run_id) WHERE status = 'running'",
        "CREATE TABLE {pending} (run_id TEXT NOT NULL, chart TEXT NOT NULL, "
        "run_created_at REAL NOT NULL, pause_id TEXT NOT NULL, stage_id TEXT NOT NULL, "
        "data TEXT NOT NULL, created_at REAL NOT NULL, deadline REAL, "
        "PRIMARY KEY (run_id, pause_id))",
        "CREATE INDEX pending_all ON {pending} (created_at, run_id, pause_id)",
        "CREATE INDEX pending_chart ON {pending} (chart, created_at, run_id, pause_id)",
        "CREATE INDEX pending_stage ON {pending} (stage_id, created_at, run_id, pause_id)",
        "CREATE INDEX pending_chart_stage ON {pending} "
        "(chart, stage_id, created_at, run_id, pause_id)",
        "CREATE TABLE {audit} (run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, "
        "at REAL NOT NULL, actor TEXT, data TEXT NOT NULL, PRIMARY KEY (run_id, seq))",
    ),
    (  # 2: the journal, and cancel requests a claim holder reads without a version race
        "ALTER TABLE {runs} ADD COLUMN cancel TEXT",
        "ALTER TABLE {runs} ADD COLUMN step_count INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE {steps} (run_id TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, "
        "stage_id TEXT NOT NULL, at REAL NOT NULL, actor TEXT, data TEXT NOT NULL, "
        "PRIMARY KEY (run_id, idx)) WITHOUT ROWID",
    ),
    (  # 3: listing runs of any status, erasing them, answers by business key
        "ALTER TABLE {runs} ADD COLUMN stage TEXT",
        "CREATE INDEX runs_status ON {runs} (status, updated_at, run_id)",
        "CREATE INDEX runs_chart_status ON {runs} (chart, status, updated_at, run_id)",
        "CREATE INDEX runs_stage_status ON {runs} (stage, status, updated_at, run_id) "
        "WHERE stage IS NOT NULL",
        "CREATE INDEX runs_updated ON {runs} (updated_at, run_id)",
        "CREATE INDEX runs_chart ON {runs} (chart, updated_at, run_id)",
        "ALTER TABLE {pending} ADD COLUMN business_key TEXT",
        "CREATE INDEX pending_key ON {pending} (business_key, created_at, run_id, pause_id) "
        "WHERE business_key IS NOT NULL",
        "CREATE TABLE {signals} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "business_key TEXT NOT NULL, input TEXT NOT NULL, actor TEXT, at REAL NOT NULL, "
        "expires_at REAL NOT NULL)",
        "CREATE INDEX signals_key ON {signals} (business_key, id)",
        "CREATE INDEX signals_expiry ON {signals} (expires_at)",
    ),
    (  # 4: who may answer a pause, and "assigned to me" reads
        "ALTER TABLE {pending} ADD COLUMN assignees TEXT",
        "CREATE TABLE {assigned} (who TEXT NOT NULL, created_at REAL NOT NULL, "
        "run_id TEXT NOT NULL, pause_id TEXT NOT NULL, "
        "PRIMARY KEY (who, created_at, run_id, pause_id)) WITHOUT ROWID",
        "CREATE INDEX assigned_run ON {assigned} (run_id)",
    ),
    (  # 5: the notification outbox, written with the pauses it is about
        "CREATE TABLE {outbox} (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, "
        "pause_id TEXT NOT NULL, kind TEXT NOT NULL, url TEXT NOT NULL, tag TEXT NOT NULL, "
        "payload TEXT NOT NULL, next_at REAL NOT NULL, created_at REAL NOT NULL, "
        "state TEXT NOT NULL, attempts INTEGER NOT NULL, owner TEXT, error TEXT)",
        "CREATE INDEX outbox_due ON {outbox} (next_at, id) WHERE state = 'pending'",
        "CREATE INDEX outbox_run ON {outbox} (run_id, created_at, id)",
    ),
)
"""Schema migrations in order; ``schema_version`` records how many ran."""

_TABLES = {
    "runs": "runs",
    "pending": "pending",
    "audit": "audit",
    "steps": "steps",
    "signals": "signals",
    "assigned": "assigned",
    "outbox": "outbox",
    "schema_version": "schema_version",
}

# OperationalErrors that mean "cannot use the file now", not a bug in a statement.
_UNAVAILABLE = ("unable to open", "locked", "busy", "disk i/o", "readonly", "not a database")


class SQLiteStore(PlannedStore):
    """A :class:`~pausepoint.stores.base.Store` in a SQLite file; open it with ``sqlite:///path``.

    The file and its tables are created on first use.

    Args:
        url: ``sqlite:///relative.db`` or ``sqlite:////absolute.db``, optionally
            with ``?synchronous=normal``.
        busy_timeout: Seconds a write waits for another process's write lock
            before failing with :class:`~pausepoint.errors.StoreUnavailableError`.
        synchronous: ``"full"`` (default): every commit reaches the disk before
            the call returns, so a run survives a power cut as well as a crash.
            ``"normal"``: commits wait for no disk sync (SQLite's recommendation
            in WAL mode); a crash of the process loses nothing, a power cut or
            kernel panic may lose the last commits. The URL's ``synchronous``
            parameter, when given, wins.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 10.0,
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        path_url, from_url = pop_query_param(url, "synchronous")
        if not path_url.startswith("sqlite:///") or len(path_url) == len("sqlite:///"):
            raise ValueError(
                f"a SQLite store URL looks like sqlite:///path/to/runs.db, got {url!r}"
            )
        if "?" in path_url:
            raise ValueError(
                f"a SQLite store URL takes no parameters but synchronous=, got {url!r}"
            )
        chosen = (from_url or synchronous).lower()
        if chosen not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {chosen!r} in {url!r}")
        self._url = url
        self._path = path_url[len("sqlite:///") :]
        self._synchronous = chosen
        self._busy_timeout = busy_timeout
        self._plans = SqlPlans(
            tables=_TABLES, placeholder="?", dump=dump_json, load=json.loads, url=url
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pausepoint-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only in self._thread

    @property
    def url(self) -> str:
        """The store's URL."""
        return self._url

    # -- worker thread -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            self._wal(conn)
            conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            _drive(conn, self._plans.migrate(MIGRATIONS), write=True)
        except BaseException:
            conn.close()
            raise
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Turn WAL on; a new file that another connection is setting up too is waited for.

        Switching a file's journal mode takes its lock without SQLite's busy
        wait, so two first users of one new file would otherwise fail at once.
        """
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _call(self, plan: Plan[T], write: bool) -> T:
        try:
            if self._conn is None:
                self._conn = self._connect()
            return _drive(self._conn, plan, write=write)
        except sqlite3.OperationalError as error:
            if not any(text in str(error).lower() for text in _UNAVAILABLE):
                raise
            self._close()  # start afresh next time: the file may have moved or healed
            raise unavailable(self._url, self._url, error) from error

    def renewer(self) -> LeaseRenewer:
        """Return a lease renewer with a connection of its own (see ``Store.renewer``)."""
        return _Renewer(self)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, plan: Plan[T], *, write: bool = False) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._call, plan, write)

    async def aclose(self) -> None:
        """Close the connection and stop the worker thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown()


class _Renewer:
    """Renews leases on a connection of its own, from the thread that calls it."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._conn: sqlite3.Connection | None = None

    def renew(self, claims: Sequence[tuple[str, str]], lease_until: float) -> dict[str, Any]:
        store = self._store
        try:
            if self._conn is None:
                self._conn = store._connect()
            return _drive(self._conn, store._plans.renew(claims, lease_until), write=True)
        except sqlite3.OperationalError as error:
            self.close()
            raise unavailable(store.url, store.url, error) from error

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _drive(conn: sqlite3.Connection, plan: Plan[T], *, write: bool) -> T:
    """Run a plan on ``conn``; a writing plan in one ``BEGIN IMMEDIATE`` transaction."""
    if write:
        conn.execute("BEGIN IMMEDIATE")
    try:
        result = _execute(conn, plan)
        if write:
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _execute(conn: sqlite3.Connection, plan: Plan[T]) -> T:
    """Run a plan's queries on ``conn`` and return the plan's result."""
    try:
        query: Query = next(plan)
        while True:
            if query.many:
                conn.executemany(query.sql, query.params)
                rows: Rows = []
            else:
                rows = conn.execute(query.sql, query.params).fetchall()
            query = plan.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # a plan's return value, typed by Plan[T]
