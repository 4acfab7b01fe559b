"""The claim a process holds on a running run, and the thread that keeps its lease.

A claimed run's record names its holder (``lease_owner``, a token unique to the
claim) and when the claim lapses (``lease_until``). Two things keep it:

* :class:`LeaseKeeper`, one daemon thread per :class:`~pausepoint.durable.runs.Runs`,
  with a store connection of its own, renews the lease of every run the
  process holds every third of the lease. It needs neither the event loop nor
  the stage's thread, so a stage that blocks in sync code, blocks the loop or
  burns CPU does not let the claim lapse while the process lives. Only a dead,
  stopped or cut-off process stops renewing; after ``lease_seconds`` another
  process may take the run over.
* Fencing: every write of a holder (journal entries, the outcome) is
  conditional on ``lease_owner`` still being its token, in the same
  transaction as the write. A process that lost its claim (it was stopped past
  its lease, or could not reach the store) writes nothing more: its next write
  fails with :class:`~pausepoint.errors.ClaimLostError`, and it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pausepoint.engine._redact import redacted
from pausepoint.engine.chart import FlowChart
from pausepoint.errors import ClaimLostError, PausepointError, RunExistsError
from pausepoint.stores.base import AuditEvent, JournalEntry, OutboxEntry, Store, StoredRun, Update

__all__ = ["Claim", "LeaseKeeper", "cancel_of", "cancelled_event", "event", "redact"]

log = logging.getLogger("pausepoint.runs")

Outcome = Callable[
    [Mapping[str, Any] | None],
    tuple[dict[str, Any], list[AuditEvent], list[JournalEntry]],
]
"""Given the cancel request found on the record (if any): the record's changes,
the audit events and the journal entries of how the run ended."""

Outbox = Callable[[StoredRun], Sequence[OutboxEntry]]
"""Given the record about to be written: the outbox entries to write with it."""


@dataclasses.dataclass(slots=True)
class _Held:
    owner: str
    loop: asyncio.AbstractEventLoop
    on_cancel: Callable[[Mapping[str, Any]], object]
    on_lost: Callable[[], object]
    cancel_seen: bool = False


class LeaseKeeper:
    """Renews the leases of the runs this process holds, from a thread of its own.

    Args:
        store: The store; the keeper uses a renewer of its (own connection).
        lease_seconds: The lease; renewed every third of it.
    """

    def __init__(self, store: Store, lease_seconds: float) -> None:
        self._store = store
        self._lease = lease_seconds
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(
        self,
        run_id: str,
        owner: str,
        on_cancel: Callable[[Mapping[str, Any]], object],
        on_lost: Callable[[], object],
    ) -> None:
        """Keep renewing ``run_id`` under ``owner``; the callbacks run on the caller's loop."""
        held = _Held(owner, asyncio.get_running_loop(), on_cancel, on_lost)
        with self._lock:
            self._held[run_id] = held
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._main, name="pausepoint-lease", daemon=True
                )
                self._thread.start()

    def release(self, run_id: str) -> None:
        """Stop renewing ``run_id``."""
        with self._lock:
            self._held.pop(run_id, None)

    def close(self) -> None:
        """Stop the thread (it closes its connection); a later ``hold`` starts a new one."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join(timeout=10)

    def _main(self) -> None:
        renewer = None
        try:
            while not self._stop.wait(self._lease / 3):
                with self._lock:
                    held = dict(self._held)
                if not held:
                    continue
                claims = [(run_id, h.owner) for run_id, h in held.items()]
                try:
                    if renewer is None:
                        renewer = self._store.renewer()
                    kept = renewer.renew(claims, time.time() + self._lease)
                except Exception as exc:  # the store is down: the next round tries again
                    log.warning("could not renew the lease of %d run(s): %s", len(claims), exc)
                    continue
                self._report(held, kept)
        finally:
            if renewer is not None:
                with contextlib.suppress(Exception):
                    renewer.close()

    def _report(self, held: dict[str, _Held], kept: Mapping[str, Any]) -> None:
        for run_id, h in held.items():
            with self._lock:
                if self._held.get(run_id) is not h:
                    continue  # released meanwhile: it finished
                if run_id not in kept:
                    del self._held[run_id]
            if run_id not in kept:
                _call_soon(h.loop, h.on_lost)
            elif kept[run_id] is not None and not h.cancel_seen:
                h.cancel_seen = True
                _call_soon(h.loop, h.on_cancel, kept[run_id])


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed: nothing is left to tell
        loop.call_soon_threadsafe(fn, *args)


class Claim:
    """A process's hold on one running run: ``async with`` keeps its lease renewed.

    Args:
        store: The store.
        keeper: Renews the lease while the claim is entered.
        record: The run as claimed (``lease_owner`` is this claim's token).
        lease_seconds: The lease.
        on_cancel: Called with a cancel request found on the record.
        on_lost: Called when the keeper finds the claim taken over.
        unsaved: The audit events of a run not written yet (``durability="pause"``
            writes a new run first when it pauses or ends): ``finish`` creates
            it with them. Nobody else can see such a run, so nothing renews it.
    """

    def __init__(
        self,
        store: Store,
        keeper: LeaseKeeper,
        record: StoredRun,
        lease_seconds: float,
        on_cancel: Callable[[Mapping[str, Any]], object],
        on_lost: Callable[[], object],
        unsaved: Sequence[AuditEvent] | None = None,
    ) -> None:
        assert record.lease_owner is not None
        self.record = record
        self.unsaved = unsaved
        self.store = store
        self.run_id = record.run_id
        self.owner: str = record.lease_owner
        self._keeper = keeper
        self._lease = lease_seconds
        self._on_cancel = on_cancel
        self._on_lost = on_lost
        self.cancel: Mapping[str, Any] | None = cancel_of(record)
        self.lost = False

    async def __aenter__(self) -> Claim:
        if self.unsaved is None:
            self._keeper.hold(self.run_id, self.owner, self._cancelled, self._taken_over)
        if self.cancel is not None:
            self._on_cancel(self.cancel)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._keeper.release(self.run_id)

    def _cancelled(self, request: Mapping[str, Any]) -> None:
        if self.cancel is None:
            self.cancel = request
            self._on_cancel(request)

    def _taken_over(self) -> None:
        self.lost = True
        self._on_lost()

    async def append(self, entries: Sequence[JournalEntry]) -> None:
        """Append journal entries and renew the lease, as the holder.

        Raises:
            ClaimLostError: Another process holds the run now; nothing was written.
        """
        try:
            request = await self.store.append_steps(
                self.run_id, self.owner, entries, time.time() + self._lease
            )
        except ClaimLostError as exc:
            self.log_lost(exc)
            raise
        if request is not None:
            self._cancelled(request)

    async def finish(
        self, outcome: Outcome, outbox: Outbox | None = None
    ) -> tuple[StoredRun, tuple[AuditEvent, ...]]:
        """Write how the run ended and release it, as the holder: one transaction.

        ``outbox`` gives the notification entries written with the record (those
        of the pauses it is written with).

        Returns:
            The record as stored, and its audit log.

        Raises:
            ClaimLostError: Another process holds the run now; nothing was written.
        """
        owner = self.owner
        if self.unsaved is not None:
            return await self._create(outcome, outbox)

        def decide(current: StoredRun) -> Update:
            if current.status != "running" or current.lease_owner != owner:
                raise ClaimLostError(
                    f"run {current.run_id!r} was taken over by another process (its lease "
                    f"lapsed) or finished; this process (claim {owner!r}) writes nothing more",
                    run_id=current.run_id,
                )
            changes, events, steps = outcome(cancel_of(current))
            now = time.time()
            run = dataclasses.replace(
                current,
                updated_at=now,
                lease_owner=None,
                lease_until=None,
                cancel=None,
                **changes,
            )
            return Update(
                run=run, events=events, steps=steps, outbox=() if outbox is None else outbox(run)
            )

        try:
            return await self.store.update(self.run_id, decide, light=True, audit=True)
        except ClaimLostError as exc:
            self.log_lost(exc)
            raise

    async def _create(
        self, outcome: Outcome, outbox: Outbox | None
    ) -> tuple[StoredRun, tuple[AuditEvent, ...]]:
        """Write a run not written yet, as it ended: one transaction (see ``unsaved``)."""
        assert self.unsaved is not None
        changes, events, steps = outcome(None)
        record = dataclasses.replace(
            self.record,
            updated_at=time.time(),
            lease_owner=None,
            lease_until=None,
            **changes,
        )
        audit = tuple(
            dataclasses.replace(e, seq=seq) for seq, e in enumerate([*self.unsaved, *events], 1)
        )
        try:
            entries = () if outbox is None else outbox(record)
            # without entries, the call any Store of an earlier release takes
            stored = await (
                self.store.create(record, audit, steps, entries)
                if entries
                else self.store.create(record, audit, steps)
            )
        except RunExistsError:
            raise RunExistsError(
                f"run id {self.run_id!r} is taken: this run's stages ran, but with "
                "durability='pause' a new run is first written when it pauses or ends, and "
                "its outcome was not kept; use a new run id",
                run_id=self.run_id,
            ) from None
        return stored, audit

    def log_lost(self, exc: PausepointError) -> None:
        """Say, once per claim, why this process stops working on the run."""
        log.warning("run %s: claim lost, stopping without writing: %s", self.run_id, exc)


def cancel_of(record: StoredRun) -> Mapping[str, Any] | None:
    """The cancel request on a record (earlier releases kept it in ``meta``)."""
    if record.cancel is not None:
        return record.cancel
    legacy = record.meta.get("cancel")
    return legacy if isinstance(legacy, Mapping) else None


def event(kind: Any, actor: str | None, data: Mapping[str, Any]) -> AuditEvent:
    """An audit event happening now."""
    return AuditEvent(kind=kind, at=time.time(), actor=actor, data=dict(data))


def cancelled_event(request: Mapping[str, Any], by: str | None) -> AuditEvent:
    """The audit of a running run stopped by a cancel request: who asked, why, who stopped it."""
    return event(
        "cancelled",
        request.get("actor"),
        {"reason": request.get("reason"), "while": "running", "stopped_by": by},
    )


def redact(value: Any, flow: FlowChart) -> Any:
    """``value`` with the chart's ``redact`` keys hidden, at any depth."""
    return redacted(value, flow.redact)
