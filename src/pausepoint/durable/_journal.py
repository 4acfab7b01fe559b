"""The journal: what each step of a durable run changed, as small append-only entries.

While a claimed run goes on, ``Runs`` turns the executor's progress after every
stage into one :class:`~pausepoint.stores.base.JournalEntry` and appends it (one
write). An entry holds only what changed, so a long run writes each value about
once, not the whole state after every stage. Its ``data``:

``set``
    State keys whose value changed, with the new value.
``ext``
    List-valued keys that grew at their end (a conversation, a log): only the
    new items.
``del``
    State keys removed.
``mv``
    ``[[from, to], ...]``: a key removed whose list went onto the end of list
    ``to`` (results gathered under one key, then merged into a conversation),
    before the items ``ext`` adds: written once, not as both an extension and
    a removal.
``tree``
    ``[i, nodes]``: the execution tree from top-level position ``i`` on is now
    ``nodes`` (earlier nodes did not change).
``cont``
    Where the run goes on after this step (the executor's continuation); a
    ``paused`` entry also holds the ``pauses`` it waits on.

At a pause or the end the run's record gets the compacted result (the
checkpoint, or the final snapshot). Replaying the entries of a segment on the
checkpoint it started from gives the state, tree and continuation after any of
its steps: what crash recovery resumes from, and what history reads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pausepoint.engine.trace import TreeNode
from pausepoint.stores.base import JournalEntry

__all__ = ["Tracker", "diff", "replay"]


def diff(
    old_state: Mapping[str, Any],
    new_state: Mapping[str, Any],
    old_tree: Sequence[TreeNode],
    new_tree: Sequence[TreeNode],
) -> dict[str, Any]:
    """Return the entry data that turns the old state and tree into the new ones.

    The new values are referenced, not copied: the caller hands over JSON it owns.
    """
    changed: dict[str, Any] = {}
    grown: dict[str, list[Any]] = {}
    for key, value in new_state.items():
        if key in old_state:
            old = old_state[key]
            if old == value:
                continue
            grows = type(old) is list and type(value) is list and len(value) > len(old) > 0
            if grows and value[: len(old)] == old:
                grown[key] = value[len(old) :]
                continue
        changed[key] = value
    data: dict[str, Any] = {}
    if changed:
        data["set"] = changed
    if grown:
        data["ext"] = grown
    removed = [key for key in old_state if key not in new_state]
    if removed and grown:
        moved = _moves(old_state, removed, grown)
        if moved:
            data["mv"] = moved
            removed = [key for key in removed if key not in {m[0] for m in moved}]
            for source, into in moved:
                rest = grown[into][len(old_state[source]) :]
                if rest:
                    grown[into] = rest
                else:
                    del grown[into]
            if not grown:
                del data["ext"]
    if removed:
        data["del"] = removed
    start = _first_change(old_tree, new_tree)
    if start < len(new_tree) or start < len(old_tree):
        data["tree"] = [start, list(new_tree[start:])]
    return data


def _moves(
    old_state: Mapping[str, Any], removed: list[str], grown: dict[str, list[Any]]
) -> list[list[str]]:
    """The removed lists that are the start of what a grown list gained (one per list)."""
    moves: list[list[str]] = []
    for into, items in grown.items():
        for key in removed:
            old = old_state[key]
            if (
                type(old) is list
                and 0 < len(old) <= len(items)
                and items[: len(old)] == old
                and all(key != m[0] for m in moves)
            ):
                moves.append([key, into])
                break
    return moves


def _first_change(old: Sequence[TreeNode], new: Sequence[TreeNode]) -> int:
    """The first top-level position where the trees differ (usually near their end)."""
    shared = min(len(old), len(new))
    # Nodes before the last two rarely change: check them at once, in C.
    settled = max(shared - 2, 0)
    start = settled if old[:settled] == new[:settled] else 0
    while start < shared and old[start] == new[start]:
        start += 1
    return start


def replay(state: dict[str, Any], tree: list[TreeNode], entries: Sequence[JournalEntry]) -> Any:
    """Apply entries in order to ``state`` and ``tree`` (changed in place).

    Returns:
        The continuation of the last entry that has one (``None`` if none has).
    """
    continuation = None
    for entry in entries:
        data = entry.data
        state.update(data.get("set", {}))
        for source, into in data.get("mv", ()):
            state[into] = [*state.get(into, []), *state.pop(source)]
        for key, items in data.get("ext", {}).items():
            state[key] = [*state.get(key, []), *items]
        for key in data.get("del", ()):
            state.pop(key, None)
        if "tree" in data:
            start, nodes = data["tree"]
            tree[start:] = nodes
        if "cont" in data:
            continuation = data["cont"]
    return continuation


class Tracker:
    """Follows one claimed segment of a run and makes its journal entries.

    Args:
        state: The state the segment starts from (JSON, owned by the tracker).
        tree: The execution tree it starts from (JSON, owned by the tracker).
        resumed: The stage answered, when the segment is a resume; its first
            entry is then ``resumed`` by ``actor``.
        actor: Who answered.
    """

    def __init__(
        self,
        state: dict[str, Any],
        tree: list[TreeNode],
        *,
        resumed: str | None = None,
        actor: str | None = None,
    ) -> None:
        self._state = state
        self._tree = tree
        self._resumed = resumed
        self._actor = actor

    def step(self, state: dict[str, Any], tree: list[TreeNode], continuation: Any) -> JournalEntry:
        """The entry for a finished stage, from the executor's progress (JSON it hands over)."""
        data = diff(self._state, state, self._tree, tree)
        data["cont"] = continuation
        return self._entry(data, state, tree)

    def end(
        self,
        state: dict[str, Any],
        tree: list[TreeNode],
        paused: Mapping[str, Any] | None,
    ) -> list[JournalEntry]:
        """The entries that close the segment: its last stage, or the pause if it paused.

        Args:
            state: The final state (JSON).
            tree: The final execution tree (JSON).
            paused: The checkpoint, when the run paused.
        """
        data = diff(self._state, state, self._tree, tree)
        if paused is None:
            return [self._entry(data, state, tree)] if data or self._resumed else []
        entries: list[JournalEntry] = []
        if self._resumed is not None:  # the answer, then a pause again without a stage between
            entries.append(self._entry(data, state, tree))
            data = {}
        pauses = paused["pauses"]
        data.update(cont=paused["continuation"], pauses=pauses)
        entries.append(
            JournalEntry(
                kind="paused",
                stage_id=pauses[0]["stage_id"] if pauses else "",
                at=time.time(),
                data=data,
            )
        )
        return entries

    def _entry(
        self, data: dict[str, Any], state: dict[str, Any], tree: list[TreeNode]
    ) -> JournalEntry:
        self._state, self._tree = state, tree
        if self._resumed is not None:
            stage_id, self._resumed = self._resumed, None
            return JournalEntry(
                kind="resumed", stage_id=stage_id, at=time.time(), actor=self._actor, data=data
            )
        return JournalEntry(kind="stage", stage_id=_last_stage(tree), at=time.time(), data=data)


def _last_stage(tree: Sequence[TreeNode]) -> str:
    """The path of the stage that finished last: the deepest last node."""
    node: TreeNode | None = tree[-1] if tree else None
    path = ""
    while node is not None:
        path = node["id"]
        children = node.get("children")
        node = children[-1] if children else None
    return path
