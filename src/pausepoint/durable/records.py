"""What :class:`~pausepoint.Runs` takes and hands back: plain, frozen values.

A run as ``Runs`` reports it (:class:`RunRecord`), as listings show it
(:class:`RunSummary`, :class:`RunList`), its history (:class:`Step`), what a
sweep did (:class:`SweepReport`), a batch answer's items and results, and the
two settings that are types (:data:`Durability`, :data:`Retention`). They hold
no behaviour, so they live apart from the code that makes them; ``pausepoint``
and :mod:`pausepoint.durable.runs` re-export them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pausepoint.stores.base import AuditEvent, PauseEntry

__all__ = [
    "BatchItem",
    "BatchResult",
    "BatchStatus",
    "Durability",
    "Retention",
    "RunList",
    "RunRecord",
    "RunSummary",
    "Step",
    "SweepReport",
]


Durability = Literal["stage", "pause"]
"""When a running run's progress is written: after every stage, or only at a pause and the end."""


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


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One step of a run's history (:meth:`Runs.history`).

    Attributes:
        index: Position in the run's journal (0, 1, ...).
        stage_id: The stage's path.
        kind: ``stage`` (it finished), ``paused`` (the run stopped to wait there)
            or ``resumed`` (an answer was applied there).
        at: When.
        actor: Who answered, for ``resumed``.
    """

    index: int
    stage_id: str
    kind: str
    at: float
    actor: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSummary:
    """A run as listings show it: no state, no audit (``Runs.get`` has them).

    Attributes:
        run_id: The run's id.
        chart: The name its chart is registered under.
        status: ``running``, ``paused``, ``completed``, ``failed``, ``cancelled`` or ``expired``.
        stage: The stage it waits at (paused), failed at (failed) or timed out at (expired).
        pauses: Its pending pauses, while paused.
        error: Why it failed, when it did.
        created_at: When it started (UNIX seconds).
        updated_at: When its record last changed.
    """

    run_id: str
    chart: str
    status: str
    stage: str | None
    pauses: tuple[PauseEntry, ...]
    error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class RunList:
    """A page of :meth:`Runs.list <pausepoint.Runs.list>`.

    Attributes:
        items: Up to ``limit`` runs, most recently changed first.
        next_cursor: Pass it as ``cursor=`` for the next page; ``None`` on the last page.
    """

    items: tuple[RunSummary, ...]
    next_cursor: str | None


Retention = Mapping[str | tuple[str, str], timedelta | float]
"""How long finished runs are kept, by status and optionally by chart.

A key is a status (``"completed"``: runs of every chart) or a ``(chart, status)``
pair (``("refund", "failed")``), which wins over the status alone for that
chart. A value is an age (``timedelta`` or seconds) since the run last changed.
Paused runs are kept until a policy names ``"paused"``; running runs cannot be named.
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class SweepReport:
    """What one :meth:`Runs.sweep <pausepoint.Runs.sweep>` did.

    Attributes:
        expired: Runs whose overdue pause had its ``on_timeout`` policy applied.
        recovered: Runs taken over from a process that died.
        purged: How many runs the retention policies erased.
        signals_dropped: How many buffered answers expired unused.
        escalated: Runs whose pause was escalated (re-assigned, and its new
            assignees notified).
        reminded: Runs whose pause was reminded of.
        notified: Notifications delivered.
        notify_retrying: Notifications that failed a try and will be tried again.
        notify_failed: Notifications given up after their last try.
    """

    expired: list[str]
    recovered: list[str]
    purged: int = 0
    signals_dropped: int = 0
    escalated: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    notified: int = 0
    notify_retrying: int = 0
    notify_failed: int = 0


BatchStatus = Literal["done", "stale", "refused", "not_assigned"]
"""What became of one item of a batch answer.

``done``: the run was resumed (see ``run_status`` for where it stands now).
``stale``: the pause was no longer pending (answered meanwhile, cancelled,
expired) or another resume holds the run. ``refused``: the answer could not be
applied to this run (``error`` says why; no such run, a tampered checkpoint ...).
``not_assigned``: the pause is assigned to others than the one answering.
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchItem:
    """One pause a batch answers.

    Attributes:
        run_id: The run.
        pause_id: The pause answered; the answer is stale if it is no longer pending.
    """

    run_id: str
    pause_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchResult:
    """What one item of :meth:`Runs.resume_many <pausepoint.Runs.resume_many>` came to.

    Attributes:
        run_id: The run.
        pause_id: The pause the item named.
        status: See :data:`BatchStatus`.
        run_status: With ``done``: the run's status after the resume
            (``paused`` at its next pause, ``completed``, ``failed`` ...).
        error: Why, unless ``done``: the error's type and message.
        record: With ``done``: the run's record after the resume.
    """

    run_id: str
    pause_id: str
    status: BatchStatus
    run_status: str | None = None
    error: str | None = None
    record: RunRecord | None = None
