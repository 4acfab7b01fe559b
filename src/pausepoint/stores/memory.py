"""A store in the process's memory, for tests, examples and single-process tools.

Nothing survives the process. It keeps the same contract as the durable stores:
records go through the same JSON codec (so what comes back is what a database
would give back, and no caller can mutate stored state through a returned
object), compare-and-set is checked under a lock, and the inbox is a sorted
list paged by the same cursors. The lock is a thread lock, never held across an
``await``, so a lease renewer may work from another thread.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pausepoint.stores._common import (
    PendingKey,
    check_limit,
    check_outbox_state,
    check_purge_limit,
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
    outbox_from_doc,
    outbox_to_doc,
    run_exists,
    run_from_doc,
    run_not_found,
    run_to_doc,
    step_from_doc,
    step_to_doc,
    version_conflict,
)
from pausepoint.stores.base import (
    AuditEvent,
    BufferedSignal,
    Decider,
    InboxEntry,
    JournalEntry,
    LeaseRenewer,
    OutboxEntry,
    OutboxState,
    PendingPage,
    RunPage,
    RunStatus,
    StoredRun,
)

__all__ = ["MemoryStore"]


class MemoryStore:
    """A :class:`~pausepoint.stores.base.Store` held in dicts; open it with ``memory://``.

    Every instance is a separate, empty store. Safe to share between the tasks
    of one event loop.

    Args:
        url: ``memory://``; anything after the scheme is ignored.
    """

    def __init__(self, url: str = "memory://") -> None:
        self._url = url
        self._lock = threading.Lock()
        self._runs: dict[str, str] = {}  # run_id -> record JSON
        self._audit: dict[str, list[str]] = {}  # run_id -> event JSON, oldest first
        self._steps: dict[str, list[str]] = {}  # run_id -> journal entry JSON, in order
        # Inbox index: (created_at, run_id, pause_id, chart, stage_id), ascending.
        self._pending: list[tuple[float, str, str, str, str]] = []
        self._due: dict[str, float] = {}  # run_id -> earliest pause deadline
        self._leases: dict[str, float] = {}  # run_id -> lease_until of running runs
        # Listing index: (updated_at, run_id), ascending, and what listings filter on.
        self._by_time: list[tuple[float, str]] = []
        self._listed: dict[str, tuple[float, RunStatus, str, str | None]] = {}
        self._keyed: dict[str, set[tuple[str, str]]] = {}  # key -> {(run_id, pause_id)}
        self._signals: dict[str, list[BufferedSignal]] = {}  # key -> oldest first
        self._outbox: dict[str, dict[str, str]] = {}  # run_id -> {entry id: entry JSON}
        self._outbox_due: list[tuple[float, str, str]] = []  # pending: (next_at, id, run_id)

    @property
    def url(self) -> str:
        """The store's URL."""
        return self._url

    def _load(self, run_id: str) -> StoredRun:
        try:
            return run_from_doc(json.loads(self._runs[run_id]))
        except KeyError:
            raise run_not_found(run_id) from None

    def _write(
        self,
        run: StoredRun,
        version: int,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        outbox: Sequence[OutboxEntry] = (),
    ) -> StoredRun:
        """Store ``run`` at ``version``, re-index it, append ``events`` and ``steps``, or change nothing."""
        journal = self._steps.get(run.run_id, [])
        run = dataclasses.replace(run, step_count=len(journal) + len(steps))
        record = dump_json(run_to_doc(run, version=version))
        lines = [dump_json(event_to_doc(e)) for e in events]
        entries = [dump_json(step_to_doc(step)) for step in steps]
        pauses, due, lease = indexed_pauses(run), due_at(run), lease_deadline(run)
        # Nothing below can fail.
        if run.run_id in self._runs:
            self._unindex(self._load(run.run_id))
        self._runs[run.run_id] = record
        self._audit.setdefault(run.run_id, []).extend(lines)
        self._steps.setdefault(run.run_id, []).extend(entries)
        for pause in pauses:
            entry = (pause.created_at, run.run_id, pause.pause_id, run.chart, pause.stage_id)
            bisect.insort(self._pending, entry)
            if pause.key is not None:
                self._keyed.setdefault(pause.key, set()).add((run.run_id, pause.pause_id))
        if due is not None:
            self._due[run.run_id] = due
        if lease is not None:
            self._leases[run.run_id] = lease
        bisect.insort(self._by_time, (run.updated_at, run.run_id))
        self._listed[run.run_id] = (run.updated_at, run.status, run.chart, run.stage)
        self._add_outbox(outbox)
        return dataclasses.replace(run, version=version)

    def _add_outbox(self, entries: Sequence[OutboxEntry]) -> None:
        """Keep entries whose id is new; index the pending ones by when they fall due."""
        for entry in entries:
            kept = self._outbox.setdefault(entry.run_id, {})
            if entry.id in kept:
                continue
            kept[entry.id] = dump_json(outbox_to_doc(entry))
            if entry.state == "pending":
                bisect.insort(self._outbox_due, (entry.next_at, entry.id, entry.run_id))

    def _drop_due(self, entry: OutboxEntry) -> None:
        at = bisect.bisect_left(self._outbox_due, (entry.next_at, entry.id, entry.run_id))
        del self._outbox_due[at]

    def _unindex(self, run: StoredRun) -> None:
        for pause in indexed_pauses(run):
            entry = (pause.created_at, run.run_id, pause.pause_id, run.chart, pause.stage_id)
            del self._pending[bisect.bisect_left(self._pending, entry)]
            if pause.key is not None:
                waiting = self._keyed[pause.key]
                waiting.discard((run.run_id, pause.pause_id))
                if not waiting:
                    del self._keyed[pause.key]
        self._due.pop(run.run_id, None)
        self._leases.pop(run.run_id, None)
        listed = self._listed.pop(run.run_id, None)
        if listed is not None:
            del self._by_time[bisect.bisect_left(self._by_time, (listed[0], run.run_id))]

    def _erase(self, run_id: str) -> None:
        for line in self._outbox.pop(run_id, {}).values():
            entry = outbox_from_doc(json.loads(line))
            if entry.state == "pending":
                self._drop_due(entry)
        self._unindex(self._load(run_id))
        del self._runs[run_id]
        self._audit.pop(run_id, None)
        self._steps.pop(run_id, None)

    async def create(
        self,
        run: StoredRun,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        outbox: Sequence[OutboxEntry] = (),
    ) -> StoredRun:
        """Insert a new run (see ``Store.create``)."""
        with self._lock:
            if run.run_id in self._runs:
                raise run_exists(run.run_id)
            return self._write(run, 1, events, steps, outbox)

    async def get(self, run_id: str) -> StoredRun:
        """Return a run's record (see ``Store.get``)."""
        with self._lock:
            return self._load(run_id)

    async def replace(
        self, run: StoredRun, *, expected_version: int, events: Sequence[AuditEvent] = ()
    ) -> StoredRun:
        """Compare-and-set a record (see ``Store.replace``)."""
        with self._lock:
            found = self._load(run.run_id).version
            if found != expected_version:
                raise version_conflict(run.run_id, expected_version, found)
            return self._write(run, expected_version + 1, events)

    async def update(
        self, run_id: str, decide: Decider, *, light: bool = False, audit: bool = False
    ) -> tuple[StoredRun, tuple[AuditEvent, ...]]:
        """Read, decide and write a record at once (see ``Store.update``)."""
        with self._lock:
            current = self._load(run_id)
            if light:
                current = dataclasses.replace(current, checkpoint=None, snapshot=None)
            change = decide(current)
            result = current
            if change is not None:
                result = self._write(
                    change.run, current.version + 1, change.events, change.steps, change.outbox
                )
            return result, (self._events(run_id) if audit else ())

    async def append_steps(
        self, run_id: str, owner: str, steps: Sequence[JournalEntry], lease_until: float
    ) -> Mapping[str, Any] | None:
        """Append journal entries under a claim (see ``Store.append_steps``)."""
        with self._lock:
            run = self._held(run_id, owner)
            if run is None:
                self._load(run_id)  # RunNotFoundError for an unknown run
                raise claim_lost(run_id, owner)
            run = dataclasses.replace(run, lease_until=lease_until)
            return self._write(run, run.version, (), steps).cancel

    def _held(self, run_id: str, owner: str) -> StoredRun | None:
        """The run if it is running under ``owner``."""
        if run_id not in self._runs:
            return None
        run = self._load(run_id)
        return run if run.status == "running" and run.lease_owner == owner else None

    async def journal(self, run_id: str, *, start: int = 0) -> tuple[JournalEntry, ...]:
        """Return a run's journal (see ``Store.journal``)."""
        with self._lock:
            self._load(run_id)
            lines = self._steps.get(run_id, [])[start:]
            return tuple(step_from_doc(json.loads(line), i) for i, line in enumerate(lines, start))

    def renewer(self) -> LeaseRenewer:
        """Return a lease renewer (see ``Store.renewer``); it shares this store's lock."""
        return _Renewer(self)

    def _renew(self, claims: Sequence[tuple[str, str]], lease_until: float) -> dict[str, Any]:
        held: dict[str, Any] = {}
        with self._lock:
            for run_id, owner in claims:
                run = self._held(run_id, owner)
                if run is not None:
                    self._write(dataclasses.replace(run, lease_until=lease_until), run.version, ())
                    held[run_id] = run.cancel
        return held

    async def append_audit(self, run_id: str, events: Sequence[AuditEvent]) -> None:
        """Append audit events (see ``Store.append_audit``)."""
        with self._lock:
            if run_id not in self._runs:
                raise run_not_found(run_id)
            lines = [dump_json(event_to_doc(e)) for e in events]
            self._audit[run_id].extend(lines)

    async def audit(self, run_id: str) -> tuple[AuditEvent, ...]:
        """Return a run's audit log (see ``Store.audit``)."""
        with self._lock:
            if run_id not in self._runs:
                raise run_not_found(run_id)
            return self._events(run_id)

    def _events(self, run_id: str) -> tuple[AuditEvent, ...]:
        lines = self._audit[run_id]
        return tuple(event_from_doc(json.loads(line), i) for i, line in enumerate(lines, 1))

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
        wanted = None if assignees is None else frozenset(assignees)
        bound: PendingKey | tuple[float] | None = None
        if created_before is not None:
            bound = (created_before,)
        if cursor is not None:
            after = decode_cursor(cursor)
            bound = after if bound is None else min(bound, after)
        with self._lock:
            end = len(self._pending) if bound is None else bisect.bisect_left(self._pending, bound)
            items: list[InboxEntry] = []
            for index in range(end - 1, -1, -1):
                if len(items) > limit:
                    break
                _, run_id, pause_id, run_chart, stage_id = self._pending[index]
                if chart not in (None, run_chart) or stage not in (None, stage_id):
                    continue
                run = self._load(run_id)
                pause = next(p for p in run.pauses if p.pause_id == pause_id)
                if wanted is not None and wanted.isdisjoint(pause.assignees):
                    continue
                items.append(
                    InboxEntry(
                        run_id=run_id, chart=run.chart, pause=pause, run_created_at=run.created_at
                    )
                )
        return make_page(items, limit)

    async def list_due(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return paused runs with a due pause (see ``Store.list_due``)."""
        check_limit(limit)
        with self._lock:
            due = sorted((at, run_id) for run_id, at in self._due.items() if at <= now)
            return tuple(self._load(run_id) for _, run_id in due[:limit])

    async def list_stale(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return running runs whose lease lapsed (see ``Store.list_stale``)."""
        check_limit(limit)
        with self._lock:
            stale = sorted((at, run_id) for run_id, at in self._leases.items() if at <= now)
            return tuple(self._load(run_id) for _, run_id in stale[:limit])

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
        bound: tuple[float, str] | tuple[float] | None = None
        if updated_before is not None:
            bound = (updated_before,)
        if cursor is not None:
            after = decode_run_cursor(cursor)
            bound = after if bound is None else min(bound, after)
        with self._lock:
            end = len(self._by_time) if bound is None else bisect.bisect_left(self._by_time, bound)
            items: list[StoredRun] = []
            for index in range(end - 1, -1, -1):
                if len(items) > limit:
                    break
                run_id = self._by_time[index][1]
                _, run_status, run_chart, run_stage = self._listed[run_id]
                if (
                    status not in (None, run_status)
                    or chart not in (None, run_chart)
                    or stage not in (None, run_stage)
                ):
                    continue
                items.append(light(self._load(run_id)))
        return make_run_page(items, limit)

    async def list_keyed(self, key: str, *, limit: int = 100) -> tuple[InboxEntry, ...]:
        """Return the pauses waiting under a business key (see ``Store.list_keyed``)."""
        check_limit(limit)
        with self._lock:
            found = []
            for run_id, pause_id in self._keyed.get(key, ()):
                run = self._load(run_id)
                pause = next(p for p in run.pauses if p.pause_id == pause_id)
                found.append(
                    InboxEntry(
                        run_id=run_id, chart=run.chart, pause=pause, run_created_at=run.created_at
                    )
                )
        found.sort(key=lambda p: (p.pause.created_at, p.run_id, p.pause.pause_id), reverse=True)
        return tuple(found[:limit])

    async def delete(self, run_id: str, *, expected_version: int) -> None:
        """Erase a run (see ``Store.delete``)."""
        with self._lock:
            found = self._load(run_id).version
            if found != expected_version:
                raise version_conflict(run_id, expected_version, found)
            self._erase(run_id)

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
        with self._lock:
            end = bisect.bisect_left(self._by_time, (updated_before,))
            chosen: list[str] = []
            for _, run_id in self._by_time[:end]:
                if len(chosen) == limit:
                    break
                _, run_status, run_chart, _ = self._listed[run_id]
                if (
                    run_status == status
                    and chart in (None, run_chart)
                    and run_chart not in exclude_charts
                ):
                    chosen.append(run_id)
            for run_id in chosen:
                self._erase(run_id)
        return tuple(chosen)

    async def buffer_signal(self, signal: BufferedSignal, *, limit: int) -> bool:
        """Keep a signal for a key nobody waits on yet (see ``Store.buffer_signal``)."""
        with self._lock:
            kept = [s for s in self._signals.get(signal.key, []) if s.expires_at > signal.at]
            if len(kept) >= limit:
                return False
            self._signals[signal.key] = [*kept, signal]
            return True

    async def take_signal(self, key: str, now: float) -> BufferedSignal | None:
        """Take a kept signal (see ``Store.take_signal``)."""
        with self._lock:
            kept = [s for s in self._signals.pop(key, []) if s.expires_at > now]
            if not kept:
                return None
            if kept[1:]:
                self._signals[key] = kept[1:]
            return kept[0]

    async def drop_expired_signals(self, now: float) -> int:
        """Delete expired signals (see ``Store.drop_expired_signals``)."""
        dropped = 0
        with self._lock:
            for key in list(self._signals):
                kept = [s for s in self._signals[key] if s.expires_at > now]
                dropped += len(self._signals[key]) - len(kept)
                if kept:
                    self._signals[key] = kept
                else:
                    del self._signals[key]
        return dropped

    async def claim_outbox(
        self, now: float, *, owner: str, lease_until: float, limit: int = 100
    ) -> tuple[OutboxEntry, ...]:
        """Lease due outbox entries (see ``Store.claim_outbox``)."""
        check_limit(limit)
        claimed = []
        with self._lock:
            end = bisect.bisect_right(self._outbox_due, (now, "\uffff"))
            for _, entry_id, run_id in self._outbox_due[: min(end, limit)]:
                entry = outbox_from_doc(json.loads(self._outbox[run_id][entry_id]))
                claimed.append(
                    dataclasses.replace(
                        entry, owner=owner, next_at=lease_until, attempts=entry.attempts + 1
                    )
                )
            del self._outbox_due[: min(end, limit)]
            for entry in claimed:
                self._outbox[entry.run_id][entry.id] = dump_json(outbox_to_doc(entry))
                bisect.insort(self._outbox_due, (entry.next_at, entry.id, entry.run_id))
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
        with self._lock:
            line = self._outbox.get(entry.run_id, {}).get(entry.id)
            if line is None:
                return False
            stored = outbox_from_doc(json.loads(line))
            if stored.owner != owner or stored.state != "pending":
                return False
            settled = dataclasses.replace(
                stored,
                state=state,
                next_at=next_at,
                error=error,
                owner=None,
                payload=stored.payload if payload is None else dict(payload),
            )
            record = dump_json(outbox_to_doc(settled))
            lines = [dump_json(event_to_doc(e)) for e in events]
            self._drop_due(stored)
            self._outbox[entry.run_id][entry.id] = record
            if state == "pending":
                bisect.insort(self._outbox_due, (next_at, entry.id, entry.run_id))
            self._audit[entry.run_id].extend(lines)
            self._add_outbox(outbox)
            return True

    async def list_outbox(self, run_id: str) -> tuple[OutboxEntry, ...]:
        """Return a run's outbox entries (see ``Store.list_outbox``)."""
        with self._lock:
            entries = [
                outbox_from_doc(json.loads(line)) for line in self._outbox.get(run_id, {}).values()
            ]
        return tuple(sorted(entries, key=lambda e: (e.created_at, e.id)))

    async def aclose(self) -> None:
        """Nothing to release; the data stays until the object is dropped."""


class _Renewer:
    """Renews leases in a memory store, from any thread."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def renew(self, claims: Sequence[tuple[str, str]], lease_until: float) -> dict[str, Any]:
        return self._store._renew(claims, lease_until)

    def close(self) -> None:
        pass
