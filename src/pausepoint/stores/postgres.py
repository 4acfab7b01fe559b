"""A store in PostgreSQL, shared by any number of servers; needs ``pausepoint[postgres]``.

Tables live in their own schema, ``pausepoint`` unless the URL's ``schema``
parameter or the ``schema`` argument names another; the store creates the
schema (if missing: only then does it need the ``CREATE`` privilege on the
database) and its tables on first use. JSON values are ``jsonb`` columns, so
object keys come back in PostgreSQL's order, not the order they were written in.

Connections come from a :class:`psycopg_pool.AsyncConnectionPool` opened on
first use. One idle for a while is checked before it is handed out, so after a
server restart the pool replaces dead connections by itself; one used in the
last second is not (a check is a round trip, and a transaction on the
server's books). A connection failure drops the pool: later calls connect
afresh, failing at once while the server is down and working once it is back. Compare-and-set is one
``UPDATE ... WHERE run_id = %s AND version = %s`` inside the write's transaction:
PostgreSQL lets one transaction at a time update the row, and the loser's
``WHERE`` no longer matches. Statements and plans are the ones the SQLite store
runs (:mod:`pausepoint.stores._sql`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from pausepoint.stores._common import dump_json, pop_query_param, redact_url, unavailable
from pausepoint.stores._sql import Plan, PlannedStore, Query, Rows, SqlPlans
from pausepoint.stores.base import LeaseRenewer

__all__ = ["MIGRATIONS", "PostgresStore"]

T = TypeVar("T")
Connection = psycopg.AsyncConnection[TupleRow]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        'CREATE TABLE {runs} (run_id text COLLATE "C" PRIMARY KEY, chart text NOT NULL, '
        "fingerprint text NOT NULL, status text NOT NULL, version integer NOT NULL, "
        "created_at double precision NOT NULL, updated_at double precision NOT NULL, "
        "checkpoint jsonb, pauses jsonb NOT NULL, snapshot jsonb, error text, lease_owner text, "
        "lease_until double precision, meta jsonb NOT NULL, due_at double precision, "
        "audit_seq integer NOT NULL)",
        "CREATE INDEX runs_due ON {runs} (due_at, run_id) WHERE due_at IS NOT NULL",
        "CREATE INDEX runs_stale ON {runs} (lease_until, run_id) WHERE status = 'running'",
        # "C" collation: ids sort by code point, as in SQLite, Redis and memory.
        'CREATE TABLE {pending} (run_id text COLLATE "C" NOT NULL, chart text NOT NULL, '
        'run_created_at double precision NOT NULL, pause_id text COLLATE "C" NOT NULL, '
        "stage_id text NOT NULL, data jsonb NOT NULL, created_at double precision NOT NULL, "
        "deadline double precision, PRIMARY KEY (run_id, pause_id))",
        "CREATE INDEX pending_all ON {pending} (created_at, run_id, pause_id)",
        "CREATE INDEX pending_chart ON {pending} (chart, created_at, run_id, pause_id)",
        "CREATE INDEX pending_stage ON {pending} (stage_id, created_at, run_id, pause_id)",
        "CREATE INDEX pending_chart_stage ON {pending} "
        "(chart, stage_id, created_at, run_id, pause_id)",
        'CREATE TABLE {audit} (run_id text COLLATE "C" NOT NULL, seq integer NOT NULL, '
        "kind text NOT NULL, at double precision NOT NULL, actor text, data jsonb NOT NULL, "
        "PRIMARY KEY (run_id, seq))",
    ),
    (  # 2: the journal, and cancel requests a claim holder reads without a version race
        "ALTER TABLE {runs} ADD COLUMN cancel jsonb",
        "ALTER TABLE {runs} ADD COLUMN step_count integer NOT NULL DEFAULT 0",
        'CREATE TABLE {steps} (run_id text COLLATE "C" NOT NULL, idx integer NOT NULL, '
        "kind text NOT NULL, stage_id text NOT NULL, at double precision NOT NULL, actor text, "
        "data jsonb NOT NULL, PRIMARY KEY (run_id, idx))",
    ),
    (  # 3: listing runs of any status, erasing them, answers by business key
        "ALTER TABLE {runs} ADD COLUMN stage text",
        "CREATE INDEX runs_status ON {runs} (status, updated_at, run_id)",
        "CREATE INDEX runs_chart_status ON {runs} (chart, status, updated_at, run_id)",
        "CREATE INDEX runs_stage_status ON {runs} (stage, status, updated_at, run_id) "
        "WHERE stage IS NOT NULL",
        "CREATE INDEX runs_updated ON {runs} (updated_at, run_id)",
        "CREATE INDEX runs_chart ON {runs} (chart, updated_at, run_id)",
        "ALTER TABLE {pending} ADD COLUMN business_key text",
        "CREATE INDEX pending_key ON {pending} (business_key, created_at, run_id, pause_id) "
        "WHERE business_key IS NOT NULL",
        "CREATE TABLE {signals} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "business_key text NOT NULL, input jsonb NOT NULL, actor text, "
        "at double precision NOT NULL, expires_at double precision NOT NULL)",
        "CREATE INDEX signals_key ON {signals} (business_key, id)",
        "CREATE INDEX signals_expiry ON {signals} (expires_at)",
    ),
    (  # 4: who may answer a pause, and "assigned to me" reads
        "ALTER TABLE {pending} ADD COLUMN assignees jsonb",
        "CREATE TABLE {assigned} (who text NOT NULL, created_at double precision NOT NULL, "
        'run_id text COLLATE "C" NOT NULL, pause_id text COLLATE "C" NOT NULL, '
        "PRIMARY KEY (who, created_at, run_id, pause_id))",
        "CREATE INDEX assigned_run ON {assigned} (run_id)",
    ),
    (  # 5: the notification outbox, written with the pauses it is about
        'CREATE TABLE {outbox} (id text COLLATE "C" PRIMARY KEY, '
        'run_id text COLLATE "C" NOT NULL, pause_id text NOT NULL, kind text NOT NULL, '
        "url text NOT NULL, tag text NOT NULL, payload jsonb NOT NULL, "
        "next_at double precision NOT NULL, created_at double precision NOT NULL, "
        "state text NOT NULL, attempts integer NOT NULL, owner text, error text)",
        "CREATE INDEX outbox_due ON {outbox} (next_at, id) WHERE state = 'pending'",
        "CREATE INDEX outbox_run ON {outbox} (run_id, created_at, id)",
    ),
)
"""Schema migrations in order; ``schema_version`` records how many ran."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

_FRESH_SECONDS = 1.0
"""A pooled connection used this recently is handed out without a check."""


class PostgresStore(PlannedStore):
    """A :class:`~pausepoint.stores.base.Store` in PostgreSQL; open it with ``postgresql://``.

    Args:
        url: A libpq URL, ``postgresql://user:password@host:port/db``; its
            query parameters go to libpq, except ``schema``.
        schema: Schema for the tables; overrides the URL's ``schema`` parameter.
        min_size: Connections the pool keeps open.
        max_size: Connections the pool may open.
        timeout: Seconds to wait for a pooled connection (e.g. while the server is
            down) before raising :class:`~pausepoint.errors.StoreUnavailableError`.
        connect_timeout: Seconds libpq waits for a new connection, unless the URL
            sets ``connect_timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        connect_timeout: int = 5,
    ) -> None:
        conninfo, schema_param = pop_query_param(url, "schema")
        self._schema = schema or schema_param or "pausepoint"
        if not _IDENTIFIER.fullmatch(self._schema):
            raise ValueError(
                f"schema {self._schema!r} is not a plain SQL identifier (letters, digits, _)"
            )
        self._raw_url = url
        self._url = redact_url(url)
        self._conninfo = conninfo
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(conninfo):
            self._kwargs["connect_timeout"] = connect_timeout
        self._pool_args: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "timeout": timeout,
        }
        tables = {
            name: f'"{self._schema}".{name}'
            for name in (
                "runs",
                "pending",
                "audit",
                "steps",
                "signals",
                "assigned",
                "outbox",
                "schema_version",
            )
        }
        self._plans = SqlPlans(
            tables=tables,
            placeholder="%s",
            dump=lambda value: Jsonb(value, dump_json),
            load=lambda value: value,  # psycopg already decoded the jsonb
            url=self._url,
            lock=" FOR UPDATE",
            key_lock="SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        )
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._opening = asyncio.Lock()
        self._used: dict[int, float] = {}  # id of a pooled connection -> when it was last returned

    @property
    def url(self) -> str:
        """The store's URL with any password removed."""
        return self._url

    async def _open(self) -> AsyncConnectionPool[Connection]:
        """Migrate the schema and open the pool, once; a failed attempt is retried next call."""
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                # A connection of its own, so that an unreachable server fails at once
                # rather than after the pool's timeout.
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, **self._kwargs
                ) as conn:
                    await self._migrate(conn)
                pool = AsyncConnectionPool(
                    self._conninfo,
                    kwargs=self._kwargs,
                    open=False,
                    check=self._check,
                    configure=self._configure,
                    name=f"pausepoint:{self._schema}",
                    **self._pool_args,
                )
                await pool.open()
                self._pool = pool
            return self._pool

    async def _configure(self, conn: Connection) -> None:
        self._used[id(conn)] = time.monotonic()  # just connected: no need to check it

    async def _check(self, conn: Connection) -> None:
        if time.monotonic() - self._used.get(id(conn), 0.0) >= _FRESH_SECONDS:
            await AsyncConnectionPool.check_connection(conn)

    async def _migrate(self, conn: Connection) -> None:
        key = hashlib.sha256(f"pausepoint:{self._schema}".encode()).digest()[:8]
        async with conn.transaction():
            # Serialises first use across processes: CREATE ... IF NOT EXISTS races otherwise.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s)", (int.from_bytes(key, signed=True),)
            )
            found = await conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._schema,)
            )
            if await found.fetchone() is None:
                await conn.execute(f'CREATE SCHEMA "{self._schema}"')
            await _drive(conn, self._plans.migrate(MIGRATIONS))

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        pool = None
        try:
            pool = await self._open()
            async with pool.connection() as conn:
                yield conn
                self._used[id(conn)] = time.monotonic()
        except psycopg.OperationalError as error:  # refused, dropped, PoolTimeout ...
            # The pool retries with growing back-off, which could keep failing calls long
            # after the server is back; the next call starts afresh instead, failing fast
            # while the server is down and succeeding as soon as it is up.
            await self._drop_pool(pool)
            raise unavailable(self._url, self._raw_url, error) from error

    async def _drop_pool(self, pool: AsyncConnectionPool[Connection] | None) -> None:
        async with self._opening:
            if pool is None or pool is not self._pool:
                return  # another task dropped it already
            self._pool = None
            self._used.clear()
        await pool.close(timeout=0)

    async def _run(self, plan: Plan[T], *, write: bool = False) -> T:
        async with self._connection() as conn:
            if not write:
                return await _drive(conn, plan)
            async with conn.transaction():
                return await _drive(conn, plan)

    def renewer(self) -> LeaseRenewer:
        """Return a lease renewer with a connection of its own (see ``Store.renewer``)."""
        return _Renewer(self)

    async def aclose(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class _Renewer:
    """Renews leases on a blocking connection of its own, from the thread that calls it."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: psycopg.Connection[TupleRow] | None = None

    def renew(self, claims: Sequence[tuple[str, str]], lease_until: float) -> dict[str, Any]:
        store = self._store
        try:
            if self._conn is None:
                self._conn = psycopg.Connection.connect(store._conninfo, **store._kwargs)
            with self._conn.transaction():
                return _drive_blocking(self._conn, store._plans.renew(claims, lease_until))
        except psycopg.OperationalError as error:
            self.close()
            raise unavailable(store.url, store._raw_url, error) from error

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


def _drive_blocking(conn: psycopg.Connection[TupleRow], plan: Plan[T]) -> T:
    """Run a plan's queries on a blocking connection and return the plan's result."""
    try:
        query: Query = next(plan)
        while True:
            with conn.cursor() as cursor:
                cursor.execute(query.sql, query.params)
                rows: Rows = cursor.fetchall() if cursor.description else []
            query = plan.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # a plan's return value, typed by Plan[T]


async def _drive(conn: Connection, plan: Plan[T]) -> T:
    """Run a plan's queries on ``conn`` and return the plan's result."""
    try:
        query: Query = next(plan)
        while True:
            async with conn.cursor() as cursor:
                if query.many:
                    await cursor.executemany(query.sql, query.params)
                    rows: Rows = []
                else:
                    await cursor.execute(query.sql, query.params)
                    rows = await cursor.fetchall() if cursor.description else []
            query = plan.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # a plan's return value, typed by Plan[T]
