"""The JSON API's bodies, as pydantic models: what the OpenAPI document describes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from pausepoint.durable.runs import RunList, RunRecord
from pausepoint.stores.base import AuditEvent, AuditKind, PauseEntry, PendingPage, RunStatus

__all__ = [
    "AuditEntry",
    "CancelRequest",
    "Chart",
    "ChartList",
    "Error",
    "ErrorDetail",
    "ForkRequest",
    "InboxItem",
    "InboxPage",
    "Pause",
    "ResumeRequest",
    "Run",
    "RunItem",
    "RunPage",
    "SignalRequest",
    "SignalResult",
    "Snapshot",
    "Stage",
    "StartRequest",
    "Step",
    "inbox_out",
    "run_list_out",
    "run_out",
]

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class ErrorDetail(BaseModel):
    """One problem with a request, as pydantic reports it."""

    loc: list[str | int] = Field(description="Where the problem is: body, field names, indexes.")
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="pydantic's error type, e.g. `missing`, `bool_parsing`.")


class Error(BaseModel):
    """The body of every error response."""

    error: str = Field(
        description="The error's type name, e.g. `StalePauseError`.", examples=["RunNotFoundError"]
    )
    message: str = Field(description="What went wrong and what to do next.")
    details: list[ErrorDetail] | dict[str, Any] | None = Field(
        default=None,
        description="Validation problems (422), or facts such as the pending pauses.",
    )


class Pause(BaseModel):
    """A pause a run waits on."""

    id: str = Field(description="The pause's id; pass it as `pause_id` when answering.")
    stage_id: str = Field(description="Path of the paused stage, e.g. `approve`.")
    data: Any = Field(description="What the stage paused with (its question, facts).")
    created_at: float = Field(description="When the stage paused (UNIX seconds).")
    deadline: float | None = Field(description="When the stage's timeout policy applies.")
    key: str | None = Field(
        default=None,
        description="The business key the pause waits under (`POST /api/signals/{key}`).",
    )
    assignees: list[str] = Field(
        default_factory=list,
        description="Who may answer it: people or groups (the `admin` group may answer every "
        "pause). Empty: anyone signed in.",
    )


class AuditEntry(BaseModel):
    """One event of a run's append-only audit log."""

    seq: int = Field(description="Position in the log, from 1.")
    kind: AuditKind
    at: float = Field(description="When (UNIX seconds).")
    actor: str | None = Field(description="Who did it, when a person or service is known.")
    data: dict[str, Any] = Field(description="Details: stage, pause, input, reason, error.")


class Snapshot(BaseModel):
    """State, execution tree, narrative and metrics of a run (secrets redacted)."""

    model_config = ConfigDict(extra="allow")

    status: str | None = None
    shared_state: dict[str, Any] = Field(default_factory=dict)
    execution_tree: list[dict[str, Any]] = Field(default_factory=list)
    narrative: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] | None = None
    error: str | None = None


class Run(BaseModel):
    """A run record."""

    run_id: str
    chart: str = Field(description="The name its chart is registered under.")
    status: RunStatus
    pause: Pause | None = Field(description="The first pending pause, if the run is paused.")
    pauses: list[Pause] = Field(description="Every pending pause (several for parallel branches).")
    snapshot: Snapshot | None
    audit: list[AuditEntry] = Field(description="Every event so far, oldest first.")
    error: str | None = Field(description="Why the run failed, when it did.")
    created_at: float
    updated_at: float
    version: int = Field(description="The record's compare-and-set version.")


class InboxItem(BaseModel):
    """A pause waiting for a person."""

    run_id: str
    chart: str
    pause: Pause
    run_created_at: float = Field(description="When the run started (UNIX seconds).")


class InboxPage(BaseModel):
    """A page of the inbox, newest pause first."""

    items: list[InboxItem]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null on the last page."
    )


class RunItem(BaseModel):
    """A run in a listing (no state, no audit: `GET /api/runs/{run_id}` has them)."""

    run_id: str
    chart: str
    status: RunStatus
    stage: str | None = Field(
        description="Where it stands: the stage it waits at, failed at or timed out at."
    )
    pauses: list[Pause] = Field(description="Its pending pauses, while paused.")
    error: str | None = Field(description="Why it failed, when it did.")
    created_at: float
    updated_at: float = Field(description="When it last changed; listings sort by it.")


class RunPage(BaseModel):
    """A page of runs of one status (or all), most recently changed first."""

    items: list[RunItem]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null on the last page."
    )


class SignalRequest(BaseModel):
    """Answer every pause waiting under a business key."""

    model_config = ConfigDict(extra="forbid")

    input: Any = Field(description="The answer; must fit each waiting stage's input schema.")
    buffer: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86400,
        description="When no pause waits yet, keep the answer this many seconds for the "
        "first run that pauses under the key; without it such a signal gets 404.",
    )


class SignalResult(BaseModel):
    """What a signal did."""

    items: list[Run] = Field(description="The runs answered, as they stand afterwards.")
    buffered: bool = Field(description="No pause waited: the answer is kept for the next one.")


class StartRequest(BaseModel):
    """Start a run of a registered chart."""

    model_config = ConfigDict(extra="forbid")

    chart: str = Field(description="A chart name from `GET /api/charts`.")
    input: dict[str, Any] = Field(default_factory=dict, description="Seeds the run's state.")
    run_id: str | None = Field(
        default=None,
        pattern=RUN_ID_PATTERN,
        description="Choose the run's id (409 if taken); a random one otherwise.",
    )


class ResumeRequest(BaseModel):
    """Answer a pause."""

    model_config = ConfigDict(extra="forbid")

    input: Any = Field(
        description="The answer; must fit the paused stage's input schema (422 otherwise). "
        "Each stage's schema is the body of its own route, "
        "`POST /api/charts/{chart}/stages/{stage}/resume`."
    )
    pause_id: str | None = Field(
        default=None, description="The pause answered; 409 if it is no longer pending."
    )
    stage_id: str | None = Field(
        default=None, description="Alternatively, the paused stage answered."
    )


class CancelRequest(BaseModel):
    """Cancel a paused run."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, description="Why; recorded in the audit.")


def _not_a_bool(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number is meant (pydantic would read them as 1/0)."""
    if isinstance(value, bool):
        raise ValueError("a step index is a number, not a boolean")
    return value


class ForkRequest(BaseModel):
    """Start a new run from a step of a run's history."""

    model_config = ConfigDict(extra="forbid")

    at: Annotated[int, BeforeValidator(_not_a_bool)] = Field(
        ge=0, description="The step's index (see the run's history)."
    )
    state_patch: dict[str, Any] | None = Field(
        default=None, description="State keys to set before the new run goes on."
    )


class Step(BaseModel):
    """One step of a run's history."""

    index: int
    stage_id: str
    kind: Literal["stage", "paused", "resumed"]
    at: float = Field(description="When (UNIX seconds).")
    actor: str | None = Field(default=None, description="Who answered, for resumed.")


class Stage(BaseModel):
    """A stage of a chart."""

    id: str = Field(description="The stage's path, e.g. `payment/approve`.")
    name: str
    kind: str = Field(description="stage, pausable, decider, selector, parallel or subflow.")
    description: str | None
    input_schema: dict[str, Any] | None = Field(
        description="JSON Schema of a pausable stage's resume input, if it declares one."
    )
    timeout: float | None = Field(description="How long a pause may wait (seconds).")


class Chart(BaseModel):
    """A registered chart."""

    name: str = Field(description="The name runs refer to it by.")
    title: str = Field(description="The chart's own name (its first stage's name).")
    fingerprint: str = Field(description="Structural hash; changes when the chart's shape does.")
    stages: list[Stage]
    mermaid: str = Field(description="The chart as a Mermaid flowchart definition.")


class ChartList(BaseModel):
    """Every registered chart."""

    items: list[Chart]


def pause_out(entry: PauseEntry) -> Pause:
    """Return the API form of a pause."""
    return Pause(
        id=entry.pause_id,
        stage_id=entry.stage_id,
        data=entry.data,
        created_at=entry.created_at,
        deadline=entry.deadline,
        key=entry.key,
        assignees=list(entry.assignees),
    )


def run_out(record: RunRecord) -> Run:
    """Return the API form of a run record."""
    return Run(
        run_id=record.run_id,
        chart=record.chart,
        status=_status(record.status),
        pause=pause_out(record.pause) if record.pause is not None else None,
        pauses=[pause_out(p) for p in record.pauses],
        snapshot=Snapshot.model_validate(record.snapshot) if record.snapshot is not None else None,
        audit=[_audit_out(event) for event in record.audit],
        error=record.error,
        created_at=record.created_at,
        updated_at=record.updated_at,
        version=record.version,
    )


def inbox_out(page: PendingPage) -> InboxPage:
    """Return the API form of an inbox page."""
    return InboxPage(
        items=[
            InboxItem(
                run_id=item.run_id,
                chart=item.chart,
                pause=pause_out(item.pause),
                run_created_at=item.run_created_at,
            )
            for item in page.items
        ],
        next_cursor=page.next_cursor,
    )


def run_list_out(page: RunList) -> RunPage:
    """Return the API form of a page of runs."""
    return RunPage(
        items=[
            RunItem(
                run_id=item.run_id,
                chart=item.chart,
                status=_status(item.status),
                stage=item.stage,
                pauses=[pause_out(p) for p in item.pauses],
                error=item.error,
                created_at=item.created_at,
                updated_at=item.updated_at,
            )
            for item in page.items
        ],
        next_cursor=page.next_cursor,
    )


def _audit_out(event: AuditEvent) -> AuditEntry:
    return AuditEntry(
        seq=event.seq, kind=event.kind, at=event.at, actor=event.actor, data=dict(event.data)
    )


_STATUSES: dict[str, RunStatus] = {
    "running": "running",
    "paused": "paused",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "expired",
}


def _status(status: str) -> RunStatus:
    return _STATUSES[status]


InboxStatus = Literal["paused"]
"""The only status the inbox lists (it is an index of pending pauses)."""
