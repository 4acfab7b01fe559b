"""Traversal: the walk over a chart that runs, pauses and resumes it.

Every node either finishes (returns ``None``) or reports that it is waiting on
one or more pauses by returning a *frame*: a JSON dict saying where in that
node the wait is. The frames of every level together form the checkpoint's
``continuation``. Resuming walks the same code with those frames: nodes that
finished before the pause are never entered again; a paused stage whose answer
arrived runs ``resume``; one still unanswered returns its frame unchanged, so a
fork keeps all its pending pauses and joins only when every branch is done.

:class:`Traversal` holds the walk over sequences, loops, branches, forks,
subflows and for-each items; calling one stage is :mod:`pausepoint.engine._stages`'
part, and :class:`~pausepoint.engine.executor.FlowChartExecutor` adds the public API on
top. Nothing here is public.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pausepoint.errors import (
    LoopLimitError,
    PausepointError,
    RunTimeoutError,
    StageError,
)

from .chart import (
    ITEM_KEY,
    PATH_SEPARATOR,
    Decider,
    ForEach,
    FunctionStage,
    LoopBack,
    Parallel,
    PausableStage,
    Selector,
    Step,
    Subflow,
)
from .scope import LoopControl
from .trace import TreeNode

if TYPE_CHECKING:
    from .chart import Branch, Node
    from .executor import ExecutorStatus

from ._frames import (
    DeciderFrame,
    ForEachFrame,
    ForkFrame,
    ItemFrame,
    NodeFrame,
    SequenceFrame,
    SubflowFrame,
)
from ._run import ChartRun, DeciderLevel, Env, SequenceLevel, SubflowLevel
from ._stages import ProgressCallback, StageRunner, _Cancelled, decode_state
from .contracts import validate_run_output

__all__ = ["Traversal"]

_perf = time.perf_counter


class Traversal:
    """The walk over one run's chart: sequences, loops, branches, forks, subflows, for-each.

    Made per run, resume or continuation with the :class:`~pausepoint.engine._run.ChartRun`
    it walks and the :class:`~pausepoint.engine._stages.StageRunner` that runs its stages.

    Args:
        run: The run in progress.
        stages: Runs each stage against ``run``.
        on_progress: Awaited with a progress checkpoint after each step outside forks.
        signing_key: Signs those checkpoints.
    """

    def __init__(
        self,
        run: ChartRun,
        stages: StageRunner,
        on_progress: ProgressCallback | None,
        signing_key: str | bytes | None,
    ) -> None:
        self._run = run
        self._stages = stages
        self._chart = run.chart
        self._on_progress = on_progress
        self._signing_key = signing_key

    async def walk(
        self, continuation: SequenceFrame | None, limit: float | None
    ) -> tuple[ExecutorStatus, SequenceFrame | None, Any]:
        """Run the chart from ``continuation`` (its start when ``None``) to a pause or the end.

        Returns:
            ``completed`` (with the output the chart's output model made),
            ``paused`` (with the continuation of the pending pauses) or ``cancelled``.
        """
        run = self._run
        env = Env(run.state, self._chart.codec, "")
        work = self._sequence(self._chart.steps, env, run.tree, continuation)
        try:
            frame = await (work if limit is None else self._bounded(work, limit))
        except _Cancelled as stop:
            self._stopped(stop)
            return "cancelled", None, None
        if frame is not None:
            run.paused_at = time.time()
            return "paused", frame, None
        output = None
        if self._chart.output_contract is not None:
            output = validate_run_output(self._chart, run.state)
        return "completed", None, output

    async def _bounded(
        self, work: Coroutine[Any, Any, SequenceFrame | None], limit: float
    ) -> SequenceFrame | None:
        """Await the traversal, cancelling it at its next ``await`` once ``limit`` seconds pass."""
        import asyncio

        timeout = asyncio.timeout(limit)
        try:
            async with timeout:
                return await work
        except TimeoutError:
            if not timeout.expired():
                raise
            _settle(self._run.tree, "failed", f"the run timed out after {limit:g} s")
            raise RunTimeoutError(
                f"run {self._run.run_id!r} of chart {self._chart.name!r} took longer than its "
                f"timeout of {limit:g} s; the stage in flight was cancelled",
                run_id=self._run.run_id,
                limit=limit,
            ) from None

    def _stopped(self, stop: _Cancelled) -> None:
        """Finish a cancelled run: mark what was in flight, say where it stopped and why."""
        run = self._run
        _settle(run.tree, "cancelled")
        actor, reason = run.cancel or (None, None)
        record: TreeNode = {
            "id": stop.path,
            "name": stop.name,
            "kind": "cancel",
            "status": "done",
            "seq": run.tick(),
        }
        if actor is not None:
            record["actor"] = actor
        if reason is not None:
            record["reason"] = reason
        run.tree.append(record)

    @staticmethod
    def _cancelled_at(step: Step, env: Env) -> _Cancelled:
        """The signal that stops a cancelled run before ``step``."""
        if isinstance(step, LoopBack):
            return _Cancelled(env.prefix + step.target, step.target_name)
        return _Cancelled(env.prefix + step.id, step.name)

    async def _sequence(
        self, steps: tuple[Step, ...], env: Env, tree: list[TreeNode], frame: SequenceFrame | None
    ) -> SequenceFrame | None:
        run = self._run
        if self._on_progress is not None and run.fork_depth == 0:
            return await self._tracked_sequence(steps, env, tree, frame)
        control = run.control
        carry = False  # a break_loop() no loop of this sequence encloses: for the parent
        loops: dict[int, int] = {}
        index = 0
        if frame is not None:
            index = frame["i"]
            if "loops" in frame:  # absent until a loop of this sequence runs
                loops = {int(key): count for key, count in frame["loops"].items()}
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
            if run.cancel is not None:
                raise self._cancelled_at(step, env)
            if type(step) is LoopBack:
                index = self._loop_back(step, index, loops, env, tree)
                continue
            if type(step) is FunctionStage:
                await self._stages.stage(step, env, tree)
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
        self, steps: tuple[Step, ...], env: Env, tree: list[TreeNode], frame: SequenceFrame | None
    ) -> SequenceFrame | None:
        """``_sequence`` that reports a progress checkpoint after every finished step.

        Kept apart so runs without ``on_progress`` pay nothing for it.
        """
        run = self._run
        control = run.control
        carry = False  # a break_loop() no loop of this sequence encloses: for the parent
        level = SequenceLevel()  # read by ChartRun.progress_continuation
        run.levels.append(level)
        try:
            pending_frame = frame["node"] if frame is not None else None
            if frame is not None:
                level.index = frame["i"]
                level.loops = {int(key): count for key, count in frame.get("loops", {}).items()}
            while level.index < len(steps):
                index = level.index
                step = steps[index]
                if pending_frame is None and run.cancel is not None:
                    raise self._cancelled_at(step, env)
                if isinstance(step, LoopBack):
                    level.index = self._loop_back(step, index, level.loops, env, tree)
                    continue
                pending = await self._node(step, env, tree, pending_frame)
                pending_frame = None
                if pending is not None:
                    return _sequence_frame(index, level.loops, pending)
                level.index = _next_index(steps, index, control)
                carry = _hand_up(control, carry)
                if run.fork_depth == 0 and level.index < len(steps):
                    assert self._on_progress is not None
                    progress = run.checkpoint(
                        "running", run.progress_continuation(), self._signing_key
                    )
                    await self._on_progress(progress)
            control.requested = carry
            return None
        finally:
            run.levels.pop()

    def _loop_back(
        self, step: LoopBack, index: int, loops: dict[int, int], env: Env, tree: list[TreeNode]
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
                "seq": self._run.tick(),
            }
        )
        return step.target_index

    def _node(
        self, node: Node, env: Env, tree: list[TreeNode], frame: Any
    ) -> Coroutine[Any, Any, NodeFrame | None]:
        """Enter ``node``, afresh (``frame`` None) or at its frame.

        ``frame`` is the frame type of ``node``'s kind (a :class:`PauseFrame` for a
        pausable stage, and so on): the checkpoint validator checked that of every
        stored frame, and the traversal writes no other.
        """
        if type(node) is PausableStage:
            return self._stages.pausable(node, env, tree, frame)
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

    async def _stage_as_node(self, node: FunctionStage, env: Env, tree: list[TreeNode]) -> None:
        await self._stages.stage(node, env, tree)

    async def _decider(
        self, node: Decider, env: Env, tree: list[TreeNode], frame: DeciderFrame | None
    ) -> DeciderFrame | None:
        path = env.prefix + node.id
        if frame is None:
            record: TreeNode = {
                "id": path,
                "name": node.name,
                "kind": "decider",
                "status": "running",
                "children": [],
                "seq": self._run.tick(),
            }
            position = len(tree)
            tree.append(record)
            key, scope = await self._stages.route(node, record, env, path)
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
            self._stages.keep_evidence(record, scope)
            child_frame = None
        else:
            position = frame["t"]
            record = tree[position]
            key = frame["branch"]
            child_frame = frame["node"]
        run = self._run
        tracked = self._on_progress is not None and run.fork_depth == 0
        if tracked:
            run.levels.append(DeciderLevel(position, key))
        try:
            pending = await self._child(
                record, self._node(node.branches[key], env, record["children"], child_frame)
            )
        finally:
            if tracked:
                run.levels.pop()
        if pending is None:
            record["status"] = "done"
            return None
        record["status"] = "paused"
        return {"t": position, "branch": key, "node": pending}

    async def _fork(
        self, node: Selector | Parallel, env: Env, tree: list[TreeNode], frame: ForkFrame | None
    ) -> ForkFrame | None:
        path = env.prefix + node.id
        branches: list[tuple[str, Branch, NodeFrame | None]]
        if frame is None:
            record: TreeNode = {
                "id": path,
                "name": node.name,
                "kind": node.kind,
                "status": "running",
                "children": [],
                "seq": self._run.tick(),
            }
            position = len(tree)
            tree.append(record)
            if isinstance(node, Selector):
                returned, scope = await self._stages.route(node, record, env, path)
                keys = self._selected(node, record, returned)
                record["chose"] = keys
                self._stages.keep_evidence(record, scope)
            else:
                keys = list(node.branches)
            branches = [(key, node.branches[key], None) for key in keys]
        else:
            position = frame["t"]
            record = tree[position]
            branches = [(key, node.branches[key], sub) for key, sub in frame["branches"].items()]
        children = record["children"]
        self._run.fork_depth += 1
        try:
            results = await self._child(
                record,
                _gather([self._node(branch, env, children, sub) for _, branch, sub in branches]),
            )
        finally:
            self._run.fork_depth -= 1
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
        self, node: ForEach, env: Env, tree: list[TreeNode], frame: ForEachFrame | None
    ) -> ForEachFrame | None:
        """Run the body per item; keep every item's pause; join when all items are done.

        The frame holds each pending item's own continuation and state, and the
        results of the items already done.
        """
        path = env.prefix + node.id
        codec = node.body.codec
        work: list[tuple[int, str, TreeNode, dict[str, Any], SequenceFrame | None]] = []
        if frame is None:
            record: TreeNode = {
                "id": path,
                "name": node.name,
                "kind": "foreach",
                "status": "running",
                "children": [],
                "reads": [node.items_key],
                "seq": self._run.tick(),
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
            labels = _item_labels(node, items, record, path)
            for index, item in enumerate(items):
                item_path = f"{path}[{labels[index]}]"
                item_record: TreeNode = {
                    "id": item_path,
                    "name": f"{node.name} #{index}",
                    "kind": "item",
                    "status": "running",
                    "children": [],
                    "seq": self._run.tick(),
                }
                children.append(item_record)
                state = {
                    "item": codec.check("item", item, item_path),
                    "index": index,
                }
                work.append((index, item_path, item_record, state, None))
        else:
            position = frame["t"]
            record = tree[position]
            children = record["children"]
            done = dict(frame["done"])
            total = frame["total"]
            for key, item_frame in frame["items"].items():
                item_record = children[item_frame["t"]]
                item_path = item_record["id"]
                state = decode_state(item_frame["state"], f"{item_path} state", codec)
                work.append((int(key), item_path, item_record, state, item_frame["seq"]))
        limit = _Limit(node.concurrency)

        async def run_item(
            index: int,
            item_path: str,
            item_record: TreeNode,
            state: dict[str, Any],
            seq: SequenceFrame | None,
        ) -> tuple[int, ItemFrame | None, Any]:
            async with limit:
                inner = Env(state, codec, item_path + PATH_SEPARATOR)
                pending = await self._child(
                    item_record,
                    self._sequence(node.body.steps, inner, item_record["children"], seq),
                )
            if pending is None:
                item_record["status"] = "done"
                return index, None, state.get("result")
            item_record["status"] = "paused"
            item_frame: ItemFrame = {
                "t": index,  # item records are created in item order
                "seq": pending,
                "state": codec.encode(state),
            }
            return index, item_frame, None

        self._run.fork_depth += 1
        try:
            outcomes = await self._child(record, _gather([run_item(*job) for job in work]))
        finally:
            self._run.fork_depth -= 1
        pending_items: dict[str, ItemFrame] = {}
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
        self, node: Subflow, env: Env, tree: list[TreeNode], frame: SubflowFrame | None
    ) -> SubflowFrame | None:
        path = env.prefix + node.id
        codec = node.chart.codec if node.isolated else env.codec
        if frame is None:
            record: TreeNode = {
                "id": path,
                "name": node.name,
                "kind": "subflow",
                "status": "running",
                "children": [],
                "seq": self._run.tick(),
            }
            position = len(tree)
            tree.append(record)
            state = self._seed_subflow(node, env, record, path) if node.isolated else env.state
            child_frame = None
        else:
            position = frame["t"]
            record = tree[position]
            state = (
                decode_state(frame["state"], f"subflow {path!r} state", codec)
                if node.isolated
                else env.state
            )
            child_frame = frame["seq"]
        inner = Env(state, codec, path + PATH_SEPARATOR)
        run = self._run
        tracked = self._on_progress is not None and run.fork_depth == 0
        if tracked:
            run.levels.append(SubflowLevel(position, state if node.isolated else None, codec))
        try:
            pending = await self._child(
                record, self._sequence(node.chart.steps, inner, record["children"], child_frame)
            )
        finally:
            if tracked:
                run.levels.pop()
        if pending is not None:
            record["status"] = "paused"
            paused: SubflowFrame = {"t": position, "seq": pending}
            if node.isolated:
                paused["state"] = codec.encode(state)
            return paused
        if node.isolated:
            self._map_back(node, env, state, record, path)
        record["status"] = "done"
        return None

    def _seed_subflow(self, node: Subflow, env: Env, record: TreeNode, path: str) -> dict[str, Any]:
        seed = self._map(node.input_mapper, dict(env.state), record, path, "input_mapper")
        codec = node.chart.codec
        return {key: codec.check(key, value, path) for key, value in seed.items()}

    def _map_back(
        self, node: Subflow, env: Env, state: dict[str, Any], record: TreeNode, path: str
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


def _settle(tree: list[TreeNode], status: Literal["failed", "cancelled"], error: str = "") -> None:
    """Give every node still ``running`` its final status (a run timed out or was cancelled)."""
    for node in tree:
        if node["status"] == "running":
            node["status"] = status
            if error and "children" not in node:
                node["error"] = error
        _settle(node.get("children") or [], status, error)


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


def _sequence_frame(index: int, loops: dict[int, int], pending: NodeFrame) -> SequenceFrame:
    frame: SequenceFrame = {"i": index, "node": pending}
    if loops:
        frame["loops"] = {str(position): count for position, count in loops.items()}
    return frame


def _item_labels(node: ForEach, items: list[Any], record: TreeNode, path: str) -> list[str]:
    """Name each item in stage paths: its position, or its key when the for-each has one."""
    if node.key is None:
        return [str(index) for index in range(len(items))]
    labels: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            label = node.key(item)
        except Exception as exc:
            problem = f"its key function raised {type(exc).__name__}: {exc}"
        else:
            if not isinstance(label, str) or not ITEM_KEY.fullmatch(label):
                problem = (
                    f"its key {label!r} is not 1 to 100 of the characters A-Z a-z 0-9 _ . : @ + -"
                )
            elif label in seen:
                problem = f"its key {label!r} is item {seen[label]}'s key too"
            else:
                seen[label] = index
                labels.append(label)
                continue
        record["status"] = "failed"
        record["error"] = f"item {index}: {problem}"
        raise StageError(
            f"for-each {path!r} ({node.name}): item {index}: {problem}",
            stage_id=path,
            stage_name=node.name,
        )
    return labels
