"""Helpers for test_pause_everywhere.py and test_executor.py.

Side effects are counted in a :class:`Log` that lives outside the state, so a
stage that runs again after a resume shows up even if it writes nothing new.
Every resume goes through ``json.loads(json.dumps(checkpoint))`` and a fresh
executor, as it would in another process.
"""

import json
from collections.abc import Callable
from typing import Any

from pausepoint import FlowChart, FlowChartExecutor, PausableHandler, Scope

_QUESTION: Any = object()


class Log:
    """Records which stage functions ran, in order, outside the shared state."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def take(self) -> list[str]:
        """Return the calls since the last take and start a new list."""
        calls, self.calls = self.calls, []
        return calls

    def stage(self, name: str, **writes: Any) -> Callable[[Scope], None]:
        """A plain stage that logs ``name`` and writes ``writes`` to the state."""

        def run(scope: Scope) -> None:
            self.calls.append(name)
            for key, value in writes.items():
                scope[key] = value

        return run

    def route(self, name: str, choose: Callable[[Scope], Any]) -> Callable[[Scope], Any]:
        """A decider or selector function that logs ``name`` and returns ``choose(scope)``."""

        def run(scope: Scope) -> Any:
            self.calls.append(name)
            return choose(scope)

        return run

    def pausable(self, name: str, data: Any = _QUESTION, *, key: str | None = None) -> Any:
        """A pausable handler pausing with ``data`` (``{"question": "<name>?"}`` by default).

        Its resume writes the answer to ``key`` (default ``name``).
        """
        pause_data = {"question": f"{name}?"} if data is _QUESTION else data

        def execute(scope: Scope) -> Any:
            self.calls.append(f"{name}:execute")
            return pause_data

        def resume(scope: Scope, answer: Any) -> None:
            self.calls.append(f"{name}:resume")
            scope[key or name] = answer

        return PausableHandler(execute, resume)


def roundtrip(checkpoint: Any) -> dict[str, Any]:
    """Send a checkpoint through JSON text, as a store would."""
    assert checkpoint is not None, "expected a paused run with a checkpoint"
    result: dict[str, Any] = json.loads(json.dumps(checkpoint))
    return result


def checkpoint_of(executor: FlowChartExecutor) -> dict[str, Any]:
    """Return the paused executor's checkpoint after a trip through JSON."""
    assert executor.status == "paused"
    assert executor.is_paused()
    return roundtrip(executor.get_checkpoint())


async def run_fresh(
    chart: FlowChart, input: dict[str, Any] | None = None, **kwargs: Any
) -> FlowChartExecutor:
    """Run ``chart`` in a new executor."""
    executor = FlowChartExecutor(chart)
    await executor.run(input, **kwargs)
    return executor


async def resume_fresh(
    chart: FlowChart, checkpoint: Any, *args: Any, **kwargs: Any
) -> FlowChartExecutor:
    """Resume ``checkpoint`` (sent through JSON) in a new executor."""
    executor = FlowChartExecutor(chart)
    await executor.resume(roundtrip(checkpoint), *args, **kwargs)
    return executor


def flat(tree: list[Any]) -> list[tuple[str, str]]:
    """``(id, status)`` of every execution-tree node, depth first; loop edges as ``"loop"``."""
    out: list[tuple[str, str]] = []
    for node in tree:
        out.append((node["id"], "loop" if node["kind"] == "loop" else node["status"]))
        out.extend(flat(node.get("children") or []))
    return out


def assert_continues(before: list[str], after: list[str], new: list[str]) -> None:
    """``after`` holds every line of ``before`` in order, and besides them exactly ``new``, in order.

    For forks the narrative follows the tree, so a resumed branch's lines sit among
    the lines written before the pause rather than after all of them.
    """
    rest: list[str] = []
    pending = list(before)
    for line in after:
        if pending and line == pending[0]:
            pending.pop(0)
        else:
            rest.append(line)
    assert pending == [], f"lines from before the pause missing or out of order: {pending}"
    assert rest == new
