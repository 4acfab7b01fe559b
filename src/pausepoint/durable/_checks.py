"""The checks an answer passes before it may claim a run.

:meth:`Runs._vet <pausepoint.durable.runs.Runs._vet>` runs them inside the
store's read-decide-write, and a fork (:mod:`pausepoint.durable._rerun`) runs
the fingerprint check before it copies a history. They are plain functions of
the stored record, the chart, the signing key and the compatibility rule: they
read nothing else and write nothing, so they can run inside the store's one
transaction (``Store.update``), and a refusal leaves the run as it was.

* :func:`pause_to_answer`: which pending pause an answer is for, or why none.
* :func:`check_fingerprint`: whether the run may go on under the chart as it is now.
* :func:`prepare`: the stored checkpoint as the chart resumes it, checked once.
"""

from __future__ import annotations

from typing import Any

from pausepoint.engine.chart import FlowChart
from pausepoint.engine.checkpoint import validate_checkpoint
from pausepoint.errors import (
    ChartChangedError,
    CheckpointError,
    ResumeTargetError,
    RunAlreadyClaimedError,
    RunNotPausedError,
    StalePauseError,
)
from pausepoint.stores.base import PauseEntry, StoredRun

from ._meta import RunMeta
from .compat import CompatibilityRule, checkpoint_for_chart

__all__ = ["check_fingerprint", "pause_to_answer", "prepare"]


def pause_to_answer(record: StoredRun, pause_id: str | None, stage_id: str | None) -> PauseEntry:
    """Return the pending pause of ``record`` named by ``pause_id`` or ``stage_id``.

    Without either, the run's one pending pause.

    Raises:
        StalePauseError: ``pause_id`` is not a pending pause.
        RunAlreadyClaimedError: The run is running or completed: it was answered.
        RunNotPausedError: The run was cancelled, expired or failed.
        ResumeTargetError: ``stage_id`` is not paused, or several pauses are
            pending and none was named.
    """
    if record.status != "paused":
        answered = RunMeta.of(record.meta).answer
        if pause_id is not None and (answered is None or pause_id != answered.pause_id):
            raise StalePauseError(
                f"pause {pause_id!r} of run {record.run_id!r} is no longer pending (run is {record.status})",
                run_id=record.run_id,
            )
        if record.status in ("running", "completed"):
            raise RunAlreadyClaimedError(
                f"run {record.run_id!r} is {record.status}: it was already resumed"
                + (f" (answer to {answered.stage_id!r})" if answered else ""),
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


def check_fingerprint(
    record: StoredRun, flow: FlowChart, compatibility: CompatibilityRule | None
) -> None:
    """Refuse a run whose chart changed since it started, unless ``compatibility`` allows it.

    Raises:
        ChartChangedError: The fingerprints differ and no rule lets the run go on.
    """
    if record.fingerprint == flow.fingerprint:
        return
    if compatibility is not None and compatibility(record, flow):
        return
    raise ChartChangedError(
        f"chart {record.chart!r} changed since run {record.run_id!r} paused "
        f"(fingerprint {record.fingerprint[:12]}… then, {flow.fingerprint[:12]}… now); "
        "resume it with the chart it started with, or pass Runs(compatibility=...)",
        expected=flow.fingerprint,
        found=record.fingerprint,
    )


def prepare(
    record: StoredRun, flow: FlowChart, signing_key: str | bytes | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the stored checkpoint as ``flow`` resumes it, and its checked copies.

    Raises:
        ChartChangedError: The chart changed in a way the checkpoint cannot follow.
        CheckpointError: The stored checkpoint is damaged or tampered with.
    """
    assert record.checkpoint is not None
    checkpoint = checkpoint_for_chart(record.checkpoint, flow, signing_key, record.meta)
    try:
        copies = validate_checkpoint(checkpoint, flow, signing_key)
    except CheckpointError as exc:
        if record.fingerprint == flow.fingerprint:
            raise
        raise ChartChangedError(
            f"chart {record.chart!r} changed since run {record.run_id!r} paused, and the "
            f"paused run cannot follow the change: {exc}",
            expected=flow.fingerprint,
            found=record.fingerprint,
        ) from exc
    return checkpoint, copies
