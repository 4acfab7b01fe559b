"""The store contract: what every backend keeps and what it must guarantee.

A store keeps run records, the index of pending pauses (the inbox) and each
run's append-only audit log. It knows nothing of charts or executors: ``Runs``
decides what to write, the store writes it atomically.

Guarantees every implementation must give (the conformance suite in
``tests/stores/`` checks them on every backend):

* **Atomic compare-and-set.** :meth:`Store.replace` writes a whole record only
  if the stored version equals ``expected_version``, bumps the version by one,
  rewrites the run's pause index entries and appends the given audit events —
  all or nothing. A lost race raises :class:`~pausepoint.errors.VersionConflictError`
  and changes nothing. Two concurrent ``replace`` calls with the same expected
  version: exactly one wins, from any number of processes.
* **Index-backed reads.** :meth:`Store.list_pending`, :meth:`Store.list_due` and
  :meth:`Store.list_stale` are served by indexes (SQL indexes, Redis sorted
  sets), never by scanning every run.
* **Stable pagination.** ``list_pending`` orders by pause creation time, newest
  first, ties broken by ``(run_id, pause_id)``; its cursor is opaque and keeps
  working while other runs are added or removed.
* **Append-only audit.** Events are never changed or removed; ``audit`` returns
  them in the order they were appended, with ``seq`` counting from 1 per run.
* **Unreachable server.** Any connection failure surfaces as
  :class:`~pausepoint.errors.StoreUnavailableError` naming the URL without its
  password; nothing is half-written; the store recovers by itself when the
  server is back.
* **Migrations.** The store creates and upgrades its own schema on first use,
  recording the applied version; running them again is a no-op.
* **One transaction per change.** :meth:`Store.update` reads a record, lets the
  caller decide, and writes the decision (record, pause index, audit events,
  journal entries) in one transaction, with no other writer of that run in
  between. :meth:`Store.append_steps` appends journal entries and renews the
  lease in one transaction, only while the given owner holds the run.
* **Fencing.** A run's ``lease_owner`` is the claim's token. Writes of a claim
  holder (``append_steps``, the renewer, and ``update`` deciders that check the
  owner) change nothing once another owner took the run over.
* **Append-only journal.** Journal entries are never changed; ``journal``
  returns them in order, ``index`` counting from 0 per run.
* **Erasure.** :meth:`Store.delete` and :meth:`Store.purge` remove a run with
  everything it has (record, audit, journal, index entries) in one
  transaction; :meth:`Store.purge` removes one bounded batch per call, so no
  call holds a lock for long. Nothing else ever removes a run.
* **Listing by status and key.** :meth:`Store.list_runs` pages through runs of
  any status, most recently changed first, and :meth:`Store.list_keyed` finds
  the pauses waiting under a business key, both from indexes.
* **Signal buffer.** :meth:`Store.buffer_signal` keeps an answer for a key
  nobody waits on yet, up to a count per key and until it expires;
  :meth:`Store.take_signal` hands each one out at most once.
* **Notification outbox.** :class:`OutboxEntry` rows are written with the
  pause they are about, in the same transaction (``Update.outbox``, the
  ``outbox`` of :meth:`Store.create`); an entry whose ``id`` exists already is
  not written again (deduplication). :meth:`Store.claim_outbox` leases due
  entries atomically, so of many claimers exactly one gets each entry until
  its lease lapses; :meth:`Store.settle_outbox` records the outcome (and the
  audit events and follow-up entries it brings) in one transaction, only for
  the lease holder. Entries are erased with their run.

Times are UNIX epoch seconds as floats, in UTC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "AuditEvent",
    "AuditKind",
    "BufferedSignal",
    "InboxEntry",
    "JournalEntry",
    "LeaseRenewer",
    "OutboxEntry",
    "OutboxKind",
    "OutboxState",
    "PauseEntry",
    "PendingPage",
    "RunPage",
    "RunStatus",
    "Store",
    "StoredRun",
    "Update",
]

RunStatus = Literal["running", "paused", "completed", "failed", "cancelled", "expired"]
"""Where a run stands. Only ``paused`` runs have entries in the pending index."""

AuditKind = Literal[
    "started",
    "paused",
    "resume_refused",
    "resumed",
    "progress",
    "recovered",
    "completed",
    "failed",
    "cancel_requested",
    "cancelled",
    "expired",
    "forked",
    "forked_to",
    "retried",
    "reassigned",
    "escalated",
    "reminded",
    "notified",
    "notify_failed",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class PauseEntry:
    """One pause a run waits on; a run may wait on several (parallel branches).

    Attributes:
        pause_id: Unique id of this pause (a new one every time a stage pauses).
        stage_id: Path of the paused stage, e.g. ``payment/approve``.
        data: What the stage's ``execute`` returned (JSON).
        created_at: When the stage paused.
        deadline: When the pause's timeout policy applies, if it has one.
        key: The business key the pause waits under (its stage's ``key=``), if any.
        assignees: Who may answer it (people or groups); empty: anyone signed in.
    """

    pause_id: str
    stage_id: str
    data: Any
    created_at: float
    deadline: float | None = None
    key: str | None = None
    assignees: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Alias of ``pause_id``: ``record.pause.id``."""
        return self.pause_id


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredRun:
    """A run record as the store keeps it.

    Attributes:
        run_id: The run's id.
        chart: Name the chart is registered under in ``Runs``.
        fingerprint: The chart's structural fingerprint when the record was written.
        status: Where the run stands.
        version: Compare-and-set version; the store sets it, 1 on create.
        created_at: When the run started.
        updated_at: When the record was last written.
        checkpoint: The executor checkpoint (JSON) while paused or running.
        pauses: The pauses the run waits on (indexed while ``status == "paused"``).
        snapshot: The latest executor snapshot (JSON): state, tree, narrative.
        error: The failure message when ``status == "failed"``.
        lease_owner: Who holds the run while it runs.
        lease_until: When that lease lapses; ``list_stale`` finds lapsed ones.
        meta: Bookkeeping for ``Runs`` (JSON); the store does not interpret it.
        cancel: A cancel request recorded on a running run (JSON), for its holder.
        step_count: How many journal entries the run has; the store keeps it.
        stage: Where the run stands in its chart, for listings: the stage it
            waits at (paused), failed at (failed) or timed out at (expired).
    """

    run_id: str
    chart: str
    fingerprint: str
    status: RunStatus
    version: int = 0
    created_at: float
    updated_at: float
    checkpoint: dict[str, Any] | None = None
    pauses: tuple[PauseEntry, ...] = ()
    snapshot: dict[str, Any] | None = None
    error: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    cancel: Mapping[str, Any] | None = None
    step_count: int = 0
    stage: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEvent:
    """One entry in a run's append-only audit log.

    Attributes:
        kind: What happened.
        at: When.
        actor: Who did it, when a person or service is known.
        data: Details (JSON): stage, pause data, input, error, reason.
        seq: Position in the run's log, set by the store (1, 2, ...).
    """

    kind: AuditKind
    at: float
    actor: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class JournalEntry:
    """One step of a run's journal: what a stage changed, appended as it finishes.

    Attributes:
        kind: ``stage`` (a stage finished), ``resumed`` (an answer was applied)
            or ``paused`` (the run stopped to wait).
        stage_id: The stage's path.
        at: When.
        actor: Who answered, for ``resumed``.
        data: The step's changes (JSON, ``Runs``'s to interpret).
        index: Position in the run's journal, set by the store (0, 1, ...).
    """

    kind: str
    stage_id: str
    at: float
    actor: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0


OutboxKind = Literal["deliver", "remind", "escalate"]
"""What an outbox entry is for: a message to send, or a pause's reminder or escalation timer."""

OutboxState = Literal["pending", "sent", "failed"]
"""Where an outbox entry stands; only ``pending`` entries are ever claimed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxEntry:
    """One notification to deliver, or one timer of a pause, kept in the store's outbox.

    Attributes:
        run_id: The run it is about.
        pause_id: The pause it is about.
        kind: ``deliver`` (send ``payload`` to ``url``), ``remind`` or ``escalate``
            (a pause's timer: act when it falls due).
        url: Where to send (``deliver``); empty for timers.
        tag: What the message is (``paused``, ``reminder:2``, ``escalated``); with
            the pause and the URL it makes the entry's ``id``.
        payload: What the message says (JSON), or the timer's settings.
        next_at: When the entry is due next; while claimed, when the claim lapses.
        created_at: When it was written.
        state: ``pending`` until sent (``sent``) or given up (``failed``).
        attempts: How many times it was claimed.
        owner: The claim token of whoever holds it, while claimed.
        error: The last failure, if any.
    """

    run_id: str
    pause_id: str
    kind: OutboxKind
    url: str = ""
    tag: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    next_at: float
    created_at: float
    state: OutboxState = "pending"
    attempts: int = 0
    owner: str | None = None
    error: str | None = None

    @property
    def id(self) -> str:
        """The entry's identity: a digest of its run, pause, kind, URL and tag (deduplication)."""
        raw = "\0".join((self.run_id, self.pause_id, self.kind, self.url, self.tag))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True, slots=True)
class Update:
    """What a :meth:`Store.update` decider writes.

    Attributes:
        run: The new record (its ``version`` and ``step_count`` are the store's to set).
        events: Audit events to append.
        steps: Journal entries to append (their ``index`` is the store's to set).
        outbox: Outbox entries to add, unless one with the same ``id`` exists.
    """

    run: StoredRun
    events: Sequence[AuditEvent] = ()
    steps: Sequence[JournalEntry] = ()
    outbox: Sequence[OutboxEntry] = ()


Decider = Callable[[StoredRun], Update | None]
"""Reads the current record and returns what to write (``None``: write nothing).

It may raise to abort: nothing is written and the exception reaches the caller.
It may be called more than once (a backend that retries a lost race asks again),
so it must not have effects of its own beyond what it returns.
"""


class LeaseRenewer(Protocol):
    """Renews the leases of runs a process holds, from a thread of its own.

    Made by :meth:`Store.renewer`; it has its own connection and is used from
    one thread only, so it works while the process's event loop is busy.
    """

    def renew(self, claims: Sequence[tuple[str, str]], lease_until: float) -> dict[str, Any]:
        """Extend the lease of each ``(run_id, owner)`` still running under that owner.

        Returns:
            For each run still held, its cancel request (or ``None``); a run
            missing from the result was taken over or finished: its claim is lost.

        Raises:
            StoreUnavailableError: The server cannot be reached; nothing was renewed.
        """
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxEntry:
    """One inbox entry: a pause waiting for a person.

    Attributes:
        run_id: The run that waits.
        chart: Its chart name.
        pause: The pause.
        run_created_at: When the run started.
    """

    run_id: str
    chart: str
    pause: PauseEntry
    run_created_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingPage:
    """A page of the inbox.

    Attributes:
        items: Up to ``limit`` entries, newest pause first.
        next_cursor: Pass it back to get the next page; ``None`` on the last page.
    """

    items: tuple[InboxEntry, ...]
    next_cursor: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunPage:
    """A page of runs (:meth:`Store.list_runs`).

    Attributes:
        items: Up to ``limit`` records, most recently changed first, without
            ``checkpoint`` and ``snapshot`` (``None``).
        next_cursor: Pass it back to get the next page; ``None`` on the last page.
    """

    items: tuple[StoredRun, ...]
    next_cursor: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class BufferedSignal:
    """An answer kept for a business key until a pause waits under it.

    Attributes:
        key: The business key.
        input: The answer (JSON).
        actor: Who sent it.
        at: When it was sent.
        expires_at: When it is dropped if no pause took it.
    """

    key: str
    input: Any
    actor: str | None
    at: float
    expires_at: float


class Store(Protocol):
    """What ``Runs`` needs from a backend. All methods are coroutines.

    Implementations connect lazily on first use and are safe to share between
    tasks of one event loop. See the module docstring for the guarantees.
    """

    @property
    def url(self) -> str:
        """The store's URL with any password removed (safe to log and show)."""
        ...

    async def create(
        self,
        run: StoredRun,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        outbox: Sequence[OutboxEntry] = (),
    ) -> StoredRun:
        """Insert a new run (version 1), index its pauses, append ``events`` and journal ``steps``.

        ``outbox`` entries are added in the same transaction (see :class:`OutboxEntry`).

        Raises:
            RunExistsError: A run with ``run.run_id`` exists; nothing is written.
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def get(self, run_id: str) -> StoredRun:
        """Return the run's current record.

        Raises:
            RunNotFoundError: No run has that id.
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def replace(
        self, run: StoredRun, *, expected_version: int, events: Sequence[AuditEvent] = ()
    ) -> StoredRun:
        """Atomically overwrite the record if its version is ``expected_version``.

        The stored version becomes ``expected_version + 1`` (``run.version`` is
        ignored); the run's pending-index entries are replaced by ``run.pauses``
        (or removed when ``run.status != "paused"``); ``events`` are appended.

        Returns:
            The record as stored, with its new version.

        Raises:
            VersionConflictError: The stored version differs; nothing is written.
            RunNotFoundError: No run has that id.
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def update(
        self, run_id: str, decide: Decider, *, light: bool = False, audit: bool = False
    ) -> tuple[StoredRun, tuple[AuditEvent, ...]]:
        """Read the record, ask ``decide`` what to write, write it: one transaction.

        No other write of the run happens between the read and the write. The
        written record's version is the read one's plus one; its pause index
        entries are replaced, the events and journal entries appended, the
        outbox entries added (those whose ``id`` exists are skipped).

        Args:
            run_id: The run.
            decide: See :data:`Decider`.
            light: Hand ``decide`` the record without ``checkpoint`` and
                ``snapshot`` (``None``), for deciders that set both themselves.
            audit: Also return the run's whole audit log as it stands after the write.

        Returns:
            The record as stored afterwards (the read one if ``decide`` wrote
            nothing), and the audit log (empty unless ``audit``).

        Raises:
            RunNotFoundError: No run has that id.
            StoreUnavailableError: The server cannot be reached; nothing was written.
        """
        ...

    async def append_steps(
        self, run_id: str, owner: str, steps: Sequence[JournalEntry], lease_until: float
    ) -> Mapping[str, Any] | None:
        """Append journal entries and extend the lease, while ``owner`` holds the running run.

        Returns:
            The cancel request recorded on the run, if any.

        Raises:
            ClaimLostError: The run is not running under ``owner``; nothing was written.
            StoreUnavailableError: The server cannot be reached; nothing was written.
        """
        ...

    async def journal(self, run_id: str, *, start: int = 0) -> tuple[JournalEntry, ...]:
        """Return the run's journal entries from index ``start`` on, in order.

        Raises:
            RunNotFoundError: No run has that id.
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    def renewer(self) -> LeaseRenewer:
        """Return a new renewer with a connection of its own (see :class:`LeaseRenewer`)."""
        ...

    async def append_audit(self, run_id: str, events: Sequence[AuditEvent]) -> None:
        """Append events without touching the record (e.g. a refused resume).

        Raises:
            RunNotFoundError: No run has that id.
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def audit(self, run_id: str) -> tuple[AuditEvent, ...]:
        """Return the run's audit log, oldest first, ``seq`` set.

        Raises:
            RunNotFoundError: No run has that id.
            StoreUnavailableError: The server cannot be reached.
        """
        ...

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
        """Page through pauses of paused runs, newest first, from an index.

        Args:
            chart: Only pauses of runs of this chart.
            stage: Only pauses at this stage id.
            assignees: Only pauses assigned to one of these people or groups
                ("assigned to me": a person's name and their groups).
            created_before: Only pauses created before this time.
            limit: Page size (1..1000).
            cursor: ``next_cursor`` of the previous page.

        Raises:
            ValueError: ``cursor`` was not made by this store, or ``limit`` is out of range.
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def list_due(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return paused runs with a pause whose deadline is at or before ``now``.

        Raises:
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def list_stale(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """Return ``running`` runs whose lease lapsed at or before ``now``.

        Raises:
            StoreUnavailableError: The server cannot be reached.
        """
        ...

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
        """Page through runs, most recently changed first (``updated_at``, then ``run_id``).

        Args:
            status: Only runs with this status.
            chart: Only runs of this chart.
            stage: Only runs whose ``stage`` is this stage id.
            updated_before: Only runs last changed before this time.
            limit: Page size (1..1000).
            cursor: ``next_cursor`` of the previous page.

        Raises:
            ValueError: ``cursor`` was not made by this store, or ``limit`` is out of range.
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def list_keyed(self, key: str, *, limit: int = 100) -> tuple[InboxEntry, ...]:
        """Return the pauses of paused runs waiting under a business ``key``, newest first.

        Raises:
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def delete(self, run_id: str, *, expected_version: int) -> None:
        """Erase a run, its audit, journal and index entries, if its version is still this one.

        Raises:
            VersionConflictError: The stored version differs; nothing is erased.
            RunNotFoundError: No run has that id.
            StoreUnavailableError: The server cannot be reached; nothing was erased.
        """
        ...

    async def purge(
        self,
        *,
        status: RunStatus,
        updated_before: float,
        chart: str | None = None,
        exclude_charts: Sequence[str] = (),
        limit: int = 500,
    ) -> tuple[str, ...]:
        """Erase up to ``limit`` runs of ``status`` last changed before ``updated_before``.

        One transaction per call, oldest first; call again while it returns ``limit`` ids.

        Args:
            status: Only runs with this status.
            updated_before: Only runs last changed before this time.
            chart: Only runs of this chart.
            exclude_charts: Never runs of these charts.
            limit: The batch's size (1..10000).

        Returns:
            The ids erased.

        Raises:
            StoreUnavailableError: The server cannot be reached; nothing was erased.
        """
        ...

    async def buffer_signal(self, signal: BufferedSignal, *, limit: int) -> bool:
        """Keep ``signal`` until a pause takes it or it expires.

        Returns:
            ``False`` (and nothing is kept) when ``limit`` unexpired signals wait
            under the key already.

        Raises:
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def take_signal(self, key: str, now: float) -> BufferedSignal | None:
        """Remove and return the oldest unexpired signal kept under ``key``; each is taken once.

        Raises:
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def drop_expired_signals(self, now: float) -> int:
        """Remove signals that expired at or before ``now``; return how many.

        Raises:
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def claim_outbox(
        self, now: float, *, owner: str, lease_until: float, limit: int = 100
    ) -> tuple[OutboxEntry, ...]:
        """Lease up to ``limit`` pending entries due at or before ``now``, earliest first.

        Atomically, each entry returned gets ``owner``, ``next_at = lease_until``
        and one more ``attempts``; no other claimer gets it before ``lease_until``
        (when a claimer that died lets it fall due again).

        Raises:
            ValueError: ``limit`` is out of range (1..1000).
            StoreUnavailableError: The server cannot be reached; nothing was claimed.
        """
        ...

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
        """Record what became of a claimed entry, in one transaction, if ``owner`` still holds it.

        The entry gets ``state``, ``next_at``, ``error`` (and ``payload`` when
        given) and is released; ``events`` are appended to its run's audit;
        ``outbox`` entries are added (existing ids skipped).

        Returns:
            ``False`` (and nothing is written) when the entry is gone (its run was
            erased) or no longer held by ``owner`` (its lease lapsed and another
            claimer took it).

        Raises:
            StoreUnavailableError: The server cannot be reached; nothing was written.
        """
        ...

    async def list_outbox(self, run_id: str) -> tuple[OutboxEntry, ...]:
        """Return every outbox entry of a run, oldest first (then by ``id``); none if unknown.

        Raises:
            StoreUnavailableError: The server cannot be reached.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the store may not be used afterwards."""
        ...


def __getattr__(name: str) -> Any:
    """``PendingPause``, this entry's old name, still works: it is the checkpoint's word."""
    if name == "PendingPause":
        import warnings

        warnings.warn(
            "pausepoint.stores.base.PendingPause is now InboxEntry (a checkpoint's pending "
            "pause is pausepoint.engine.checkpoint.PendingPause)",
            DeprecationWarning,
            stacklevel=2,
        )
        return InboxEntry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
