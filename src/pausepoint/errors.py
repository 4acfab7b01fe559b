"""Every error pausepoint raises, rooted in :class:`PausepointError`.

One ``except PausepointError`` catches them all. Errors carry the facts as
attributes (``stage_id``, ``key``, ``field``, ``run_id`` ...) and their message
says what went wrong, where, and what to do next::

    PausepointError
    ├── ChartError                    the chart is wired wrong (raised by build())
    ├── StageError                    a stage raised; the original is chained
    │   ├── StageTimeoutError         a stage ran past its time limit
    │   └── LoopLimitError            a loop ran past its iteration limit
    ├── StateError                    a bad read or write of the shared state
    │   ├── StateKeyError             read of a key never written (also AttributeError)
    │   └── StateValueError           a value that cannot live in a JSON checkpoint
    ├── CheckpointError               a checkpoint that cannot be resumed
    │   ├── CheckpointFormatError     not a checkpoint: missing or ill-typed field, unknown stage
    │   ├── CheckpointVersionError    written by a newer pausepoint
    │   ├── CheckpointSignatureError  unsigned or tampered with (signing key set)
    │   ├── CheckpointFinishedError   the run already finished: nothing to resume
    │   └── ChartMismatchError        the checkpoint belongs to another chart
    │       └── ChartChangedError     the chart registered under a name changed (Runs)
    ├── ResumeTargetError             the answer names no pending pause, or several are pending
    ├── RunInputError                 a run's input failed the chart's input model
    ├── RunOutputError                a finished run's state failed the chart's output model
    ├── RunTimeoutError               a whole run or resume ran past its timeout
    ├── ResumeInputError              a resume input failed the stage's input schema
    ├── ExecutorUsageError            an executor used the wrong way (e.g. run_sync in a loop)
    ├── RunError                      a durable run cannot do what was asked
    │   ├── ChartNotFoundError        no chart is registered under that name
    │   ├── RunNotFoundError          no run with that id
    │   ├── RunExistsError            a run with that id already exists
    │   ├── RunAlreadyClaimedError    another resume holds the run
    │   │   └── ClaimLostError        this process's claim lapsed and was taken over
    │   ├── RunNotPausedError         the run is not waiting for anyone
    │   ├── RunIsRunningError         the run is running: it cannot be deleted now
    │   ├── RunStateError             the run's status does not allow it (fork, retry)
    │   ├── StepNotFoundError         the run's history has no such step
    │   ├── PermissionDeniedError     the pause is assigned to others
    │   └── StalePauseError           the answer is for a pause that is no longer current
    ├── PurgeRefusedError             a purge without a filter, or of running runs
    ├── MixedBatchError               a batch answer names pauses of several stages
    ├── EncryptionKeyError            encrypted at rest with a key this Runs lacks, or a bad key
    ├── NoWaiterError                 no pause waits under the business key
    │   └── SignalBufferFullError     and the key's signal buffer is full
    ├── TokenFormatError              a bearer token line is not SECRET=ACTOR[:GROUP,...]
    ├── UnknownAssigneeError          an assignee or group no token's actor has
    ├── NotifyURLError                a notification URL no sender understands (also ValueError)
    ├── WebhookSignatureError         a webhook's signature or timestamp does not verify
    └── StoreError                    the store failed
        ├── StoreUnavailableError     the store cannot be reached
        └── VersionConflictError      a compare-and-set lost against a concurrent writer
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ChartChangedError",
    "ChartError",
    "ChartMismatchError",
    "ChartNotFoundError",
    "CheckpointError",
    "CheckpointFinishedError",
    "CheckpointFormatError",
    "CheckpointSignatureError",
    "CheckpointVersionError",
    "ClaimLostError",
    "EncryptionKeyError",
    "ExecutorUsageError",
    "LoopLimitError",
    "MixedBatchError",
    "NoWaiterError",
    "NotifyURLError",
    "PausepointError",
    "PermissionDeniedError",
    "PurgeRefusedError",
    "ResumeInputError",
    "ResumeTargetError",
    "RunAlreadyClaimedError",
    "RunError",
    "RunExistsError",
    "RunInputError",
    "RunIsRunningError",
    "RunNotFoundError",
    "RunNotPausedError",
    "RunOutputError",
    "RunStateError",
    "RunTimeoutError",
    "SignalBufferFullError",
    "StageError",
    "StageTimeoutError",
    "StalePauseError",
    "StateError",
    "StateKeyError",
    "StateValueError",
    "StepNotFoundError",
    "StoreError",
    "StoreUnavailableError",
    "TokenFormatError",
    "UnknownAssigneeError",
    "VersionConflictError",
    "WebhookSignatureError",
]


class PausepointError(Exception):
    """Base of every error raised by pausepoint.

    Errors pickle with their facts (``run_id``, ``stage_id`` ...), so they keep
    their class and attributes when a worker process hands them on (Celery's
    prefork pool does): the keyword-only arguments of the subclasses would
    otherwise make the default exception pickling fail or lose them.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.args, dict(vars(self))))


class ChartError(PausepointError):
    """A chart is wired wrong; raised by the builder, never mid-run.

    Attributes:
        stage_id: The stage the mistake is at, when there is one.
    """

    def __init__(self, message: str, *, stage_id: str | None = None) -> None:
        super().__init__(message)
        self.stage_id = stage_id


class StageError(PausepointError):
    """A stage raised while running; the original exception is ``__cause__``.

    Attributes:
        stage_id: Full path of the stage that failed (``sub/stage`` inside subflows).
        stage_name: Its display name.
        phase: ``"execute"`` or ``"resume"`` for pausable stages, else ``"run"``.
    """

    def __init__(self, message: str, *, stage_id: str, stage_name: str, phase: str = "run") -> None:
        super().__init__(message)
        self.stage_id = stage_id
        self.stage_name = stage_name
        self.phase = phase


class StageTimeoutError(StageError):
    """A stage ran longer than its ``time_limit``.

    An async stage is cancelled; a sync stage, which runs in a worker thread
    when it has a time limit, is abandoned: its thread may still be running,
    but its later writes no longer reach the state.

    Attributes:
        limit: The time limit, in seconds.
    """

    def __init__(
        self, message: str, *, stage_id: str, stage_name: str, phase: str = "run", limit: float
    ) -> None:
        super().__init__(message, stage_id=stage_id, stage_name=stage_name, phase=phase)
        self.limit = limit


class LoopLimitError(StageError):
    """A loop went back to its target more often than its limit allows.

    Attributes:
        limit: The iteration limit that was reached.
    """

    def __init__(self, message: str, *, stage_id: str, stage_name: str, limit: int) -> None:
        super().__init__(message, stage_id=stage_id, stage_name=stage_name)
        self.limit = limit


class StateError(PausepointError):
    """A read or write of the shared state that cannot be honoured.

    Attributes:
        key: The state key.
        stage_id: The stage that read or wrote it, when known.
    """

    def __init__(self, message: str, *, key: str, stage_id: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.stage_id = stage_id


class StateKeyError(StateError, AttributeError):
    """A stage read a key that was never written and has no default.

    It is an ``AttributeError`` too, so ``getattr(scope, "key", None)`` works.
    """


class StateValueError(StateError):
    """A value written to the state cannot be stored in a JSON checkpoint."""


class CheckpointError(PausepointError):
    """A checkpoint cannot be resumed; the checkpoint itself is left untouched.

    Attributes:
        field: Dotted path of the offending field, when one is to blame.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CheckpointFormatError(CheckpointError):
    """Not a checkpoint: a field is missing, has the wrong type, or names an unknown stage."""


class CheckpointVersionError(CheckpointError):
    """The checkpoint was written in a format newer than this pausepoint reads.

    Attributes:
        found: The checkpoint's ``format_version``.
        supported: The newest version this pausepoint reads.
    """

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message, field="format_version")
        self.found = found
        self.supported = supported


class CheckpointSignatureError(CheckpointError):
    """The checkpoint is unsigned, or its signature does not match its content."""


class CheckpointFinishedError(CheckpointError):
    """The checkpoint describes a run that already finished: there is nothing to resume."""


class ChartMismatchError(CheckpointError):
    """The checkpoint belongs to another chart.

    Attributes:
        expected: Fingerprint of the chart the executor holds.
        found: Fingerprint recorded in the checkpoint.
    """

    def __init__(self, message: str, *, expected: str, found: str) -> None:
        super().__init__(message, field="chart_fingerprint")
        self.expected = expected
        self.found = found


class ChartChangedError(ChartMismatchError):
    """The chart registered under a name changed since the run paused."""


class ResumeTargetError(PausepointError):
    """The resume answer names no pending pause, or leaves out which of several it answers.

    Attributes:
        pending: Stage ids of the pauses that are pending.
    """

    def __init__(self, message: str, *, pending: Sequence[str]) -> None:
        super().__init__(message)
        self.pending = tuple(pending)


class _ValidationFailure(PausepointError):
    """Common shape of input errors: a message plus pydantic's error details."""

    def __init__(self, message: str, *, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class RunInputError(_ValidationFailure):
    """A run's input failed the chart's declared input model.

    Attributes:
        errors: pydantic's error details (``loc``, ``msg``, ``type``).
    """


class RunOutputError(_ValidationFailure):
    """A run finished, but its final state does not fit the chart's declared output model.

    The run's status is ``failed``; its state is kept for inspection.

    Attributes:
        errors: pydantic's error details (``loc``, ``msg``, ``type``).
    """


class RunTimeoutError(PausepointError):
    """A whole ``run``, ``resume`` or ``continue_from`` took longer than its ``timeout``.

    The stage in flight was cancelled at its next ``await`` (a sync stage
    running inline finishes first); the run's status is ``failed``.

    Attributes:
        run_id: The run.
        limit: The timeout, in seconds.
    """

    def __init__(self, message: str, *, run_id: str, limit: float) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.limit = limit


class ResumeInputError(_ValidationFailure):
    """A resume input failed the paused stage's input schema; the run stays paused.

    Attributes:
        errors: pydantic's error details (``loc``, ``msg``, ``type``).
        stage_id: The paused stage whose schema was applied.
    """

    def __init__(
        self, message: str, *, stage_id: str, errors: Sequence[dict[str, Any]] = ()
    ) -> None:
        super().__init__(message, errors=errors)
        self.stage_id = stage_id


class ExecutorUsageError(PausepointError):
    """An executor was used the wrong way, e.g. ``run_sync`` inside a running event loop."""


class RunError(PausepointError):
    """A durable run cannot do what was asked.

    Attributes:
        run_id: The run concerned.
    """

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class ChartNotFoundError(RunError):
    """No chart is registered under the name a run or a request refers to.

    Attributes:
        chart: The name no chart is registered under.
        run_id: The run that refers to it; empty for a request that names no run.
    """

    def __init__(self, message: str, *, chart: str, run_id: str = "") -> None:
        super().__init__(message, run_id=run_id)
        self.chart = chart


class RunNotFoundError(RunError):
    """No run has that id."""


class RunExistsError(RunError):
    """A run with that id already exists."""


class RunAlreadyClaimedError(RunError):
    """Another resume holds the run (or already finished it)."""


class ClaimLostError(RunAlreadyClaimedError):
    """This process no longer holds the run: its lease lapsed and another process took it over.

    Raised to the process that lost the claim, at its first write after the
    takeover; that write and every later one of this process are refused by
    the store (fencing), so the run is left whole to the process that holds it.
    """


class RunNotPausedError(RunError):
    """The run is not waiting for an answer (it is running, finished, cancelled or expired).

    Attributes:
        status: The run's current status.
    """

    def __init__(self, message: str, *, run_id: str, status: str) -> None:
        super().__init__(message, run_id=run_id)
        self.status = status


class RunStateError(RunError):
    """The run's status does not allow what was asked (fork a running run, retry one that did not fail).

    Attributes:
        status: The run's current status.
    """

    def __init__(self, message: str, *, run_id: str, status: str) -> None:
        super().__init__(message, run_id=run_id)
        self.status = status


class StepNotFoundError(RunError):
    """The run's history has no such step.

    Attributes:
        at: The step asked for.
    """

    def __init__(self, message: str, *, run_id: str, at: int) -> None:
        super().__init__(message, run_id=run_id)
        self.at = at


class StalePauseError(RunError):
    """The answer names a pause that is no longer current (answered already, or replaced)."""


class PermissionDeniedError(RunError):
    """The pause is assigned to other people or groups than the one answering.

    The run is unchanged, and its audit records a ``resume_refused`` event.

    Attributes:
        stage_id: The paused stage.
        actor: Who tried to answer.
        assignees: Who may answer it (besides the ``admin`` group).
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        stage_id: str,
        actor: str | None,
        assignees: Sequence[str],
    ) -> None:
        super().__init__(message, run_id=run_id)
        self.stage_id = stage_id
        self.actor = actor
        self.assignees = tuple(assignees)


class RunIsRunningError(RunError):
    """The run is running (a process holds it); wait for it to pause or end, or cancel it."""


class PurgeRefusedError(PausepointError, ValueError):
    """A purge was refused before anything was erased: no filter, or running runs named."""


class MixedBatchError(PausepointError, ValueError):
    """A batch answer (``Runs.resume_many``) names pauses of different stages.

    One answer fits one question: every item must wait at the same stage of
    the same chart. Raised before anything is resumed.

    Attributes:
        stages: The ``(chart, stage_id)`` pairs the batch names, sorted.
    """

    def __init__(self, message: str, *, stages: Sequence[tuple[str, str]]) -> None:
        super().__init__(message)
        self.stages = tuple(stages)


class EncryptionKeyError(PausepointError):
    """Values stored encrypted cannot be read with this ``Runs``' keys, or a key is malformed.

    Raised before anything is written: the run stays as it was.

    Attributes:
        run_id: The run whose stored values could not be decrypted, if one is to blame.
    """

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class NoWaiterError(PausepointError):
    """No pause waits under the business key (and the answer was not buffered).

    Attributes:
        key: The business key.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class SignalBufferFullError(NoWaiterError):
    """No pause waits under the key, and its buffer holds as many answers as allowed."""


class TokenFormatError(PausepointError, ValueError):
    """A bearer token is not written ``SECRET=ACTOR[:GROUP,GROUP]``.

    The message says where (``--token``, the tokens file and its line) and
    never repeats the secret.

    Attributes:
        source: Where the token came from (``--token``, a file path, an environment variable).
        line: The line number in a tokens file, when it came from one.
    """

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.line = line


class UnknownAssigneeError(PausepointError, ValueError):
    """A stage's assignee, or a filter, names an actor or group that no token has.

    Attributes:
        assignee: The unknown name.
        known: Every actor and group the tokens name (and ``admin``).
        chart: The chart whose stage names it; ``None`` for a filter.
        stage_id: That stage; ``None`` for a filter.
    """

    def __init__(
        self,
        message: str,
        *,
        assignee: str,
        known: Sequence[str],
        chart: str | None = None,
        stage_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.assignee = assignee
        self.known = tuple(known)
        self.chart = chart
        self.stage_id = stage_id


class NotifyURLError(PausepointError, ValueError):
    """A notification URL that neither apprise nor the webhook sender understands.

    Attributes:
        url: The URL, with its secrets hidden.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class WebhookSignatureError(PausepointError):
    """A webhook request whose signature does not match, or whose timestamp is too old or new."""


class StoreError(PausepointError):
    """The store failed to do what was asked."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached; nothing was written.

    Attributes:
        url: The store's URL, with any password removed.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class VersionConflictError(StoreError):
    """A compare-and-set lost: the record changed since it was read.

    Attributes:
        run_id: The run whose record changed.
        expected: The version the writer expected.
    """

    def __init__(self, message: str, *, run_id: str, expected: int) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.expected = expected


def _rebuild_error(
    cls: type[PausepointError], args: tuple[Any, ...], state: dict[str, Any]
) -> PausepointError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error
