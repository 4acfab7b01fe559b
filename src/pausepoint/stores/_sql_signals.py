"""The signal buffer in SQL: answers kept for a business key nobody waits on yet.

Table ``signals`` (name given by the backend): one row per kept answer, ``id``
ordering them oldest first, indexed by ``(business_key, id)`` (what a take
reads) and by ``expires_at`` (what dropping expired ones reads). It holds no
run's rows, so erasing runs leaves it alone; its own expiry empties it.

Two writers of one key's buffer must queue, or both could find room for one
more answer: where the backend's transaction does not hold the write lock
already, each plan first takes the backend's lock on the key.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, TypeVar

from pausepoint.stores.base import BufferedSignal

if TYPE_CHECKING:
    from pausepoint.stores._sql import Plan, SqlPlans

__all__ = ["PlannedSignals", "SignalPlans"]

T = TypeVar("T")


class SignalPlans:
    """The signal plans of one :class:`~pausepoint.stores._sql.SqlPlans` (its tables and codec)."""

    def __init__(self, plans: SqlPlans, key_lock: str) -> None:
        self._plans = plans
        self._key_lock = key_lock

    def buffer(self, signal: BufferedSignal, limit: int) -> Plan[bool]:
        """Keep a signal unless ``limit`` wait under its key (see ``Store.buffer_signal``)."""
        query = self._plans.query
        if self._key_lock:
            yield query(self._key_lock, (signal.key,))
        yield query(
            "DELETE FROM {signals} WHERE business_key = %s AND expires_at <= %s",
            (signal.key, signal.at),
        )
        rows = yield query("SELECT count(*) FROM {signals} WHERE business_key = %s", (signal.key,))
        if rows[0][0] >= limit:
            return False
        yield query(
            "INSERT INTO {signals} (business_key, input, actor, at, expires_at) VALUES (%s, %s, %s, %s, %s)",
            (
                signal.key,
                self._plans.dump_json(signal.input),
                signal.actor,
                signal.at,
                signal.expires_at,
            ),
        )
        return True

    def take(self, key: str, now: float) -> Plan[BufferedSignal | None]:
        """Take the oldest unexpired signal of ``key`` (see ``Store.take_signal``)."""
        query = self._plans.query
        if self._key_lock:
            yield query(self._key_lock, (key,))
        yield query(
            "DELETE FROM {signals} WHERE business_key = %s AND expires_at <= %s", (key, now)
        )
        rows = yield query(
            "SELECT id, input, actor, at, expires_at FROM {signals} WHERE business_key = %s "
            "ORDER BY id LIMIT 1",
            (key,),
        )
        if not rows:
            return None
        signal_id, value, actor, at, expires_at = rows[0]
        yield query("DELETE FROM {signals} WHERE id = %s", (signal_id,))
        return BufferedSignal(
            key=key, input=self._plans.load_json(value), actor=actor, at=at, expires_at=expires_at
        )

    def drop_expired(self, now: float) -> Plan[int]:
        """Delete expired signals (see ``Store.drop_expired_signals``)."""
        rows = yield self._plans.query(
            "DELETE FROM {signals} WHERE expires_at <= %s RETURNING id", (now,)
        )
        return len(rows)


class PlannedSignals:
    """The signal buffer methods of the SQL stores: each builds a plan and runs it."""

    _plans: SqlPlans

    @abstractmethod
    async def _run(self, plan: Plan[T], *, write: bool = False) -> T:
        """Run ``plan``; in one transaction when it writes."""

    async def buffer_signal(self, signal: BufferedSignal, *, limit: int) -> bool:
        """Keep a signal for a key nobody waits on yet (see ``Store.buffer_signal``)."""
        return await self._run(self._plans.signals.buffer(signal, limit), write=True)

    async def take_signal(self, key: str, now: float) -> BufferedSignal | None:
        """Take a kept signal (see ``Store.take_signal``)."""
        return await self._run(self._plans.signals.take(key, now), write=True)

    async def drop_expired_signals(self, now: float) -> int:
        """Delete expired signals (see ``Store.drop_expired_signals``)."""
        return await self._run(self._plans.signals.drop_expired(now), write=True)
