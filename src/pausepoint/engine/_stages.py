"""Stages: how the executor calls a stage, a pausable stage's two phases, and their trace.

Each stage call gets a fresh :class:`~pausepoint.engine.scope.Scope`, records its reads,
writes and time in its execution-tree node, and turns what the stage raises into
a ``StageError``. A stage's ``retry`` policy and ``time_limit`` are applied by
``_guarded``, which stages without either never enter: the plain sync stage
keeps its fast path. :class:`StageRunner` is the traversal's collaborator
(:mod:`pausepoint.engine._traversal`): the walk decides which stage runs, the runner
runs it against the :class:`~pausepoint.engine._run.ChartRun`. Nothing here is public.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from pausepoint.errors import CheckpointFormatError, StageError, StageTimeoutError

from ._frames import PauseFrame
from ._json import NotJSONError, json_copy
from ._redact import REDACTED
from ._run import ChartRun, Env
from .chart import Decider, FunctionStage, PausableStage, Selector
from .checkpoint import Checkpoint, PendingPause
from .scope import Scope, access_log, detach, evidence_of
from .trace import (
    Attempt,
    Evidence,
    TreeNode,
    summarize_pause,
)

if TYPE_CHECKING:
    from .chart import Retry
    from .state import StateCodec


__all__ = ["ProgressCallback", "StageRunner", "decode_state"]

ProgressCallback = Callable[["Checkpoint"], Awaitable[None]]
"""Called with a progress checkpoint after each stage (see the executor's docstring)."""

_perf = time.perf_counter_ns  # stage timings: integer ns, kept to the µs in the tree
_MISSING: Any = object()


class StageRunner:
    """Calls the stages of one run and records them in its execution tree.

    Made per run, resume or continuation, with the :class:`~pausepoint.engine._run.ChartRun`
    it works on and the answers that call brings: ``answers`` maps each answered
    pausable stage's path to its validated input, and is used up as they resume.
    """

    def __init__(self, run: ChartRun, answers: dict[str, Any]) -> None:
        self._run = run
        self._answers = answers
        # read at every stage: kept here so the fast path looks them up once
        self._chart = run.chart
        self._control = run.control
        self._run_id = run.run_id
        self._input = run.input

    # -- traversal --------------------------------------------------------

    def _scope(self, env: Env, path: str) -> Scope:
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
        env: Env,
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
        env: Env,
        path: str,
        phase: str,
        retry: Retry | None,
        limit: float | None,
        *args: Any,
    ) -> tuple[Any, Scope, int]:
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
        started: int,
        retry_in: float | None,
    ) -> None:
        entry: Attempt = {
            "phase": phase,
            "attempt": attempt,
            "of": attempts,
            "error": _describe(exc),
            "ms": _ms_since(started),
            "seq": self._run.tick(),
        }
        if retry_in is not None:
            entry["retry_in"] = retry_in
        record.setdefault("attempts", []).append(entry)

    @staticmethod
    def _failure(
        record: TreeNode, scope: Scope, started: int, exc: Exception, phase: str
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

    async def stage(self, node: FunctionStage, env: Env, tree: list[TreeNode]) -> None:
        path = env.prefix + node.id
        record: TreeNode = {
            "id": path,
            "name": node.name,
            "kind": "stage",
            "status": "running",
            "seq": self._run.tick(),
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

    async def pausable(
        self, node: PausableStage, env: Env, tree: list[TreeNode], frame: PauseFrame | None
    ) -> PauseFrame | None:
        path = env.prefix + node.id
        if frame is not None:
            return await self._resume_pausable(node, env, tree, frame, path)
        record: TreeNode = {
            "id": path,
            "name": node.name,
            "kind": "pausable",
            "status": "running",
            "seq": self._run.tick(),
        }
        position = len(tree)
        tree.append(record)
        if node.retry is None and node.time_limit is None:
            scope = self._scope(env, path)
            data = await self._call(node.execute, node.execute_is_async, record, scope, "execute")
        else:
            data, scope = await self._call_guarded(
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
        key = self._business_key(node, scope, record, path) if node.key is not None else None
        pause_id = os.urandom(12).hex()
        now = time.time()
        record["status"] = "paused"
        record["pause"] = {
            "pause_id": pause_id,
            "at": now,
            "summary": summarize_pause(data, self._chart.redact),
            "seq": self._run.tick(),
        }
        pause: PendingPause = {
            "pause_id": pause_id,
            "stage_id": path,
            "data": data,
            "paused_at": now,
        }
        if key is not None:
            pause["key"] = key
        if node.assignees:
            assign_pause(pause, node, scope)
        self._run.pauses.append(pause)
        paused: PauseFrame = {"t": position, "stage_id": path, "pause_id": pause_id}
        if self._control.requested:
            self._control.requested = False
            paused["brk"] = True  # takes effect once resume has run
            record.pop("breaks_loop", None)
        return paused

    @staticmethod
    def _business_key(node: PausableStage, scope: Scope, record: TreeNode, path: str) -> str:
        """The key a pause of ``node`` waits under, from the scope it paused with."""
        assert node.key is not None
        try:
            key = node.key(scope)
        except Exception as exc:
            record["status"] = "failed"
            record["error"] = f"key= raised {type(exc).__name__}: {exc}"
            raise StageError(
                f"stage {path!r} ({node.name}): its key= function raised "
                f"{type(exc).__name__}: {exc}",
                stage_id=path,
                stage_name=node.name,
                phase="execute",
            ) from exc
        if not isinstance(key, str) or not key:
            record["status"] = "failed"
            record["error"] = f"key= returned {key!r}"
            raise StageError(
                f"stage {path!r} ({node.name}): its key= function must return a non-empty "
                f"str, got {key!r}",
                stage_id=path,
                stage_name=node.name,
                phase="execute",
            )
        return key

    async def _resume_pausable(
        self, node: PausableStage, env: Env, tree: list[TreeNode], frame: PauseFrame, path: str
    ) -> PauseFrame | None:
        answer = self._answers.pop(path, _MISSING)
        if answer is _MISSING:
            self._run.pauses.append(self._run.previous_pauses[path])
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
        reads, writes, notes = access_log(scope)
        record["resume"] = {
            "at": resumed_at,
            "input_keys": _input_keys(answer),
            "reads": _unique(reads),
            "writes": _unique(writes),
            "ms": _ms_since(started),
            "seq": self._run.tick(),
        }
        if notes:
            record["resume"]["notes"] = notes
        if frame.get("brk") or self._control.requested:
            self._control.requested = True
            record["breaks_loop"] = True
        return None

    async def route(
        self, node: Decider | Selector, record: TreeNode, env: Env, path: str
    ) -> tuple[Any, Scope]:
        """Call a decider's or selector's function; return what it chose and its scope."""
        if node.retry is None and node.time_limit is None:
            scope = self._scope(env, path)
            return await self._call(node.fn, node.is_async, record, scope, "run"), scope
        return await self._call_guarded(
            node.fn, node.is_async, record, env, path, "run", node.retry, node.time_limit
        )

    def keep_evidence(self, record: TreeNode, scope: Scope) -> None:
        """Put what ``decide``/``select`` recorded on the scope in the tree, if it chose these branches."""
        evidence = evidence_of(scope)
        if evidence is None or evidence.get("chose") != record.get("chose"):
            return  # no rules used, or the function returned something else than they chose
        record["evidence"] = _redacted_evidence(evidence, self._chart.redact)


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


def decode_state(data: Mapping[str, Any], field: str, codec: StateCodec) -> dict[str, Any]:
    """Decode a checkpoint's encoded state; a value that does not fit names its key."""
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


def assign_pause(pause: PendingPause, node: PausableStage, scope: Scope) -> None:
    """Name who may answer ``pause``: ``node.assignees``, called with the scope if a function.

    A function that raises or returns no list of names leaves the pause
    unassigned, with the reason in ``assign_error``: a pause nobody may answer
    would be worse than one anybody signed in may.
    """
    assignees = node.assignees
    if callable(assignees):
        try:
            assignees = assignees(scope)
        except Exception as exc:
            pause["assign_error"] = f"assignees= raised {type(exc).__name__}: {exc}"
            return
        if isinstance(assignees, str) or not (
            isinstance(assignees, (list, tuple, set, frozenset))
            and all(isinstance(a, str) and a for a in assignees)
        ):
            pause["assign_error"] = (
                f"assignees= must return a list of names of people or groups, got {assignees!r}"
            )
            return
    if assignees:
        pause["assignees"] = sorted(set(assignees))


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _TimedOut) else f"{type(exc).__name__}: {exc}"


def _undo(state: dict[str, Any], before: Mapping[str, Any], writes: list[str]) -> None:
    """Put back the keys a failed attempt wrote, as they were before it."""
    for key in writes:
        if key in before:
            state[key] = before[key]
        else:
            state.pop(key, None)


def _redacted_evidence(evidence: Evidence, redact: frozenset[str]) -> Evidence:
    copy: Evidence = json_copy(evidence)
    if redact:
        checks = [*copy.get("checked", []), *(c for m in copy["matched"] for c in m["checks"])]
        for check in checks:
            if check["key"] in redact and "value" in check:
                check["value"] = REDACTED
    return copy


def _finish(record: TreeNode, scope: Scope, started: int) -> None:
    reads, writes, notes = access_log(scope)
    if reads:
        record["reads"] = _unique(reads)
    if writes:
        record["writes"] = _unique(writes)
    record["ms"] = (_perf() - started) // 1000 / 1000.0  # _ms_since, inlined
    if notes:
        record["notes"] = notes


def _ms_since(started: int) -> float:
    """Milliseconds since ``started``, to the microsecond: finer digits are noise in a trace."""
    return (_perf() - started) // 1000 / 1000.0


def _unique(keys: list[str]) -> list[str]:
    return list(dict.fromkeys(keys)) if len(keys) > 1 else keys


def _input_keys(answer: Any) -> list[str]:
    """The keys the person gave: a validated model's fields left at their default are not."""
    if type(answer) is dict or isinstance(answer, Mapping):  # no ABC check for a dict
        return [str(key) for key in answer]
    fields = getattr(type(answer), "model_fields", None)
    if isinstance(fields, dict):
        given = getattr(answer, "model_fields_set", None)
        return [name for name in fields if given is None or name in given]
    return []
