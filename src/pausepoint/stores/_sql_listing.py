"""The listings in SQL: the inbox tables and every page read through an index.

Kept apart from :mod:`pausepoint.stores._sql` because it is the read side: the
record's writes need only :meth:`ListingPlans.insert_pending` and
:meth:`ListingPlans.delete_pending`, which keep the inbox tables in step with a
run's pauses in the write's own transaction.

Tables (names given by the backend):

* ``pending``: one row per pause of a paused run, carrying everything an inbox
  entry shows; indexes on ``(created_at, run_id, pause_id)``, led by nothing,
  ``chart``, ``stage_id`` or both, serve :meth:`ListingPlans.list_pending`, and
  one on ``business_key`` serves :meth:`ListingPlans.list_keyed`.
* ``assigned``: one row per assignee of such a pause, keyed ``(who, created_at,
  run_id, pause_id)``: the inbox of given people.

``list_runs`` pages through ``runs`` by its ``(status, updated_at, run_id)``
indexes (led by ``chart`` or ``stage`` too, and ``(updated_at, run_id)`` alone);
``list_due`` reads it by the partial index on ``due_at``, ``list_stale`` by the one
on ``lease_until`` (where ``status = 'running'``). Every page is one index range
scan: equality on an index's leading columns, a range on the rest.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pausepoint.stores._common import (
    check_limit,
    decode_cursor,
    decode_run_cursor,
    indexed_pauses,
    make_page,
    make_run_page,
    pause_from_doc,
)
from pausepoint.stores.base import InboxEntry, PendingPage, RunPage, RunStatus, StoredRun

if TYPE_CHECKING:
    from pausepoint.stores._sql import Plan, Query, SqlPlans

__all__ = ["ListingPlans", "PlannedListing"]

T = TypeVar("T")

_PENDING_COLUMNS = (
    "run_id, chart, run_created_at, pause_id, stage_id, data, created_at, deadline, "
    "business_key, assignees"
)


class ListingPlans:
    """The listing plans of one :class:`~pausepoint.stores._sql.SqlPlans` (its tables and codec)."""

    def __init__(self, plans: SqlPlans) -> None:
        self._plans = plans

    def insert_pending(self, run: StoredRun) -> Plan[None]:
        """Index the run's pauses in the inbox tables (none unless paused); in its write."""
        plans = self._plans
        head = (run.run_id, run.chart, run.created_at)
        pauses = indexed_pauses(run)
        rows = [
            (
                *head,
                p.pause_id,
                p.stage_id,
                plans.dump_json(p.data),
                p.created_at,
                p.deadline,
                p.key,
                plans.dump_json(list(p.assignees)) if p.assignees else None,
            )
            for p in pauses
        ]
        if rows:
            sql = f"INSERT INTO {{pending}} ({_PENDING_COLUMNS}) VALUES ({plans.marks(10)})"
            yield plans.query(sql, rows, many=True)
        assigned = [
            (who, p.created_at, run.run_id, p.pause_id) for p in pauses for who in p.assignees
        ]
        if assigned:
            sql = (
                "INSERT INTO {assigned} (who, created_at, run_id, pause_id) VALUES (%s, %s, %s, %s)"
            )
            yield plans.query(sql, assigned, many=True)

    def delete_pending(self, run_id: str, *, assigned: bool = True) -> Plan[None]:
        """Take the run's pauses out of the inbox tables; in its write.

        ``assigned=False`` when the caller knows none of them had an assignee
        (it read the record in this write): ``assigned`` then holds no row of
        the run, and its ``DELETE`` would be a round trip for nothing.
        """
        if assigned:
            yield self._plans.query("DELETE FROM {assigned} WHERE run_id = %s", (run_id,))
        yield self._plans.query("DELETE FROM {pending} WHERE run_id = %s", (run_id,))

    def _keyset_page(
        self,
        select: str,
        equal: Mapping[str, Any],
        key: Sequence[str],
        before: float | None,
        after: Sequence[Any] | None,
        limit: int,
        among: tuple[str, Sequence[Any]] | None = None,
    ) -> Query:
        """One page, newest first, as one index range scan (the inbox, run listings).

        Args:
            select: The ``SELECT ... FROM`` part.
            equal: Columns that must equal a value; ``None`` values are no filter.
            key: The sort key's columns, the first a time: the page is ordered by
                them, descending.
            before: Only rows whose time is before this.
            after: A cursor's key: only rows that sort strictly below it.
            limit: Page size; one row more is read, to tell that more follow.
            among: One more condition and its parameters.
        """
        where = [f"{column} = %s" for column, value in equal.items() if value is not None]
        params: list[Any] = [value for value in equal.values() if value is not None]
        if among is not None:
            where.append(among[0])
            params.extend(among[1])
        if before is not None:
            where.append(f"{key[0]} < %s")
            params.append(before)
        if after is not None:
            where.append(f"({', '.join(key)}) < ({self._plans.marks(len(key))})")
            params.extend(after)
        sql = (
            select
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY "
            + ", ".join(f"{column} DESC" for column in key)
            + " LIMIT %s"
        )
        return self._plans.query(sql, (*params, limit + 1))

    def list_pending(
        self,
        *,
        chart: str | None,
        stage: str | None,
        created_before: float | None,
        limit: int,
        cursor: str | None,
        assignees: Collection[str] | None = None,
    ) -> Plan[PendingPage]:
        """Read one inbox page (see ``Store.list_pending``) by keyset pagination.

        The filters are equality tests on the leading columns of one of the
        ``pending`` indexes, and the row-value comparison against the cursor a
        range on its remaining columns, so each page is one index range scan.
        With ``assignees``, the pauses assigned to them are found through the
        ``assigned`` table's ``(who, created_at, ...)`` key.
        """
        check_limit(limit)
        among = None
        if assignees is not None:
            who = sorted(set(assignees))
            among = (
                "(run_id, pause_id) IN (SELECT run_id, pause_id FROM {assigned} "
                f"WHERE who IN ({self._plans.marks(len(who))}))"
                if who
                else "1 = 0",
                who,
            )
        rows = yield self._keyset_page(
            f"SELECT {_PENDING_COLUMNS} FROM {{pending}}",
            {"chart": chart, "stage_id": stage},
            ("created_at", "run_id", "pause_id"),
            created_before,
            None if cursor is None else decode_cursor(cursor),
            limit,
            among,
        )
        items = [self._pending_from_row(row) for row in rows]
        return make_page(items, limit)

    def _pending_from_row(self, row: Sequence[Any]) -> InboxEntry:
        run_id, chart, run_created_at, pause_id, stage_id, data, created_at, deadline, key, who = (
            row
        )
        load = self._plans.load_json
        return InboxEntry(
            run_id=run_id,
            chart=chart,
            run_created_at=run_created_at,
            pause=pause_from_doc(
                {
                    "pause_id": pause_id,
                    "stage_id": stage_id,
                    "data": load(data),
                    "created_at": created_at,
                    "deadline": deadline,
                    "key": key,
                    "assignees": None if who is None else load(who),
                }
            ),
        )

    def list_keyed(self, key: str, limit: int) -> Plan[tuple[InboxEntry, ...]]:
        """Read the pauses waiting under a business key (see ``Store.list_keyed``)."""
        check_limit(limit)
        sql = (
            f"SELECT {_PENDING_COLUMNS} FROM {{pending}} WHERE business_key = %s "
            "ORDER BY created_at DESC, run_id DESC, pause_id DESC LIMIT %s"
        )
        rows = yield self._plans.query(sql, (key, limit))
        return tuple(self._pending_from_row(row) for row in rows)

    def list_runs(
        self,
        *,
        status: RunStatus | None,
        chart: str | None,
        stage: str | None,
        updated_before: float | None,
        limit: int,
        cursor: str | None,
    ) -> Plan[RunPage]:
        """Read one page of runs (see ``Store.list_runs``) by keyset pagination.

        As for the inbox: equality filters on the leading columns of one of the
        ``runs`` listing indexes, and a range on ``(updated_at, run_id)``.
        """
        check_limit(limit)
        rows = yield self._keyset_page(
            self._plans.select_runs(light=True),
            {"status": status, "chart": chart, "stage": stage},
            ("updated_at", "run_id"),
            updated_before,
            None if cursor is None else decode_run_cursor(cursor),
            limit,
        )
        return make_run_page([self._plans.run_from_row(row) for row in rows], limit)

    def list_due(self, now: float, limit: int) -> Plan[tuple[StoredRun, ...]]:
        """Read paused runs with a due pause, earliest deadline first (see ``Store.list_due``)."""
        check_limit(limit)
        sql = self._plans.select_runs() + " WHERE due_at <= %s ORDER BY due_at, run_id LIMIT %s"
        rows = yield self._plans.query(sql, (now, limit))
        return tuple(self._plans.run_from_row(row) for row in rows)

    def list_stale(self, now: float, limit: int) -> Plan[tuple[StoredRun, ...]]:
        """Read running runs whose lease lapsed, oldest lapse first (see ``Store.list_stale``)."""
        check_limit(limit)
        sql = self._plans.select_runs() + (
            " WHERE status = 'running' AND lease_until <= %s ORDER BY lease_until, run_id LIMIT %s"
        )
        rows = yield self._plans.query(sql, (now, limit))
        return tuple(self._plans.run_from_row(row) for row in rows)


class PlannedListing:
    """The listing methods of the SQL stores: each builds a plan and runs it."""

    _plans: SqlPlans

    @abstractmethod
    async def _run(self, plan: Plan[T], *, write: bool = False) -> T:
        """Run ``plan``; in one transaction when it writes."""

    async def list_pending(
        self,
        *,
        chart: str | None = None,
        stage: str | None = None,
        created_before: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        assignees: Collection[str] | None = None,
    ) -> PendingPage:
        """Page through the inbox (see ``Store.list_pending``)."""
        plan = self._plans.listing.list_pending(
            chart=chart,
            stage=stage,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
            assignees=assignees,
        )
        return await self._run(plan)

    async def list_keyed(self, key: str, *, limit: int = 100) -> tuple[InboxEntry, ...]:
        """Return the pauses waiting under a business key (see ``Store.list_keyed``)."""
        return await self._run(self._plans.listing.list_keyed(key, limit))

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        chart: str | None = None,
        stage: str | None = None,
        updated_before: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Page through runs (see ``Store.list_runs``)."""
        plan = self._plans.listing.list_runs(
            status=status,
            chart=chart,
            stage=stage,
            updated_before=updated_before,
            limit=limit,
            cursor=cursor,
        )
        return await self._run(plan)

    async def list_due(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return paused runs with a due pause (see ``Store.list_due``)."""
        return await self._run(self._plans.listing.list_due(now, limit))

    async def list_stale(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return running runs whose lease lapsed (see ``Store.list_stale``)."""
        return await self._run(self._plans.listing.list_stale(now, limit))
