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
carries on with the next stage. ``Runs`` stores them so a crash loses at most
the stage in flight.

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
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from ._json import NotJSONError, json_copy
from ._sync import run_until_complete
from .chart import (
    PATH_SEPARATOR,
    Decider,
    FlowChart,
    ForEach,
    FunctionStage,
    LoopBack,
    Parallel,
    PausableStage,
    Selector,
    Step,
    Subflow,
)
from .checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    PendingPause,
    sign_checkpoint,
    validate_checkpoint,
)
from .errors import (
    CheckpointFormatError,
    ExecutorUsageError,
    LoopLimitError,
    PausepointError,
    ResumeInputError,
    ResumeTargetError,
    RunInputError,
    RunOutputError,
    RunTimeoutError,
    StageError,
    StageTimeoutError,
    StateError,
)
from .scope import LoopControl, Scope, access_log, detach, evidence_of
from .trace import (
    Attempt,
    Evidence,
    Metrics,
    TreeNode,
    last_seq,
    metrics_of,
    narrative_of,
    summarize_pause,
)

if TYPE_CHECKING:
    from .chart import Branch, Node, Retry
    from .state import StateCodec

__all__ = [
    "ExecutorStatus",
    "FlowChartExecutor",
    "Snapshot",
    "validate_resume_input",
    "validate_run_input",
    "validate_run_output",
]

ExecutorStatus = Literal["idle", "running", "paused", "completed", "failed", "cancelled"]

ProgressCallback = Callable[["Checkpoint"], Awaitable[None]]
"""Called with a progress checkpoint after each stage (see the module docstring)."""

Frame = dict[str, Any]

_perf = time.perf_counter
_MISSING: Any = object()
_REDACTED = "***"


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


class _Env:
    """The state a sequence reads and writes, and the path prefix of its stages."""

    __slots__ = ("codec", "prefix", "state")

    def __init__(self, state: dict[str, Any], codec: StateCodec, prefix: str) -> None:
        self.state = state
        self.codec = codec
        self.prefix = prefix


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
        self._status: ExecutorStatus = "idle"
        self._run_id = ""
        self._input: dict[str, Any] = {}
        self._state: dict[str, Any] = {}
        self._tree: list[TreeNode] = []
        self._continuation: Frame | None = None
        self._pauses: list[PendingPause] = []
        self._previous_pauses: dict[str, PendingPause] = {}
        self._answers: dict[str, Any] = {}
        self._control = LoopControl()
        self._started_at = 0.0
        self._paused_at = 0.0
        self._error: PausepointError | None = None
        self._on_progress = on_progress
        # Enclosing levels of the stage running now, to build progress checkpoints:
        # ("seq", [index, loops]) · ("subflow", position, state, codec) · ("decider", position, key)
        self._levels: list[tuple[Any, ...]] = []
        self._fork_depth = 0
        self._seq = 0  # orders events across the run and every resume (see trace.py)
        self._cancel: tuple[str | None, str | None] | None = None  # (actor, reason) once asked
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
        return self._run_id

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
        self._run_id = run_id or os.urandom(16).hex()
        self._started_at = time.time()
        self._state = {}
        self._tree = []
        self._seq = 0
        self._pauses = []
        self._previous_pauses = {}
        self._answers = {}
        codec = self._chart.codec
        try:
            for key, value in (input or {}).items():
                self._state[key] = codec.check(key, value, "input")
            # as JSON the state type's way, so a datetime input is kept like a datetime write
            self._input = json_copy(codec.encode(self._state), "input")
        except (NotJSONError, StateError) as exc:
            self._status = "idle"
            raise StateError(
                f"run input {exc}", key=getattr(exc, "key", "input"), stage_id="input"
            ) from None
        return await self._traverse(None, timeout)

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
            self._answers = self._validate_answers(targets)
            continuation = self._load(checkpoint, copies)
        except BaseException:
            self._status = "idle"
            raise
        return await self._traverse(continuation, timeout)

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
            self._answers = {}
            continuation = self._load(checkpoint, copies)
        except BaseException:
            self._status = "idle"
            raise
        return await self._traverse(continuation, timeout)

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
        if self._status != "running":
            return False
        self._cancel = (actor, reason)
        return True

    def get_output(self) -> Any:
        """Return the completed run's output, validated by the chart's output model.

        ``None`` unless the chart declares ``build(output=Model)`` and the last
        run or resume completed.
        """
        return self._output if self._status == "completed" else None

    def _load(self, checkpoint: Mapping[str, Any], copies: dict[str, Any]) -> Frame:
        """Take over a validated checkpoint's copies; return its continuation."""
        self._state = self._decode_state(copies["shared_state"], "shared_state", self._chart.codec)
        self._tree = copies["execution_tree"]
        self._input = copies["input"]
        self._run_id = checkpoint["run_id"]
        self._seq = last_seq(self._tree)
        self._started_at = float(checkpoint["started_at"])
        self._previous_pauses = {pause["stage_id"]: pause for pause in copies["pauses"]}
        self._pauses = []
        continuation: Frame = copies["continuation"]
        return continuation

    def run_sync(
        self,
        input: Mapping[str, Any] | Any | None = None,
        *,
        run_id: str | None = None,
        timeout: float | None = None,
    ) -> ExecutorStatus:
        """Run ``run`` on a fresh event loop, for code that has none."""
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
        """Run ``resume`` on a fresh event loop, for code that has none."""
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
        return self._checkpoint("paused", self._continuation)

    def _checkpoint(self, status: Literal["paused", "running"], continuation: Frame) -> Checkpoint:
        first = self._pauses[0] if self._pauses else None
        checkpoint: Checkpoint = {
            "format_version": FORMAT_VERSION,
            "chart_name": self._chart.name,
            "chart_fingerprint": self._chart.fingerprint,
            "run_id": self._run_id,
            "status": status,
            "input": json_copy(self._input),
            "shared_state": self._chart.codec.encode(self._state),
            "paused_stage_id": first["stage_id"] if first else "",
            "pause_data": json_copy(first["data"]) if first else None,
            "pauses": json_copy(self._pauses),
            "execution_tree": json_copy(self._tree),
            "continuation": json_copy(continuation),
            "started_at": self._started_at,
            "paused_at": self._paused_at,
        }
        if self._signing_key is not None:
            checkpoint["signature"] = sign_checkpoint(checkpoint, self._signing_key)
        return checkpoint

    def get_snapshot(self) -> Snapshot:
        """Return the run so far as JSON: state, pauses, tree, narrative, metrics.

        Keys in the chart's ``redact`` list show as ``"***"``.
        """
        redact = self._chart.redact
        state = self._chart.codec.encode(self._state)
        return {
            "run_id": self._run_id,
            "chart_name": self._chart.name,
            "status": self._status,
            "input": _redacted(self._input, redact),
            "shared_state": _redacted(state, redact),
            "pauses": [
                {
                    "pause_id": pause["pause_id"],
                    "stage_id": pause["stage_id"],
                    "data": _redacted(pause["data"], redact),
                    "paused_at": pause["paused_at"],
                }
                for pause in json_copy(self._pauses)
            ],
            "execution_tree": json_copy(self._tree),
            "narrative": narrative_of(self._tree),
            "metrics": metrics_of(self._tree),
            "error": None if self._error is None else str(self._error),
        }

    def get_narrative(self) -> list[str]:
        """Return one plain sentence per event, across the run and every resume."""
        return narrative_of(self._tree)

    def get_metrics(self) -> Metrics:
        """Return per-stage durations and counts, pause count, and time spent paused."""
        return metrics_of(self._tree)

    def get_state(self) -> dict[str, Any]:
        """Return a shallow copy of the live state (typed values, nothing redacted)."""
        return dict(self._state)

    # -- set-up -----------------------------------------------------------

    def _begin(self) -> None:
        if self._status == "running":
            raise ExecutorUsageError(
                "this executor is already running a chart; use one executor per concurrent run"
            )
        self._status = "running"
        self._continuation = None
        self._error = None
        self._cancel = None
        self._output = None
        self._control = LoopControl()
        self._levels = []
        self._fork_depth = 0

    def _answers_for(
        self,
        checkpoint: Mapping[str, Any],
        input: Any,
        stage_id: str | None,
        answers: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        pending = [pause["stage_id"] for pause in checkpoint["pauses"]]
        listed = ", ".join(repr(p) for p in pending)
        if answers is not None:
            if input is not _MISSING or stage_id is not None:
                raise ResumeTargetError(
                    "pass either answers={stage_id: input} or an input (with stage_id), not both",
                    pending=pending,
                )
            if not isinstance(answers, Mapping) or not answers:
                raise ResumeTargetError(
                    f"answers must map pending stage ids ({listed}) to inputs", pending=pending
                )
            unknown = [key for key in answers if key not in pending]
            if unknown:
                raise ResumeTargetError(
                    f"answers name {', '.join(map(repr, unknown))}, which is not pending; pending: {listed}",
                    pending=pending,
                )
            return dict(answers)
        if input is _MISSING:
            raise ResumeTargetError(
                f"resume needs an input for the pending pause ({listed})", pending=pending
            )
        if stage_id is None:
            if len(pending) > 1:
                raise ResumeTargetError(
                    f"{len(pending)} pauses are pending ({listed}): pass stage_id= to say which "
                    "one this input answers, or answers={stage_id: input} for several",
                    pending=pending,
                )
            return {pending[0]: input}
        if stage_id not in pending:
            raise ResumeTargetError(
                f"stage {stage_id!r} is not paused in this checkpoint; pending: {listed}",
                pending=pending,
            )
        return {stage_id: input}

    def _validate_answers(self, answers: dict[str, Any]) -> dict[str, Any]:
        validated: dict[str, Any] = {}
        for path, answer in answers.items():
            node = self._chart.find_stage(path)
            assert isinstance(node, PausableStage)  # the checkpoint was validated against the chart
            validated[path] = validate_resume_input(node, path, answer)
        return validated

    @staticmethod
    def _decode_state(data: Mapping[str, Any], field: str, codec: StateCodec) -> dict[str, Any]:
        try:
            return codec.decode(data)
        except (ValueError, TypeError) as exc:
            where = field  # pydantic's message names the type, not the key: find the key
            for key, value in data.items():
                try:
                    codec.decode({key: value})
                except (ValueError, TypeError):
                    where = f"{field}.{key}"
                    break
            raise CheckpointFormatError(
                f"checkpoint field {where!r} does not fit the chart's state type: {exc}",
                field=field,
            ) from None

    # -- traversal --------------------------------------------------------

    async def _traverse(self, continuation: Frame | None, limit: float | None) -> ExecutorStatus:
        env = _Env(self._state, self._chart.codec, "")
        work = self._sequence(self._chart.steps, env, self._tree, continuation)
        try:
            frame = await (work if limit is None else self._bounded(work, limit))
            if frame is None and self._chart.output_contract is not None:
                self._output = validate_run_output(self._chart, self._state)
        except _Cancelled as stop:
            self._stopped(stop)
            return "cancelled"
        except PausepointError as exc:
            self._status = "failed"
            self._error = exc
            raise
        except BaseException:
            self._status = "failed"
            raise
        if frame is None:
            self._status = "completed"
            return "completed"
        self._continuation = frame
        self._paused_at = time.time()
        self._status = "paused"
        return "paused"

    async def _bounded(self, work: Coroutine[Any, Any, Frame | None], limit: float) -> Frame | None:
        """Await the traversal, cancelling it at its next ``await`` once ``limit`` seconds pass."""
        import asyncio

        timeout = asyncio.timeout(limit)
        try:
            async with timeout:
                return await work
        except TimeoutError:
            if not timeout.expired():
                raise
            _settle(self._tree, "failed", f"the run timed out after {limit:g} s")
            raise RunTimeoutError(
                f"run {self._run_id!r} of chart {self._chart.name!r} took longer than its "
                f"timeout of {limit:g} s; the stage in flight was cancelled",
                run_id=self._run_id,
                limit=limit,
            ) from None

    def _stopped(self, stop: _Cancelled) -> None:
        """Finish a cancelled run: mark what was in flight, say where it stopped and why."""
        _settle(self._tree, "cancelled")
        actor, reason = self._cancel or (None, None)
        record: TreeNode = {
            "id": stop.path,
            "name": stop.name,
            "kind": "cancel",
            "status": "done",
            "seq": self._tick(),
        }
        if actor is not None:
            record["actor"] = actor
        if reason is not None:
            record["reason"] = reason
        self._tree.append(record)
        self._status = "cancelled"

    @staticmethod
    def _cancelled_at(step: Step, env: _Env) -> _Cancelled:
        """The signal that stops a cancelled run before ``step``."""
        if isinstance(step, LoopBack):
            return _Cancelled(env.prefix + step.target, step.target_name)
        return _Cancelled(env.prefix + step.id, step.name)

    async def _sequence(
        self, steps: tuple[Step, ...], env: _Env, tree: list[TreeNode], frame: Frame | None
    ) -> Frame | None:
        if self._on_progress is not None and self._fork_depth == 0:
            return await self._tracked_sequence(steps, env, tree, frame)
        control = self._control
        carry = False  # a break_loop() no loop of this sequence encloses: for the parent
        loops: dict[int, int] = {}
        index = 0
        if frame is not None:
            index = frame["i"]
            loops = {int(key): count for key, count in frame.get("loops", {}).items()}
            if frame["node"] is not None:
                step = steps[index]
                assert not isinstance(step, LoopBack)
                pending = await self._node(step, env, tree, frame["node"])
                if pending is not None:
                    return _sequence_frame(index, loops, pending)
                index = _next_index(steps, index, control)
                carry = _hand_up(control, carry)
        end = len(steps)
        while index < end:
            step = steps[index]
            if self._cancel is not None:
                raise self._cancelled_at(step, env)
            if type(step) is LoopBack:
                index = self._loop_back(step, index, loops, env, tree)
                continue
            if type(step) is FunctionStage:
                await self._stage(step, env, tree)
            else:
                pending = await self._node(step, env, tree, None)  # type: ignore[arg-type]  # not a LoopBack
                if pending is not None:
                    return _sequence_frame(index, loops, pending)
            if control.requested:
                index = _next_index(steps, index, control)
                carry = _hand_up(control, carry)
            else:
                index += 1
        control.requested = carry
        return None

    async def _tracked_sequence(
        self, steps: tuple[Step, ...], env: _Env, tree: list[TreeNode], frame: Frame | None
    ) -> Frame | None:
        """``_sequence`` that reports a progress checkpoint after every finished step.

        Kept apart so runs without ``on_progress`` pay nothing for it.
        """
        control = self._control
        carry = False  # a break_loop() no loop of this sequence encloses: for the parent
        position: list[Any] = [0, {}]  # [index, loops], read by _progress_continuation
        self._levels.append(("seq", position))
        try:
            pending_frame = frame["node"] if frame is not None else None
            if frame is not None:
                position[0] = frame["i"]
                position[1] = {int(key): count for key, count in frame.get("loops", {}).items()}
            while position[0] < len(steps):
                index = position[0]
                step = steps[index]
                if pending_frame is None and self._cancel is not None:
                    raise self._cancelled_at(step, env)
                if type(step) is LoopBack:
                    position[0] = self._loop_back(step, index, position[1], env, tree)
                    continue
                pending = await self._node(step, env, tree, pending_frame)
                pending_frame = None
                if pending is not None:
                    return _sequence_frame(index, position[1], pending)
                position[0] = _next_index(steps, index, control)
                carry = _hand_up(control, carry)
                if self._fork_depth == 0 and position[0] < len(steps):
                    assert self._on_progress is not None
                    await self._on_progress(
                        self._checkpoint("running", self._progress_continuation())
                    )
            control.requested = carry
            return None
        finally:
            self._levels.pop()

    def _progress_continuation(self) -> Frame:
        """Compose the continuation of "about to run the next step" from the enclosing levels."""
        inner: Frame | None = None
        for level in reversed(self._levels):
            if level[0] == "seq":
                index, loops = level[1]
                frame: Frame = {"i": index, "node": inner}
                if loops:
                    frame["loops"] = {str(k): v for k, v in loops.items()}
                inner = frame
            elif level[0] == "subflow":
                inner = {"t": level[1], "seq": inner}
                if level[2] is not None:
                    inner["state"] = level[3].encode(level[2])
            else:
                inner = {"t": level[1], "branch": level[2], "node": inner}
        assert inner is not None
        return inner

    def _loop_back(
        self, step: LoopBack, index: int, loops: dict[int, int], env: _Env, tree: list[TreeNode]
    ) -> int:
        count = loops.get(index, 0) + 1
        target_path = env.prefix + step.target
        if count > step.max_iterations:
            raise LoopLimitError(
                f"loop back to {target_path!r} ran {step.max_iterations} times, its limit; "
                "call scope.break_loop() to leave it, or raise loop_to(..., max_iterations=)",
                stage_id=target_path,
                stage_name=step.target,
                limit=step.max_iterations,
            )
        loops[index] = count
        tree.append(
            {
                "id": target_path,
                "name": step.target_name,
                "kind": "loop",
                "status": "done",
                "round": count + 1,
                "target": target_path,
                "seq": self._tick(),
            }
        )
        return step.target_index

    def _node(
        self, node: Node, env: _Env, tree: list[TreeNode], frame: Frame | None
    ) -> Coroutine[Any, Any, Frame | None]:
        if type(node) is PausableStage:
            return self._pausable(node, env, tree, frame)
        if type(node) is Subflow:
            return self._subflow(node, env, tree, frame)
        if type(node) is Decider:
            return self._decider(node, env, tree, frame)
        if type(node) is Selector or type(node) is Parallel:
            return self._fork(node, env, tree, frame)
        if type(node) is ForEach:
            return self._for_each(node, env, tree, frame)
        assert type(node) is FunctionStage
        return self._stage_as_node(node, env, tree)

    async def _stage_as_node(self, node: FunctionStage, env: _Env, tree: list[TreeNode]) -> None:
        await self._stage(node, env, tree)

    def _tick(self) -> int:
        self._seq += 1
        return self._seq

    def _scope(self, env: _Env, path: str) -> Scope:
        return Scope(env.state, env.codec, path, self._control, self._run_id, self._input)

    async def _call(
        self,
        fn: Callable[..., Any],
        is_async: bool,
        record: TreeNode,
        scope: Scope,
        phase: str,
        *args: Any,
    ) -> Any:
        """Call a user function, recording reads, writes and time; wrap what it raises."""
        started = _perf()
        try:
            result = fn(scope, *args)
            if is_async or hasattr(result, "__await__"):
                result = await result
        except Exception as exc:
            raise self._failure(record, scope, started, exc, phase) from exc
        _finish(record, scope, started)
        if self._control.requested:
            record["breaks_loop"] = True
        return result

    async def _call_guarded(
        self,
        fn: Callable[..., Any],
        is_async: bool,
        record: TreeNode,
        env: _Env,
        path: str,
        phase: str,
        retry: Retry | None,
        limit: float | None,
    ) -> tuple[Any, Scope]:
        """``_call`` under a retry policy and a time limit; return the result and its scope.

        Callers take this path only for a node that has either control, so the
        others pay nothing for them.
        """
        result, scope, started = await self._guarded(
            fn, is_async, record, env, path, phase, retry, limit
        )
        _finish(record, scope, started)
        if self._control.requested:
            record["breaks_loop"] = True
        return result, scope

    async def _guarded(
        self,
        fn: Callable[..., Any],
        is_async: bool,
        record: TreeNode,
        env: _Env,
        path: str,
        phase: str,
        retry: Retry | None,
        limit: float | None,
        *args: Any,
    ) -> tuple[Any, Scope, float]:
        """Call a user function under its retry policy and time limit.

        Each failed attempt goes into ``record["attempts"]``; a retried one's
        writes are undone (from a shallow copy of the state taken before it)
        and its ``break_loop()`` forgotten. The last failure, or one ``retry.on``
        does not cover, is raised as the ``StageError``.

        Returns:
            The result, the scope of the attempt that succeeded, and when it started.
        """
        attempts = 1 if retry is None else retry.attempts
        attempt = 1
        while True:
            scope = self._scope(env, path)
            before = dict(env.state) if attempt < attempts else None
            breaking = self._control.requested
            started = _perf()
            try:
                return await _call_limited(fn, is_async, scope, limit, args), scope, started
            except Exception as exc:
                if retry is None:
                    raise self._failure(record, scope, started, exc, phase) from exc
                if before is None or not isinstance(exc, retry.on):
                    self._attempt_failed(record, phase, attempt, attempts, exc, started, None)
                    raise self._failure(record, scope, started, exc, phase) from exc
                delay = retry.delay(attempt)
                _undo(env.state, before, access_log(scope)[1])
                self._control.requested = breaking
                self._attempt_failed(record, phase, attempt, attempts, exc, started, delay)
            import asyncio

            await asyncio.sleep(delay)
            attempt += 1

    def _attempt_failed(
        self,
        record: TreeNode,
        phase: str,
        attempt: int,
        attempts: int,
        exc: Exception,
        started: float,
        retry_in: float | None,
    ) -> None:
        entry: Attempt = {
            "phase": phase,
            "attempt": attempt,
            "of": attempts,
            "error": _describe(exc),
            "ms": (_perf() - started) * 1000.0,
            "seq": self._tick(),
        }
        if retry_in is not None:
            entry["retry_in"] = retry_in
        record.setdefault("attempts", []).append(entry)

    @staticmethod
    def _failure(
        record: TreeNode, scope: Scope, started: float, exc: Exception, phase: str
    ) -> StageError:
        """Record a stage's failure in the tree; return the error to raise from ``exc``."""
        if phase != "resume":  # the record's reads and writes are execute's
            _finish(record, scope, started)
        record["status"] = "failed"
        record["error"] = _describe(exc)
        where = f" in {phase}" if phase != "run" else ""
        facts: dict[str, Any] = {
            "stage_id": record["id"],
            "stage_name": record["name"],
            "phase": phase,
        }
        if isinstance(exc, _TimedOut):
            return StageTimeoutError(
                f"stage {record['id']!r} ({record['name']}){where} {exc}", limit=exc.limit, **facts
            )
        return StageError(
            f"stage {record['id']!r} ({record['name']}) raised{where}: {_describe(exc)}", **facts
        )

    async def _stage(self, node: FunctionStage, env: _Env, tree: list[TreeNode]) -> None:
        path = env.prefix + node.id
        record: TreeNode = {
            "id": path,
            "name": node.name,
            "kind": "stage",
            "status": "running",
            "seq": self._tick(),
        }
        tree.append(record)
        if not node.inline:
            if node.retry is None and node.time_limit is None:
                await self._call(node.fn, True, record, self._scope(env, path), "run")
            else:
                await self._call_guarded(
                    node.fn, node.is_async, record, env, path, "run", node.retry, node.time_limit
                )
            record["status"] = "done"
            return
        # the common case, without a coroutine per call: a sync stage called inline
        scope = Scope(env.state, env.codec, path, self._control, self._run_id, self._input)
        started = _perf()
        try:
            result = node.fn(scope)
        except Exception as exc:
            raise self._failure(record, scope, started, exc, "run") from exc
        if result is not None and hasattr(result, "__await__"):
            await self._call(lambda _: result, True, record, scope, "run")
        _finish(record, scope, started)
        if self._control.requested:
            record["breaks_loop"] = True
        record["status"] = "done"

    async def _pausable(
        self, node: PausableStage, env: _Env, tree: list[TreeNode], frame: Frame | None
    ) -> Frame | None:
        path = env.prefix + node.id
        if frame is not None:
            return await self._resume_pausable(node, env, tree, frame, path)
        record: TreeNode = {
            "id": path,
            "name": node.name,
            "kind": "pausable",
            "status": "running",
            "seq": self._tick(),
        }
        position = len(tree)
        tree.append(record)
        if node.retry is None and node.time_limit is None:
            scope = self._scope(env, path)
            data = await self._call(node.execute, node.execute_is_async, record, scope, "execute")
        else:
            data, _ = await self._call_guarded(
                node.execute,
                node.execute_is_async,
                record,
                env,
                path,
                "execute",
                node.retry,
                node.time_limit,
            )
        if data is None:
            record["status"] = "done"
            return None
        if hasattr(data, "model_dump"):
            data = data.model_dump(mode="json")
        try:
            data = json_copy(data, "pause data")
        except NotJSONError as exc:
            record["status"] = "failed"
            record["error"] = str(exc)
            raise StageError(
                f"stage {path!r} ({node.name}) paused with data that is not JSON: {exc}",
                stage_id=path,
                stage_name=node.name,
                phase="execute",
            ) from exc
        pause_id = os.urandom(12).hex()
        now = time.time()
        record["status"] = "paused"
        record["pause"] = {
            "pause_id": pause_id,
            "at": now,
            "summary": summarize_pause(data, self._chart.redact),
            "seq": self._tick(),
        }
        self._pauses.append(
            {"pause_id": pause_id, "stage_id": path, "data": data, "paused_at": now}
        )
        paused: Frame = {"t": position, "stage_id": path, "pause_id": pause_id}
        if self._control.requested:
            self._control.requested = False
            paused["brk"] = True  # takes effect once resume has run
            record.pop("breaks_loop", None)
        return paused

    async def _resume_pausable(
        self, node: PausableStage, env: _Env, tree: list[TreeNode], frame: Frame, path: str
    ) -> Frame | None:
        answer = self._answers.pop(path, _MISSING)
        if answer is _MISSING:
            self._pauses.append(self._previous_pauses[path])
            return frame
        record = tree[frame["t"]]
        resumed_at = time.time()
        if node.retry_resume or node.time_limit is not None:
            _, scope, started = await self._guarded(
                node.resume,
                node.resume_is_async,
                record,
                env,
                path,
                "resume",
                node.retry if node.retry_resume else None,
                node.time_limit,
                answer,
            )
        else:
            scope = self._scope(env, path)
            started = _perf()
            try:
                result = node.resume(scope, answer)
                if node.resume_is_async or hasattr(result, "__await__"):
                    await result
            except Exception as exc:
                raise self._failure(record, scope, started, exc, "resume") from exc
        record["status"] = "resumed"
        record["resume"] = {
            "at": resumed_at,
            "input_keys": _input_keys(answer),
            "reads": _unique(access_log(scope)[0]),
            "writes": _unique(access_log(scope)[1]),
            "ms": (_perf() - started) * 1000.0,
            "seq": self._tick(),
        }
        if frame.get("brk") or self._control.requested:
            self._control.requested = True
            record["breaks_loop"] = True
        return None

    async def _decider(
        self, node: Decider, env: _Env, tree: list[TreeNode], frame: Frame | None
    ) -> Frame | None:
        path = env.prefix + node.id
        if frame is None:
            record: TreeNode = {
                "id": path,
                "name": node.name,
                "kind": "decider",
                "status": "running",
                "children": [],
                "seq": self._tick(),
            }
            position = len(tree)
            tree.append(record)
            key, scope = await self._route(node, record, env, path)
            if not isinstance(key, str) or key not in node.branches:
                if node.default is None:
                    record["status"] = "failed"
                    error = f"decider returned {key!r}, which names no branch (branches: {', '.join(node.branches)})"
                    record["error"] = error
                    raise StageError(
                        f"stage {path!r} ({node.name}): {error}; return a branch key or set_default()",
                        stage_id=path,
                        stage_name=node.name,
                    )
                key = node.default
            record["chose"] = [key]
            self._keep_evidence(record, scope)
            child_frame = None
        else:
            position = frame["t"]
            record = tree[position]
            key = frame["branch"]
            child_frame = frame["node"]
        tracked = self._on_progress is not None and self._fork_depth == 0
        if tracked:
            self._levels.append(("decider", position, key))
        try:
            pending = await self._child(
                record, self._node(node.branches[key], env, record["children"], child_frame)
            )
        finally:
            if tracked:
                self._levels.pop()
        if pending is None:
            record["status"] = "done"
            return None
        record["status"] = "paused"
        return {"t": position, "branch": key, "node": pending}

    async def _fork(
        self, node: Selector | Parallel, env: _Env, tree: list[TreeNode], frame: Frame | None
    ) -> Frame | None:
        path = env.prefix + node.id
        branches: list[tuple[str, Branch, Frame | None]]
        if frame is None:
            record: TreeNode = {
                "id": path,
                "name": node.name,
                "kind": node.kind,
                "status": "running",
                "children": [],
                "seq": self._tick(),
            }
            position = len(tree)
            tree.append(record)
            if isinstance(node, Selector):
                returned, scope = await self._route(node, record, env, path)
                keys = self._selected(node, record, returned)
                record["chose"] = keys
                self._keep_evidence(record, scope)
            else:
                keys = list(node.branches)
            branches = [(key, node.branches[key], None) for key in keys]
        else:
            position = frame["t"]
            record = tree[position]
            branches = [(key, node.branches[key], sub) for key, sub in frame["branches"].items()]
        children = record["children"]
        self._fork_depth += 1
        try:
            results = await self._child(
                record,
                _gather([self._node(branch, env, children, sub) for _, branch, sub in branches]),
            )
        finally:
            self._fork_depth -= 1
        pending = {
            key: result
            for (key, _, _), result in zip(branches, results, strict=True)
            if result is not None
        }
        if not pending:
            record["status"] = "done"
            return None
        record["status"] = "paused"
        return {"t": position, "branches": pending}

    async def _route(
        self, node: Decider | Selector, record: TreeNode, env: _Env, path: str
    ) -> tuple[Any, Scope]:
        """Call a decider's or selector's function; return what it chose and its scope."""
        if node.retry is None and node.time_limit is None:
            scope = self._scope(env, path)
            return await self._call(node.fn, node.is_async, record, scope, "run"), scope
        return await self._call_guarded(
            node.fn, node.is_async, record, env, path, "run", node.retry, node.time_limit
        )

    def _keep_evidence(self, record: TreeNode, scope: Scope) -> None:
        """Put what ``decide``/``select`` recorded on the scope in the tree, if it chose these branches."""
        evidence = evidence_of(scope)
        if evidence is None or evidence.get("chose") != record.get("chose"):
            return  # no rules used, or the function returned something else than they chose
        record["evidence"] = _redacted_evidence(evidence, self._chart.redact)

    @staticmethod
    def _selected(node: Selector, record: TreeNode, returned: Any) -> list[str]:
        keys = [returned] if isinstance(returned, str) else list(returned or ())
        unknown = [key for key in keys if key not in node.branches]
        if unknown:
            record["status"] = "failed"
            error = f"selector returned {', '.join(map(repr, unknown))}, which names no branch (branches: {', '.join(node.branches)})"
            record["error"] = error
            raise StageError(
                f"stage {record['id']!r} ({node.name}): {error}",
                stage_id=record["id"],
                stage_name=node.name,
            )
        if not keys and node.default is not None:
            keys = [node.default]
        return list(dict.fromkeys(keys))

    async def _for_each(
        self, node: ForEach, env: _Env, tree: list[TreeNode], frame: Frame | None
    ) -> Frame | None:
        """Run the body per item; keep every item's pause; join when all items are done.

        The frame holds each pending item's own continuation and state, and the
        results of the items already done.
        """
        path = env.prefix + node.id
        codec = node.body.codec
        work: list[tuple[int, TreeNode, dict[str, Any], Frame | None]] = []
        if frame is None:
            record: TreeNode = {
                "id": path,
                "name": node.name,
                "kind": "foreach",
                "status": "running",
                "children": [],
                "reads": [node.items_key],
                "seq": self._tick(),
            }
            position = len(tree)
            tree.append(record)
            items = env.state.get(node.items_key)
            if not isinstance(items, list):
                record["status"] = "failed"
                record["error"] = f"state key {node.items_key!r} holds no list"
                raise StageError(
                    f"for-each {path!r} ({node.name}) needs a list in state key "
                    f"{node.items_key!r}, found {type(items).__name__}",
                    stage_id=path,
                    stage_name=node.name,
                )
            done: dict[str, Any] = {}
            total = len(items)
            children = record["children"]
            for index, item in enumerate(items):
                item_path = f"{path}[{index}]"
                item_record: TreeNode = {
                    "id": item_path,
                    "name": f"{node.name} #{index}",
                    "kind": "item",
                    "status": "running",
                    "children": [],
                    "seq": self._tick(),
                }
                children.append(item_record)
                state = {
                    "item": codec.check("item", item, item_path),
                    "index": index,
                }
                work.append((index, item_record, state, None))
        else:
            position = frame["t"]
            record = tree[position]
            children = record["children"]
            done = dict(frame["done"])
            total = frame["total"]
            for key, item_frame in frame["items"].items():
                index = int(key)
                state = self._decode_state(item_frame["state"], f"{path}[{index}] state", codec)
                work.append((index, children[item_frame["t"]], state, item_frame["seq"]))
        limit = _Limit(node.concurrency)

        async def run_item(
            index: int, item_record: TreeNode, state: dict[str, Any], seq: Frame | None
        ) -> tuple[int, Frame | None, Any]:
            async with limit:
                inner = _Env(state, codec, f"{path}[{index}]{PATH_SEPARATOR}")
                pending = await self._child(
                    item_record,
                    self._sequence(node.body.steps, inner, item_record["children"], seq),
                )
            if pending is None:
                item_record["status"] = "done"
                return index, None, state.get("result")
            item_record["status"] = "paused"
            item_frame: Frame = {
                "t": index,  # item records are created in item order
                "seq": pending,
                "state": codec.encode(state),
            }
            return index, item_frame, None

        self._fork_depth += 1
        try:
            outcomes = await self._child(record, _gather([run_item(*job) for job in work]))
        finally:
            self._fork_depth -= 1
        pending_items: dict[str, Frame] = {}
        for index, item_frame, result in outcomes:
            if item_frame is None:
                done[str(index)] = result
            else:
                pending_items[str(index)] = item_frame
        if pending_items:
            record["status"] = "paused"
            return {"t": position, "items": pending_items, "done": done, "total": total}
        results = [done[str(index)] for index in range(total)]
        env.state[node.results_key] = env.codec.check(node.results_key, results, path)
        record["writes"] = [node.results_key]
        record["status"] = "done"
        return None

    async def _subflow(
        self, node: Subflow, env: _Env, tree: list[TreeNode], frame: Frame | None
    ) -> Frame | None:
        path = env.prefix + node.id
        codec = node.chart.codec if node.isolated else env.codec
        if frame is None:
            record: TreeNode = {
                "id": path,
                "name": node.name,
                "kind": "subflow",
                "status": "running",
                "children": [],
                "seq": self._tick(),
            }
            position = len(tree)
            tree.append(record)
            state = self._seed_subflow(node, env, record, path) if node.isolated else env.state
            child_frame = None
        else:
            position = frame["t"]
            record = tree[position]
            state = (
                self._decode_state(frame["state"], f"subflow {path!r} state", codec)
                if node.isolated
                else env.state
            )
            child_frame = frame["seq"]
        inner = _Env(state, codec, path + PATH_SEPARATOR)
        tracked = self._on_progress is not None and self._fork_depth == 0
        if tracked:
            self._levels.append(("subflow", position, state if node.isolated else None, codec))
        try:
            pending = await self._child(
                record, self._sequence(node.chart.steps, inner, record["children"], child_frame)
            )
        finally:
            if tracked:
                self._levels.pop()
        if pending is not None:
            record["status"] = "paused"
            paused: Frame = {"t": position, "seq": pending}
            if node.isolated:
                paused["state"] = codec.encode(state)
            return paused
        if node.isolated:
            self._map_back(node, env, state, record, path)
        record["status"] = "done"
        return None

    def _seed_subflow(
        self, node: Subflow, env: _Env, record: TreeNode, path: str
    ) -> dict[str, Any]:
        seed = self._map(node.input_mapper, dict(env.state), record, path, "input_mapper")
        codec = node.chart.codec
        return {key: codec.check(key, value, path) for key, value in seed.items()}

    def _map_back(
        self, node: Subflow, env: _Env, state: dict[str, Any], record: TreeNode, path: str
    ) -> None:
        out = self._map(node.output_mapper, dict(state), record, path, "output_mapper")
        for key, value in out.items():
            env.state[key] = env.codec.check(key, value, path)
        record["writes"] = list(out)

    @staticmethod
    def _map(
        mapper: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None,
        source: dict[str, Any],
        record: TreeNode,
        path: str,
        phase: str,
    ) -> Mapping[str, Any]:
        if mapper is None:
            return {}
        try:
            mapped = mapper(source)
            if not isinstance(mapped, Mapping):
                raise TypeError(
                    f"{phase} must return a mapping of state keys, not {type(mapped).__name__}"
                )
        except Exception as exc:
            record["status"] = "failed"
            record["error"] = f"{type(exc).__name__}: {exc}"
            raise StageError(
                f"subflow {path!r} ({record['name']}) {phase} raised: {type(exc).__name__}: {exc}",
                stage_id=path,
                stage_name=record["name"],
                phase=phase,
            ) from exc
        return mapped

    @staticmethod
    async def _child(record: TreeNode, work: Coroutine[Any, Any, Any]) -> Any:
        """Await a composite's children; mark the composite failed if one fails."""
        try:
            return await work
        except PausepointError:
            record["status"] = "failed"
            raise


class _Limit:
    """An ``async with`` bound on how many items run at once (none when ``limit`` is None)."""

    def __init__(self, limit: int | None) -> None:
        self._semaphore: Any = None
        if limit is not None:
            import asyncio

            self._semaphore = asyncio.Semaphore(limit)

    async def __aenter__(self) -> None:
        if self._semaphore is not None:
            await self._semaphore.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._semaphore is not None:
            self._semaphore.release()


T = TypeVar("T")


async def _gather(work: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run branches concurrently; when several fail, wait for all and raise the first."""
    if len(work) == 1:
        return [await work[0]]
    import asyncio

    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]  # exceptions were raised above


def validate_resume_input(node: PausableStage, path: str, answer: Any) -> Any:
    """Validate a resume input against the stage's ``input_schema``; return what ``resume`` gets.

    Raises:
        ResumeInputError: The input does not fit, with pydantic's error details.
    """
    if node.input_schema is None:
        return answer
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(node.input_schema).validate_python(answer)
    except ValidationError as exc:
        summary, errors = _validation_details(exc)
        raise ResumeInputError(
            f"resume input for stage {path!r} does not fit {_model_name(node.input_schema)}: {summary}",
            stage_id=path,
            errors=errors,
        ) from None


def validate_run_input(chart: FlowChart, input: Any) -> dict[str, Any]:
    """Check a run's input: a mapping, that fits the chart's input model if it declares one.

    Returns:
        What to seed the state with: the validated model's fields as JSON,
        defaults included; without a model, the mapping as given.

    Raises:
        RunInputError: Not a mapping, or not fitting the model (with pydantic's
            details, each naming its field).
    """
    contract = chart.input_contract
    if contract is None:
        if input is not None and not isinstance(input, Mapping):
            raise RunInputError(
                f"run input must be a mapping of state keys, not a {type(input).__name__}"
            )
        return dict(input or {})
    from pydantic import ValidationError

    name = _model_name(contract.model)
    try:
        value = contract.adapter.validate_python({} if input is None else input)
    except ValidationError as exc:
        summary, errors = _validation_details(exc)
        raise RunInputError(
            f"run input of chart {chart.name!r} does not fit {name}: {summary}", errors=errors
        ) from None
    seed = contract.adapter.dump_python(value, mode="json")
    if not isinstance(seed, dict):
        raise RunInputError(f"input model {name} of chart {chart.name!r} is not a mapping of keys")
    return seed


def validate_run_output(chart: FlowChart, state: Mapping[str, Any]) -> Any:
    """Check a completed run's state against the chart's output model; return the output.

    Raises:
        RunOutputError: The state does not fit, with pydantic's details naming each field.
    """
    contract = chart.output_contract
    assert contract is not None
    from pydantic import ValidationError

    try:
        return contract.adapter.validate_python(dict(state))
    except ValidationError as exc:
        summary, errors = _validation_details(exc)
        raise RunOutputError(
            f"run of chart {chart.name!r} completed, but its state does not fit the output "
            f"model {_model_name(contract.model)}: {summary}",
            errors=errors,
        ) from None


def _model_name(model: Any) -> str:
    return str(getattr(model, "__name__", "its schema"))


def _validation_details(exc: Any) -> tuple[str, list[dict[str, Any]]]:
    """Return a one-line summary naming each bad field, and the details as JSON."""
    details = exc.errors(include_url=False, include_context=False)
    summary = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}"
        for error in details
    )
    errors: list[dict[str, Any]] = json_copy(
        [
            {
                "loc": [
                    part if isinstance(part, int | str) else str(part) for part in error["loc"]
                ],
                "msg": error["msg"],
                "type": error["type"],
            }
            for error in details
        ]
    )
    return summary, errors


class _Cancelled(BaseException):
    """Unwinds a cancelled run to ``_traverse``; never leaves the executor.

    A ``BaseException``, so that no ``except Exception`` on the way takes it for a failure.
    """

    def __init__(self, path: str, name: str) -> None:
        super().__init__(path)
        self.path = path
        self.name = name


class _TimedOut(TimeoutError):
    """A stage attempt ran past its time limit (a ``TimeoutError``, for ``Retry(on=...)``)."""

    def __init__(self, limit: float, *, abandoned: bool) -> None:
        what = (
            "was abandoned in its worker thread (its later writes are dropped)"
            if abandoned
            else "was cancelled"
        )
        super().__init__(f"ran past its time limit of {limit:g} s and {what}")
        self.limit = limit


async def _call_limited(
    fn: Callable[..., Any], is_async: bool, scope: Scope, limit: float | None, args: tuple[Any, ...]
) -> Any:
    """Call a user function; with a limit, cancel it (async) or abandon its thread (sync)."""
    if limit is None:
        result = fn(scope, *args)
        if is_async or hasattr(result, "__await__"):
            result = await result
        return result
    import asyncio

    timeout = asyncio.timeout(limit)
    try:
        async with timeout:
            if is_async:
                return await fn(scope, *args)
            result = await asyncio.to_thread(fn, scope, *args)
            return (await result) if hasattr(result, "__await__") else result
    except TimeoutError:
        if not timeout.expired():
            raise  # the function's own TimeoutError
        if not is_async:
            detach(scope)
        raise _TimedOut(limit, abandoned=not is_async) from None
    except asyncio.CancelledError:
        if not is_async:  # the whole run was cancelled around a thread that goes on
            detach(scope)
        raise


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _TimedOut) else f"{type(exc).__name__}: {exc}"


def _undo(state: dict[str, Any], before: Mapping[str, Any], writes: list[str]) -> None:
    """Put back the keys a failed attempt wrote, as they were before it."""
    for key in writes:
        if key in before:
            state[key] = before[key]
        else:
            state.pop(key, None)


def _settle(tree: list[TreeNode], status: Literal["failed", "cancelled"], error: str = "") -> None:
    """Give every node still ``running`` its final status (a run timed out or was cancelled)."""
    for node in tree:
        if node["status"] == "running":
            node["status"] = status
            if error and "children" not in node:
                node["error"] = error
        _settle(node.get("children") or [], status, error)


def _redacted_evidence(evidence: Evidence, redact: frozenset[str]) -> Evidence:
    copy: Evidence = json_copy(evidence)
    if redact:
        checks = [*copy.get("checked", []), *(c for m in copy["matched"] for c in m["checks"])]
        for check in checks:
            if check["key"] in redact and "value" in check:
                check["value"] = _REDACTED
    return copy


def _finish(record: TreeNode, scope: Scope, started: float) -> None:
    reads, writes = access_log(scope)
    record["reads"] = _unique(reads)
    record["writes"] = _unique(writes)
    record["ms"] = (_perf() - started) * 1000.0


def _unique(keys: list[str]) -> list[str]:
    return list(dict.fromkeys(keys)) if len(keys) > 1 else keys


def _input_keys(answer: Any) -> list[str]:
    if isinstance(answer, Mapping):
        return [str(key) for key in answer]
    fields = getattr(type(answer), "model_fields", None)
    if isinstance(fields, dict):
        return list(fields)
    return []


def _next_index(steps: tuple[Step, ...], index: int, control: LoopControl) -> int:
    """Index after ``index``; past the innermost enclosing loop if a break was requested."""
    if control.requested:
        for position in range(index + 1, len(steps)):
            step = steps[position]
            if isinstance(step, LoopBack) and step.target_index <= index:
                control.requested = False
                return position + 1
    return index + 1


def _hand_up(control: LoopControl, carry: bool) -> bool:
    """Hold a break request no loop of this sequence took for the parent, once this one ends.

    Left pending, it would end the next loop this sequence enters, skipping its stages.
    """
    if control.requested:
        control.requested = False
        return True
    return carry


def _sequence_frame(index: int, loops: dict[int, int], pending: Frame) -> Frame:
    frame: Frame = {"i": index, "node": pending}
    if loops:
        frame["loops"] = {str(position): count for position, count in loops.items()}
    return frame


def _redacted(value: Any, redact: frozenset[str]) -> Any:
    if not redact:
        return value
    if isinstance(value, dict):
        return {k: _REDACTED if k in redact else _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(item, redact) for item in value]
    return value
