"""Driving a claimed run: an executor whose journal, lease and outcome go to the store.

:class:`RunDriver` is what :class:`~pausepoint.durable.runs.Runs` hands a run to once it
is claimed (started, resumed or recovered). It runs the chart on a fresh
executor inside the run's :class:`~pausepoint.durable._claim.Claim` (which keeps the
lease from a thread of its own), appends one journal entry per finished stage
(``durability="stage"``) and writes how the run ended in one transaction, which
also returns the audit: a step costs about one write.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pausepoint.engine._redact import redacted
from pausepoint.engine.chart import FlowChart, PausableStage
from pausepoint.engine.checkpoint import FORMAT_VERSION, Checkpoint, sign_checkpoint
from pausepoint.engine.executor import ExecutorStatus, FlowChartExecutor, snapshot_of
from pausepoint.errors import ClaimLostError, PausepointError, StoreError
from pausepoint.stores.base import (
    AuditEvent,
    JournalEntry,
    OutboxEntry,
    PauseEntry,
    Store,
    StoredRun,
)

from ._claim import Claim, LeaseKeeper, cancelled_event, event
from ._journal import Tracker, replay
from ._meta import RunMeta
from ._observe import Observers, Segment, SegmentKind
from .compat import checkpoint_for_chart
from .records import Durability, RunRecord

__all__ = [
    "Continue",
    "Proceed",
    "Resume",
    "ResumeRecorded",
    "RunDriver",
    "Start",
    "proceed",
    "traceback_summary",
]

_TRACEBACK_FRAMES = 6


@dataclass(frozen=True, slots=True)
class Start:
    """Run the chart from its input."""

    input: dict[str, Any]
    run_id: str


@dataclass(frozen=True, slots=True)
class Resume:
    """Resume a checkpoint with answers ``Runs`` checked while it claimed the run.

    ``checkpoint`` and ``copies`` are what ``validate_checkpoint`` checked and
    returned; ``answers`` (stage id → answer) passed the stages' schemas. The
    executor trusts them and checks nothing again.
    """

    checkpoint: Mapping[str, Any]
    copies: dict[str, Any]
    answers: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResumeRecorded:
    """Resume with the answer recorded on the run, checked by the executor.

    A process taking over a resume that died before its first stage finished.
    """

    checkpoint: Mapping[str, Any]
    input: Any
    stage_id: str


@dataclass(frozen=True, slots=True)
class Continue:
    """Carry on from a progress checkpoint: a run taken over, or a fork."""

    checkpoint: Mapping[str, Any]


Proceed = Start | Resume | ResumeRecorded | Continue
"""What the executor does for a claimed run: run, resume or carry on."""


async def proceed(executor: FlowChartExecutor, step: Proceed) -> ExecutorStatus:
    """Take ``step`` on ``executor``: where a driven run enters the engine."""
    if isinstance(step, Start):
        return await executor.run(step.input, run_id=step.run_id)
    if isinstance(step, Resume):
        return await executor._resume_checked(step.checkpoint, step.copies, step.answers)
    if isinstance(step, ResumeRecorded):
        return await executor.resume(step.checkpoint, step.input, stage_id=step.stage_id)
    return await executor.continue_from(step.checkpoint)


def traceback_summary(exc: BaseException) -> list[str]:
    """Return a short summary of where a stage failed: the last frames and the original error.

    One line per frame (``file.py:12 in handler``, the file's name only, no source
    text, so no value of the run's state can appear in it), innermost last, then
    the original exception's type and message. Kept in the ``failed`` audit event.
    """
    cause = exc.__cause__ or exc
    frames = traceback.extract_tb(cause.__traceback__)[-_TRACEBACK_FRAMES:]
    lines = [f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in frames]
    lines.append("".join(traceback.format_exception_only(type(cause), cause)).strip()[:500])
    return lines


class RunDriver:
    """Runs claimed runs to their next pause or their end; see the module docstring.

    Args:
        store: The store.
        charts: The registered charts, by name.
        lease_seconds: The claim's lease.
        signing_key: The checkpoint signing key, if any.
        durability: When progress is written (see :data:`Durability`).
    """

    def __init__(
        self,
        store: Store,
        charts: Mapping[str, FlowChart],
        *,
        lease_seconds: float,
        signing_key: str | bytes | None,
        durability: Durability,
        observer: Observers,
    ) -> None:
        self.store = store
        self.charts = charts
        self.lease_seconds = lease_seconds
        self.signing_key = signing_key
        self.durability = durability
        self.observer = observer
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self.keeper = LeaseKeeper(store, lease_seconds)
        self._claims = itertools.count(1)
        self.after_pause: Callable[[RunRecord], Awaitable[RunRecord]] | None = None
        """Called with a run that paused under a business key; returns its latest record."""
        self.outbox: Callable[[FlowChart, StoredRun, set[str]], list[OutboxEntry]] | None = None
        """Given the chart, a record about to be written and the pause ids it had
        before: the outbox entries (notifications) of its new pauses."""

    def token(self) -> str:
        """A new claim token: this process's owner name and a number of its own."""
        return f"{self.owner}:{next(self._claims)}"

    # -- where a claimed run goes on --------------------------------------------

    async def continuation(self, record: StoredRun, flow: FlowChart) -> tuple[Proceed, Tracker]:
        """What a process taking over ``record`` does: carry on from its journal.

        The segment the dead process was driving started at journal entry
        ``RunMeta.segment``; the entries since then replayed on the checkpoint it
        started from (or the run's input) give the state, tree and next stage.
        """
        checkpoint = record.checkpoint
        if checkpoint is not None and checkpoint.get("status") == "running":
            # A progress checkpoint written by an earlier release into the record itself.
            fresh = checkpoint_for_chart(checkpoint, flow, self.signing_key, record.meta)
            tracker = Tracker(fresh["shared_state"], fresh["execution_tree"])
            return Continue(fresh), tracker
        meta = RunMeta.of(record.meta)
        entries = await self.store.journal(record.run_id, start=meta.segment)
        if not entries:
            if checkpoint is None:
                seed = dict(meta.input)
                return Start(seed, record.run_id), Tracker(dict(seed), [])
            fresh = checkpoint_for_chart(checkpoint, flow, self.signing_key, record.meta)
            answer = meta.answer
            assert answer is not None
            resumed = Tracker(
                checkpoint["shared_state"],
                checkpoint["execution_tree"],
                resumed=answer.stage_id,
                actor=answer.actor,
            )
            return ResumeRecorded(fresh, answer.input, answer.stage_id), resumed
        progress = self._progress(record, entries, flow.name, flow.fingerprint)
        state, tree = progress["shared_state"], progress["execution_tree"]
        if self.signing_key is not None:
            progress["signature"] = sign_checkpoint(progress, self.signing_key)
        return Continue(progress), Tracker(state, tree)

    async def live(self, record: StoredRun) -> StoredRun:
        """A running run as of its last finished stage: its checkpoint made from the journal."""
        if record.status != "running" or (
            record.checkpoint is not None and record.checkpoint.get("status") == "running"
        ):
            return record
        entries = await self.store.journal(record.run_id, start=RunMeta.of(record.meta).segment)
        if not entries:
            return record
        flow = self.charts.get(record.chart)
        name = record.chart if flow is None else flow.name
        progress = self._progress(record, entries, name, record.fingerprint)
        return dataclasses.replace(record, checkpoint=progress)

    def paused_checkpoint(
        self, record: StoredRun, entries: Sequence[JournalEntry], flow: FlowChart
    ) -> dict[str, Any]:
        """The checkpoint of the pause the last of ``entries`` (a ``paused`` step) recorded."""
        checkpoint = self._progress(record, entries, flow.name, flow.fingerprint)
        pauses = entries[-1].data["pauses"]
        first = pauses[0] if pauses else None
        checkpoint.update(
            status="paused",
            pauses=pauses,
            paused_stage_id=first["stage_id"] if first else "",
            pause_data=first["data"] if first else None,
            paused_at=max((p["paused_at"] for p in pauses), default=0.0),
        )
        if self.signing_key is not None:
            checkpoint["signature"] = sign_checkpoint(checkpoint, self.signing_key)
        return checkpoint

    @staticmethod
    def _progress(
        record: StoredRun, entries: Sequence[JournalEntry], chart_name: str, fingerprint: str
    ) -> dict[str, Any]:
        """The progress checkpoint after ``entries``, replayed on where their segment began."""
        checkpoint, meta = record.checkpoint, RunMeta.of(record.meta)
        if checkpoint is None:
            state: dict[str, Any] = dict(meta.input)
            tree: list[Any] = []
        else:
            state, tree = dict(checkpoint["shared_state"]), list(checkpoint["execution_tree"])
        continuation = replay(state, tree, entries)
        return {
            "format_version": FORMAT_VERSION,
            "chart_name": chart_name,
            "chart_fingerprint": fingerprint,
            "run_id": record.run_id,
            "status": "running",
            "input": dict(meta.input) if checkpoint is None else checkpoint["input"],
            "shared_state": state,
            "paused_stage_id": "",
            "pause_data": None,
            "pauses": [],
            "execution_tree": tree,
            "continuation": continuation,
            "started_at": record.created_at if checkpoint is None else checkpoint["started_at"],
            "paused_at": 0.0 if checkpoint is None else checkpoint["paused_at"],
        }

    # -- driving an executor ------------------------------------------------------

    async def drive(
        self,
        record: StoredRun,
        flow: FlowChart,
        step: Proceed,
        tracker: Tracker,
        *,
        kind: SegmentKind,
        unsaved: Sequence[AuditEvent] | None = None,
    ) -> RunRecord:
        """Take ``step`` on a fresh executor, holding ``record``'s claim, and record how it ended.

        A cancel request found on the record while it runs (see ``Runs.cancel``)
        stops the executor before its next stage; so does finding the claim
        taken over, after which nothing more is written. The observers follow
        it as one segment of the run, begun as ``kind`` (see :mod:`pausepoint.durable._observe`).

        ``unsaved``: ``record`` is not written yet; its outcome creates it, with
        these audit events first (see :class:`~pausepoint.durable._claim.Claim`).

        Raises:
            ClaimLostError: Another process took the run over; it finishes it.
            StoreError: The store went away; the run stays claimed until its
                lease lapses, then ``recover`` finishes it.
        """
        with self.observer.segment(record, kind) as segment:
            return segment.ended(
                await self._drive_segment(record, flow, step, tracker, segment, unsaved)
            )

    async def _drive_segment(
        self,
        record: StoredRun,
        flow: FlowChart,
        step: Proceed,
        tracker: Tracker,
        segment: Segment,
        unsaved: Sequence[AuditEvent] | None,
    ) -> RunRecord:
        written: list[JournalEntry] = []  # the entries of "pause" durability, for the outcome

        async def on_progress(checkpoint: Checkpoint) -> None:
            entry = tracker.step(
                checkpoint["shared_state"], checkpoint["execution_tree"], checkpoint["continuation"]
            )
            await claim.append([entry])

        executor = segment.executor(
            flow,
            signing_key=self.signing_key,
            on_progress=on_progress if self.durability == "stage" else None,
        )
        claim = Claim(
            self.store,
            self.keeper,
            record,
            self.lease_seconds,
            on_cancel=lambda request: executor.cancel(
                request.get("reason"), actor=request.get("actor")
            ),
            on_lost=lambda: executor.cancel("another process took the run over"),
            unsaved=unsaved,
        )
        async with claim:
            try:
                await proceed(executor, step)
            except (ClaimLostError, StoreError):
                raise
            except PausepointError as exc:
                # A stage raised, or the stored checkpoint cannot be resumed. The record
                # keeps the checkpoint it started from, for inspection; the journal keeps
                # the stages that finished, not the failed one's partial writes.
                changes = {
                    "status": "failed",
                    "checkpoint": record.checkpoint,
                    "pauses": (),
                    "snapshot": dict(executor.get_snapshot()),
                    "error": str(exc),
                    "stage": getattr(exc, "stage_id", None),
                }
                failed = event(
                    "failed",
                    None,
                    {
                        "stage_id": getattr(exc, "stage_id", None),
                        "error": str(exc),
                        "traceback": traceback_summary(exc),
                    },
                )
                stored, audit = await claim.finish(lambda _: (changes, [failed], written))
                return self.record(stored, audit)
            if claim.lost:
                lost = ClaimLostError(
                    f"run {record.run_id!r} was taken over by another process while this one "
                    "ran it; this process wrote nothing after that",
                    run_id=record.run_id,
                )
                claim.log_lost(lost)
                raise lost
            outcome = self._outcome(executor, flow, record, tracker, written, claim.owner)

            def observed(
                request: Mapping[str, Any] | None,
            ) -> tuple[dict[str, Any], list[AuditEvent], list[JournalEntry]]:
                changes, events, entries = outcome(request)
                changes, events = segment.outcome((changes, events), record)
                return changes, events, entries

            known = {pause.pause_id for pause in record.pauses}
            stored, audit = await claim.finish(observed, self._outbox_of(flow, known))
        result = self.record(stored, audit)
        if self.after_pause is not None and any(p.key is not None for p in stored.pauses):
            return await self.after_pause(result)  # an answer may wait for it already
        return result

    def _outcome(
        self,
        executor: FlowChartExecutor,
        flow: FlowChart,
        record: StoredRun,
        tracker: Tracker,
        written: list[JournalEntry],
        owner: str,
    ) -> Callable[
        [Mapping[str, Any] | None],
        tuple[dict[str, Any], list[AuditEvent], list[JournalEntry]],
    ]:
        """How the executor ended, as the record's changes, audit events and last entries.

        Everything is worked out here, before the write; the returned function
        only picks, given the cancel request the write finds on the record: a
        run that paused is then cancelled instead.
        """
        checkpoint = executor.get_checkpoint()
        state, tree = executor._journal_view()
        entries = [*written, *tracker.end(state, tree, checkpoint)]

        stopped = dict(executor.get_snapshot(), status="cancelled", pauses=[])

        def cancelled(
            request: Mapping[str, Any],
        ) -> tuple[dict[str, Any], list[AuditEvent], list[JournalEntry]]:
            changes = {
                "status": "cancelled",
                "checkpoint": None,
                "pauses": (),
                "snapshot": stopped,
                "error": None,
            }
            return changes, [cancelled_event(request, owner)], entries

        if executor.status == "cancelled":
            return lambda request: cancelled(request or {})
        if checkpoint is None:
            done = (
                {
                    "status": "completed",
                    "checkpoint": None,
                    "pauses": (),
                    "snapshot": dict(executor.get_snapshot()),
                    "error": None,
                    "stage": None,
                },
                [event("completed", None, {})],
                entries,
            )
            return lambda _: done
        # a pause still pending keeps its entry: it may have been re-assigned meanwhile
        known = {pause.pause_id: pause for pause in record.pauses}
        pauses = tuple(
            known.get(pause["pause_id"]) or self.pause_entry(flow, pause)
            for pause in checkpoint["pauses"]
        )
        paused = (
            {
                "status": "paused",
                "checkpoint": dict(checkpoint),
                "pauses": pauses,
                "snapshot": None,  # the checkpoint holds it all; see snapshot()
                "error": None,
                "stage": pauses[0].stage_id if pauses else None,
            },
            [
                event("paused", None, self._paused_data(flow, p, raw))
                for p, raw in zip(pauses, checkpoint["pauses"], strict=True)
                if p.pause_id not in known
            ],
            entries,
        )
        return lambda request: paused if request is None else cancelled(request)

    def _outbox_of(
        self, flow: FlowChart, known: set[str]
    ) -> Callable[[StoredRun], list[OutboxEntry]] | None:
        make = self.outbox
        if make is None:
            return None
        return lambda run: make(flow, run, known)

    @staticmethod
    def _paused_data(flow: FlowChart, pause: PauseEntry, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A ``paused`` audit event's data: the pause, who may answer, why no one was named."""
        data = {
            "stage_id": pause.stage_id,
            "pause_id": pause.pause_id,
            "data": pause.data,  # redacted by pause_entry
        }
        if pause.assignees:
            data["assignees"] = list(pause.assignees)
        if "assign_error" in raw:
            data["assign_error"] = raw["assign_error"]
        return data

    @staticmethod
    def pause_entry(flow: FlowChart, pause: Mapping[str, Any]) -> PauseEntry:
        """The inbox entry of a checkpoint's pause (its deadline from the stage's timeout).

        Its ``data`` is redacted: the inbox, the API, the pages, the CLI and
        notifications read it. Only the checkpoint keeps the real values.
        """
        node = flow.find_stage(pause["stage_id"])
        timeout = node.timeout if isinstance(node, PausableStage) else None
        return PauseEntry(
            pause_id=pause["pause_id"],
            stage_id=pause["stage_id"],
            data=redacted(pause["data"], flow.redact),
            created_at=pause["paused_at"],
            deadline=None if timeout is None else pause["paused_at"] + timeout,
            key=pause.get("key"),
            assignees=tuple(pause.get("assignees", ())),
        )

    # -- reporting ------------------------------------------------------------------

    def record(self, record: StoredRun, audit: tuple[AuditEvent, ...]) -> RunRecord:
        """The run as ``Runs`` reports it, with the audit the caller read."""
        pauses = self.shown_pauses(record)
        return RunRecord(
            run_id=record.run_id,
            chart=record.chart,
            status=record.status,
            pause=pauses[0] if pauses else None,
            pauses=pauses,
            snapshot=self.snapshot(record),
            audit=audit,
            error=record.error,
            created_at=record.created_at,
            updated_at=record.updated_at,
            version=record.version,
        )

    def redact_keys(self, record: StoredRun) -> Iterable[str] | None:
        """The redact keys of ``record``'s chart: as the run kept them, else the chart's."""
        keys: Iterable[str] | None = RunMeta.of(record.meta).redact
        if keys is None:  # a record from before runs kept their chart's redact keys
            flow = self.charts.get(record.chart)
            if flow is not None:
                keys = flow.redact
        return keys

    def shown_pauses(self, record: StoredRun) -> tuple[PauseEntry, ...]:
        """``record``'s pauses with their data redacted (records written before it was on write)."""
        keys = frozenset(self.redact_keys(record) or ())
        if not keys or not record.pauses:
            return record.pauses
        return tuple(
            dataclasses.replace(pause, data=redacted(pause.data, keys)) for pause in record.pauses
        )

    def snapshot(self, record: StoredRun) -> dict[str, Any] | None:
        """The run's snapshot: as stored when it ended, else derived from its checkpoint.

        A paused or running run keeps no snapshot beside its checkpoint, so the
        state and the execution tree are stored once.
        """
        if record.snapshot is not None or record.checkpoint is None:
            return record.snapshot
        keys = self.redact_keys(record)
        if keys is None:
            return None
        snapshot = dict(snapshot_of(cast(Checkpoint, record.checkpoint), keys))
        if record.status != "paused":  # claimed and running, or cancelled while paused
            snapshot.update(status=record.status, pauses=[])
        return snapshot
