"""The SQL both relational backends run, as plans free of I/O.

Each store operation is a generator (a *plan*) that yields :class:`Query` objects
and receives each query's rows back; its return value is the operation's result,
and an exception it raises aborts the operation. The SQLite backend drives plans
synchronously in its worker thread, the PostgreSQL backend asynchronously; each
wraps write plans in a transaction, so a plan that raises half-way writes nothing.

The plans of the run record, its audit log and journal, and erasure live here;
those of the other concepts in sibling modules, each reached through an attribute
of :class:`SqlPlans` and mixed into :class:`PlannedStore`: the inbox and the
listings (:mod:`pausepoint.stores._sql_listing`), the signal buffer
(:mod:`pausepoint.stores._sql_signals`) and the notification outbox
(:mod:`pausepoint.stores._sql_outbox`).

Tables (names given by the backend):

* ``runs``: one row per run; ``version`` is the compare-and-set counter,
  ``audit_seq`` the last audit ``seq`` handed out, ``due_at`` the earliest pause
  deadline while paused. Its indexes serve the listings.
* ``pending`` and ``assigned``: the inbox, written with the record (see
  :mod:`pausepoint.stores._sql_listing`).
* ``audit``: ``(run_id, seq)`` keyed, insert only.
* ``steps``: the journal, ``(run_id, idx)`` keyed, insert only; ``runs.step_count``
  is the number of entries, ``runs.lease_owner`` the claim that may append.
* ``signals``: answers kept for a business key until a pause waits under it (see
  :mod:`pausepoint.stores._sql_signals`).
* ``outbox``: notifications to deliver and the timers of pauses (see
  :mod:`pausepoint.stores._sql_outbox`), written with the pause they are about.
* ``schema_version``: one row, the number of migrations applied.

Migration 3 adds ``runs.stage`` and the indexes that serve run listings
(``(status, updated_at, run_id)``, led by ``chart`` or ``stage`` too, and
``(updated_at, run_id)``), ``pending.business_key`` with its index, and ``signals``.
Erasing runs (:meth:`SqlPlans.delete`, :meth:`SqlPlans.purge`) deletes their rows
from every table in one transaction per call; ``purge`` takes one bounded batch.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pausepoint.stores._common import (
    check_purge_limit,
    check_schema_version,
    claim_lost,
    due_at,
    event_from_doc,
    event_to_doc,
    indexed_pauses,
    run_exists,
    run_from_doc,
    run_not_found,
    run_to_doc,
    step_from_doc,
    step_to_doc,
    version_conflict,
)
from pausepoint.stores._sql_listing import ListingPlans, PlannedListing
from pausepoint.stores._sql_outbox import OutboxPlans, PlannedOutbox
from pausepoint.stores._sql_signals import PlannedSignals, SignalPlans
from pausepoint.stores.base import (
    AuditEvent,
    Decider,
    JournalEntry,
    OutboxEntry,
    RunStatus,
    StoredRun,
)

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement for the driver to execute.

    Attributes:
        sql: The statement, with the backend's placeholders.
        params: Its parameters; with ``many``, a sequence of parameter tuples.
        many: Execute once per parameter tuple (``executemany``); yields no rows.
    """

    sql: str
    params: Sequence[Any] = ()
    many: bool = False


Plan = Generator[Query, Rows, T]
"""A store operation: yields queries, receives their rows, returns the result."""

_RUN_FIELDS = (
    "run_id",
    "chart",
    "fingerprint",
    "status",
    "version",
    "created_at",
    "updated_at",
    "checkpoint",
    "pauses",
    "snapshot",
    "error",
    "lease_owner",
    "lease_until",
    "meta",
    "cancel",
    "stage",
    "step_count",
)
_RUN_COLUMNS = ", ".join(_RUN_FIELDS)
_LIGHT_COLUMNS = ", ".join(
    f"NULL AS {f}" if f in ("checkpoint", "snapshot") else f for f in _RUN_FIELDS
)
# step_count is the store's: only ever raised by the number of entries appended
_WRITTEN_COLUMNS = (*_RUN_FIELDS[:-1], "due_at")
_JSON_RUN_FIELDS = frozenset({"checkpoint", "pauses", "snapshot", "meta", "cancel"})
_RUN_TABLES = ("outbox", "assigned", "pending", "audit", "steps", "runs")
"""Every table holding rows of a run, children first: what erasing a run deletes from."""


class SqlPlans:
    """Builds the statements for one set of tables and the plans that use them.

    Args:
        tables: Map of ``runs``, ``pending``, ``audit``, ``schema_version`` to the
            (quoted, qualified as needed) table names.
        placeholder: The driver's parameter marker (``?`` or ``%s``).
        dump: Turns a JSON value into a parameter (JSON text, or a JSONB wrapper).
        load: Turns a JSON column value back into the JSON value.
        url: The store's redacted URL, for messages.
        lock: What a ``SELECT`` adds to lock the row it reads until the
            transaction ends (``FOR UPDATE``; empty where the transaction
            already holds the write lock, as SQLite's ``BEGIN IMMEDIATE`` does).
        key_lock: A statement taking a lock on a business key (its one
            parameter) until the transaction ends, so that two writers of one
            key's signal buffer queue; empty where the transaction holds the
            write lock already.
    """

    def __init__(
        self,
        *,
        tables: dict[str, str],
        placeholder: str,
        dump: Callable[[Any], Any],
        load: Callable[[Any], Any],
        url: str,
        lock: str = "",
        key_lock: str = "",
    ) -> None:
        self._tables = tables
        self._placeholder = placeholder
        self._dump = dump
        self._load = load
        self._url = url
        self._lock = lock
        self.listing = ListingPlans(self)
        self.signals = SignalPlans(self, key_lock)
        self.outbox = OutboxPlans(self)

    def sql(self, template: str) -> str:
        """Fill a statement template's ``{table}`` names and ``%s`` placeholders."""
        return template.format(**self._tables).replace("%s", self._placeholder)

    def _query(self, template: str, params: Sequence[Any] = (), *, many: bool = False) -> Query:
        return Query(self.sql(template), params, many)

    query = _query
    """A :class:`Query` of a statement template (for the plans of other modules)."""

    @property
    def row_lock(self) -> str:
        """What a ``SELECT`` adds to lock the rows it reads (empty under a write lock)."""
        return self._lock

    @staticmethod
    def marks(count: int) -> str:
        """``count`` parameter markers, comma-separated (for ``VALUES (...)``, ``IN (...)``)."""
        return ", ".join(["%s"] * count)

    def select_runs(self, *, light: bool = False) -> str:
        """The ``SELECT ... FROM {runs}`` of whole records (``light``: no checkpoint, snapshot)."""
        return f"SELECT {_LIGHT_COLUMNS if light else _RUN_COLUMNS} FROM {{runs}}"

    def dump_json(self, value: Any) -> Any:
        """A JSON value as a statement parameter."""
        return self._dump(value)

    def load_json(self, value: Any) -> Any:
        """A JSON column's value as the JSON value."""
        return self._load(value)

    # -- codec -----------------------------------------------------------------

    def _run_row(self, run: StoredRun, version: int) -> tuple[Any, ...]:
        """Return the values of ``_WRITTEN_COLUMNS``: the record's fields, then ``due_at``."""
        doc = run_to_doc(run, version=version)
        fields = (
            self._dump(doc[f]) if f in _JSON_RUN_FIELDS and doc[f] is not None else doc[f]
            for f in _RUN_FIELDS[:-1]
        )
        return (*fields, due_at(run))

    def run_from_row(self, row: Sequence[Any]) -> StoredRun:
        """A record from the columns :meth:`select_runs` reads, in their order."""
        doc = dict(zip(_RUN_FIELDS, row, strict=True))
        for name in _JSON_RUN_FIELDS:
            if doc[name] is not None:
                doc[name] = self._load(doc[name])
        return run_from_doc(doc)

    def _insert_steps(self, run_id: str, steps: Sequence[JournalEntry], index: int) -> Plan[None]:
        """Insert journal entries, the first at ``index`` of the run's journal."""
        rows = [
            (
                run_id,
                index + i,
                d["kind"],
                d["stage_id"],
                d["at"],
                d["actor"],
                self._dump(d["data"]),
            )
            for i, d in enumerate(step_to_doc(step) for step in steps)
        ]
        if rows:
            sql = "INSERT INTO {steps} (run_id, idx, kind, stage_id, at, actor, data) VALUES ("
            yield self._query(sql + self.marks(7) + ")", rows, many=True)

    def _insert_audit(self, run_id: str, events: Sequence[AuditEvent], seq: int) -> Plan[None]:
        """Insert ``events``, the first at position ``seq`` of the run's log."""
        rows = [
            (run_id, seq + i, doc["kind"], doc["at"], doc["actor"], self._dump(doc["data"]))
            for i, doc in enumerate(event_to_doc(e) for e in events)
        ]
        if rows:
            sql = "INSERT INTO {audit} (run_id, seq, kind, at, actor, data) VALUES ("
            yield self._query(sql + self.marks(6) + ")", rows, many=True)

    # -- plans -----------------------------------------------------------------

    def migrate(self, migrations: Sequence[Sequence[str]]) -> Plan[None]:
        """Apply the migrations not applied yet, then record how many are.

        Run it in a transaction that excludes concurrent migrators (the caller's job).
        """
        yield self._query("CREATE TABLE IF NOT EXISTS {schema_version} (version INTEGER NOT NULL)")
        rows = yield self._query("SELECT version FROM {schema_version}")
        applied = rows[0][0] if rows else 0
        check_schema_version(applied, len(migrations), self._url)
        for migration in migrations[applied:]:
            for statement in migration:
                yield self._query(statement)
        if applied < len(migrations):
            yield self._query("DELETE FROM {schema_version}")
            yield self._query("INSERT INTO {schema_version} VALUES (%s)", (len(migrations),))

    def create(
        self,
        run: StoredRun,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry],
        outbox: Sequence[OutboxEntry] = (),
    ) -> Plan[StoredRun]:
        """Insert the run at version 1 (see ``Store.create``); run it in a transaction."""
        sql = (
            f"INSERT INTO {{runs}} ({', '.join(_WRITTEN_COLUMNS)}, audit_seq, step_count) "
            f"VALUES ({self.marks(len(_WRITTEN_COLUMNS) + 2)}) "
            "ON CONFLICT (run_id) DO NOTHING RETURNING run_id"
        )
        inserted = yield self._query(sql, (*self._run_row(run, 1), len(events), len(steps)))
        if not inserted:
            raise run_exists(run.run_id)
        yield from self.listing.insert_pending(run)
        yield from self._insert_audit(run.run_id, events, 1)
        yield from self._insert_steps(run.run_id, steps, 0)
        yield from self.outbox.insert(outbox)
        return dataclasses.replace(run, version=1, step_count=len(steps))

    def replace(
        self, run: StoredRun, expected_version: int, events: Sequence[AuditEvent]
    ) -> Plan[StoredRun]:
        """Compare-and-set the record (see ``Store.replace``); run it in a transaction.

        The conditional ``UPDATE ... WHERE version = expected`` is the whole race:
        the database lets one writer at a time update the row, so of two writers
        with the same expected version the second matches no row.
        """
        assignments = ", ".join(f"{c} = %s" for c in _WRITTEN_COLUMNS[1:])
        sql = (
            f"UPDATE {{runs}} SET {assignments}, audit_seq = audit_seq + %s "
            "WHERE run_id = %s AND version = %s RETURNING audit_seq"
        )
        row = self._run_row(run, expected_version + 1)
        updated = yield self._query(sql, (*row[1:], len(events), run.run_id, expected_version))
        if not updated:
            found = yield self._query("SELECT version FROM {runs} WHERE run_id = %s", (run.run_id,))
            if not found:
                raise run_not_found(run.run_id)
            raise version_conflict(run.run_id, expected_version, found[0][0])
        yield from self.listing.delete_pending(run.run_id)
        yield from self.listing.insert_pending(run)
        yield from self._insert_audit(run.run_id, events, updated[0][0] - len(events) + 1)
        return dataclasses.replace(run, version=expected_version + 1)

    def append_audit(self, run_id: str, events: Sequence[AuditEvent]) -> Plan[None]:
        """Append audit events (see ``Store.append_audit``); run it in a transaction."""
        sql = "UPDATE {runs} SET audit_seq = audit_seq + %s WHERE run_id = %s RETURNING audit_seq"
        updated = yield self._query(sql, (len(events), run_id))
        if not updated:
            raise run_not_found(run_id)
        yield from self._insert_audit(run_id, events, updated[0][0] - len(events) + 1)

    def update(
        self, run_id: str, decide: Decider, light: bool, audit: bool
    ) -> Plan[tuple[StoredRun, tuple[AuditEvent, ...]]]:
        """Read, decide and write one record (see ``Store.update``); run it in a transaction.

        The ``SELECT`` locks the row (or the transaction holds the write lock
        already), so nothing writes the run between the read and the write.
        """
        rows = yield self._query(
            f"{self.select_runs(light=light)} WHERE run_id = %s{self._lock}", (run_id,)
        )
        if not rows:
            raise run_not_found(run_id)
        current = self.run_from_row(rows[0])
        change = decide(current)
        result = current
        if change is not None:
            run, events, steps = change.run, change.events, change.steps
            # A big value the decider kept as it read it (a claim keeps the checkpoint) is
            # not written again. (With ``light`` the decider sets both itself.)
            kept = set() if light else _kept(current, run)
            written = [
                (column, value)
                for column, value in zip(
                    _WRITTEN_COLUMNS[1:], self._run_row(run, current.version + 1)[1:], strict=True
                )
                if column not in kept
            ]
            assignments = ", ".join(f"{column} = %s" for column, _ in written)
            sql = (
                f"UPDATE {{runs}} SET {assignments}, audit_seq = audit_seq + %s, "
                "step_count = step_count + %s WHERE run_id = %s RETURNING audit_seq, step_count"
            )
            values = [value for _, value in written]
            (seq, count), *_ = yield self._query(sql, (*values, len(events), len(steps), run_id))
            if pauses := indexed_pauses(current):
                assigned = any(pause.assignees for pause in pauses)
                yield from self.listing.delete_pending(run_id, assigned=assigned)
            yield from self.listing.insert_pending(run)
            yield from self._insert_audit(run_id, events, seq - len(events) + 1)
            yield from self._insert_steps(run_id, steps, count - len(steps))
            yield from self.outbox.insert(change.outbox)
            result = dataclasses.replace(run, version=current.version + 1, step_count=count)
        if not audit:
            return result, ()
        return result, (yield from self._audit_rows(run_id))

    def append_steps(
        self, run_id: str, owner: str, steps: Sequence[JournalEntry], lease_until: float
    ) -> Plan[Any]:
        """Append journal entries under a claim (see ``Store.append_steps``); in a transaction."""
        rows = yield self._query(
            "UPDATE {runs} SET lease_until = %s, step_count = step_count + %s "
            "WHERE run_id = %s AND lease_owner = %s AND status = 'running' "
            "RETURNING step_count, cancel",
            (lease_until, len(steps), run_id, owner),
        )
        if not rows:
            found = yield self._query("SELECT 1 FROM {runs} WHERE run_id = %s", (run_id,))
            raise claim_lost(run_id, owner) if found else run_not_found(run_id)
        count, cancel = rows[0]
        yield from self._insert_steps(run_id, steps, count - len(steps))
        return None if cancel is None else self._load(cancel)

    def renew(self, claims: Sequence[tuple[str, str]], lease_until: float) -> Plan[dict[str, Any]]:
        """Extend the leases still held (see ``LeaseRenewer.renew``); run it in a transaction."""
        held: dict[str, Any] = {}
        for run_id, owner in claims:
            rows = yield self._query(
                "UPDATE {runs} SET lease_until = %s WHERE run_id = %s AND lease_owner = %s "
                "AND status = 'running' RETURNING cancel",
                (lease_until, run_id, owner),
            )
            if rows:
                held[run_id] = None if rows[0][0] is None else self._load(rows[0][0])
        return held

    def journal(self, run_id: str, start: int) -> Plan[tuple[JournalEntry, ...]]:
        """Read a run's journal from ``start`` on (see ``Store.journal``)."""
        rows = yield self._query(
            "SELECT idx, kind, stage_id, at, actor, data FROM {steps} "
            "WHERE run_id = %s AND idx >= %s ORDER BY idx",
            (run_id, start),
        )
        if not rows:
            exists = yield self._query("SELECT 1 FROM {runs} WHERE run_id = %s", (run_id,))
            if not exists:
                raise run_not_found(run_id)
        return tuple(
            step_from_doc(
                {"kind": k, "stage_id": s, "at": at, "actor": a, "data": self._load(d)}, i
            )
            for i, k, s, at, a, d in rows
        )

    def get(self, run_id: str) -> Plan[StoredRun]:
        """Read one record (see ``Store.get``)."""
        rows = yield self._query(self.select_runs() + " WHERE run_id = %s", (run_id,))
        if not rows:
            raise run_not_found(run_id)
        return self.run_from_row(rows[0])

    def audit(self, run_id: str) -> Plan[tuple[AuditEvent, ...]]:
        """Read a run's audit log (see ``Store.audit``)."""
        events = yield from self._audit_rows(run_id)
        if not events:  # every run has a "started" event; none: is there a run at all?
            exists = yield self._query("SELECT 1 FROM {runs} WHERE run_id = %s", (run_id,))
            if not exists:
                raise run_not_found(run_id)
        return events

    def _audit_rows(self, run_id: str) -> Plan[tuple[AuditEvent, ...]]:
        sql = "SELECT kind, at, actor, data, seq FROM {audit} WHERE run_id = %s ORDER BY seq"
        rows = yield self._query(sql, (run_id,))
        return tuple(
            event_from_doc({"kind": k, "at": at, "actor": actor, "data": self._load(data)}, seq)
            for k, at, actor, data, seq in rows
        )

    def _erase(self, run_ids: Sequence[str]) -> Plan[None]:
        """Delete every row of these runs, children first."""
        if run_ids:
            marks = self.marks(len(run_ids))
            for table in _RUN_TABLES:
                yield self._query(f"DELETE FROM {{{table}}} WHERE run_id IN ({marks})", run_ids)

    def delete(self, run_id: str, expected_version: int) -> Plan[None]:
        """Erase one run if its version matches (see ``Store.delete``); in a transaction."""
        rows = yield self._query(
            f"SELECT version FROM {{runs}} WHERE run_id = %s{self._lock}", (run_id,)
        )
        if not rows:
            raise run_not_found(run_id)
        if rows[0][0] != expected_version:
            raise version_conflict(run_id, expected_version, rows[0][0])
        yield from self._erase([run_id])

    def purge(
        self,
        *,
        status: RunStatus,
        updated_before: float,
        chart: str | None,
        exclude_charts: Sequence[str],
        limit: int,
    ) -> Plan[tuple[str, ...]]:
        """Erase one batch of old runs (see ``Store.purge``); run it in a transaction.

        The batch is read through the ``(status, updated_at, run_id)`` index,
        oldest first, and locked as read (rows another transaction holds are
        skipped where the database can), then deleted from every table by id.
        """
        check_purge_limit(limit)
        where = ["status = %s", "updated_at < %s"]
        params: list[Any] = [status, updated_before]
        if chart is not None:
            where.append("chart = %s")
            params.append(chart)
        if exclude_charts:
            where.append(f"chart NOT IN ({self.marks(len(exclude_charts))})")
            params.extend(exclude_charts)
        lock = f"{self._lock} SKIP LOCKED" if self._lock else ""
        rows = yield self._query(
            f"SELECT run_id FROM {{runs}} WHERE {' AND '.join(where)} "
            f"ORDER BY updated_at, run_id LIMIT %s{lock}",
            (*params, limit),
        )
        run_ids = tuple(row[0] for row in rows)
        yield from self._erase(run_ids)
        return run_ids


def _kept(current: StoredRun, run: StoredRun) -> set[str]:
    """The big columns ``run`` holds as the very objects read in ``current``: unchanged."""
    return {
        name
        for name in ("checkpoint", "snapshot")
        if getattr(run, name) is getattr(current, name) and getattr(run, name) is not None
    }


class PlannedStore(PlannedListing, PlannedSignals, PlannedOutbox, ABC):
    """The ``Store`` methods of SQL backends: each builds a plan and runs it.

    A backend says only how a plan runs (``_run``: on which connection, in
    which transaction) and how it closes; the SQL lives in :class:`SqlPlans`.
    The listing, signal and outbox methods come from the mixins of their modules.
    """

    _plans: SqlPlans

    @abstractmethod
    async def _run(self, plan: Plan[T], *, write: bool = False) -> T:
        """Run ``plan``; in one transaction when it writes."""

    async def create(
        self,
        run: StoredRun,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        outbox: Sequence[OutboxEntry] = (),
    ) -> StoredRun:
        """Insert a new run (see ``Store.create``)."""
        return await self._run(self._plans.create(run, events, steps, outbox), write=True)

    async def get(self, run_id: str) -> StoredRun:
        """Return a run's record (see ``Store.get``)."""
        return await self._run(self._plans.get(run_id))

    async def replace(
        self, run: StoredRun, *, expected_version: int, events: Sequence[AuditEvent] = ()
    ) -> StoredRun:
        """Compare-and-set a record (see ``Store.replace``)."""
        return await self._run(self._plans.replace(run, expected_version, events), write=True)

    async def append_audit(self, run_id: str, events: Sequence[AuditEvent]) -> None:
        """Append audit events (see ``Store.append_audit``)."""
        await self._run(self._plans.append_audit(run_id, events), write=True)

    async def update(
        self, run_id: str, decide: Decider, *, light: bool = False, audit: bool = False
    ) -> tuple[StoredRun, tuple[AuditEvent, ...]]:
        """Read, decide and write a record in one transaction (see ``Store.update``)."""
        return await self._run(self._plans.update(run_id, decide, light, audit), write=True)

    async def append_steps(
        self, run_id: str, owner: str, steps: Sequence[JournalEntry], lease_until: float
    ) -> Mapping[str, Any] | None:
        """Append journal entries under a claim (see ``Store.append_steps``)."""
        plan = self._plans.append_steps(run_id, owner, steps, lease_until)
        cancel: Mapping[str, Any] | None = await self._run(plan, write=True)
        return cancel

    async def journal(self, run_id: str, *, start: int = 0) -> tuple[JournalEntry, ...]:
        """Return a run's journal (see ``Store.journal``)."""
        return await self._run(self._plans.journal(run_id, start))

    async def audit(self, run_id: str) -> tuple[AuditEvent, ...]:
        """Return a run's audit log (see ``Store.audit``)."""
        return await self._run(self._plans.audit(run_id))

    async def delete(self, run_id: str, *, expected_version: int) -> None:
        """Erase a run (see ``Store.delete``)."""
        await self._run(self._plans.delete(run_id, expected_version), write=True)

    async def purge(
        self,
        *,
        status: RunStatus,
        updated_before: float,
        chart: str | None = None,
        exclude_charts: Sequence[str] = (),
        limit: int = 500,
    ) -> tuple[str, ...]:
        """Erase one batch of old runs (see ``Store.purge``)."""
        plan = self._plans.purge(
            status=status,
            updated_before=updated_before,
            chart=chart,
            exclude_charts=exclude_charts,
            limit=limit,
        )
        return await self._run(plan, write=True)
