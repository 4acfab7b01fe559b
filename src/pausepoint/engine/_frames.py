"""The continuation's frames: where in the chart a paused run waits, as typed JSON.

A checkpoint's ``continuation`` is a :class:`SequenceFrame` for the chart's
top-level sequence. Each level says where its sequence stopped (``i``) and holds
the frame of the node it stopped in; the leaves are :class:`PauseFrame` s, one
per pending pause. The traversal (:mod:`pausepoint.engine._traversal`) writes and reads
them, and the checkpoint validator (:mod:`pausepoint.engine.checkpoint`) checks a stored
one against these same definitions before anything runs. They are plain dicts at
run time (JSON as they stand), so the types cost nothing.

Field names are short because every pending pause of every stored run carries
them: ``t`` is the position of the node's record in its execution-tree list.
"""

# No ``from __future__ import annotations`` here: TypedDict reads NotRequired[...]
# from evaluated annotations only, and __required_keys__ must be right (see is_frame).
from typing import Any, NotRequired, TypedDict, TypeGuard

__all__ = [
    "DeciderFrame",
    "ForEachFrame",
    "ForkFrame",
    "ItemFrame",
    "NodeFrame",
    "PauseFrame",
    "SequenceFrame",
    "SubflowFrame",
    "is_frame",
]


class SequenceFrame(TypedDict):
    """A sequence (the chart, a subflow's, a for-each item's) stopped at a step.

    Attributes:
        i: Index of the step it stopped at.
        node: That step's frame; ``None`` in a progress checkpoint, where the
            step has not started yet.
        loops: How often each loop-back (by its index, as a string) went back.
    """

    i: int
    node: "NodeFrame | None"
    loops: NotRequired[dict[str, int]]


class PauseFrame(TypedDict):
    """A pausable stage waiting for its answer.

    Attributes:
        t: Position of the stage's record in its tree list.
        stage_id: The stage's path.
        pause_id: The pause it waits on.
        brk: The stage asked to break out of its loop; applied once it resumes.
    """

    t: int
    stage_id: str
    pause_id: str
    brk: NotRequired[bool]


class DeciderFrame(TypedDict):
    """A decider whose chosen branch waits.

    Attributes:
        t: Position of the decider's record.
        branch: The branch it chose.
        node: The branch's frame.
    """

    t: int
    branch: str
    node: "NodeFrame"


class ForkFrame(TypedDict):
    """A parallel fork or selector with branches still waiting.

    Attributes:
        t: Position of the fork's record.
        branches: The frame of each waiting branch, by branch key.
    """

    t: int
    branches: dict[str, "NodeFrame"]


class ItemFrame(TypedDict):
    """One waiting item of a for-each.

    Attributes:
        t: The item's index (item records are made in item order).
        seq: Where the item's body waits.
        state: The item's own state, encoded.
    """

    t: int
    seq: SequenceFrame
    state: dict[str, Any]


class ForEachFrame(TypedDict):
    """A for-each with items still waiting.

    Attributes:
        t: Position of the for-each's record.
        items: The waiting items, by index as a string.
        done: The results of the items done, by index as a string.
        total: How many items there are.
    """

    t: int
    items: dict[str, ItemFrame]
    done: dict[str, Any]
    total: int


class SubflowFrame(TypedDict):
    """A subflow whose sequence waits.

    Attributes:
        t: Position of the subflow's record.
        seq: Where its sequence waits.
        state: An isolated subflow's own state, encoded.
    """

    t: int
    seq: SequenceFrame
    state: NotRequired[dict[str, Any]]


NodeFrame = PauseFrame | DeciderFrame | ForkFrame | ForEachFrame | SubflowFrame
"""The frame of a node that waits; which one follows from the node's kind."""


def is_frame(frame: object, kind: type[Any]) -> TypeGuard[dict[str, Any]]:
    """Tell whether ``frame`` is a dict lacking none of ``kind``'s required keys.

    ``kind`` is one of the frame types above; the checkpoint validator uses it
    so that a stored frame is checked against the definition the traversal writes.
    """
    required: frozenset[str] = kind.__required_keys__
    return isinstance(frame, dict) and required.issubset(frame)
