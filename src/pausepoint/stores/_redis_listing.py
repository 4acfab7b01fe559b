r"""The listings in Redis: the sorted sets that index runs, and the reads of them.

Kept apart from :mod:`pausepoint.stores.redis` because it is the read side: the
store's write script puts a run into the sets :meth:`RedisListing._index_entries`
names, and records them in the run hash's ``index`` field so that the next write
or erasure takes them out; all else here reads them. With key prefix ``P``:

* ``P:pending:<["chart", "stage"]>``: pauses of paused runs, one set per filter
  (``null`` for "any"), so every filter combination reads one set; score
  ``created_at``, member ``<run_id>\0<pause_id>``.
* ``P:keyed:<key>``: pauses waiting under a business key, as in the pending sets.
* ``P:assigned:<who>``: pauses assigned to ``who``, as in the pending sets.
* ``P:runs:<["status", "chart", "stage"]>``: runs, one set per filter combination
  (``null`` for "any"; a run is in the sets of every combination of its own
  values), score ``updated_at``, member ``run_id``: listings and purges.
* ``P:due``: paused runs by earliest pause deadline. ``P:leases``: running runs
  by ``lease_until`` (a claim holder's renewals move it too).

A page is one script (:data:`PAGE`): it walks a set newest first from the
cursor's position and returns, with each member, the run hash field that
describes it: ``inbox`` for pauses, ``summary`` (the record without checkpoint
and snapshot) for runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from pausepoint.stores._common import (
    check_limit,
    decode_cursor,
    decode_run_cursor,
    due_at,
    dump_json,
    indexed_pauses,
    lease_deadline,
    light,
    make_page,
    make_run_page,
    pause_from_doc,
    pending_key,
    run_from_doc,
)
from pausepoint.stores.base import InboxEntry, PendingPage, RunPage, RunStatus, StoredRun

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = ["PAGE", "RECORDS_UP_TO", "RedisListing", "run_from_hash"]

# KEYS: a pending, keyed or runs set. ARGV: exclusive upper score ('+inf' or '(<score>'),
# cursor score ('' for none) and member, how many, run key prefix, the hash fields to
# return (the first present). Returns member, field value, member, ...
# Entries scoring exactly the cursor's score come next when their member sorts
# below the cursor's; Redis orders such ties by member bytes, and so does below().
PAGE = r"""
local out, want = {}, tonumber(ARGV[4])
local function take(member)
  local cut = string.find(member, '\0', 1, true)
  local run_id = cut and string.sub(member, 1, cut - 1) or member
  local value = false
  for i = 6, #ARGV do
    value = redis.call('HGET', ARGV[5] .. run_id, ARGV[i])
    if value then break end
  end
  out[#out + 1] = member
  out[#out + 1] = value
end
local function below(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
if ARGV[2] ~= '' then
  for _, member in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2])) do
    if #out >= 2 * want then break end
    if below(member, ARGV[3]) then take(member) end
  end
end
if #out < 2 * want then
  local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'LIMIT', 0,
                          want - #out / 2)
  for _, member in ipairs(rest) do take(member) end
end
return out
"""

# KEYS: a run-id set. ARGV: max score, how many, run key prefix.
# Returns record, lease_until, record, lease_until ...
RECORDS_UP_TO = r"""
local out = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, run_id in ipairs(ids) do
  out[#out + 1] = redis.call('HGET', ARGV[3] .. run_id, 'record')
  out[#out + 1] = redis.call('HGET', ARGV[3] .. run_id, 'lease_until') or ''
end
return out
"""


def run_from_hash(record: str, lease: str | None, steps: int | None) -> StoredRun:
    """A run as its hash holds it: the record, the lease renewed since, the journal length.

    A claim holder renews ``lease_until`` and appends to the journal without rewriting
    the record, so these win over the record's own (``None``: not read, keep the record's).
    """
    run = run_from_doc(json.loads(record))
    changes: dict[str, Any] = {}
    if lease:
        changes["lease_until"] = float(lease)
    if steps is not None:
        changes["step_count"] = steps
    return dataclasses.replace(run, **changes) if changes else run


class RedisListing:
    """The index and listing methods of :class:`~pausepoint.stores.redis.RedisStore`."""

    _scripts: dict[str, AsyncScript]

    if TYPE_CHECKING:

        def _key(self, *parts: str) -> str: ...

        def _redis(self) -> AbstractAsyncContextManager[redis.asyncio.Redis]: ...

    def _pending_key(self, chart: str | None, stage: str | None) -> str:
        return self._key("pending", dump_json([chart, stage]))

    def _runs_key(self, status: str | None, chart: str | None, stage: str | None) -> str:
        return self._key("runs", dump_json([status, chart, stage]))

    def _index_entries(self, run: StoredRun) -> list[list[str]]:
        """Return the ``[sorted set, score, member]`` entries that index ``run``."""
        entries = []
        for pause in indexed_pauses(run):
            member, score = f"{run.run_id}\0{pause.pause_id}", repr(float(pause.created_at))
            for chart, stage in ((None, None), (run.chart, None), (None, pause.stage_id)):
                entries.append([self._pending_key(chart, stage), score, member])
            entries.append([self._pending_key(run.chart, pause.stage_id), score, member])
            if pause.key is not None:
                entries.append([self._key("keyed", pause.key), score, member])
            for who in pause.assignees:
                entries.append([self._key("assigned", who), score, member])
        updated = repr(float(run.updated_at))
        for status in (None, run.status):
            for chart in (None, run.chart):
                for stage in (None, run.stage) if run.stage is not None else (None,):
                    entries.append([self._runs_key(status, chart, stage), updated, run.run_id])
        if (due := due_at(run)) is not None:
            entries.append([self._key("due"), repr(float(due)), run.run_id])
        if (lease := lease_deadline(run)) is not None:
            entries.append([self._key("leases"), repr(float(lease)), run.run_id])
        return entries

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
        check_limit(limit)
        upper = math.inf if created_before is None else created_before
        tie_score = tie_member = ""
        if cursor is not None:
            created_at, run_id, pause_id = decode_cursor(cursor)
            if created_at < upper:
                upper, tie_score, tie_member = created_at, repr(created_at), f"{run_id}\0{pause_id}"
        bound = "+inf" if upper == math.inf else f"({float(upper)!r}"
        if assignees is not None:
            return await self._assigned_page(assignees, chart, stage, upper, tie_member, limit)
        args = [bound, tie_score, tie_member, str(limit + 1), self._key("run", ""), "inbox"]
        items = await self._pauses(self._pending_key(chart, stage), args)
        return make_page(items, limit)

    async def _assigned_page(
        self,
        assignees: Collection[str],
        chart: str | None,
        stage: str | None,
        upper: float,
        tie_member: str,
        limit: int,
    ) -> PendingPage:
        """An inbox page of pauses assigned to any of ``assignees``.

        Each name has its own sorted set; the page is the newest ``limit + 1``
        of the union, so each set is read until it gave that many matches of
        ``chart`` and ``stage`` (or ran out), and the results merged.
        """
        found: dict[tuple[str, str], InboxEntry] = {}
        for who in sorted(set(assignees)):
            matched, bound, tie = 0, upper, tie_member
            while matched <= limit:
                high = "+inf" if bound == math.inf else f"({float(bound)!r}"
                tie_score = "" if not tie else repr(float(bound))
                args = [high, tie_score, tie, str(limit + 1), self._key("run", ""), "inbox"]
                batch = await self._pauses(self._key("assigned", who), args)
                for item in batch:
                    if chart in (None, item.chart) and stage in (None, item.pause.stage_id):
                        found[(item.run_id, item.pause.pause_id)] = item
                        matched += 1
                if len(batch) <= limit:
                    break
                last = pending_key(batch[-1])
                bound, tie = last[0], f"{last[1]}\0{last[2]}"
        items = sorted(found.values(), key=pending_key, reverse=True)[: limit + 1]
        return make_page(items, limit)

    async def _pauses(self, index: str, args: list[str]) -> list[InboxEntry]:
        """Run the page script on a set of pauses and decode what it returns."""
        async with self._redis():
            flat: list[str] = await self._scripts["page"](keys=[index], args=args)
        inboxes: dict[str, Any] = {}
        items = []
        for member, inbox in zip(flat[::2], flat[1::2], strict=True):
            run_id, _, pause_id = member.partition("\0")
            doc = inboxes.setdefault(run_id, json.loads(inbox))
            pause = next(p for p in doc["pauses"] if p["pause_id"] == pause_id)
            items.append(
                InboxEntry(
                    run_id=run_id,
                    chart=doc["chart"],
                    pause=pause_from_doc(pause),
                    run_created_at=doc["run_created_at"],
                )
            )
        return items

    async def list_keyed(self, key: str, *, limit: int = 100) -> tuple[InboxEntry, ...]:
        """Return the pauses waiting under a business key (see ``Store.list_keyed``)."""
        check_limit(limit)
        args = ["+inf", "", "", str(limit), self._key("run", ""), "inbox"]
        return tuple(await self._pauses(self._key("keyed", key), args))

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
        check_limit(limit)
        upper = math.inf if updated_before is None else updated_before
        tie_score = tie_member = ""
        if cursor is not None:
            updated_at, run_id = decode_run_cursor(cursor)
            if updated_at < upper:
                upper, tie_score, tie_member = updated_at, repr(updated_at), run_id
        bound = "+inf" if upper == math.inf else f"({float(upper)!r}"
        args = [bound, tie_score, tie_member, str(limit + 1), self._key("run", "")]
        args += ["summary", "record"]  # a record written before release 3 has no summary
        async with self._redis():
            flat: list[str] = await self._scripts["page"](
                keys=[self._runs_key(status, chart, stage)], args=args
            )
        items = [light(run_from_doc(json.loads(doc))) for doc in flat[1::2] if doc]
        return make_run_page(items, limit)

    async def _records_up_to(self, index: str, now: float, limit: int) -> tuple[StoredRun, ...]:
        check_limit(limit)
        args = [repr(float(now)), str(limit), self._key("run", "")]
        async with self._redis():
            flat: list[str] = await self._scripts["records"](keys=[self._key(index)], args=args)
        return tuple(
            run_from_hash(record, lease, None)
            for record, lease in zip(flat[::2], flat[1::2], strict=True)
        )

    async def list_due(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return paused runs with a due pause (see ``Store.list_due``)."""
        return await self._records_up_to("due", now, limit)

    async def list_stale(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return running runs whose lease lapsed (see ``Store.list_stale``)."""
        return await self._records_up_to("leases", now, limit)
