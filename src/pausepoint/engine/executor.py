"""The executor: runs a chart, pauses it, resumes it from a checkpoint.

Traversal is one recursive walk over sequences and nodes. Every node either
finishes (returns ``None``) or reports that it is waiting on one or more pauses
by returning a *frame*: a JSON dict saying where in that node the wait is. The
frames of every level together form the checkpoint's ``continuation``. Resuming
walks the same code with those frames: nodes that finished before the pause
are never entered again; a paused stage whose answer arrived runs ``resume``;
one still unanswered returns its frame unchanged, so a fork keeps all its
pending pauses and joins only when every branch is done.

With ``on_progress`` set, the executor also hands out a *progress checkpoint*
after every stage that finishes outside a parallel fork: the same JSON with
``status == "running"`` and no pauses, from which :meth:`FlowChartExecutor.continue_from`
carries on with the next stage. ``Runs`` turns each into a journal entry (what
the stage changed), so a crash loses at most the stage in flight.

Stage functions run on the event loop: sync stages are called inline (a
thread hop costs more than a typical stage; see ``bench/``), so a sync stage
that blocks on I/O blocks the loop: make such stages ``async``. A sync stage
with a ``time_limit`` is the exception: it runs in a worker thread, so that
it can be abandoned when it runs too long.

Controls: a stage's ``retry`` policy and ``time_limit`` are applied by
``_guarded``, which stages without either never enter (``FunctionStage.inline``
keeps the plain sync stage on its fast path). :meth:`FlowChartExecutor.cancel`
stops a run before its next stage; ``timeout=`` on ``run``/``resume`` bounds
the whole call. A chart's ``input``/``output`` contracts are checked before the
first stage and after the last.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypedDict

from pausepoint.errors import (
    ExecutorUsageError,
    PausepointError,
    ResumeTargetError,
    RunInputError,
    StateError,
)

from ._frames import SequenceFrame
from ._json import NotJSONError, json_copy
from ._redact import redacted
from ._run import ChartRun
from ._stages import (
    _MISSING,
    ProgressCallback,
    StageRunner,
    decode_state,
)
from ._sync import run_until_complete
from ._traversal import Traversal
from .chart import (
    FlowChart,
    PausableStage,
)
from .checkpoint import (
    Checkpoint,
    PendingPause,
    validate_checkpoint,
)
from .contracts import validate_resume_input, validate_run_input, validate_run_output
from .trace import (
    Metrics,
    TreeNode,
    metrics_of,
    narrative_of,
)

__all__ = [
    "ExecutorStatus",
    "FlowChartExecutor",
    "Snapshot",
    "snapshot_of",
    "validate_resume_input",
    "validate_run_input",
    "validate_run_output",
]

ExecutorStatus = Literal["idle", "running", "paused", "completed", "failed", "cancelled"]
"""Where an executor stands: :attr:`FlowChartExecutor.status`."""


class Snapshot(TypedDict):
    """Everything about a run so far, as JSON (secrets redacted).

    Attributes:
        run_id: The run's id.
        chart_name: The chart's name.
        status: ``paused``, ``completed``, ``failed``, ``cancelled`` (or ``idle``/``running``).
        input: The input the run started with.
        shared_state: The current state.
        pauses: Pending pauses (empty unless paused).
        execution_tree: The path taken, every resume included.
        narrative: One sentence per event.
        metrics: Per-stage figures, pauses, time paused.
        error: The failure, when ``status == "failed"``.
    """

    run_id: str
    chart_name: str
    status: ExecutorStatus
    input: dict[str, Any]
    shared_state: dict[str, Any]
    pauses: list[PendingPause]
    execution_tree: list[TreeNode]
    narrative: list[str]
    metrics: Metrics
    error: str | None


class FlowChartExecutor:
    """Runs one chart; pauses hand out a JSON checkpoint that any executor of it resumes.

    An executor keeps the latest run or resume it did: its status, checkpoint,
    snapshot, narrative and metrics. It is cheap: make a fresh one per request.

    Args:
        chart: The chart to run.
        signing_key: When set, checkpoints are signed with HMAC-SHA256 and
            unsigned or tampered ones are refused with ``CheckpointSignatureError``.
        on_progress: Awaited with a progress checkpoint after every stage that
            finishes outside a parallel fork; an exception it raises stops the run.
    """

    def __init__(
        self,
        chart: FlowChart,
        *,
        signing_key: str | bytes | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        if not isinstance(chart, FlowChart):
            raise ExecutorUsageError(f"FlowChartExecutor needs a built FlowChart, got {chart!r}")
        self._chart = chart
        self._signing_key = signing_key
        self._on_progress = on_progress
        # the last run, resume or continuation (None before the first), and how it ended
        self._last: ChartRun | None = None
        # makes the stage runner of each run, when a subclass observes stages
        self._observe: Callable[[ChartRun, dict[str, Any]], StageRunner] | None = None
        self._status: ExecutorStatus = "idle"
        self._continuation: SequenceFrame | None = None
        self._error: PausepointError | None = None
        self._output: Any = None

    # -- public API -------------------------------------------------------

    @property
    def chart(self) -> FlowChart:
        """The chart this executor runs."""
        return self._chart

    @property
    def status(self) -> ExecutorStatus:
        """Where the last run or resume ended."""
        return self._status

    @property
    def run_id(self) -> str:
        """The id of the last run (empty before the first)."""
        return "" if self._last is None else self._last.run_id

    async def run(
        self,
        input: Mapping[str, Any] | Any | None = None,
        *,
        run_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # also settles the tree: see RunTimeoutError
    ) -> ExecutorStatus:
        """Run the chart from its first stage.

        Args:
            input: Seeded into the shared state (each value checked like a write).
                With an input model (``build(input=Model)``) it is validated
                first, and may be an instance of the model.
            run_id: The run's id; a random one by default.
            timeout: Seconds the whole call may take (``RunTimeoutError`` after).

        Returns:
            ``"paused"`` (see :meth:`get_checkpoint`), ``"completed"``, or
            ``"cancelled"`` when :meth:`cancel` stopped the run.

        Raises:
            StageError: A stage raised; the original exception is chained.
            RunInputError: ``input`` is not a mapping, or fails the input model.
            RunOutputError: The run completed, but its state fails the output model.
            RunTimeoutError: The run took longer than ``timeout``.
            StateError: An input value cannot live in the state.
        """
        self._begin()
        try:
            input = validate_run_input(self._chart, input)
        except RunInputError:
            self._status = "idle"
            raise
        codec = self._chart.codec
        state: dict[str, Any] = {}
        try:
            for key, value in (input or {}).items():
                state[key] = codec.check(key, value, "input")
            # as JSON the state type's way, so a datetime input is kept like a datetime write;
            # a plain codec's encode already makes checked JSON copies
            encoded = codec.encode(state)
            if not codec.plain:
                encoded = json_copy(encoded, "input")
        except (NotJSONError, StateError) as exc:
            self._status = "idle"
            raise StateError(
                f"run input {exc}", key=getattr(exc, "key", "input"), stage_id="input"
            ) from None
        run = ChartRun(self._chart, run_id or os.urandom(16).hex(), encoded, state, [], time.time())
        return await self._walk(run, None, {}, timeout)

    async def resume(
        self,
        checkpoint: Checkpoint | Mapping[str, Any],
        input: Any = _MISSING,
        *,
        stage_id: str | None = None,
        answers: Mapping[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # also settles the tree: see RunTimeoutError
    ) -> ExecutorStatus:
        """Resume a paused run from its checkpoint, in this or any other process.

        With one pending pause, ``resume(cp, input)`` answers it. With several
        (parallel branches), name the one answered with ``stage_id=``, or answer
        several at once with ``answers={stage_id: input}``; the others stay
        pending in the next checkpoint. ``checkpoint`` itself is never changed:
        if the resume fails, the same checkpoint can be resumed again.
        ``timeout`` bounds the whole call, as in :meth:`run`.

        Returns:
            ``"paused"`` (at the next pause, or pauses still pending),
            ``"completed"`` or ``"cancelled"``.

        Raises:
            CheckpointError: The checkpoint is malformed, from another chart,
                newer, tampered with, or of a finished run (nothing has run).
            ResumeTargetError: The answer names no pending pause, or several are pending.
            ResumeInputError: The input fails the stage's ``input_schema``.
            StageError: ``resume`` or a later stage raised.
            RunOutputError: The run completed, but its state fails the output model.
            RunTimeoutError: The resume took longer than ``timeout``.
        """
        self._begin()
        try:
            copies = validate_checkpoint(checkpoint, self._chart, self._signing_key)
            targets = self._answers_for(checkpoint, input, stage_id, answers)
            validated = self._validate_answers(targets, copies["paused_stages"])
            run = self._load(checkpoint, copies)
        except BaseException:
            self._status = "idle"
            raise
        return await self._walk(run, copies["continuation"], validated, timeout)

    async def continue_from(
        self,
        checkpoint: Checkpoint | Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109  # also settles the tree: see RunTimeoutError
    ) -> ExecutorStatus:
        """Carry on from a progress checkpoint (``status == "running"``) with its next stage.

        Used to finish a run whose process died: the stages recorded as done
        do not run again. ``timeout`` bounds the whole call, as in :meth:`run`.

        Returns:
            ``"paused"``, ``"completed"`` or ``"cancelled"``.

        Raises:
            CheckpointError: The checkpoint is malformed, from another chart, or tampered with.
            StageError: A stage raised.
        """
        self._begin()
        try:
            copies = validate_checkpoint(checkpoint, self._chart, self._signing_key, progress=True)
            run = self._load(checkpoint, copies)
        except BaseException:
            self._status = "idle"
            raise
        return await self._walk(run, copies["continuation"], {}, timeout)

    async def _resume_checked(
        self, checkpoint: Mapping[str, Any], copies: dict[str, Any], answers: dict[str, Any]
    ) -> ExecutorStatus:
        """``resume`` of a checkpoint and answers the caller already validated.

        ``copies`` is what :func:`~pausepoint.engine.checkpoint.validate_checkpoint`
        returned for ``checkpoint`` (the executor takes them over), and
        ``answers`` maps each answered stage to its validated input. ``Runs``
        checks both before it claims a run, so a resume checks them once.
        """
        self._begin()
        run = self._load(checkpoint, copies)
        return await self._walk(run, copies["continuation"], answers, None)

    def _run(self) -> ChartRun:
        """The last run; before the first, an empty one."""
        if self._last is None:
            return ChartRun(self._chart, "", {}, {}, [], 0.0)
        return self._last

    async def _walk(
        self,
        run: ChartRun,
        continuation: SequenceFrame | None,
        answers: dict[str, Any],
        limit: float | None,
    ) -> ExecutorStatus:
        """Walk ``run`` from ``continuation`` with ``answers``; keep it and how it ended."""
        self._last = run
        stages = StageRunner(run, answers) if self._observe is None else self._observe(run, answers)
        traversal = Traversal(run, stages, self._on_progress, self._signing_key)
        try:
            status, frame, output = await traversal.walk(continuation, limit)
        except PausepointError as exc:
            self._status = "failed"
            self._error = exc
            raise
        except BaseException:
            self._status = "failed"
            raise
        self._continuation = frame
        self._output = output
        self._status = status
        return status

    def _journal_view(self) -> tuple[dict[str, Any], list[TreeNode]]:
        """The state and the execution tree as JSON (nothing redacted), for the journal."""
        run = self._run()
        return self._chart.codec.encode(run.state), json_copy(run.tree)

    def cancel(self, reason: str | None = None, *, actor: str | None = None) -> bool:
        """Ask the running run to stop before its next stage; call it from another task.

        The stage in flight finishes (give it a ``time_limit`` to bound it);
        the state keeps what finished stages wrote; ``run``/``resume`` then
        return ``"cancelled"``, and the narrative says who stopped it and why.
        A cancelled run has no checkpoint: it cannot be resumed.

        Args:
            reason: Why, for the narrative.
            actor: Who, for the narrative.

        Returns:
            Whether a run was running to be cancelled.
        """
        if self._status != "running" or self._last is None:
            return False
        self._last.cancel = (actor, reason)
        return True

    def get_output(self) -> Any:
        """Return the completed run's output, validated by the chart's output model.

        ``None`` unless the chart declares ``build(output=Model)`` and the last
        run or resume completed.
        """
        return self._output if self._status == "completed" else None

    def _load(self, checkpoint: Mapping[str, Any], copies: dict[str, Any]) -> ChartRun:
        """The run a validated checkpoint holds, made of its checked copies."""
        return ChartRun(
            self._chart,
            checkpoint["run_id"],
            copies["input"],
            decode_state(copies["shared_state"], "shared_state", self._chart.codec),
            copies["execution_tree"],
            float(checkpoint["started_at"]),
            {pause["stage_id"]: pause for pause in copies["pauses"]},
        )

    def run_sync(
        self,
        input: Mapping[str, Any] | Any | None = None,
        *,
        run_id: str | None = None,
        timeout: float | None = None,
    ) -> ExecutorStatus:
        """Run ``run`` on the event loop this thread keeps, for code that has none."""
        return run_until_complete(
            self.run(input, run_id=run_id, timeout=timeout), "await executor.run(...)"
        )

    def resume_sync(
        self,
        checkpoint: Checkpoint | Mapping[str, Any],
        input: Any = _MISSING,
        *,
        stage_id: str | None = None,
        answers: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> ExecutorStatus:
        """Run ``resume`` on the event loop this thread keeps, for code that has none."""
        return run_until_complete(
            self.resume(checkpoint, input, stage_id=stage_id, answers=answers, timeout=timeout),
            "await executor.resume(...)",
        )

    def is_paused(self) -> bool:
        """Tell whether the last run or resume ended waiting for a human."""
        return self._status == "paused"

    def get_checkpoint(self) -> Checkpoint | None:
        """Return the checkpoint of the paused run (a new JSON-safe dict), or ``None``.

        Raises:
            StateError: A state value was changed in place into something not JSON.
        """
        if self._status != "paused" or self._continuation is None:
            return None
        return self._run().checkpoint("paused", self._continuation, self._signing_key)

    def get_snapshot(self) -> Snapshot:
        """Return the run so far as JSON: state, pauses, tree, narrative, metrics.

        Keys in the chart's ``redact`` list show as ``"***"``.
        """
        run = self._run()
        return _snapshot(
            self._chart.name,
            self._chart.redact,
            run.run_id,
            self._status,
            run.input,
            self._chart.codec.encode(run.state),
            json_copy(run.pauses),
            json_copy(run.tree),
            None if self._error is None else str(self._error),
        )

    def get_narrative(self) -> list[str]:
        """Return one plain sentence per event, across the run and every resume."""
        return narrative_of(self._run().tree)

    def get_metrics(self) -> Metrics:
        """Return per-stage durations and counts, pause count, and time spent paused."""
        return metrics_of(self._run().tree)

    def get_state(self) -> dict[str, Any]:
        """Return a shallow copy of the live state (typed values, nothing redacted)."""
        return dict(self._run().state)

    # -- set-up -----------------------------------------------------------

    def _begin(self) -> None:
        if self._status == "running":
            raise ExecutorUsageError(
                "this executor is already running a chart; use one executor per concurrent run"
            )
        self._status = "running"
        self._continuation = None
        self._error = None
        self._output = None

    def _answers_for(
        self,
        checkpoint: Mapping[str, Any],
        input: Any,
        stage_id: str | None,
        answers: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        pending = [pause["stage_id"] for pause in checkpoint["pauses"]]
        if answers is not None:
            if input is not _MISSING or stage_id is not None:
                raise ResumeTargetError(
                    "pass either answers={stage_id: input} or an input (with stage_id), not both",
                    pending=pending,
                )
            if not isinstance(answers, Mapping) or not answers:
                raise ResumeTargetError(
                    f"answers must map pending stage ids ({_listed(pending)}) to inputs",
                    pending=pending,
                )
            unknown = [key for key in answers if key not in pending]
            if unknown:
                raise ResumeTargetError(
                    f"answers name {', '.join(map(repr, unknown))}, which is not pending; pending: {_listed(pending)}",
                    pending=pending,
                )
            return dict(answers)
        if input is _MISSING:
            raise ResumeTargetError(
                f"resume needs an input for the pending pause ({_listed(pending)})", pending=pending
            )
        if stage_id is None:
            if len(pending) > 1:
                raise ResumeTargetError(
                    f"{len(pending)} pauses are pending ({_listed(pending)}): pass stage_id= to say which "
                    "one this input answers, or answers={stage_id: input} for several",
                    pending=pending,
                )
            return {pending[0]: input}
        if stage_id not in pending:
            raise ResumeTargetError(
                f"stage {stage_id!r} is not paused in this checkpoint; pending: {_listed(pending)}",
                pending=pending,
            )
        return {stage_id: input}

    def _validate_answers(
        self, answers: dict[str, Any], stages: dict[str, PausableStage]
    ) -> dict[str, Any]:
        """Check each answer against its stage's input schema.

        ``stages`` is what ``validate_checkpoint`` found for the pending pauses:
        no chart-wide index is built for the few stages a resume answers.
        """
        validated: dict[str, Any] = {}
        for path, answer in answers.items():
            node = stages[path]  # _answers_for named only pending pauses
            validated[path] = validate_resume_input(node, path, answer)
        return validated


def _listed(pending: list[str]) -> str:
    """The pending stage ids, for an error message (built only when one is raised)."""
    return ", ".join(repr(p) for p in pending)


def snapshot_of(checkpoint: Checkpoint, redact: Iterable[str] = ()) -> Snapshot:
    """Return the snapshot of a paused (or running) run, derived from its checkpoint.

    It is what the executor that wrote the checkpoint would give, with the
    ``redact`` keys (the chart's ``redact``) hidden. The checkpoint is trusted
    (read back from a store) and not copied: the snapshot shares its lists and dicts.
    """
    return _snapshot(
        checkpoint["chart_name"],
        frozenset(redact),
        checkpoint["run_id"],
        checkpoint["status"],
        checkpoint["input"],
        checkpoint["shared_state"],
        checkpoint["pauses"],
        checkpoint["execution_tree"],
        None,
    )


def _snapshot(
    chart_name: str,
    redact: frozenset[str],
    run_id: str,
    status: ExecutorStatus,
    input: dict[str, Any],
    state: dict[str, Any],
    pauses: list[PendingPause],
    tree: list[TreeNode],
    error: str | None,
) -> Snapshot:
    return {
        "run_id": run_id,
        "chart_name": chart_name,
        "status": status,
        "input": redacted(input, redact),
        "shared_state": redacted(state, redact),
        "pauses": [
            {
                "pause_id": pause["pause_id"],
                "stage_id": pause["stage_id"],
                "data": redacted(pause["data"], redact),
                "paused_at": pause["paused_at"],
            }
            for pause in pauses
        ],
        "execution_tree": tree,
        "narrative": narrative_of(tree),
        "metrics": metrics_of(tree),
        "error": error,
    }
