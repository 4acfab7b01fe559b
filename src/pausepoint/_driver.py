"""Driving a claimed run: an executor whose progress, lease and outcome go to the store.

:class:`RunDriver` is the part of :class:`~pausepoint.runs.Runs` that runs a
chart once a run is claimed (started, resumed or recovered): it writes a
progress checkpoint after every stage and renews the lease while the executor
runs (:class:`~pausepoint._claim.Claim`), records how the run ended, and turns
stored records into :class:`RunRecord` s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from ._claim import Claim, cancelled_event, event, redact
from ._observe import Observers, Segment, SegmentKind
from .chart import FlowChart, PausableStage
from .checkpoint import Checkpoint
from .compat import checkpoint_for_chart
from .errors import PausepointError, RunAlreadyClaimedError, StoreError
from .executor import FlowChartExecutor, snapshot_of
from .stores.base import AuditEvent, PauseEntry, Store, StoredRun

__all__ = ["RunDriver", "RunRecord"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    """A run as ``Runs`` reports it.

    Attributes:
        run_id: The run's id.
        chart: The name its chart is registered under.
        status: ``running``, ``paused``, ``completed``, ``failed``, ``cancelled`` or ``expired``.
        pause: The first pending pause (``pause.id``, ``.stage_id``, ``.data``, ``.deadline``).
        pauses: Every pending pause (several for parallel branches).
        snapshot: State, execution tree, narrative and metrics (secrets redacted).
        audit: Every event so far, oldest first.
        error: Why the run failed, when it did.
        created_at: When it started (UNIX seconds).
        updated_at: When its record last changed.
        version: The record's compare-and-set version.
    """

    run_id: str
    chart: str
    status: str
    pause: PauseEntry | None
    pauses: tuple[PauseEntry, ...]
    snapshot: dict[str, Any] | None
    audit: tuple[AuditEvent, ...]
    error: str | None
    created_at: float
    updated_at: float
    version: int


class RunDriver:
    """Runs a claimed run to its next pause or its end; see the module docstring."""

    store: Store
    charts: dict[str, FlowChart]
    observer: Observers
    lease_seconds: float
    _signing_key: str | bytes | None
    _owner: str

    def _continuation_of(
        self, record: StoredRun, flow: FlowChart
    ) -> Callable[[FlowChartExecutor], Awaitable[str]]:
        checkpoint = record.checkpoint
        if checkpoint is None:
            seed = record.meta.get("input", {})
            return lambda ex: ex.run(seed, run_id=record.run_id)
        fresh = checkpoint_for_chart(checkpoint, flow, self._signing_key, record.meta)
        if checkpoint.get("status") == "running":
            return lambda ex: ex.continue_from(fresh)
        answer = record.meta["answer"]
        return lambda ex: ex.resume(fresh, answer["input"], stage_id=answer["stage_id"])

    # -- driving an executor --------------------------------------------------

    async def _drive(
        self,
        record: StoredRun,
        flow: FlowChart,
        step: Callable[[FlowChartExecutor], Awaitable[str]],
        kind: SegmentKind,
    ) -> RunRecord:
        """Run ``step`` on a fresh executor, keeping progress and lease in the store.

        A cancel request found on the record while it runs (see :meth:`cancel`)
        stops the executor before its next stage. The observers follow it as
        one segment of the run (see :mod:`pausepoint._observe`).
        """
        with self.observer.segment(record, kind) as segment:
            return segment.ended(await self._drive_segment(record, flow, step, segment))

    async def _drive_segment(
        self,
        record: StoredRun,
        flow: FlowChart,
        step: Callable[[FlowChartExecutor], Awaitable[str]],
        segment: Segment,
    ) -> RunRecord:

        async def on_progress(checkpoint: Checkpoint) -> None:
            await holder.write(checkpoint=dict(checkpoint), events=[])

        executor = segment.executor(flow, signing_key=self._signing_key, on_progress=on_progress)
        holder = Claim(
            self.store,
            record,
            self.lease_seconds,
            on_cancel=lambda request: executor.cancel(
                request.get("reason"), actor=request.get("actor")
            ),
        )
        heartbeat = asyncio.create_task(holder.heartbeat())
        try:
            await step(executor)
        except (RunAlreadyClaimedError, StoreError):
            # Another process took the run over, or the store went away: the
            # record still says running, and recover() finishes it later.
            raise
        except PausepointError as exc:
            # A stage raised, or the stored checkpoint cannot be resumed. The
            # record keeps the checkpoint it started from, for inspection.
            heartbeat.cancel()
            failure: tuple[dict[str, Any], list[AuditEvent]] = (
                {
                    "status": "failed",
                    "pauses": (),
                    "snapshot": dict(executor.get_snapshot()),
                    "error": str(exc),
                },
                [
                    event(
                        "failed",
                        None,
                        {"stage_id": getattr(exc, "stage_id", None), "error": str(exc)},
                    )
                ],
            )
            final = await holder.finish(lambda: failure)
            return await self._record(final)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        known = {pause.pause_id for pause in record.pauses}
        final = await holder.finish(
            lambda: segment.outcome(self._outcome(executor, flow, holder, known), holder.record)
        )
        return await self._record(final)

    def _outcome(
        self, executor: FlowChartExecutor, flow: FlowChart, holder: Claim, known: set[str]
    ) -> tuple[dict[str, Any], list[AuditEvent]]:
        """The record's changes and audit events for how the executor ended.

        Asked again if a cancel request turns up while the outcome is written:
        a run that paused is then cancelled instead.
        """
        checkpoint = executor.get_checkpoint()
        if executor.status == "cancelled" or (holder.cancel is not None and checkpoint):
            snapshot = dict(executor.get_snapshot(), status="cancelled", pauses=[])
            return (
                {"status": "cancelled", "pauses": (), "snapshot": snapshot, "error": None},
                [cancelled_event(holder.cancel or {}, self._owner)],
            )
        if checkpoint is None:
            return (
                {
                    "status": "completed",
                    "checkpoint": None,
                    "pauses": (),
                    "snapshot": dict(executor.get_snapshot()),
                    "error": None,
                },
                [event("completed", None, {})],
            )
        pauses = tuple(self._pause_entry(flow, pause) for pause in checkpoint["pauses"])
        return (
            {
                "status": "paused",
                "checkpoint": dict(checkpoint),
                "pauses": pauses,
                "snapshot": None,  # the checkpoint holds it all; see _snapshot_of
                "error": None,
            },
            [
                event(
                    "paused",
                    None,
                    {"stage_id": p.stage_id, "pause_id": p.pause_id, "data": redact(p.data, flow)},
                )
                for p in pauses
                if p.pause_id not in known
            ],
        )

    @staticmethod
    def _pause_entry(flow: FlowChart, pause: Mapping[str, Any]) -> PauseEntry:
        node = flow.find_stage(pause["stage_id"])
        timeout = node.timeout if isinstance(node, PausableStage) else None
        return PauseEntry(
            pause_id=pause["pause_id"],
            stage_id=pause["stage_id"],
            data=pause["data"],
            created_at=pause["paused_at"],
            deadline=None if timeout is None else pause["paused_at"] + timeout,
        )

    async def _record(self, record: StoredRun) -> RunRecord:
        audit = await self.store.audit(record.run_id)
        return RunRecord(
            run_id=record.run_id,
            chart=record.chart,
            status=record.status,
            pause=record.pauses[0] if record.pauses else None,
            pauses=record.pauses,
            snapshot=self._snapshot_of(record),
            audit=audit,
            error=record.error,
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
        )

    def _snapshot_of(self, record: StoredRun) -> dict[str, Any] | None:
        """The run's snapshot: as stored when it ended, else derived from its checkpoint.

        A paused or running run keeps no snapshot beside its checkpoint, so the
        state and the execution tree are stored once.
        """
        if record.snapshot is not None or record.checkpoint is None:
            return record.snapshot
        redact = record.meta.get("redact")
        if redact is None:  # a record from before runs kept their chart's redact keys
            flow = self.charts.get(record.chart)
            if flow is None:
                return None
            redact = flow.redact
        snapshot = dict(snapshot_of(cast(Checkpoint, record.checkpoint), redact))
        if record.status != "paused":  # claimed and running, or cancelled while paused
            snapshot.update(status=record.status, pauses=[])
        return snapshot
