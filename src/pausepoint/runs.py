"""Durable runs: start, inbox, exactly-once resume, cancel, deadlines, crash recovery.

``Runs`` ties charts to a :class:`~pausepoint.stores.Store`. Every change of a
run is one compare-and-set on its record, so any number of processes may share
a store:

* **Exactly once.** ``resume`` validates the answer, then *claims* the run
  (paused → running, with a lease) in one atomic step. Two resumes of the same
  run race on that step: one wins, the other gets ``RunAlreadyClaimedError``
  (or, with the same idempotency key, the winner's outcome).
* **Crash recovery.** While a run goes on, its progress is written after every
  stage (progress checkpoints), and a heartbeat renews its lease. If the
  process dies, :meth:`Runs.recover` (also run by the sweeper) takes over runs
  whose lease lapsed and goes on from the last finished stage with the answer
  already recorded: the human is not asked again. Only the stage in flight at
  the crash can run twice; the audit then shows a ``recovered`` event.
* **Deadlines.** A pausable stage declared with ``timeout=`` gives its pauses a
  deadline; :meth:`Runs.expire_due` applies the stage's ``on_timeout`` policy
  once, even when several sweepers run at once.
* **Cancelling a running run.** :meth:`Runs.cancel` of a running run records a
  cancel request on its record (one compare-and-set). The process running it
  finds the request when its next progress or heartbeat write loses that
  compare-and-set, stops the executor before the next stage, and records the
  run ``cancelled`` with who asked and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ._claim import cancelled_event, event, redact
from ._driver import RunDriver, RunRecord
from ._json import json_copy
from ._observe import Observers, RunObserver
from .chart import FlowChart, PausableStage, structure_of
from .checkpoint import validate_checkpoint
from .compat import CompatibilityRule, checkpoint_for_chart, unchanged_from_pause
from .errors import (
    ChartChangedError,
    CheckpointError,
    PausepointError,
    ResumeInputError,
    ResumeTargetError,
    RunAlreadyClaimedError,
    RunError,
    RunNotPausedError,
    StalePauseError,
    StoreError,
    VersionConflictError,
)
from .executor import (
    validate_resume_input,
    validate_run_input,
)
from .stores.base import AuditEvent, PauseEntry, PendingPage, Store, StoredRun

__all__ = ["CompatibilityRule", "RunRecord", "Runs", "unchanged_from_pause"]

log = logging.getLogger("pausepoint.runs")

SYSTEM_ACTOR = "pausepoint"
"""The actor recorded for what the system does by itself (deadlines, recovery)."""


class Runs(RunDriver):
    """Durable runs of registered charts over one store.

    Args:
        store: Where runs live (see :func:`pausepoint.open_store`).
        charts: The charts, by the name runs refer to them with.
        signing_key: Sign checkpoints kept in the store; refuse tampered ones.
        lease_seconds: How long a running run stays claimed without a heartbeat.
        compatibility: Opt-in rule letting a run paused under an older version
            of its chart resume on the new one; by default such a resume is
            refused with ``ChartChangedError``.
        observer: Follows every run segment, stage and outcome (see
            :mod:`pausepoint._observe`), beside the process-wide observers and
            OpenTelemetry tracing, which is on once a tracer provider is set.
    """

    def __init__(
        self,
        store: Store,
        charts: Mapping[str, FlowChart],
        *,
        signing_key: str | bytes | None = None,
        lease_seconds: float = 30.0,
        compatibility: CompatibilityRule | None = None,
        observer: RunObserver | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.store = store
        self.charts = dict(charts)
        self.lease_seconds = lease_seconds
        self._signing_key = signing_key
        self._compatibility = compatibility
        self._owner = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self.observer = Observers(observer)

    async def __aenter__(self) -> Runs:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the store."""
        await self.store.aclose()

    # -- reading ------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord:
        """Return the run with its pause, snapshot and audit.

        Raises:
            RunNotFoundError: No run has that id.
        """
        return await self._record(await self.store.get(run_id))

    async def pending(
        self,
        chart: str | None = None,
        stage: str | None = None,
        older_than: float | timedelta | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> PendingPage:
        """Return a page of the inbox: pauses waiting for a person, newest first.

        Args:
            chart: Only runs of this chart.
            stage: Only pauses at this stage id.
            older_than: Only pauses waiting at least this long (seconds or timedelta).
            limit: Page size.
            cursor: ``next_cursor`` of the previous page.
        """
        created_before = None
        if older_than is not None:
            seconds = (
                older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
            )
            created_before = time.time() - seconds
        return await self.store.list_pending(
            chart=chart, stage=stage, created_before=created_before, limit=limit, cursor=cursor
        )

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
        record = await self.store.create(
            StoredRun(
                run_id=run_id,
                chart=chart,
                fingerprint=flow.fingerprint,
                status="running",
                created_at=now,
                updated_at=now,
                lease_owner=self._owner,
                lease_until=now + self.lease_seconds,
                meta={
                    "input": seed,
                    "structure": structure_of(flow.steps),
                    "redact": sorted(flow.redact),
                },
            ),
            [event("started", actor, {"input": redact(seed, flow)})],
        )
        return await self._drive(record, flow, lambda ex: ex.run(seed, run_id=run_id), "start")

    # -- resuming -----------------------------------------------------------

    async def resume(
        self,
        run_id: str,
        input: Any,
        *,
        actor: str | None = None,
        pause_id: str | None = None,
        stage_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Answer a pause of a paused run, exactly once, and drive the run on.

        Args:
            run_id: The run.
            input: The answer; validated against the stage's ``input_schema``.
            actor: Who answers (recorded in the audit).
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
        """
        return await self._resume(
            run_id,
            input,
            actor=actor,
            pause_id=pause_id,
            stage_id=stage_id,
            idempotency_key=idempotency_key,
        )

    async def _resume(
        self,
        run_id: str,
        input: Any,
        *,
        actor: str | None,
        pause_id: str | None = None,
        stage_id: str | None = None,
        idempotency_key: str | None = None,
        expired: AuditEvent | None = None,
    ) -> RunRecord:
        """``resume``; ``expired`` (a deadline's default answer) goes into the claim itself.

        So the expiry is recorded once, by the sweeper whose claim wins; a
        sweeper that loses the race leaves no trace in the audit.
        """
        record = await self.store.get(run_id)
        if idempotency_key is not None and idempotency_key in record.meta.get("idempotency", {}):
            return await self._outcome_of(record)
        flow, pause, prepared = await self._vet(
            record, input, actor, pause_id, stage_id, audit=expired is None
        )
        answer = (
            json_copy(input) if not hasattr(input, "model_dump") else input.model_dump(mode="json")
        )
        meta = dict(record.meta)
        meta["answer"] = {"stage_id": pause.stage_id, "pause_id": pause.pause_id, "input": answer}
        if idempotency_key is not None:
            meta["idempotency"] = {**meta.get("idempotency", {}), idempotency_key: pause.pause_id}
        now = time.time()
        try:
            claimed = await self.store.replace(
                dataclasses.replace(
                    record,
                    status="running",
                    lease_owner=self._owner,
                    lease_until=now + self.lease_seconds,
                    updated_at=now,
                    meta=meta,
                ),
                expected_version=record.version,
                events=[
                    *([expired] if expired is not None else []),
                    event(
                        "resumed",
                        actor,
                        {
                            "stage_id": pause.stage_id,
                            "pause_id": pause.pause_id,
                            "input": redact(answer, flow),
                        },
                    ),
                ],
            )
        except VersionConflictError:
            latest = await self.store.get(run_id)
            if idempotency_key is not None and idempotency_key in latest.meta.get(
                "idempotency", {}
            ):
                return await self._outcome_of(latest)
            error = RunAlreadyClaimedError(
                f"run {run_id!r} was claimed by another resume a moment ago (now {latest.status})",
                run_id=run_id,
            )
            if expired is None:
                await self._refuse(latest, actor, error)
            raise error from None
        return await self._drive(
            claimed, flow, lambda ex: ex.resume(prepared, answer, stage_id=pause.stage_id), "resume"
        )

    def _prepare(self, record: StoredRun, flow: FlowChart) -> dict[str, Any]:
        """Return the stored checkpoint as ``flow`` resumes it, checked before any claim.

        Raises:
            ChartChangedError: The chart changed in a way the checkpoint cannot follow.
            CheckpointError: The stored checkpoint is damaged or tampered with.
        """
        assert record.checkpoint is not None
        checkpoint = checkpoint_for_chart(record.checkpoint, flow, self._signing_key, record.meta)
        try:
            validate_checkpoint(checkpoint, flow, self._signing_key)
        except CheckpointError as exc:
            if record.fingerprint == flow.fingerprint:
                raise
            raise ChartChangedError(
                f"chart {record.chart!r} changed since run {record.run_id!r} paused, and the "
                f"paused run cannot follow the change: {exc}",
                expected=flow.fingerprint,
                found=record.fingerprint,
            ) from exc
        return checkpoint

    async def check_resume(
        self,
        run_id: str,
        input: Any,
        *,
        actor: str | None = None,
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
        """
        record = await self.store.get(run_id)
        if idempotency_key is not None and idempotency_key in record.meta.get("idempotency", {}):
            return  # a retry of an answer already given: resume reports its outcome
        await self._vet(record, input, actor, pause_id, stage_id, audit=True)

    async def _vet(
        self,
        record: StoredRun,
        input: Any,
        actor: str | None,
        pause_id: str | None,
        stage_id: str | None,
        *,
        audit: bool,
    ) -> tuple[FlowChart, PauseEntry, dict[str, Any]]:
        """The checks before a claim; return the chart, the pause and the checkpoint to resume."""
        flow = self._chart(record.chart)
        try:
            pause = self._pause_to_answer(record, pause_id, stage_id)
            self._check_fingerprint(record, flow)
            prepared = self._prepare(record, flow)
            node = flow.find_stage(pause.stage_id)
            assert isinstance(node, PausableStage)
            validate_resume_input(node, pause.stage_id, input)
        except (RunError, ResumeTargetError, ResumeInputError, CheckpointError) as exc:
            if audit:
                await self._refuse(record, actor, exc)
            raise
        return flow, pause, prepared

    def _pause_to_answer(
        self, record: StoredRun, pause_id: str | None, stage_id: str | None
    ) -> PauseEntry:
        if record.status != "paused":
            answered = record.meta.get("answer", {})
            if pause_id is not None and pause_id != answered.get("pause_id"):
                raise StalePauseError(
                    f"pause {pause_id!r} of run {record.run_id!r} is no longer pending (run is {record.status})",
                    run_id=record.run_id,
                )
            if record.status in ("running", "completed"):
                raise RunAlreadyClaimedError(
                    f"run {record.run_id!r} is {record.status}: it was already resumed"
                    + (f" (answer to {answered['stage_id']!r})" if answered else ""),
                    run_id=record.run_id,
                )
            raise RunNotPausedError(
                f"run {record.run_id!r} is {record.status}: there is no pause to answer",
                run_id=record.run_id,
                status=record.status,
            )
        pending = [pause.stage_id for pause in record.pauses]
        if pause_id is not None:
            for pause in record.pauses:
                if pause.pause_id == pause_id:
                    return pause
            raise StalePauseError(
                f"pause {pause_id!r} of run {record.run_id!r} is no longer pending; pending: "
                + ", ".join(f"{p.stage_id} ({p.pause_id})" for p in record.pauses),
                run_id=record.run_id,
            )
        if stage_id is not None:
            for pause in record.pauses:
                if pause.stage_id == stage_id:
                    return pause
            raise ResumeTargetError(
                f"stage {stage_id!r} of run {record.run_id!r} is not paused; pending: {', '.join(pending)}",
                pending=pending,
            )
        if len(record.pauses) != 1:
            raise ResumeTargetError(
                f"run {record.run_id!r} waits on {len(pending)} pauses ({', '.join(pending)}): "
                "pass pause_id= or stage_id=",
                pending=pending,
            )
        return record.pauses[0]

    def _check_fingerprint(self, record: StoredRun, flow: FlowChart) -> None:
        if record.fingerprint == flow.fingerprint:
            return
        if self._compatibility is not None and self._compatibility(record, flow):
            return
        raise ChartChangedError(
            f"chart {record.chart!r} changed since run {record.run_id!r} paused "
            f"(fingerprint {record.fingerprint[:12]}… then, {flow.fingerprint[:12]}… now); "
            "resume it with the chart it started with, or pass Runs(compatibility=...)",
            expected=flow.fingerprint,
            found=record.fingerprint,
        )

    async def _refuse(self, record: StoredRun, actor: str | None, error: PausepointError) -> None:
        with contextlib.suppress(PausepointError):
            await self.store.append_audit(
                record.run_id,
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
        return await self._record(await self._while_running(record, self.lease_seconds))

    async def _while_running(self, record: StoredRun, seconds: float) -> StoredRun:
        """Wait up to ``seconds`` for a running run to stop running; return its latest record."""
        deadline = time.time() + seconds
        while record.status == "running" and time.time() < deadline:
            await asyncio.sleep(0.02)
            record = await self.store.get(record.run_id)
        return record

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
        at its next stage boundary (at the latest by its next heartbeat,
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
        record = await self.store.get(run_id)
        while record.status == "running" and "cancel" not in record.meta:
            request = {"actor": actor, "reason": reason, "at": time.time()}
            try:
                record = await self.store.replace(
                    dataclasses.replace(record, meta={**record.meta, "cancel": request}),
                    expected_version=record.version,
                    events=[event("cancel_requested", actor, {"reason": reason})],
                )
            except VersionConflictError:  # it wrote its progress meanwhile: ask again
                record = await self.store.get(run_id)
        if record.status == "running":
            record = await self._while_running(record, self.lease_seconds if wait is None else wait)
            if record.status in ("running", "cancelled"):
                return await self._record(record)
            if record.status != "paused":
                raise RunNotPausedError(
                    f"run {run_id!r} {record.status} before the cancel request took effect",
                    run_id=run_id,
                    status=record.status,
                )
        if record.status != "paused":
            raise RunNotPausedError(
                f"run {run_id!r} is {record.status}; only a paused run can be cancelled "
                "(or a running one, before its next stage)",
                run_id=run_id,
                status=record.status,
            )
        try:
            updated = await self.store.replace(
                dataclasses.replace(record, status="cancelled", updated_at=time.time(), pauses=()),
                expected_version=record.version,
                events=[event("cancelled", actor, {"reason": reason})],
            )
        except VersionConflictError:
            raise RunAlreadyClaimedError(
                f"run {run_id!r} changed while cancelling; read it again", run_id=run_id
            ) from None
        self.observer.run_ended(updated)
        return await self._record(updated)

    async def expire_due(self, *, now: float | None = None) -> list[str]:
        """Apply the ``on_timeout`` policy of every pause past its deadline, once.

        Safe to call from several processes at once: each policy is applied by
        a compare-and-set, and losers skip the run.

        Returns:
            The ids of the runs this call acted on.
        """
        now = time.time() if now is None else now
        acted: list[str] = []
        for record in await self.store.list_due(now):
            flow = self.charts.get(record.chart)
            if flow is None:
                continue
            for pause in record.pauses:
                if pause.deadline is None or pause.deadline > now:
                    continue
                node = flow.find_stage(pause.stage_id)
                if not isinstance(node, PausableStage):
                    continue
                try:
                    await self._expire(record, pause, node)
                    acted.append(record.run_id)
                except (
                    RunAlreadyClaimedError,
                    RunNotPausedError,
                    StalePauseError,
                    VersionConflictError,
                ):
                    pass  # another sweeper or a person got there first
                except StoreError:
                    raise  # the store is down: nothing else can be expired either
                except PausepointError as exc:
                    # e.g. the default answer fails the stage's schema: the refusal is
                    # audited; the other overdue runs are still handled
                    log.warning("could not expire run %s: %s", record.run_id, exc)
                break
        return acted

    async def _expire(self, record: StoredRun, pause: PauseEntry, node: PausableStage) -> None:
        policy = node.on_timeout
        detail = {
            "stage_id": pause.stage_id,
            "pause_id": pause.pause_id,
            "deadline": pause.deadline,
        }
        if policy is not None and policy.action == "resume":
            await self._resume(
                record.run_id,
                policy.input,
                actor=SYSTEM_ACTOR,
                pause_id=pause.pause_id,
                expired=event("expired", SYSTEM_ACTOR, {**detail, "policy": "resume"}),
            )
            return
        failing = policy is not None and policy.action == "fail"
        expired = await self.store.replace(
            dataclasses.replace(
                record,
                status="failed" if failing else "expired",
                error=f"pause at {pause.stage_id!r} passed its deadline" if failing else None,
                pauses=(),
                updated_at=time.time(),
            ),
            expected_version=record.version,
            events=[
                event(
                    "expired", SYSTEM_ACTOR, {**detail, "policy": "fail" if failing else "cancel"}
                )
            ],
        )
        self.observer.run_ended(expired)

    # -- recovery -----------------------------------------------------------

    async def recover(self, *, now: float | None = None, concurrency: int = 8) -> list[str]:
        """Take over runs whose lease lapsed (their process died) and finish them.

        A run goes on from its last recorded stage; an answer already given is
        applied without asking again. Up to ``concurrency`` runs are driven at
        once, so one long stage does not hold up the rest. A run another process
        takes over meanwhile is left to it.

        Returns:
            The ids of the runs recovered by this call, in the order they were found.

        Raises:
            StoreUnavailableError: The store went away; runs not yet taken over
                stay stale for the next call.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        now = time.time() if now is None else now
        slots = asyncio.Semaphore(concurrency)

        async def take_over(record: StoredRun) -> str | None:
            async with slots:
                return await self._recover_one(record)

        stale = await self.store.list_stale(now)
        outcomes = await asyncio.gather(
            *(take_over(record) for record in stale), return_exceptions=True
        )
        for outcome in outcomes:  # after every run had its turn: the first real failure
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, RunAlreadyClaimedError
            ):
                raise outcome
        return [outcome for outcome in outcomes if isinstance(outcome, str)]

    async def _recover_one(self, record: StoredRun) -> str | None:
        """Take over one stale run and drive it; ``None`` if it is not ours to recover."""
        flow = self.charts.get(record.chart)
        if flow is None:
            return None
        if "cancel" in record.meta:  # its process died before it could honour the request
            try:
                await self.store.replace(
                    dataclasses.replace(
                        record,
                        status="cancelled",
                        pauses=(),
                        lease_owner=None,
                        updated_at=time.time(),
                    ),
                    expected_version=record.version,
                    events=[cancelled_event(record.meta["cancel"], record.lease_owner)],
                )
            except VersionConflictError:
                return None
            return record.run_id
        try:
            claimed = await self.store.replace(
                dataclasses.replace(
                    record,
                    lease_owner=self._owner,
                    lease_until=time.time() + self.lease_seconds,
                ),
                expected_version=record.version,
                events=[event("recovered", SYSTEM_ACTOR, {"from": record.lease_owner})],
            )
        except VersionConflictError:
            return None
        await self._drive(claimed, flow, self._continuation_of(claimed, flow), "recover")
        return record.run_id

    def _chart(self, name: str) -> FlowChart:
        try:
            return self.charts[name]
        except KeyError:
            raise RunError(
                f"no chart is registered as {name!r}; registered: {', '.join(sorted(self.charts)) or 'none'}",
                run_id="",
            ) from None
