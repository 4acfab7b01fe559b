"""The run lifecycle on ``Runs``: listing by status, retention, purge, delete, business keys.

:class:`Lifecycle` is a base of :class:`~pausepoint.durable.runs.Runs`; it holds the
methods of this part of the API so that ``runs.py`` keeps to starting and
answering (deadlines and crash recovery are in ``_recovery.py``, fork and retry
in ``_rerun.py``).

* **Listing.** :meth:`Lifecycle.list` pages through runs of any status, most
  recently changed first, from the store's listing indexes.
* **Erasing.** :meth:`Lifecycle.purge` erases old runs in batches of one short
  transaction each; :meth:`Lifecycle.delete` erases one run (for an erasure
  request). Both take the audit with the run: what is erased is gone.
  :meth:`Lifecycle.sweep` applies the ``retention=`` policies given to ``Runs``.
* **Business keys.** A pausable stage declared with ``key=`` gives its pauses a
  key, indexed by the store. :meth:`Lifecycle.resume_by_key` answers the one
  pause waiting under a key; :meth:`Lifecycle.signal` answers every one. An
  answer for a key nobody waits on is refused, or, with ``buffer=``, kept
  (bounded in time and count) until a pause arrives. Both sides write first
  and look second, so a signal and a pause arriving together always meet:
  the run, once its pause is written, takes a kept answer; the signal, once
  kept, looks for a pause that arrived meanwhile and, if there is one, takes a
  kept answer back and delivers it. Taking is atomic, so each answer is used once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from pausepoint.engine._json import json_copy
from pausepoint.errors import (
    NoWaiterError,
    PausepointError,
    PermissionDeniedError,
    PurgeRefusedError,
    ResumeTargetError,
    RunAlreadyClaimedError,
    RunIsRunningError,
    RunNotPausedError,
    SignalBufferFullError,
    StalePauseError,
    VersionConflictError,
)
from pausepoint.stores.base import BufferedSignal, PauseEntry, RunStatus, Store, StoredRun, Update

from ._claim import event
from ._seal import peek
from .answer import Answer
from .records import Retention, RunList, RunSummary, SweepReport

if TYPE_CHECKING:
    from pausepoint.engine.chart import FlowChart

    from ._delivery import Notifier
    from .records import RunRecord

__all__ = ["FINISHED", "Lifecycle", "parse_retention", "summary_of"]

log = logging.getLogger("pausepoint.runs")

FINISHED: tuple[RunStatus, ...] = ("completed", "failed", "cancelled", "expired")
"""The statuses a purge without ``status=`` erases."""

_STATUSES: tuple[str, ...] = get_args(RunStatus)
_PURGE_BATCH = 500
_DELETE_ATTEMPTS = 20
_MAX_WAITERS = 1000


@dataclass(frozen=True, slots=True)
class _Policy:
    status: RunStatus
    chart: str | None
    seconds: float


def parse_retention(retention: Retention | None) -> tuple[_Policy, ...]:
    """Check a ``retention=`` mapping and return its policies.

    Raises:
        ValueError: A key names no status (or ``running``), or an age is not positive.
    """
    policies = []
    for key, age in (retention or {}).items():
        chart, status = (None, key) if isinstance(key, str) else key
        if status not in _STATUSES or status == "running":
            allowed = ", ".join(s for s in _STATUSES if s != "running")
            raise ValueError(
                f"retention key {key!r}: {status!r} is not a status runs can be purged in "
                f"({allowed}); use a status or a (chart, status) pair"
            )
        seconds = _seconds(age)
        if seconds <= 0:
            raise ValueError(f"retention for {key!r} must be a positive age, got {age!r}")
        policies.append(_Policy(_status(status), chart, seconds))
    return tuple(policies)


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _status(value: str) -> RunStatus:
    for status in get_args(RunStatus):
        if status == value:
            return status  # type: ignore[no-any-return]  # get_args loses the Literal
    raise PurgeRefusedError(
        f"unknown status {value!r}; a status is one of {', '.join(_STATUSES)}; nothing was erased"
    )


def summary_of(run: StoredRun) -> RunSummary:
    """The listing form of a stored record."""
    return RunSummary(
        run_id=run.run_id,
        chart=run.chart,
        status=run.status,
        stage=run.stage,
        pauses=run.pauses,
        error=run.error,
        created_at=run.created_at,
        updated_at=run.updated_at,
    )


class Lifecycle:
    """Listing, retention, erasure and business keys: a base of ``Runs``."""

    store: Store
    charts: dict[str, FlowChart]
    notifier: Notifier
    _retention: tuple[_Policy, ...]

    if TYPE_CHECKING:

        async def answer(self, run_id: str, answer: Answer) -> RunRecord: ...

        async def expire_due(self, *, now: float | None = None) -> list[str]: ...

        async def recover(self, *, now: float | None = None, concurrency: int = 8) -> list[str]: ...

    # -- erasing -------------------------------------------------------------

    async def purge(
        self,
        status: str | None = None,
        older_than: timedelta | float | None = None,
        chart: str | None = None,
        dry_run: bool = False,
        *,
        batch: int = _PURGE_BATCH,
    ) -> int:
        """Erase runs (record, audit, journal, inbox entries), oldest first, in batches.

        Each batch is one short transaction of the store, so readers and
        writers of other runs wait at most one batch.

        Args:
            status: Only runs with this status. Without it: every finished run
                (completed, failed, cancelled, expired); paused runs are erased
                only when named. Running runs are never erased.
            older_than: Only runs last changed at least this long ago.
            chart: Only runs of this chart.
            dry_run: Count what would be erased; erase nothing.
            batch: Runs erased per transaction.

        Returns:
            How many runs were erased (or would be, with ``dry_run``).

        Raises:
            PurgeRefusedError: No filter was given, or ``status`` is ``running``
                or unknown; nothing was erased.
        """
        if status is None and older_than is None and chart is None:
            raise PurgeRefusedError(
                "a purge needs a filter (status=, older_than= or chart=; CLI: --status, "
                "--older-than, --chart): refusing to erase every run; nothing was erased"
            )
        if status == "running":
            raise PurgeRefusedError(
                "running runs cannot be purged: a process holds them; cancel them first, "
                "or purge them once they stopped; nothing was erased"
            )
        statuses = FINISHED if status is None else (_status(status),)
        if older_than is not None and _seconds(older_than) < 0:
            raise PurgeRefusedError(f"older_than must not be negative, got {older_than!r}")
        cutoff = time.time() - (0.0 if older_than is None else _seconds(older_than))
        total = 0
        for each in statuses:
            if dry_run:
                total += await self._count(each, cutoff, chart)
            else:
                total += await self._purge(each, cutoff, chart, (), batch)
        return total

    async def _count(self, status: RunStatus, cutoff: float, chart: str | None) -> int:
        counted, cursor = 0, None
        while True:
            page = await self.store.list_runs(
                status=status, chart=chart, updated_before=cutoff, limit=1000, cursor=cursor
            )
            counted += len(page.items)
            if page.next_cursor is None:
                return counted
            cursor = page.next_cursor

    async def _purge(
        self,
        status: RunStatus,
        cutoff: float,
        chart: str | None,
        exclude: Sequence[str],
        batch: int,
    ) -> int:
        erased = 0
        while True:
            ids = await self.store.purge(
                status=status,
                updated_before=cutoff,
                chart=chart,
                exclude_charts=exclude,
                limit=batch,
            )
            erased += len(ids)
            if len(ids) < batch:
                return erased
            await asyncio.sleep(0)  # let other tasks of this loop in between batches

    async def delete(self, run_id: str, actor: str | None = None) -> None:
        """Erase one run: its record, audit, journal and inbox entries (an erasure request).

        Nothing of the run is left, the audit included; the deletion itself is
        logged (logger ``pausepoint.runs``) with ``actor``.

        Raises:
            RunNotFoundError: No run has that id.
            RunIsRunningError: A process is running it; nothing was erased.
        """
        for _ in range(_DELETE_ATTEMPTS):
            current = await peek(self.store, run_id)  # no encryption key needed to erase
            if current.status == "running":
                raise RunIsRunningError(
                    f"run {run_id!r} is running: it cannot be deleted until it pauses or ends "
                    "(cancel it first); nothing was erased",
                    run_id=run_id,
                )
            try:
                await self.store.delete(run_id, expected_version=current.version)
            except VersionConflictError:
                continue  # it changed meanwhile: look at it again
            log.info("run %s (%s) deleted by %s", run_id, current.status, actor or "unknown")
            return
        raise VersionConflictError(
            f"run {run_id!r} kept changing while being deleted; nothing was erased, try again",
            run_id=run_id,
            expected=0,
        )

    # -- assignment -------------------------------------------------------------

    async def reassign(
        self,
        run_id: str,
        pause_id: str,
        assignees: Sequence[str],
        *,
        actor: str | None = None,
        reason: str | None = None,
        kind: Literal["reassigned", "escalated"] = "reassigned",
    ) -> PauseEntry:
        """Change who may answer a pending pause (escalation does this too).

        The record's pause and the inbox's "assigned to me" entries change in
        one store transaction, with a ``reassigned`` audit event
        (``{"pause_id", "from", "to", "reason"}``).

        Args:
            run_id: The paused run.
            pause_id: The pause to re-assign.
            assignees: The people or groups who may answer it from now on;
                empty: anyone signed in.
            actor: Who re-assigns (recorded in the audit).
            reason: Why (recorded in the audit).
            kind: The audit event's kind (``escalated`` when a sweep escalates).

        Returns:
            The pause as it now stands.

        Raises:
            RunNotFoundError: No run has that id.
            RunNotPausedError: The run is not paused.
            StalePauseError: ``pause_id`` is not pending.
        """
        if isinstance(assignees, str) or not all(isinstance(a, str) and a for a in assignees):
            raise ValueError(f"assignees must be a list of names; got {assignees!r}")
        names = tuple(sorted(set(assignees)))
        changed: list[PauseEntry] = []

        def change(current: StoredRun) -> Update:
            if current.status != "paused":
                raise RunNotPausedError(
                    f"run {run_id!r} is {current.status}: there is no pause to re-assign",
                    run_id=run_id,
                    status=current.status,
                )
            found = next((p for p in current.pauses if p.pause_id == pause_id), None)
            if found is None:
                raise StalePauseError(
                    f"pause {pause_id!r} of run {run_id!r} is no longer pending",
                    run_id=run_id,
                )
            moved = dataclasses.replace(found, assignees=names)
            changed.append(moved)
            data: dict[str, Any] = {"pause_id": pause_id, "stage_id": found.stage_id}
            data.update({"from": list(found.assignees), "to": list(names), "reason": reason})
            return Update(
                run=dataclasses.replace(
                    current,
                    pauses=tuple(moved if p is found else p for p in current.pauses),
                    updated_at=time.time(),
                ),
                events=[event(kind, actor, data)],
            )

        await self.store.update(run_id, change)
        return changed[-1]

    # -- sweeping --------------------------------------------------------------

    async def sweep(self, *, now: float | None = None) -> SweepReport:
        """Do every periodic duty once, in this order.

        1. Deadlines: overdue pauses get their ``on_timeout`` policy.
        2. Recovery: runs whose process died are taken over.
        3. Escalations due: the pause is re-assigned to ``escalate_to``, and
           they are notified.
        4. Reminders due: the pause's notification URLs are told again.
        5. Notifications due (those just written by 3 and 4 too) are delivered;
           failed ones are retried with backoff by later sweeps.
        6. Retention, then buffered answers that expired.

        A pause past its deadline is handled by 1 before 3 and 4 see it: the
        deadline wins, and its reminders and escalation stop.

        Safe to run from many processes at once: each duty is made of atomic
        steps of the store that a second sweeper skips or repeats harmlessly.

        Args:
            now: The time to act at (default: the clock), for tests and replays.

        Returns:
            What this call did.
        """
        expired = await self.expire_due(now=now)
        recovered = await self.recover(now=now)
        now = time.time() if now is None else now
        told = await self.notifier.sweep(now)
        purged = 0
        for policy in self._retention:
            exclude: tuple[str, ...] = ()
            if policy.chart is None:  # charts with a policy of their own for this status
                exclude = tuple(
                    p.chart
                    for p in self._retention
                    if p.chart is not None and p.status == policy.status
                )
            purged += await self._purge(
                policy.status, now - policy.seconds, policy.chart, exclude, _PURGE_BATCH
            )
        dropped = await self.store.drop_expired_signals(now)
        if expired or recovered or purged:
            log.info(
                "sweep: expired %d, recovered %d, purged %d", len(expired), len(recovered), purged
            )
        return SweepReport(
            expired=expired,
            recovered=recovered,
            purged=purged,
            signals_dropped=dropped,
            escalated=told.escalated,
            reminded=told.reminded,
            notified=told.notified,
            notify_retrying=told.retrying,
            notify_failed=told.failed,
        )

    # -- business keys ------------------------------------------------------------

    async def resume_by_key(
        self,
        key: str,
        input: Any,
        *,
        actor: str | None = None,
        groups: Collection[str] | None = None,
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Answer the one pause waiting under a business ``key``, exactly once.

        As :meth:`~pausepoint.Runs.resume` with that run and pause: the same
        checks, the same guarantees, the same errors.

        Raises:
            NoWaiterError: No pause waits under ``key``.
            ResumeTargetError: Several pauses wait under ``key`` (use :meth:`signal`).
        """
        waiting = await self.store.list_keyed(key, limit=2)
        if not waiting:
            raise NoWaiterError(
                f"no pause waits under key {key!r}; nothing was answered "
                "(signal(..., buffer=...) keeps an answer until a pause arrives)",
                key=key,
            )
        if len(waiting) > 1:
            pending = [f"{w.run_id}/{w.pause.stage_id}" for w in waiting]
            raise ResumeTargetError(
                f"several pauses wait under key {key!r} ({', '.join(pending)}, ...): answer "
                "them all with signal(), or one with resume(run_id, ...)",
                pending=pending,
            )
        (one,) = waiting
        return await self.answer(
            one.run_id,
            Answer(
                input=input,
                actor=actor,
                groups=groups,
                pause_id=one.pause.pause_id,
                idempotency_key=idempotency_key,
            ),
        )

    async def signal(
        self,
        key: str,
        input: Any,
        *,
        actor: str | None = None,
        groups: Collection[str] | None = None,
        buffer: timedelta | float | None = None,
        buffer_limit: int = 100,
    ) -> list[RunRecord]:
        """Answer every pause waiting under a business ``key``, each once.

        Args:
            key: The business key (a stage's ``key=``).
            input: The answer, checked against each stage's ``input_schema``.
            actor: Who answers (recorded in the audit).
            groups: The groups ``actor`` belongs to; a pause assigned to others
                is skipped, with ``resume_refused`` in its audit (see
                :meth:`~pausepoint.Runs.resume`). A kept answer is checked, when
                it is delivered, against ``actor`` alone.
            buffer: When no pause waits yet, keep the answer this long (a
                ``timedelta`` or seconds): the first run to pause under ``key``
                meanwhile is resumed with it. Without it, such an answer is refused.
            buffer_limit: At most this many answers are kept per key.

        Returns:
            The records of the runs answered (empty when the answer was kept).

        Raises:
            NoWaiterError: No pause waits under ``key`` and ``buffer`` is not set.
            SignalBufferFullError: No pause waits and ``buffer_limit`` answers are kept.
            ResumeInputError: The answer fails a waiting stage's schema.
        """
        answer = json_copy(input, "signal input")
        answered = await self._answer_waiters(key, answer, actor, groups)
        if answered is not None:
            return answered
        if buffer is None:
            raise NoWaiterError(
                f"no pause waits under key {key!r}; nothing was answered (pass buffer= to "
                "keep the answer until a pause arrives)",
                key=key,
            )
        seconds = _seconds(buffer)
        if seconds <= 0 or buffer_limit < 1:
            raise ValueError("buffer must be a positive age and buffer_limit at least 1")
        now = time.time()
        kept = await self.store.buffer_signal(
            BufferedSignal(key=key, input=answer, actor=actor, at=now, expires_at=now + seconds),
            limit=buffer_limit,
        )
        if not kept:
            raise SignalBufferFullError(
                f"no pause waits under key {key!r} and {buffer_limit} answers are kept for it "
                "already; nothing was kept",
                key=key,
            )
        # A run may have paused under the key after the look-up above, and looked
        # at the buffer before the answer was in it: then deliver it from here.
        if await self.store.list_keyed(key, limit=1):
            taken = await self.store.take_signal(key, time.time())
            if taken is not None:
                return await self._answer_waiters(key, taken.input, taken.actor) or []
        return []

    async def _answer_waiters(
        self, key: str, answer: Any, actor: str | None, groups: Collection[str] | None = None
    ) -> list[RunRecord] | None:
        """Resume every pause waiting under ``key``; ``None`` if none waits."""
        waiting = await self.store.list_keyed(key, limit=_MAX_WAITERS)
        if not waiting:
            return None
        records = []
        for each in sorted(waiting, key=lambda w: (w.pause.created_at, w.run_id)):
            try:
                records.append(
                    await self.answer(
                        each.run_id,
                        Answer(
                            input=answer,
                            actor=actor,
                            groups=groups,
                            pause_id=each.pause.pause_id,
                        ),
                    )
                )
            except (RunAlreadyClaimedError, StalePauseError, RunNotPausedError):
                continue  # answered or ended meanwhile: not waiting any more
            except PermissionDeniedError:
                continue  # assigned to others: refused, and the refusal is in its audit
        return records

    async def _deliver_buffered(self, record: RunRecord) -> RunRecord:
        """Resume a run that just paused with an answer kept for one of its keys, if any."""
        for pause in record.pauses:
            if pause.key is None:
                continue
            taken = await self.store.take_signal(pause.key, time.time())
            if taken is None:
                continue
            try:
                return await self.answer(
                    record.run_id,
                    Answer(input=taken.input, actor=taken.actor, pause_id=pause.pause_id),
                )
            except PausepointError as exc:  # the refusal is in the run's audit
                log.warning(
                    "run %s: the answer kept for key %r was refused: %s",
                    record.run_id,
                    pause.key,
                    exc,
                )
        return record

    # -- listing (last: the name hides the builtin in this class body) ---------------

    async def list(
        self,
        status: str | None = None,
        chart: str | None = None,
        stage: str | None = None,
        older_than: timedelta | float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunList:
        """Return a page of runs of any status, most recently changed first.

        Args:
            status: Only runs with this status (``failed``, ``running``, ...).
            chart: Only runs of this chart.
            stage: Only runs at this stage (where they wait, failed or timed out).
            older_than: Only runs last changed at least this long ago.
            limit: Page size (1..1000).
            cursor: ``next_cursor`` of the previous page.

        Raises:
            ValueError: An unknown status, a foreign cursor or a limit out of range.
        """
        if status is not None and status not in _STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {', '.join(_STATUSES)}")
        before = None if older_than is None else time.time() - _seconds(older_than)
        page = await self.store.list_runs(
            status=None if status is None else _status(status),
            chart=chart,
            stage=stage,
            updated_before=before,
            limit=limit,
            cursor=cursor,
        )
        return RunList(
            items=tuple(summary_of(run) for run in page.items), next_cursor=page.next_cursor
        )
