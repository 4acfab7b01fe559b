"""Durable runs: start, inbox, exactly-once resume, cancel, deadlines, crash recovery.

``Runs`` ties charts to a :class:`~pausepoint.stores.Store`. Every change of a
run is one compare-and-set on its record, so any number of processes may share
a store:

* **Exactly once.** ``resume`` validates the answer, then *claims* the run
  (paused → running, with a lease) in one atomic step. Two resumes of the same
  run race on that step: one wins, the other gets ``RunAlreadyClaimedError``
  (or, with the same idempotency key, the winner's outcome).
* **A claim held while its process lives.** A thread of its own, with its own
  store connection, renews the lease of every run the process holds, so a
  stage that blocks (sync code, a blocked loop, CPU) keeps its claim. Every
  write of a holder is fenced on its claim: a process that lost it (stopped
  or cut off past its lease, then taken over) writes nothing more.
* **Crash recovery.** While a run goes on, each finished stage appends one
  journal entry (what it changed; see :mod:`pausepoint.durable._journal`). If the
  process dies, :meth:`Runs.recover` (also run by the sweeper) takes over runs
  whose lease lapsed and goes on from the last finished stage with the answer
  already recorded: the human is not asked again. Only the stage in flight at
  the crash can run twice; the audit then shows a ``recovered`` event.
  ``durability="pause"`` writes only at pauses and the end instead: faster,
  but a crash then repeats every stage since the claim.
* **Deadlines.** A pausable stage declared with ``timeout=`` gives its pauses a
  deadline; :meth:`Runs.expire_due` applies the stage's ``on_timeout`` policy
  once, even when several sweepers run at once.
* **Cancelling a running run.** :meth:`Runs.cancel` of a running run records a
  cancel request on its record. The process running it finds the request at
  its next journal write or lease renewal, stops the executor before the next
  stage, and records the run ``cancelled`` with who asked and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pausepoint.engine._json import json_copy
from pausepoint.engine._redact import redacted
from pausepoint.engine.chart import FlowChart, PausableStage, structure_of
from pausepoint.engine.executor import validate_resume_input, validate_run_input
from pausepoint.errors import (
    ChartNotFoundError,
    CheckpointError,
    PausepointError,
    ResumeInputError,
    ResumeTargetError,
    RunError,
    RunNotPausedError,
)
from pausepoint.stores.base import (
    AuditEvent,
    PauseEntry,
    PendingPage,
    Store,
    StoredRun,
    Update,
)

from ._batch import Batches
from ._cancel import cancel_request
from ._checks import check_fingerprint, pause_to_answer, prepare
from ._claim import event, redact
from ._delivery import Notifier
from ._driver import Resume, RunDriver, Start
from ._journal import Tracker
from ._lifecycle import Lifecycle, parse_retention
from ._meta import RecordedAnswer, RunMeta
from ._notify import NotifySettings, pause_outbox
from ._observe import Observers, RunObserver
from ._recovery import SYSTEM_ACTOR, Recovery
from ._rerun import Reruns
from ._seal import EncryptionKey, SealedStore, sealer, unwrapped
from .answer import Answer
from .compat import CompatibilityRule, unchanged_from_pause
from .people import Actor, check_assignment
from .records import (
    BatchItem,
    BatchResult,
    BatchStatus,
    Durability,
    Retention,
    RunList,
    RunRecord,
    RunSummary,
    Step,
    SweepReport,
)

__all__ = [
    "BatchItem",
    "BatchResult",
    "BatchStatus",
    "CompatibilityRule",
    "Durability",
    "Retention",
    "RunList",
    "RunRecord",
    "RunSummary",
    "Runs",
    "Step",
    "SweepReport",
    "unchanged_from_pause",
]


class _Answered(Exception):
    """The idempotency key was used: the first answer's outcome is the reply."""

    def __init__(self, record: StoredRun) -> None:
        super().__init__(record.run_id)
        self.record = record


class Runs(Lifecycle, Batches):
    """Durable runs of registered charts over one store.

    Args:
        store: Where runs live (see :func:`pausepoint.open_store`).
        charts: The charts, by the name runs refer to them with.
        signing_key: Sign checkpoints kept in the store; refuse tampered ones
            (``CheckpointSignatureError``, audited as ``resume_refused``).
        encryption_key: Encrypt at rest what the store keeps of the values of
            every chart's ``redact`` keys (checkpoint, journal, the run's input
            and answers): a Fernet key, or several newest first for rotation
            (the first encrypts, all decrypt). Needs ``pausepoint[crypto]``. A
            run written with a key and read without it (or with another)
            raises ``EncryptionKeyError`` and is left unchanged. See
            :mod:`pausepoint.durable._seal`.
        lease_seconds: How long a claimed run stays claimed after its process
            stops renewing it (it renews every third of this while it lives).
        compatibility: Opt-in rule letting a run paused under an older version
            of its chart resume on the new one; by default such a resume is
            refused with ``ChartChangedError``.
        durability: ``"stage"`` (default): one journal write per finished stage,
            so a crash repeats only the stage in flight. ``"pause"``: write only
            when the run pauses or ends: a start is one write, a resume two
            (the claim, the outcome). A crash then repeats every stage since the
            claim, and a new run is not in the store before it first pauses or
            ends: a crash before that loses it, and a taken ``run_id`` is found
            only then (``RunExistsError``, the stages having run).
        retention: How long finished runs are kept, applied by :meth:`sweep`:
            ``{"completed": timedelta(days=30), ("refund", "failed"): timedelta(days=90)}``
            (see :data:`~pausepoint.durable.runs.Retention`). Without it runs are kept forever.
        observer: Follows every run segment, stage and outcome (see
            :mod:`pausepoint.durable._observe`), beside the process-wide observers and
            OpenTelemetry tracing, which is on once a tracer provider is set.
        notify: Notification URLs told of every pause (after the stage's own
            ``notify=``): apprise URLs (``mailto://``, ``slack://``, ...; needs
            ``pausepoint[notify]``) or ``json://`` / ``jsons://`` webhooks. They
            are written to the store's outbox with the pause and delivered by
            :meth:`sweep` (see ``docs/notifications.md``).
        notify_secret: Signs webhook requests (HMAC-SHA256; see :mod:`pausepoint.notify`).
        base_url: Where the server is reached (``https://pp.example``): makes the
            run page's link in notifications absolute.
        notify_attempts: Tries per notification before it is given up.
        notify_timeout: Seconds one try may take.
    """

    def __init__(
        self,
        store: Store,
        charts: Mapping[str, FlowChart],
        *,
        signing_key: str | bytes | None = None,
        encryption_key: EncryptionKey | None = None,
        lease_seconds: float = 30.0,
        compatibility: CompatibilityRule | None = None,
        durability: Durability = "stage",
        retention: Retention | None = None,
        observer: RunObserver | None = None,
        notify: Sequence[str] | None = None,
        notify_secret: str | bytes | None = None,
        base_url: str | None = None,
        notify_attempts: int = 10,
        notify_timeout: float = 10.0,
    ) -> None:
        settings = NotifySettings.of(
            notify, notify_secret, base_url, notify_attempts, notify_timeout
        )
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if durability not in ("stage", "pause"):
            raise ValueError(f"durability must be 'stage' or 'pause', not {durability!r}")
        self.charts = dict(charts)
        keys = frozenset().union(*(flow.redact for flow in self.charts.values()))
        store = SealedStore(unwrapped(store), sealer(encryption_key), keys)
        self.store: Store = store
        self.lease_seconds = lease_seconds
        self.durability: Durability = durability
        self._signing_key = signing_key
        self._compatibility = compatibility
        self._driver = RunDriver(
            store,
            self.charts,
            lease_seconds=lease_seconds,
            signing_key=signing_key,
            durability=durability,
            observer=Observers(observer),
        )
        self._owner = self._driver.owner
        self._driver.after_pause = self._deliver_buffered
        self._driver.outbox = lambda flow, run, known: pause_outbox(
            settings, flow, run, known, time.time()
        )
        self.notifier = Notifier(store, settings, self._driver.token, self._escalation_reassign)
        self._retention = parse_retention(retention)
        self._reruns = Reruns(
            store,
            self._driver,
            self._chart,
            compatibility=compatibility,
            notify=settings,
            lease_seconds=lease_seconds,
        )
        self._recovery = Recovery(
            store,
            self.charts,
            self._driver,
            self._answer,
            lease_seconds=lease_seconds,
        )

    @property
    def observer(self) -> Observers:
        """What observes the runs these ``Runs`` drive: ``observer=`` and the process-wide ones."""
        return self._driver.observer

    async def _escalation_reassign(
        self, run_id: str, pause_id: str, assignees: Sequence[str], reason: str
    ) -> None:
        await self.reassign(
            run_id, pause_id, assignees, actor=SYSTEM_ACTOR, reason=reason, kind="escalated"
        )

    async def __aenter__(self) -> Runs:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop renewing leases and close the store."""
        await asyncio.to_thread(self._driver.keeper.close)
        await self.store.aclose()

    # -- reading ------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord:
        """Return the run with its pause, snapshot and audit.

        Raises:
            RunNotFoundError: No run has that id.
        """
        record = await self._driver.live(await self.store.get(run_id))
        return self._driver.record(record, await self.store.audit(run_id))

    async def history(self, run_id: str) -> list[Step]:
        """Return the run's steps so far, oldest first.

        Each stage that finished, each pause and each answer (with who gave it).

        With ``durability="pause"``, stages between a claim and the next pause
        or the end are one step.

        Raises:
            RunNotFoundError: No run has that id.
        """
        return [
            Step(index=e.index, stage_id=e.stage_id, kind=e.kind, at=e.at, actor=e.actor)
            for e in await self.store.journal(run_id)
        ]

    async def pending(
        self,
        chart: str | None = None,
        stage: str | None = None,
        older_than: float | timedelta | None = None,
        limit: int = 50,
        cursor: str | None = None,
        assigned_to: Actor | Collection[str] | None = None,
    ) -> PendingPage:
        """Return a page of the inbox: pauses waiting for a person, newest first.

        Args:
            chart: Only runs of this chart.
            stage: Only pauses at this stage id.
            older_than: Only pauses waiting at least this long (seconds or timedelta).
            limit: Page size.
            cursor: ``next_cursor`` of the previous page.
            assigned_to: Only pauses assigned to this person (by name or one
                of their groups), or to one of these names: "assigned to me".
        """
        if isinstance(assigned_to, Actor):
            assigned_to = assigned_to.principals
        elif isinstance(assigned_to, str):
            raise TypeError(f"assigned_to takes an Actor or a list of names, not {assigned_to!r}")
        created_before = None
        if older_than is not None:
            seconds = (
                older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
            )
            created_before = time.time() - seconds
        page = await self.store.list_pending(
            chart=chart,
            stage=stage,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
            assignees=assigned_to,
        )
        return self._shown(page)

    def _shown(self, page: PendingPage) -> PendingPage:
        """``page`` with each pause's data redacted by its chart's ``redact`` keys.

        Pauses are written redacted; this covers those written before, for the
        charts this ``Runs`` knows.
        """
        items = []
        for item in page.items:
            flow = self.charts.get(item.chart)
            if flow is not None and flow.redact:
                shown = redacted(item.pause.data, flow.redact)
                item = dataclasses.replace(item, pause=dataclasses.replace(item.pause, data=shown))
            items.append(item)
        return dataclasses.replace(page, items=tuple(items))

    def input_schema(self, chart: str, stage_id: str) -> dict[str, Any] | None:
        """Return the JSON Schema a pausable stage's resume input must fit, if declared."""
        node = self._chart(chart).find_stage(stage_id)
        return node.input_json_schema() if isinstance(node, PausableStage) else None

    # -- starting -----------------------------------------------------------

    async def start(
        self,
        chart: str,
        input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        actor: str | None = None,
    ) -> RunRecord:
        """Start a run of a registered chart and drive it to its first pause or the end.

        Returns:
            The record: ``paused`` (with ``pause``), ``completed`` or ``failed``.

        Raises:
            RunExistsError: ``run_id`` is taken.
            RunError: No chart is registered under ``chart``.
            RunInputError: ``input`` fails the chart's input model (no run is created).

        A failing stage does not raise: it gives a ``failed`` record.
        """
        flow = self._chart(chart)
        seed = json_copy(validate_run_input(flow, input), "input")
        run_id = run_id or os.urandom(16).hex()
        now = time.time()
        record = StoredRun(
            run_id=run_id,
            chart=chart,
            fingerprint=flow.fingerprint,
            status="running",
            created_at=now,
            updated_at=now,
            lease_owner=self._driver.token(),
            lease_until=now + self.lease_seconds,
            meta=RunMeta(
                input=seed,
                structure=structure_of(flow.steps),
                redact=tuple(sorted(flow.redact)),
                whole=True,
            ).to_json(),
        )
        started = [event("started", actor, {"input": redact(seed, flow)})]
        step = Start(seed, run_id)
        tracker = Tracker(dict(seed), [])
        if self.durability == "pause":  # written first when it pauses or ends
            return await self._driver.drive(
                record, flow, step, tracker, kind="start", unsaved=started
            )
        record = await self.store.create(record, started)
        return await self._driver.drive(record, flow, step, tracker, kind="start")

    # -- resuming -----------------------------------------------------------

    async def resume(
        self,
        run_id: str,
        input: Any,
        *,
        actor: str | None = None,
        groups: Collection[str] | None = None,
        pause_id: str | None = None,
        stage_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Answer a pause of a paused run, exactly once, and drive the run on.

        The answer is checked and the run claimed in one transaction of the
        store, before anything runs.

        Args:
            run_id: The run.
            input: The answer; validated against the stage's ``input_schema``.
            actor: Who answers (recorded in the audit).
            groups: The groups ``actor`` belongs to. When the pause has
                ``assignees`` and an actor or groups are given, one of them
                must be assigned (or the groups include ``admin``); a call
                naming neither is trusted code and is not checked.
            pause_id: The pause answered; refused as stale if no longer pending.
            stage_id: Alternatively, the paused stage answered.
            idempotency_key: Retrying with the same key returns the first outcome.

        Raises:
            RunNotFoundError: No run has that id.
            RunAlreadyClaimedError: Another resume holds or finished the run.
            RunNotPausedError: The run was cancelled, expired or failed.
            StalePauseError: ``pause_id`` is not a pending pause.
            ResumeTargetError: Several pauses are pending and none was named.
            ResumeInputError: The input fails the stage's schema; the run stays paused.
            ChartChangedError: The chart changed since the run paused.
            PermissionDeniedError: The pause is assigned to others; the run stays paused.
        """
        return await self.answer(
            run_id,
            Answer(
                input=input,
                actor=actor,
                groups=groups,
                pause_id=pause_id,
                stage_id=stage_id,
                idempotency_key=idempotency_key,
            ),
        )

    async def answer(self, run_id: str, answer: Answer) -> RunRecord:
        """:meth:`resume` with the answer as one value, as the HTTP API and workers pass it.

        Raises:
            The errors of :meth:`resume`.
        """
        return await self._answer(run_id, answer)

    async def _answer(
        self, run_id: str, answer: Answer, *, expired: AuditEvent | None = None
    ) -> RunRecord:
        """``answer``; ``expired`` (a deadline's default answer) goes into the claim itself.

        So the expiry is recorded once, by the sweeper whose claim wins; a
        sweeper that loses the race leaves no trace in the audit.
        """
        checked: dict[str, Any] = {}
        input, actor, idempotency_key = answer.input, answer.actor, answer.idempotency_key
        given = input.model_dump(mode="json") if hasattr(input, "model_dump") else json_copy(input)

        def claim(current: StoredRun) -> Update:
            meta = RunMeta.of(current.meta)
            if idempotency_key is not None and idempotency_key in meta.idempotency:
                raise _Answered(current)
            # a deadline's default answer is the run's own: no assignee check
            flow, pause, prepared, copies, value = self._vet(
                current, answer, trusted=expired is not None
            )
            checked.update(flow=flow, pause=pause, prepared=prepared, copies=copies, value=value)
            meta = meta.replace(
                answer=RecordedAnswer(
                    stage_id=pause.stage_id, pause_id=pause.pause_id, input=given, actor=actor
                ),
                segment=current.step_count,
            )
            if idempotency_key is not None:
                meta = meta.replace(
                    idempotency={**meta.idempotency, idempotency_key: pause.pause_id}
                )
            now = time.time()
            resumed = event(
                "resumed",
                actor,
                {
                    "stage_id": pause.stage_id,
                    "pause_id": pause.pause_id,
                    "input": redact(given, flow),
                },
            )
            return Update(
                run=dataclasses.replace(
                    current,
                    status="running",
                    lease_owner=self._driver.token(),
                    lease_until=now + self.lease_seconds,
                    updated_at=now,
                    meta=meta.to_json(),
                    cancel=None,
                ),
                events=[*([expired] if expired is not None else []), resumed],
            )

        try:
            claimed, _ = await self.store.update(run_id, claim)
        except _Answered as done:
            return await self._outcome_of(done.record)
        except (RunError, ResumeTargetError, ResumeInputError, CheckpointError) as exc:
            if expired is None:
                await self._refuse(run_id, actor, exc)
            raise
        flow: FlowChart = checked["flow"]
        pause: PauseEntry = checked["pause"]
        assert claimed.checkpoint is not None
        tracker = Tracker(
            claimed.checkpoint["shared_state"],
            claimed.checkpoint["execution_tree"],
            resumed=pause.stage_id,
            actor=actor,
        )
        step = Resume(checked["prepared"], checked["copies"], {pause.stage_id: checked["value"]})
        return await self._driver.drive(claimed, flow, step, tracker, kind="resume")

    async def check_resume(
        self,
        run_id: str,
        input: Any,
        *,
        actor: str | None = None,
        groups: Collection[str] | None = None,
        pause_id: str | None = None,
        stage_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Refuse now, as :meth:`resume` would, an answer that cannot be applied.

        Runs every check ``resume`` runs before it claims the run (the same
        errors, the same ``resume_refused`` audit entry) and claims nothing:
        for a caller that hands the resume to a worker and wants the refusal
        synchronously. The worker's claim stays the authority.

        Raises:
            RunNotFoundError: No run has that id.
            RunAlreadyClaimedError: Another resume holds or finished the run.
            RunNotPausedError: The run was cancelled, expired or failed.
            StalePauseError: ``pause_id`` is not a pending pause.
            ResumeTargetError: Several pauses are pending and none was named.
            ResumeInputError: The input fails the stage's schema.
            ChartChangedError: The chart changed since the run paused.
            PermissionDeniedError: The pause is assigned to others.
        """
        await self.check_answer(
            run_id,
            Answer(
                input=input,
                actor=actor,
                groups=groups,
                pause_id=pause_id,
                stage_id=stage_id,
                idempotency_key=idempotency_key,
            ),
        )

    async def check_answer(self, run_id: str, answer: Answer) -> None:
        """:meth:`check_resume` with the answer as one value."""
        record = await self.store.get(run_id)
        key = answer.idempotency_key
        if key is not None and key in RunMeta.of(record.meta).idempotency:
            return  # a retry of an answer already given: resume reports its outcome
        try:
            self._vet(record, answer)
        except (RunError, ResumeTargetError, ResumeInputError, CheckpointError) as exc:
            await self._refuse(run_id, answer.actor, exc)
            raise

    def _vet(
        self, record: StoredRun, answer: Answer, *, trusted: bool = False
    ) -> tuple[FlowChart, PauseEntry, dict[str, Any], dict[str, Any], Any]:
        """The checks before a claim.

        Returns:
            The chart, the pause answered, the checkpoint to resume and its
            checked copies, and the validated answer.
        """
        flow = self._chart(record.chart)
        pause = pause_to_answer(record, answer.pause_id, answer.stage_id)
        if not trusted and (answer.actor is not None or answer.groups is not None):
            check_assignment(record.run_id, pause, answer.actor, answer.groups or ())
        check_fingerprint(record, flow, self._compatibility)
        prepared, copies = prepare(record, flow, self._signing_key)
        node = flow.find_stage(pause.stage_id)
        assert isinstance(node, PausableStage)
        value = validate_resume_input(node, pause.stage_id, answer.input)
        return flow, pause, prepared, copies, value

    async def _refuse(self, run_id: str, actor: str | None, error: PausepointError) -> None:
        with contextlib.suppress(PausepointError):
            await self.store.append_audit(
                run_id,
                [
                    event(
                        "resume_refused",
                        actor,
                        {"error": type(error).__name__, "reason": str(error)},
                    )
                ],
            )

    async def _outcome_of(self, record: StoredRun) -> RunRecord:
        """The first resume's outcome: wait while it is still running (bounded by the lease)."""
        latest = await self._while_running(record, self.lease_seconds)
        return self._driver.record(latest, await self.store.audit(latest.run_id))

    async def _while_running(self, record: StoredRun, seconds: float) -> StoredRun:
        """Wait up to ``seconds`` for a running run to stop running; return its latest record."""
        deadline = time.time() + seconds
        while record.status == "running" and time.time() < deadline:
            await asyncio.sleep(0.02)
            record = await self.store.get(record.run_id)
        return record

    # -- fork and retry ---------------------------------------------------------

    async def fork(
        self,
        run_id: str,
        *,
        at: int,
        state_patch: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> RunRecord:
        """Start a new run from step ``at`` of a run's history; the original is untouched.

        Step ``at`` and everything after it happen afresh in the new run;
        the stages before it never run again: the new run starts from the
        state they left (with ``state_patch`` applied over it). Forking at a
        ``paused`` step (or the ``resumed`` step that answered it) gives a run
        waiting at that pause, for another answer. A parallel block or a
        for-each is one step: forking at it runs the whole block again. Both
        audits link the runs (``forked`` / ``forked_to``).

        Args:
            run_id: The run to fork (paused, or ended: not running).
            at: The step's ``index`` (see :meth:`history`).
            state_patch: State keys to set before the new run goes on, checked
                like a stage's writes.
            actor: Who forks (recorded in both audits).

        Returns:
            The new run's record, driven to its next pause or its end.

        Raises:
            RunNotFoundError: No run has that id.
            RunStateError: The run is running, or was started before runs
                kept a whole history.
            StepNotFoundError: The run has no step ``at``.
            StateError: A patched value does not fit the chart's state.
            ChartChangedError: The chart changed since the run started.
        """
        return await self._reruns.fork(run_id, at=at, state_patch=state_patch, actor=actor)

    async def retry(self, run_id: str, *, actor: str | None = None) -> RunRecord:
        """Run a failed run again from the stage that failed, on the state before it.

        The same run goes on (same id, its history continues): the stages that
        finished before the failure do not run again; the failed stage runs
        afresh (deploy the fix first). A run that failed at a pause's deadline
        goes back to waiting there. Two retries at once give one retry.

        Returns:
            The run's record, driven to its next pause or its end.

        Raises:
            RunNotFoundError: No run has that id.
            RunStateError: The run did not fail.
            RunAlreadyClaimedError: Another retry got there first.
        """
        return await self._reruns.retry(run_id, actor=actor)

    # -- cancelling and deadlines --------------------------------------------

    async def cancel(
        self,
        run_id: str,
        actor: str | None = None,
        reason: str | None = None,
        *,
        wait: float | None = None,
    ) -> RunRecord:
        """Cancel a run: a paused one at once, a running one before its next stage.

        A paused run is cancelled at once; its pauses leave the inbox. For a
        running run, in this process or any other, a cancel request is
        recorded (audit ``cancel_requested``); the process running it notices
        at its next stage boundary (at the latest by its next lease renewal,
        every third of the lease), stops, and records the run ``cancelled``:
        the state keeps what finished stages wrote, and the audit's
        ``cancelled`` event names ``actor`` and ``reason``. The stage in flight
        finishes first. A run that pauses before noticing is cancelled as a paused one.

        Args:
            run_id: The run.
            actor: Who cancels (recorded in the audit).
            reason: Why.
            wait: How long to wait for a running run to stop, in seconds
                (default: the lease). The record is returned as it then
                stands: still ``running`` if the stage in flight takes longer;
                the request stays, and the run stops when it reaches the next stage.

        Raises:
            RunNotFoundError: No run has that id.
            RunNotPausedError: The run is finished, or finished before the
                request took effect.
        """
        request = cancel_request(run_id, actor, reason)
        record, audit = await self.store.update(run_id, request, audit=True)
        if record.status != "running":
            self.observer.run_ended(record)
            return self._driver.record(record, audit)
        record = await self._while_running(record, self.lease_seconds if wait is None else wait)
        if record.status in ("running", "cancelled"):
            return await self.get(run_id)
        if record.status == "paused":  # it paused before it saw the request: cancel it now
            return await self.cancel(run_id, actor, reason)
        raise RunNotPausedError(
            f"run {run_id!r} {record.status} before the cancel request took effect",
            run_id=run_id,
            status=record.status,
        )

    async def expire_due(self, *, now: float | None = None) -> list[str]:
        """Apply the ``on_timeout`` policy of every pause past its deadline, once.

        Safe to call from several processes at once: each policy is applied by
        a compare-and-set, and losers skip the run.

        Returns:
            The ids of the runs this call acted on.
        """
        return await self._recovery.expire_due(now=now)

    # -- recovery -----------------------------------------------------------

    async def recover(self, *, now: float | None = None, concurrency: int = 8) -> list[str]:
        """Take over runs whose lease lapsed (their process died) and finish them.

        A run goes on from its last recorded stage; an answer already given is
        applied without asking again. Up to ``concurrency`` runs are driven at
        once, so one long stage does not hold up the rest. A run another process
        takes over meanwhile is left to it. A run whose process lives is never
        listed: its lease is renewed from a thread of its own.

        Returns:
            The ids of the runs recovered by this call, in the order they were found.

        Raises:
            StoreUnavailableError: The store went away; runs not yet taken over
                stay stale for the next call.
        """
        return await self._recovery.recover(now=now, concurrency=concurrency)

    def _chart(self, name: str) -> FlowChart:
        try:
            return self.charts[name]
        except KeyError:
            raise ChartNotFoundError(
                f"no chart is registered as {name!r}; registered: {', '.join(sorted(self.charts)) or 'none'}",
                chart=name,
            ) from None
