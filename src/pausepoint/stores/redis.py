r"""A store in Redis, shared by any number of servers; needs ``pausepoint[redis]``.

Every key starts with a prefix, ``pausepoint`` unless the URL's ``prefix``
parameter or the ``prefix`` argument names another (one Redis database can hold
several stores). With prefix ``P``:

* ``P:run:<run_id>``: hash; ``version`` (compare-and-set counter), ``record``
  (the record's JSON), ``inbox`` (chart, run start and indexed pauses, JSON: what
  inbox pages read), ``index`` (the sorted-set entries the run is in, JSON, so
  the next write can remove them), and ``owner``, ``status``, ``lease_until``
  and ``cancel``: what a claim holder's writes check and change without
  rewriting the record (its ``lease_until`` wins over the record's); ``summary``
  (the record without checkpoint and snapshot: what listings read) and ``chart``.
* ``P:audit:<run_id>``: list of audit events (JSON), ``seq`` being the position.
* ``P:steps:<run_id>``: the run's journal (JSON entries), ``index`` being the position.
* ``P:pending:<["chart", "stage"]>``: sorted sets of pauses of paused runs, one
  per filter (``null`` for "any"), so every filter combination reads one set;
  score ``created_at``, member ``<run_id>\0<pause_id>``.
* ``P:runs:<["status", "chart", "stage"]>``: sorted sets of runs, one per filter
  combination (``null`` for "any"; a run is in the sets of every combination of
  its own values), score ``updated_at``, member ``run_id``: listings and purges.
* ``P:keyed:<key>``: pauses of paused runs waiting under a business key, as in
  the pending sets.
* ``P:signals:<key>``: answers kept for a key nobody waits on yet (JSON list,
  oldest first); ``P:signal-keys``: those keys by their latest expiry.
* ``P:due``: paused runs by earliest pause deadline. ``P:leases``: running runs
  by ``lease_until``.
* ``P:outbox:<run_id>`` and ``P:outbox-due``: the notification outbox (see
  :mod:`pausepoint.stores._redis_outbox`).
* ``P:schema``: how many :data:`MIGRATIONS` ran.

Every write is one Lua script, so Redis applies it whole or not at all, and no
other command runs between its version check and its writes: that is the
compare-and-set. The scripts touch keys they do not declare, so the store needs
a single Redis server (or a primary with replicas), not Redis Cluster.

The client does not retry commands by itself: a write whose reply was lost might
have been applied, and retrying it could append its audit events twice. A
connection the server closed is replaced when it is next taken from the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.retry import Retry as SyncRetry

from pausepoint.errors import VersionConflictError
from pausepoint.stores._common import (
    check_limit,
    check_purge_limit,
    check_schema_version,
    claim_lost,
    decode_cursor,
    decode_run_cursor,
    due_at,
    dump_json,
    event_from_doc,
    event_to_doc,
    indexed_pauses,
    lease_deadline,
    light,
    make_page,
    make_run_page,
    pause_from_doc,
    pause_to_doc,
    pending_key,
    pop_query_param,
    redact_url,
    run_exists,
    run_from_doc,
    run_not_found,
    run_to_doc,
    step_from_doc,
    step_to_doc,
    unavailable,
    version_conflict,
)
from pausepoint.stores._redis_outbox import (
    CLAIM,
    ERASE_LUA,
    INSERT_LUA,
    SETTLE,
    RedisOutbox,
    outbox_args,
)
from pausepoint.stores.base import (
    AuditEvent,
    BufferedSignal,
    Decider,
    InboxEntry,
    JournalEntry,
    LeaseRenewer,
    OutboxEntry,
    PendingPage,
    RunPage,
    RunStatus,
    StoredRun,
)

__all__ = ["MIGRATIONS", "RedisStore"]

MIGRATIONS: tuple[str, ...] = (
    "-- 1: the key layout of the module docstring; keys appear on first write",
    "-- 2: the journal and the claim fields of the run hash; they appear on first write",
    # 3: runs written before get into the listing sets (status and chart; their stage
    # is unknown) and their index field names them, so the next write moves them.
    r"""
local function name(value)
  if value == nil or value == cjson.null then return 'null' end
  return (string.gsub(cjson.encode(value), '\\/', '/'))
end
local cursor = '0'
repeat
  local found = redis.call('SCAN', cursor, 'MATCH', ARGV[2] .. ':run:*', 'COUNT', 500)
  cursor = found[1]
  for _, key in ipairs(found[2]) do
    local record = redis.call('HGET', key, 'record')
    if record then
      local run = cjson.decode(record)
      local index = cjson.decode(redis.call('HGET', key, 'index') or '[]')
      local score = string.format('%.17g', run.updated_at)
      for _, combo in ipairs({{run.status, nil}, {nil, run.chart}, {run.status, run.chart},
                              {nil, nil}}) do
        local set = ARGV[2] .. ':runs:[' .. name(combo[1]) .. ',' .. name(combo[2]) .. ',null]'
        redis.call('ZADD', set, score, run.run_id)
        index[#index + 1] = {set, score, run.run_id}
      end
      redis.call('HSET', key, 'index', cjson.encode(index), 'chart', run.chart)
    end
  end
until cursor == '0'
""",
    "-- 4: pauses by who may answer them (P:assigned:<who>); they appear on first write",
    "-- 5: the notification outbox; its keys appear on first write",
)
"""Lua bodies in order, each run atomically with ``ARGV[2]`` the key prefix."""

_MIGRATE = r"""
local applied = tonumber(redis.call('GET', KEYS[1]) or '0')
if applied + 1 ~= tonumber(ARGV[1]) then return applied end
%s
redis.call('SET', KEYS[1], ARGV[1])
return tonumber(ARGV[1])
"""

# KEYS: run hash, audit list, journal list, outbox hash, outbox-due set. ARGV: expected
# version ('' to create), expected lease_until ('' for any), new version, record, inbox,
# index entries [[zset, score, member], ...], owner, status, lease_until, cancel, summary,
# chart, outbox entries (see add_outbox), number of audit events, audit events...,
# journal entries...
_WRITE = (
    INSERT_LUA
    + r"""
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '' then
  if current then return {'exists'} end
elseif not current then
  return {'missing'}
elseif current ~= ARGV[1] then
  return {'conflict', current}
elseif ARGV[2] ~= '' and (redis.call('HGET', KEYS[1], 'lease_until') or '') ~= ARGV[2] then
  return {'conflict', current}
else
  for _, entry in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'index'))) do
    redis.call('ZREM', entry[1], entry[3])
  end
end
for _, entry in ipairs(cjson.decode(ARGV[6])) do
  redis.call('ZADD', entry[1], entry[2], entry[3])
end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'record', ARGV[4], 'inbox', ARGV[5],
           'index', ARGV[6], 'owner', ARGV[7], 'status', ARGV[8], 'lease_until', ARGV[9],
           'cancel', ARGV[10], 'summary', ARGV[11], 'chart', ARGV[12])
add_outbox(KEYS[4], KEYS[5], ARGV[13])
local events = tonumber(ARGV[14])
for i = 15, 14 + events do redis.call('RPUSH', KEYS[2], ARGV[i]) end
for i = 15 + events, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
return {'ok', tostring(redis.call('LLEN', KEYS[3]))}
"""
)

# KEYS: run hash, journal list, leases set. ARGV: owner, lease_until, run_id, entries...
_APPEND_STEPS = r"""
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1]
    or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
  return {'lost'}
end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
for i = 4, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
return {'ok', redis.call('HGET', KEYS[1], 'cancel') or ''}
"""

# KEYS: leases set. ARGV: lease_until, run key prefix, then run_id, owner, ...
# Returns run_id, cancel, ... for the runs still held.
_RENEW = r"""
local out = {}
for i = 3, #ARGV, 2 do
  local key = ARGV[2] .. ARGV[i]
  if redis.call('HGET', key, 'owner') == ARGV[i + 1]
      and redis.call('HGET', key, 'status') == 'running' then
    redis.call('HSET', key, 'lease_until', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    out[#out + 1] = ARGV[i]
    out[#out + 1] = redis.call('HGET', key, 'cancel') or ''
  end
end
return out
"""

# KEYS: run hash, journal list. Returns record, lease_until, journal length.
_GET = r"""
return {redis.call('HGET', KEYS[1], 'record'), redis.call('HGET', KEYS[1], 'lease_until'),
        tostring(redis.call('LLEN', KEYS[2]))}
"""

# KEYS: run hash, audit list. ARGV: audit events.
_APPEND = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
return 1
"""

# KEYS: a pending, keyed or runs set. ARGV: exclusive upper score ('+inf' or '(<score>'),
# cursor score ('' for none) and member, how many, run key prefix, the hash fields to
# return (the first present). Returns member, field value, member, ...
# Entries scoring exactly the cursor's score come next when their member sorts
# below the cursor's; Redis orders such ties by member bytes, and so does below().
_PAGE = r"""
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
_RECORDS_UP_TO = r"""
local out = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, run_id in ipairs(ids) do
  out[#out + 1] = redis.call('HGET', ARGV[3] .. run_id, 'record')
  out[#out + 1] = redis.call('HGET', ARGV[3] .. run_id, 'lease_until') or ''
end
return out
"""

# KEYS: run hash, audit list, journal list, outbox hash, outbox-due set. ARGV: expected
# version, run id.
_DELETE = (
    ERASE_LUA
    + r"""
local current = redis.call('HGET', KEYS[1], 'version')
if not current then return 'missing' end
if current ~= ARGV[1] then return current end
for _, entry in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'index'))) do
  redis.call('ZREM', entry[1], entry[3])
end
erase_outbox(KEYS[4], KEYS[5], ARGV[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 'ok'
"""
)

# KEYS: a runs set (by status, maybe chart). ARGV: exclusive max score, how many, key
# prefix, excluded charts (JSON list). Erases the oldest runs of the set; returns their ids.
_PURGE = (
    ERASE_LUA
    + r"""
local erased, skipped, want = {}, 0, tonumber(ARGV[2])
local excluded = {}
for _, chart in ipairs(cjson.decode(ARGV[4])) do excluded[chart] = true end
while #erased < want do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', skipped,
                         want - #erased)
  if #ids == 0 then break end
  for _, run_id in ipairs(ids) do
    local key = ARGV[3] .. ':run:' .. run_id
    if excluded[redis.call('HGET', key, 'chart') or ''] then
      skipped = skipped + 1
    else
      for _, entry in ipairs(cjson.decode(redis.call('HGET', key, 'index') or '[]')) do
        redis.call('ZREM', entry[1], entry[3])
      end
      redis.call('DEL', key, ARGV[3] .. ':audit:' .. run_id, ARGV[3] .. ':steps:' .. run_id)
      erase_outbox(ARGV[3] .. ':outbox:' .. run_id, ARGV[3] .. ':outbox-due', run_id)
      erased[#erased + 1] = run_id
    end
  end
end
return erased
"""
)

# KEYS: the key's signal list, the signal-keys set. ARGV: now, then for a put: the
# signal (JSON), its expiry, the limit. Drops expired entries; a put appends unless
# `limit` remain (returns 0 then, else 1); a take pops the oldest (returns it or false).
_SIGNALS = r"""
local kept = {}
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if cjson.decode(entry).expires_at > tonumber(ARGV[1]) then kept[#kept + 1] = entry end
end
local taken = false
if ARGV[2] then
  if #kept >= tonumber(ARGV[4]) then return 0 end
  kept[#kept + 1] = ARGV[2]
  local latest = tonumber(redis.call('ZSCORE', KEYS[2], KEYS[1]) or '0')
  if tonumber(ARGV[3]) > latest then redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1]) end
elseif #kept > 0 then
  taken = table.remove(kept, 1)
end
redis.call('DEL', KEYS[1])
if #kept > 0 then redis.call('RPUSH', KEYS[1], unpack(kept)) end
if ARGV[2] then return 1 end
return taken
"""

# KEYS: the signal-keys set. ARGV: now. Drops the lists whose every entry expired.
_DROP_SIGNALS = r"""
local dropped = 0
for _, list in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  dropped = dropped + redis.call('LLEN', list)
  redis.call('DEL', list)
  redis.call('ZREM', KEYS[1], list)
end
return dropped
"""

_UPDATE_ATTEMPTS = 100
"""How often :meth:`RedisStore.update` reads again after another write won the race."""

_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class RedisStore(RedisOutbox):
    """A :class:`~pausepoint.stores.base.Store` in Redis; open it with ``redis://`` or ``rediss://``.

    Args:
        url: A redis-py URL, ``redis://[:password@]host[:port][/db]``; its query
            parameters go to redis-py, except ``prefix``.
        prefix: Key prefix; overrides the URL's ``prefix`` parameter.
        socket_timeout: Seconds to wait for a reply, a new connection or a free one
            from the pool, unless the URL sets ``socket_timeout`` /
            ``socket_connect_timeout`` / ``timeout``.
        max_connections: At most this many connections, unless the URL sets
            ``max_connections``; more concurrent calls wait for a free one.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        socket_timeout: float = 10.0,
        max_connections: int = 50,
    ) -> None:
        client_url, prefix_param = pop_query_param(url, "prefix")
        self._prefix = prefix or prefix_param or "pausepoint"
        self._raw_url = url
        self._url = redact_url(url)
        self._client_url = client_url
        self._socket_timeout = socket_timeout
        self._max_connections = max_connections
        self._client: redis.asyncio.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._opening = asyncio.Lock()

    @property
    def url(self) -> str:
        """The store's URL with any password removed."""
        return self._url

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    def _pending_key(self, chart: str | None, stage: str | None) -> str:
        return self._key("pending", dump_json([chart, stage]))

    @asynccontextmanager
    async def _redis(self) -> AsyncIterator[redis.asyncio.Redis]:
        """Yield the client, connected and migrated; connection failures become StoreUnavailableError."""
        try:
            yield self._client or await self._connect()
        except _UNREACHABLE as error:
            raise unavailable(self._url, self._raw_url, error) from error

    async def _connect(self) -> redis.asyncio.Redis:
        """Create the client and apply migrations, once; a failed attempt is retried next call."""
        async with self._opening:
            if self._client is None:
                # A blocking pool: a burst of more calls than connections waits for
                # one (up to socket_timeout) instead of failing "Too many connections".
                pool = redis.asyncio.BlockingConnectionPool.from_url(
                    self._client_url,
                    max_connections=self._max_connections,
                    timeout=self._socket_timeout,
                    decode_responses=True,
                    socket_timeout=self._socket_timeout,
                    socket_connect_timeout=self._socket_timeout,
                    retry=Retry(NoBackoff(), 0),
                )
                client = redis.asyncio.Redis.from_pool(pool)
                try:
                    await self._migrate(client)
                except BaseException:
                    await client.aclose()
                    raise
                self._scripts = {
                    name: client.register_script(source)
                    for name, source in (
                        ("write", _WRITE),
                        ("append", _APPEND),
                        ("steps", _APPEND_STEPS),
                        ("get", _GET),
                        ("page", _PAGE),
                        ("records", _RECORDS_UP_TO),
                        ("delete", _DELETE),
                        ("purge", _PURGE),
                        ("signals", _SIGNALS),
                        ("drop_signals", _DROP_SIGNALS),
                        ("outbox_claim", CLAIM),
                        ("outbox_settle", SETTLE),
                    )
                }
                self._client = client
            return self._client

    async def _migrate(self, client: redis.asyncio.Redis) -> None:
        schema = self._key("schema")
        applied = int(await client.get(schema) or 0)
        check_schema_version(applied, len(MIGRATIONS), self._url)
        for number, body in enumerate(MIGRATIONS[applied:], applied + 1):
            # Each script re-checks the version, so concurrent first users apply it once.
            await client.eval(_MIGRATE % body, 1, schema, number, self._prefix)

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

    async def _write(
        self,
        run: StoredRun,
        expected: int | None,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        expected_lease: str = "",
        outbox: Sequence[OutboxEntry] = (),
    ) -> list[str]:
        version = 1 if expected is None else expected + 1
        inbox = {
            "chart": run.chart,
            "run_created_at": run.created_at,
            "pauses": [pause_to_doc(p) for p in indexed_pauses(run)],
        }
        args = [
            "" if expected is None else str(expected),
            expected_lease,
            str(version),
            dump_json(run_to_doc(run, version=version)),
            dump_json(inbox),
            dump_json(self._index_entries(run)),
            run.lease_owner or "",
            run.status,
            _lease_text(run.lease_until),
            "" if run.cancel is None else dump_json(run.cancel),
            dump_json(run_to_doc(light(run), version=version)),
            run.chart,
            outbox_args(run.run_id, outbox),
            str(len(events)),
            *(dump_json(event_to_doc(e)) for e in events),
            *(dump_json(step_to_doc(step)) for step in steps),
        ]
        keys = [
            self._key("run", run.run_id),
            self._key("audit", run.run_id),
            self._key("steps", run.run_id),
            self._key("outbox", run.run_id),
            self._key("outbox-due"),
        ]
        async with self._redis():
            result: list[str] = await self._scripts["write"](keys=keys, args=args)
        return result

    async def create(
        self,
        run: StoredRun,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        outbox: Sequence[OutboxEntry] = (),
    ) -> StoredRun:
        """Insert a new run (see ``Store.create``)."""
        if (await self._write(run, None, events, steps, outbox=outbox))[0] == "exists":
            raise run_exists(run.run_id)
        return dataclasses.replace(run, version=1, step_count=len(steps))

    async def get(self, run_id: str) -> StoredRun:
        """Return a run's record (see ``Store.get``)."""
        run, _ = await self._get(run_id)
        return run

    async def _get(self, run_id: str) -> tuple[StoredRun, str]:
        """The record and its ``lease_until`` as stored (the compare-and-set's second half)."""
        keys = [self._key("run", run_id), self._key("steps", run_id)]
        async with self._redis():
            record, lease, count = await self._scripts["get"](keys=keys, args=[])
        if record is None:
            raise run_not_found(run_id)
        return _merged(record, lease, int(count)), lease or ""

    async def replace(
        self, run: StoredRun, *, expected_version: int, events: Sequence[AuditEvent] = ()
    ) -> StoredRun:
        """Compare-and-set a record (see ``Store.replace``)."""
        result = await self._write(run, expected_version, events)
        if result[0] == "missing":
            raise run_not_found(run.run_id)
        if result[0] == "conflict":
            raise version_conflict(run.run_id, expected_version, int(result[1]))
        return dataclasses.replace(run, version=expected_version + 1, step_count=int(result[1]))

    async def update(
        self, run_id: str, decide: Decider, *, light: bool = False, audit: bool = False
    ) -> tuple[StoredRun, tuple[AuditEvent, ...]]:
        """Read, decide and write a record (see ``Store.update``).

        Optimistic: the write is a compare-and-set on the version and the lease
        read; when another write came first, the record is read and ``decide``
        asked again.
        """
        for _ in range(_UPDATE_ATTEMPTS):
            current, lease = await self._get(run_id)
            if light:
                current = dataclasses.replace(current, checkpoint=None, snapshot=None)
            change = decide(current)
            result = current
            if change is not None:
                run = change.run
                written = await self._write(
                    run,
                    current.version,
                    change.events,
                    change.steps,
                    expected_lease=lease,
                    outbox=change.outbox,
                )
                if written[0] == "conflict":
                    continue
                if written[0] == "missing":
                    raise run_not_found(run_id)
                result = dataclasses.replace(
                    run, version=current.version + 1, step_count=int(written[1])
                )
            return result, (await self.audit(run_id) if audit else ())
        raise VersionConflictError(
            f"run {run_id!r} changed {_UPDATE_ATTEMPTS} times while being updated; "
            "nothing was written, try again",
            run_id=run_id,
            expected=0,
        )

    async def append_steps(
        self, run_id: str, owner: str, steps: Sequence[JournalEntry], lease_until: float
    ) -> Mapping[str, Any] | None:
        """Append journal entries under a claim (see ``Store.append_steps``)."""
        keys = [self._key("run", run_id), self._key("steps", run_id), self._key("leases")]
        args = [owner, _lease_text(lease_until), run_id]
        args.extend(dump_json(step_to_doc(step)) for step in steps)
        async with self._redis():
            result: list[str] = await self._scripts["steps"](keys=keys, args=args)
        if result[0] == "missing":
            raise run_not_found(run_id)
        if result[0] == "lost":
            raise claim_lost(run_id, owner)
        return json.loads(result[1]) if result[1] else None

    async def journal(self, run_id: str, *, start: int = 0) -> tuple[JournalEntry, ...]:
        """Return a run's journal (see ``Store.journal``)."""
        async with self._redis() as client:
            lines = await client.lrange(self._key("steps", run_id), start, -1)
            if not lines and not await client.exists(self._key("run", run_id)):
                raise run_not_found(run_id)
        return tuple(step_from_doc(json.loads(line), i) for i, line in enumerate(lines, start))

    def renewer(self) -> LeaseRenewer:
        """Return a lease renewer with a connection of its own (see ``Store.renewer``)."""
        return _Renewer(self)

    async def append_audit(self, run_id: str, events: Sequence[AuditEvent]) -> None:
        """Append audit events (see ``Store.append_audit``)."""
        keys = [self._key("run", run_id), self._key("audit", run_id)]
        args = [dump_json(event_to_doc(e)) for e in events]
        async with self._redis():
            found = await self._scripts["append"](keys=keys, args=args)
        if not found:
            raise run_not_found(run_id)

    async def audit(self, run_id: str) -> tuple[AuditEvent, ...]:
        """Return a run's audit log (see ``Store.audit``)."""
        async with self._redis() as client:
            lines = await client.lrange(self._key("audit", run_id), 0, -1)
            # Every run has a "started" event; none: is there a run at all?
            if not lines and not await client.exists(self._key("run", run_id)):
                raise run_not_found(run_id)
        return tuple(event_from_doc(json.loads(line), seq) for seq, line in enumerate(lines, 1))

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
        items = [light(_merged(doc, None, None)) for doc in flat[1::2] if doc]
        return make_run_page(items, limit)

    async def delete(self, run_id: str, *, expected_version: int) -> None:
        """Erase a run (see ``Store.delete``)."""
        keys = [
            self._key("run", run_id),
            self._key("audit", run_id),
            self._key("steps", run_id),
            self._key("outbox", run_id),
            self._key("outbox-due"),
        ]
        async with self._redis():
            result = await self._scripts["delete"](keys=keys, args=[str(expected_version), run_id])
        if result == "missing":
            raise run_not_found(run_id)
        if result != "ok":
            raise version_conflict(run_id, expected_version, int(result))

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
        check_purge_limit(limit)
        args = [f"({float(updated_before)!r}", str(limit), self._prefix, dump_json(exclude_charts)]
        async with self._redis():
            erased: list[str] = await self._scripts["purge"](
                keys=[self._runs_key(status, chart, None)], args=args
            )
        return tuple(erased)

    def _signal_keys(self, key: str) -> list[str]:
        return [self._key("signals", key), self._key("signal-keys")]

    async def buffer_signal(self, signal: BufferedSignal, *, limit: int) -> bool:
        """Keep a signal for a key nobody waits on yet (see ``Store.buffer_signal``)."""
        doc = {
            "input": signal.input,
            "actor": signal.actor,
            "at": signal.at,
            "expires_at": signal.expires_at,
        }
        args = [repr(signal.at), dump_json(doc), repr(signal.expires_at), str(limit)]
        async with self._redis():
            kept = await self._scripts["signals"](keys=self._signal_keys(signal.key), args=args)
        return bool(kept)

    async def take_signal(self, key: str, now: float) -> BufferedSignal | None:
        """Take a kept signal (see ``Store.take_signal``)."""
        async with self._redis():
            taken = await self._scripts["signals"](keys=self._signal_keys(key), args=[repr(now)])
        if not taken:
            return None
        return BufferedSignal(key=key, **json.loads(taken))

    async def drop_expired_signals(self, now: float) -> int:
        """Delete expired signals (see ``Store.drop_expired_signals``)."""
        async with self._redis():
            dropped = await self._scripts["drop_signals"](
                keys=[self._key("signal-keys")], args=[repr(now)]
            )
        return int(dropped)

    async def _records_up_to(self, index: str, now: float, limit: int) -> tuple[StoredRun, ...]:
        check_limit(limit)
        args = [repr(float(now)), str(limit), self._key("run", "")]
        async with self._redis():
            flat: list[str] = await self._scripts["records"](keys=[self._key(index)], args=args)
        return tuple(
            _merged(record, lease, None)
            for record, lease in zip(flat[::2], flat[1::2], strict=True)
        )

    async def list_due(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return paused runs with a due pause (see ``Store.list_due``)."""
        return await self._records_up_to("due", now, limit)

    async def list_stale(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return running runs whose lease lapsed (see ``Store.list_stale``)."""
        return await self._records_up_to("leases", now, limit)

    async def aclose(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _lease_text(lease_until: float | None) -> str:
    return "" if lease_until is None else repr(float(lease_until))


def _merged(record: str, lease: str | None, steps: int | None) -> StoredRun:
    """A record with the lease its holder renewed since, and its journal length."""
    run = run_from_doc(json.loads(record))
    changes: dict[str, Any] = {}
    if lease:
        changes["lease_until"] = float(lease)
    if steps is not None:
        changes["step_count"] = steps
    return dataclasses.replace(run, **changes) if changes else run


class _Renewer:
    """Renews leases on a blocking client of its own, from the thread that calls it."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client: redis.Redis | None = None

    def renew(self, claims: Sequence[tuple[str, str]], lease_until: float) -> dict[str, Any]:
        store = self._store
        try:
            if self._client is None:
                self._client = redis.Redis.from_url(
                    store._client_url,
                    decode_responses=True,
                    socket_timeout=store._socket_timeout,
                    socket_connect_timeout=store._socket_timeout,
                    retry=SyncRetry(NoBackoff(), 0),
                )
            args: list[str] = [_lease_text(lease_until), store._key("run", "")]
            for run_id, owner in claims:
                args.extend((run_id, owner))
            flat: list[str] = self._client.eval(_RENEW, 1, store._key("leases"), *args)
        except _UNREACHABLE as error:
            self.close()
            raise unavailable(store._url, store._raw_url, error) from error
        return {
            run_id: json.loads(cancel) if cancel else None
            for run_id, cancel in zip(flat[::2], flat[1::2], strict=True)
        }

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(redis.exceptions.RedisError):
                self._client.close()
            self._client = None
