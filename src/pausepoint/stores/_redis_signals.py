"""The signal buffer in Redis: answers kept for a business key nobody waits on yet.

With key prefix ``P``:

* ``P:signals:<key>``: list of the key's kept answers (JSON), oldest first.
* ``P:signal-keys``: those lists by their latest expiry, so that dropping
  expired answers reads only the lists whose every entry expired.

It holds no run's keys, so erasing runs leaves it alone. Each call is one
script (:data:`SIGNALS`, :data:`DROP_SIGNALS`): two writers of one key queue in
Redis, and neither can overfill the buffer.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from pausepoint.stores._common import dump_json
from pausepoint.stores.base import BufferedSignal

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = ["DROP_SIGNALS", "SIGNALS", "RedisSignals"]

# KEYS: the key's signal list, the signal-keys set. ARGV: now, then for a put: the
# signal (JSON), its expiry, the limit. Drops expired entries; a put appends unless
# `limit` remain (returns 0 then, else 1); a take pops the oldest (returns it or false).
SIGNALS = r"""
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
DROP_SIGNALS = r"""
local dropped = 0
for _, list in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  dropped = dropped + redis.call('LLEN', list)
  redis.call('DEL', list)
  redis.call('ZREM', KEYS[1], list)
end
return dropped
"""


class RedisSignals:
    """The signal buffer methods of :class:`~pausepoint.stores.redis.RedisStore`."""

    _scripts: dict[str, AsyncScript]

    if TYPE_CHECKING:

        def _key(self, *parts: str) -> str: ...

        def _redis(self) -> AbstractAsyncContextManager[redis.asyncio.Redis]: ...

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
