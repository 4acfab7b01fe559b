r"""The notification outbox in Redis: key layout, Lua scripts, and the store methods.

With key prefix ``P``:

* ``P:outbox:<run_id>``: hash of the run's entries. Field ``<id>`` holds the
  entry's JSON as written (what never changes, and the first payload); fields
  ``<id>:state``, ``<id>:next``, ``<id>:attempts``, ``<id>:owner``,
  ``<id>:error`` (JSON) and ``<id>:payload`` (JSON, once replaced) what claims
  and settling change. Scripts only ever store strings made by Python, so no
  number goes through Lua's JSON (which would round it).
* ``P:outbox-due``: pending entries by ``next_at``, member ``<run_id>\0<id>``.

The run's writes (:data:`INSERT_LUA`, inside the store's write script) add
entries with ``HSETNX`` on ``<id>``: an existing entry is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, cast

from pausepoint.stores._common import (
    check_limit,
    check_outbox_state,
    dump_json,
    event_to_doc,
    outbox_from_doc,
    outbox_to_doc,
)
from pausepoint.stores.base import AuditEvent, OutboxEntry, OutboxState

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = ["CLAIM", "INSERT_LUA", "SETTLE", "RedisOutbox", "outbox_args"]

INSERT_LUA = r"""
local function add_outbox(hash, due, entries)
  for _, e in ipairs(cjson.decode(entries)) do
    if redis.call('HSETNX', hash, e[1], e[2]) == 1 then
      redis.call('HSET', hash, e[1] .. ':state', e[4], e[1] .. ':next', e[3],
                 e[1] .. ':attempts', e[5], e[1] .. ':owner', e[6], e[1] .. ':error', e[7])
      if e[4] == 'pending' then redis.call('ZADD', due, e[3], e[8]) end
    end
  end
end
"""
"""Defines ``add_outbox(hash, due, entries_json)`` for the scripts that write entries."""

# KEYS: outbox-due set. ARGV: now, limit, owner, lease_until, outbox hash key prefix.
# Returns run_id, id, doc, state, attempts, error, payload per claimed entry.
CLAIM = r"""
local out = {}
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(members) do
  local cut = string.find(member, '\0', 1, true)
  local run_id, id = string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
  local hash = ARGV[5] .. run_id
  local doc = redis.call('HGET', hash, id)
  if doc and redis.call('HGET', hash, id .. ':state') == 'pending' then
    local attempts = redis.call('HINCRBY', hash, id .. ':attempts', 1)
    redis.call('HSET', hash, id .. ':owner', ARGV[3], id .. ':next', ARGV[4])
    redis.call('ZADD', KEYS[1], ARGV[4], member)
    out[#out + 1] = run_id
    out[#out + 1] = id
    out[#out + 1] = doc
    out[#out + 1] = tostring(attempts)
    out[#out + 1] = redis.call('HGET', hash, id .. ':error') or 'null'
    out[#out + 1] = redis.call('HGET', hash, id .. ':payload') or ''
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return out
"""

# KEYS: the run's outbox hash, outbox-due set, run hash, audit list. ARGV: id, owner,
# state, next_at, error (JSON), payload (JSON, '' to keep), due member, new entries
# (JSON), audit events...
SETTLE = (
    INSERT_LUA
    + r"""
if redis.call('HGET', KEYS[1], ARGV[1] .. ':owner') ~= ARGV[2]
    or redis.call('HGET', KEYS[1], ARGV[1] .. ':state') ~= 'pending' then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1] .. ':state', ARGV[3], ARGV[1] .. ':next', ARGV[4],
           ARGV[1] .. ':error', ARGV[5], ARGV[1] .. ':owner', '')
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], ARGV[1] .. ':payload', ARGV[6]) end
if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[7])
else
  redis.call('ZREM', KEYS[2], ARGV[7])
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  for i = 9, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
end
add_outbox(KEYS[1], KEYS[2], ARGV[8])
return 1
"""
)

ERASE_LUA = r"""
local function erase_outbox(hash, due, run_id)
  for _, field in ipairs(redis.call('HKEYS', hash)) do
    if not string.find(field, ':', 1, true) then
      redis.call('ZREM', due, run_id .. '\0' .. field)
    end
  end
  redis.call('DEL', hash)
end
"""
"""Defines ``erase_outbox(hash, due, run_id)`` for the scripts that erase runs."""


def outbox_args(run_id: str, entries: Sequence[OutboxEntry]) -> str:
    """The entries as the JSON argument of ``add_outbox``: every value a string.

    Raises:
        ValueError: An entry belongs to another run.
    """
    rows = []
    for e in entries:
        if e.run_id != run_id:
            raise ValueError(f"outbox entry of run {e.run_id!r} written with run {run_id!r}")
        doc = outbox_to_doc(e)
        rows.append(
            [
                e.id,
                dump_json(
                    {k: doc[k] for k in ("run_id", "pause_id", "kind", "url", "tag")}
                    | {"payload": doc["payload"], "created_at": e.created_at}
                ),
                repr(float(e.next_at)),
                e.state,
                str(e.attempts),
                e.owner or "",
                dump_json(e.error),
                f"{run_id}\0{e.id}",
            ]
        )
    return dump_json(rows)


def _entry(
    doc: str, state: str, next_at: str, attempts: str, owner: str, error: str, payload: str
) -> OutboxEntry:
    fields = json.loads(doc)
    if payload:
        fields["payload"] = json.loads(payload)
    fields.update(
        state=state,
        next_at=float(next_at),
        attempts=int(attempts),
        owner=owner or None,
        error=json.loads(error),
    )
    return outbox_from_doc(fields)


class RedisOutbox:
    """The outbox methods of :class:`~pausepoint.stores.redis.RedisStore`."""

    _scripts: dict[str, AsyncScript]

    if TYPE_CHECKING:

        def _key(self, *parts: str) -> str: ...

        def _redis(self) -> AbstractAsyncContextManager[redis.asyncio.Redis]: ...

    async def claim_outbox(
        self, now: float, *, owner: str, lease_until: float, limit: int = 100
    ) -> tuple[OutboxEntry, ...]:
        """Lease due outbox entries (see ``Store.claim_outbox``)."""
        check_limit(limit)
        args = [
            repr(float(now)),
            str(limit),
            owner,
            repr(float(lease_until)),
            self._key("outbox", ""),
        ]
        async with self._redis():
            flat: list[str] = await self._scripts["outbox_claim"](
                keys=[self._key("outbox-due")], args=args
            )
        claimed = []
        for i in range(0, len(flat), 6):
            _, _, doc, attempts, error, payload = flat[i : i + 6]
            claimed.append(
                _entry(doc, "pending", repr(float(lease_until)), attempts, owner, error, payload)
            )
        return tuple(claimed)

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
        check_outbox_state(state)
        run_id = entry.run_id
        keys = [
            self._key("outbox", run_id),
            self._key("outbox-due"),
            self._key("run", run_id),
            self._key("audit", run_id),
        ]
        args = [
            entry.id,
            owner,
            state,
            repr(float(next_at)),
            dump_json(error),
            "" if payload is None else dump_json(dict(payload)),
            f"{run_id}\0{entry.id}",
            outbox_args(run_id, outbox),
            *(dump_json(event_to_doc(e)) for e in events),
        ]
        async with self._redis():
            done = await self._scripts["outbox_settle"](keys=keys, args=args)
        return bool(done)

    async def list_outbox(self, run_id: str) -> tuple[OutboxEntry, ...]:
        """Return a run's outbox entries (see ``Store.list_outbox``)."""
        async with self._redis() as client:
            fields = cast(dict[str, str], await client.hgetall(self._key("outbox", run_id)))
        entries = [
            _entry(
                doc,
                fields[f"{id_}:state"],
                fields[f"{id_}:next"],
                fields[f"{id_}:attempts"],
                fields.get(f"{id_}:owner", ""),
                fields.get(f"{id_}:error", "null"),
                fields.get(f"{id_}:payload", ""),
            )
            for id_, doc in fields.items()
            if ":" not in id_
        ]
        return tuple(sorted(entries, key=lambda e: (e.created_at, e.id)))
