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
* ``P:pending:<filter>``, ``P:keyed:<key>``, ``P:assigned:<who>``, ``P:runs:<filter>``,
  ``P:due`` and ``P:leases``: the sorted sets that index runs and their pauses
  (see :mod:`pausepoint.stores._redis_listing`).
* ``P:signals:<key>`` and ``P:signal-keys``: the signal buffer (see
  :mod:`pausepoint.stores._redis_signals`).
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

This module holds the run hash, its writes (create, compare-and-set, journal,
erasure), the connection and the migrations; the listings, the signal buffer and
the notification outbox are mixins of :class:`RedisStore` in the modules named
above, each with its Lua scripts, which :class:`RedisStore` registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping, Sequence
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
    check_purge_limit,
    check_schema_version,
    claim_lost,
    dump_json,
    event_from_doc,
    event_to_doc,
    indexed_pauses,
    light,
    pause_to_doc,
    pop_query_param,
    redact_url,
    run_exists,
    run_not_found,
    run_to_doc,
    step_from_doc,
    step_to_doc,
    unavailable,
    version_conflict,
)
from pausepoint.stores._redis_listing import PAGE, RECORDS_UP_TO, RedisListing, run_from_hash
from pausepoint.stores._redis_outbox import (
    CLAIM,
    ERASE_LUA,
    INSERT_LUA,
    SETTLE,
    RedisOutbox,
    outbox_args,
)
from pausepoint.stores._redis_signals import DROP_SIGNALS, SIGNALS, RedisSignals
from pausepoint.stores.base import (
    AuditEvent,
    Decider,
    JournalEntry,
    LeaseRenewer,
    OutboxEntry,
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
# chart, outbox entries (see add_outbox), '1' to return the audit log ('' not to),
# number of audit events, audit events..., journal entries...
# Returns 'ok', the journal's length, then the audit log when asked for.
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
local events = tonumber(ARGV[15])
for i = 16, 15 + events do redis.call('RPUSH', KEYS[2], ARGV[i]) end
for i = 16 + events, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
local result = {'ok', tostring(redis.call('LLEN', KEYS[3]))}
if ARGV[14] ~= '' then
  for _, line in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do result[#result + 1] = line end
end
return result
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

_UPDATE_ATTEMPTS = 100
"""How often :meth:`RedisStore.update` reads again after another write won the race."""

_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class RedisStore(RedisListing, RedisSignals, RedisOutbox):
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
                        ("page", PAGE),
                        ("records", RECORDS_UP_TO),
                        ("delete", _DELETE),
                        ("purge", _PURGE),
                        ("signals", SIGNALS),
                        ("drop_signals", DROP_SIGNALS),
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

    async def _write(
        self,
        run: StoredRun,
        expected: int | None,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        expected_lease: str = "",
        outbox: Sequence[OutboxEntry] = (),
        audit: bool = False,
    ) -> list[str]:
        """Write ``run`` whole in one script; with ``audit``, the reply ends with the audit log.

        Reading the log inside the write spares a resume a round trip, and the
        log is the one the write left, whatever is appended after it.
        """
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
            "1" if audit else "",
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
        return run_from_hash(record, lease, int(count)), lease or ""

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
                    audit=audit,
                )
                if written[0] == "conflict":
                    continue
                if written[0] == "missing":
                    raise run_not_found(run_id)
                result = dataclasses.replace(
                    run, version=current.version + 1, step_count=int(written[1])
                )
                if audit:
                    return result, _events(written[2:])
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
        return _events(lines)

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

    async def aclose(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _events(lines: Sequence[str | bytes]) -> tuple[AuditEvent, ...]:
    """A run's audit log from its list's lines, ``seq`` being the position."""
    return tuple(event_from_doc(json.loads(line), seq) for seq, line in enumerate(lines, 1))


def _lease_text(lease_until: float | None) -> str:
    return "" if lease_until is None else repr(float(lease_until))


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
