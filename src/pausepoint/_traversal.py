"""Traversal: the walk over a chart that runs, pauses and resumes it.

Every node either finishes (returns ``None``) or reports that it is waiting on
one or more pauses by returning a *frame*: a JSON dict saying where in that
node the wait is. The frames of every level together form the checkpoint's
``continuation``. Resuming walks the same code with those frames: nodes that
finished before the pause are never entered again; a paused stage whose answer
arrived runs ``resume``; one still unanswered returns its frame unchanged, so a
fork keeps all its pending pauses and joins only when every branch is done.

:class:`Traversal` holds the walk; :class:`~pausepoint.executor.FlowChartExecutor`
adds the public API and the run's bookkeeping on top. Nothing here is public.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._json import NotJSONError, json_copy
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
)
from .errors import (
    CheckpointFormatError,
    LoopLimitError,
    PausepointError,
    RunTimeoutError,
    StageError,
    StageTimeoutError,
)
from .scope import LoopControl, Scope, access_log, detach, evidence_of
from .trace import (
    Attempt,
    Evidence,
    TreeNode,
    summarize_pause,
)

if TYPE_CHECKING:
    from .chart import Branch, Node, Retry
    from .state import StateCodec

from .contracts import validate_run_output

__all__ = ["ExecutorStatus", "Frame", "ProgressCallback", "Traversal"]

ExecutorStatus = Literal["idle", "running", "paused", "completed", "failed", "cancelled"]

ProgressCallback = Callable[["Checkpoint"], Awaitable[None]]
"""Called with a progress checkpoint after each stage (see the executor's docstring)."""

Frame = dict[str, Any]

_perf = time.perf_counter
_MISSING: Any = object()
_REDACTED = "***"


class _Env:
    """The state a sequence reads and writes, and the path prefix of its stages."""

    __slots__ = ("codec", "prefix", "state")

    def __init__(self, state: dict[str, Any], codec: StateCodec, prefix: str) -> None:
        self.state = state
        self.codec = codec
        self.prefix = prefix


class Traversal:
    """The walk itself; the attributes are set up by ``FlowChartExecutor``."""

    _chart: FlowChart
    _status: ExecutorStatus
    _run_id: str
    _input: dict[str, Any]
    _state: dict[str, Any]
    _tree: list[TreeNode]
    _continuation: Frame | None
    _pauses: list[PendingPause]
    _previous_pauses: dict[str, PendingPause]
    _answers: dict[str, Any]
    _control: LoopControl
    _started_at: float
    _paused_at: float
    _error: PausepointError | None
    _on_progress: ProgressCallback | None
    _levels: list[tuple[Any, ...]]
    _fork_depth: int
    _seq: int
    _cancel: tuple[str | None, str | None] | None
    _output: Any
    _signing_key: str | bytes | None

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
        notes = access_log(scope)[2]
        if notes:
            record["resume"]["notes"] = notes
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
    reads, writes, notes = access_log(scope)
    record["reads"] = _unique(reads)
    record["writes"] = _unique(writes)
    record["ms"] = (_perf() - started) * 1000.0
    if notes:
        record["notes"] = notes


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
