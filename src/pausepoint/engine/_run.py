"""One run of a chart in progress: what ``run``, ``resume`` and ``continue_from`` work on.

:class:`~pausepoint.engine.executor.FlowChartExecutor` makes a :class:`ChartRun` for
each call and hands it to its collaborators: the :class:`~pausepoint.engine._traversal.Traversal`
walks the chart over it, and the :class:`~pausepoint.engine._stages.StageRunner` calls
stages against it. Everything one call changes lives here (the state, the
execution tree, the pauses, the enclosing levels, the event sequence, the
cancel request); the executor keeps the last one to answer ``get_snapshot``,
``get_checkpoint`` and the rest of its public API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._frames import SequenceFrame
from ._json import json_copy
from .checkpoint import FORMAT_VERSION, Checkpoint, PendingPause, sign_checkpoint
from .scope import LoopControl, Scope
from .trace import TreeNode, last_seq

if TYPE_CHECKING:
    from .chart import FlowChart
    from .state import StateCodec

__all__ = ["ChartRun", "DeciderLevel", "Env", "Level", "SequenceLevel", "SubflowLevel"]


class Env:
    """The state a sequence reads and writes, and the path prefix of its stages."""

    __slots__ = ("codec", "prefix", "state")

    def __init__(self, state: dict[str, Any], codec: StateCodec, prefix: str) -> None:
        self.state = state
        self.codec = codec
        self.prefix = prefix


@dataclass(slots=True)
class SequenceLevel:
    """A sequence enclosing the running stage: the step it is at, its loop counts."""

    index: int = 0
    loops: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubflowLevel:
    """A subflow enclosing the running stage; ``state`` is an isolated one's own."""

    position: int
    state: dict[str, Any] | None
    codec: StateCodec


@dataclass(frozen=True, slots=True)
class DeciderLevel:
    """A decider enclosing the running stage, and the branch it chose."""

    position: int
    branch: str


Level = SequenceLevel | SubflowLevel | DeciderLevel
"""What encloses the running stage, outermost first: a progress checkpoint is built from them."""


class ChartRun:
    """One run, resume or continuation in progress.

    Attributes:
        chart: The chart run.
        run_id: The run's id, kept across every resume.
        input: The input the run started with (JSON).
        state: The shared state (typed values).
        tree: The execution tree, every earlier segment included.
        started_at: When the run started (UNIX seconds).
        paused_at: When it last paused.
        previous_pauses: The pauses the checkpoint resumed had, by stage path.
        pauses: The pauses pending now.
        control: The loop-break flag stages set through ``scope.break_loop()``.
        levels: What encloses the running stage (progress checkpoints only).
        fork_depth: How many parallel forks enclose the running stage.
        seq: The last event's sequence number (see :mod:`pausepoint.engine.trace`).
        cancel: ``(actor, reason)`` once a cancel was asked.
    """

    __slots__ = (
        "cancel",
        "chart",
        "control",
        "fork_depth",
        "input",
        "levels",
        "paused_at",
        "pauses",
        "previous_pauses",
        "run_id",
        "seq",
        "started_at",
        "state",
        "tree",
    )

    def __init__(
        self,
        chart: FlowChart,
        run_id: str,
        input: dict[str, Any],
        state: dict[str, Any],
        tree: list[TreeNode],
        started_at: float,
        previous_pauses: dict[str, PendingPause] | None = None,
    ) -> None:
        self.chart = chart
        self.run_id = run_id
        self.input = input
        self.state = state
        self.tree = tree
        self.started_at = started_at
        self.paused_at = 0.0
        self.previous_pauses = previous_pauses or {}
        self.pauses: list[PendingPause] = []
        self.control = LoopControl()
        self.levels: list[Level] = []
        self.fork_depth = 0
        self.seq = last_seq(tree)
        self.cancel: tuple[str | None, str | None] | None = None

    def tick(self) -> int:
        """Return the next event's sequence number."""
        self.seq += 1
        return self.seq

    def scope(self, env: Env, path: str) -> Scope:
        """A fresh scope for the stage at ``path``, over ``env``'s state."""
        return Scope(env.state, env.codec, path, self.control, self.run_id, self.input)

    def checkpoint(
        self,
        status: Literal["paused", "running"],
        continuation: SequenceFrame,
        signing_key: str | bytes | None,
    ) -> Checkpoint:
        """The run as a checkpoint: paused at its pauses, or running at ``continuation``."""
        first = self.pauses[0] if self.pauses else None
        checkpoint: Checkpoint = {
            "format_version": FORMAT_VERSION,
            "chart_name": self.chart.name,
            "chart_fingerprint": self.chart.fingerprint,
            "run_id": self.run_id,
            "status": status,
            "input": json_copy(self.input),
            "shared_state": self.chart.codec.encode(self.state),
            "paused_stage_id": first["stage_id"] if first else "",
            "pause_data": json_copy(first["data"]) if first else None,
            "pauses": json_copy(self.pauses),
            "execution_tree": json_copy(self.tree),
            "continuation": json_copy(continuation),
            "started_at": self.started_at,
            "paused_at": self.paused_at,
        }
        if signing_key is not None:
            checkpoint["signature"] = sign_checkpoint(checkpoint, signing_key)
        return checkpoint

    def progress_continuation(self) -> SequenceFrame:
        """Compose the continuation of "about to run the next step" from the enclosing levels."""
        inner: Any = None
        for level in reversed(self.levels):
            if type(level) is SequenceLevel:
                frame: SequenceFrame = {"i": level.index, "node": inner}
                if level.loops:
                    frame["loops"] = {str(k): v for k, v in level.loops.items()}
                inner = frame
            elif type(level) is SubflowLevel:
                inner = {"t": level.position, "seq": inner}
                if level.state is not None:
                    inner["state"] = level.codec.encode(level.state)
            else:
                assert type(level) is DeciderLevel
                inner = {"t": level.position, "branch": level.branch, "node": inner}
        assert inner is not None
        top: SequenceFrame = inner
        return top
