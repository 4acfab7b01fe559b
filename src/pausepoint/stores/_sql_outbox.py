"""The notification outbox in SQL: the statements both relational backends run.

Table ``outbox`` (name given by the backend): one row per
:class:`~pausepoint.stores.base.OutboxEntry`, keyed by the entry's ``id`` (a
digest of run, pause, kind, URL and tag, so writing an entry twice keeps one).
A partial index on ``(next_at, id) WHERE state = 'pending'`` serves claims; an
index on ``(run_id, created_at, id)`` serves :meth:`OutboxPlans.list` and erasure.

A claim reads due rows through the index, locking them (``FOR UPDATE SKIP
LOCKED`` in PostgreSQL, so concurrent claimers take disjoint rows; SQLite's
``BEGIN IMMEDIATE`` lets one writer in at a time), and moves their ``next_at``
to the lease's end in the same transaction: until then no other claimer sees
them due. Settling is conditional on the claimer's token, so a claimer whose
lease lapsed writes nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pausepoint.stores._common import check_limit, check_outbox_state, outbox_from_doc
from pausepoint.stores.base import AuditEvent, OutboxEntry, OutboxState

if TYPE_CHECKING:
    from pausepoint.stores._sql import Plan, SqlPlans

__all__ = ["OutboxPlans", "PlannedOutbox"]

T = TypeVar("T")

_FIELDS = (
    "run_id",
    "pause_id",
    "kind",
    "url",
    "tag",
    "payload",
    "next_at",
    "created_at",
    "state",
    "attempts",
    "owner",
    "error",
)
_COLUMNS = ", ".join(_FIELDS)


class OutboxPlans:
    """The outbox plans of one :class:`~pausepoint.stores._sql.SqlPlans` (its tables and codec)."""

    def __init__(self, plans: SqlPlans) -> None:
        self._plans = plans

    def _entry(self, row: Sequence[Any]) -> OutboxEntry:
        doc = dict(zip(_FIELDS, row, strict=True))
        doc["payload"] = self._plans.load_json(doc["payload"])
        return outbox_from_doc(doc)

    def insert(self, entries: Sequence[OutboxEntry]) -> Plan[None]:
        """Add entries, skipping any whose ``id`` is stored already; run it in a transaction."""
        dump = self._plans.dump_json
        rows = [
            (
                e.id,
                e.run_id,
                e.pause_id,
                e.kind,
                e.url,
                e.tag,
                dump(dict(e.payload)),
                e.next_at,
                e.created_at,
                e.state,
                e.attempts,
                e.owner,
                e.error,
            )
            for e in entries
        ]
        if rows:
            marks = self._plans.marks(len(_FIELDS) + 1)
            yield self._plans.query(
                f"INSERT INTO {{outbox}} (id, {_COLUMNS}) VALUES ({marks}) "
                "ON CONFLICT (id) DO NOTHING",
                rows,
                many=True,
            )

    def claim(
        self, now: float, owner: str, lease_until: float, limit: int
    ) -> Plan[tuple[OutboxEntry, ...]]:
        """Lease due pending entries (see ``Store.claim_outbox``); run it in a transaction."""
        check_limit(limit)
        lock = self._plans.row_lock
        rows = yield self._plans.query(
            "SELECT id FROM {outbox} WHERE state = 'pending' AND next_at <= %s "
            f"ORDER BY next_at, id LIMIT %s{lock + ' SKIP LOCKED' if lock else ''}",
            (now, limit),
        )
        ids = [row[0] for row in rows]
        if not ids:
            return ()
        marks = self._plans.marks(len(ids))
        claimed = yield self._plans.query(
            "UPDATE {outbox} SET owner = %s, next_at = %s, attempts = attempts + 1 "
            f"WHERE id IN ({marks}) RETURNING id, {_COLUMNS}",
            (owner, lease_until, *ids),
        )
        by_id = {row[0]: self._entry(row[1:]) for row in claimed}
        return tuple(by_id[i] for i in ids if i in by_id)

    def settle(
        self,
        entry: OutboxEntry,
        *,
        owner: str,
        state: OutboxState,
        next_at: float,
        error: str | None,
        payload: Mapping[str, Any] | None,
        events: Sequence[AuditEvent],
        outbox: Sequence[OutboxEntry],
    ) -> Plan[bool]:
        """Record a claimed entry's outcome (see ``Store.settle_outbox``); in a transaction."""
        check_outbox_state(state)
        sets = "state = %s, next_at = %s, error = %s, owner = NULL"
        params: list[Any] = [state, next_at, error]
        if payload is not None:
            sets += ", payload = %s"
            params.append(self._plans.dump_json(dict(payload)))
        rows = yield self._plans.query(
            f"UPDATE {{outbox}} SET {sets} WHERE id = %s AND owner = %s AND state = 'pending' "
            "RETURNING run_id",
            (*params, entry.id, owner),
        )
        if not rows:
            return False
        if events:
            yield from self._plans.append_audit(rows[0][0], events)
        yield from self.insert(outbox)
        return True

    def list(self, run_id: str) -> Plan[tuple[OutboxEntry, ...]]:
        """Read a run's entries, oldest first (see ``Store.list_outbox``)."""
        rows = yield self._plans.query(
            f"SELECT {_COLUMNS} FROM {{outbox}} WHERE run_id = %s ORDER BY created_at, id",
            (run_id,),
        )
        return tuple(self._entry(row) for row in rows)


class PlannedOutbox:
    """The outbox methods of the SQL stores: each builds a plan and runs it."""

    _plans: SqlPlans

    @abstractmethod
    async def _run(self, plan: Plan[T], *, write: bool = False) -> T:
        """Run ``plan``; in one transaction when it writes."""

    async def claim_outbox(
        self, now: float, *, owner: str, lease_until: float, limit: int = 100
    ) -> tuple[OutboxEntry, ...]:
        """Lease due outbox entries (see ``Store.claim_outbox``)."""
        plan = self._plans.outbox.claim(now, owner, lease_until, limit)
        return await self._run(plan, write=True)

    async def settle_outbox(
        self,
        entry: OutboxEntry,
        *,
        owner: str,
        state: OutboxState,
        next_at: float,
        error: str | None = None,
        payload: Mapping[str, Any] | None = None,
        events: Sequence[AuditEvent] = (),
        outbox: Sequence[OutboxEntry] = (),
    ) -> bool:
        """Record a claimed outbox entry's outcome (see ``Store.settle_outbox``)."""
        plan = self._plans.outbox.settle(
            entry,
            owner=owner,
            state=state,
            next_at=next_at,
            error=error,
            payload=payload,
            events=events,
            outbox=outbox,
        )
        return await self._run(plan, write=True)

    async def list_outbox(self, run_id: str) -> tuple[OutboxEntry, ...]:
        """Return a run's outbox entries (see ``Store.list_outbox``)."""
        return await self._run(self._plans.outbox.list(run_id))
