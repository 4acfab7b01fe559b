"""The journal's diff and replay: replaying what changed gives the new state and tree."""

from __future__ import annotations

import copy
import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pausepoint.durable._journal import diff, replay
from pausepoint.stores.base import JournalEntry

KEYS = st.sampled_from(["messages", "results", "a", "b", "log"])
ITEMS = st.lists(st.integers(0, 3) | st.text(max_size=2), max_size=4)
VALUES = st.integers(0, 3) | ITEMS
STATES = st.dictionaries(KEYS, VALUES, max_size=5)
NODES = st.lists(
    st.fixed_dictionaries({"id": st.sampled_from(["x", "y"]), "n": st.integers(0, 2)}), max_size=5
)


def entry(data: dict[str, Any]) -> JournalEntry:
    return JournalEntry(kind="stage", stage_id="x", at=time.time(), data=data)


def replayed(old: dict[str, Any], tree: list[Any], data: dict[str, Any]) -> Any:
    state, nodes = copy.deepcopy(old), copy.deepcopy(tree)
    replay(state, nodes, [entry(copy.deepcopy(data))])
    return state, nodes


@given(old=STATES, new=STATES, old_tree=NODES, new_tree=NODES)
def test_any_change_replays_exactly(
    old: dict[str, Any], new: dict[str, Any], old_tree: list[Any], new_tree: list[Any]
) -> None:
    data = diff(old, new, old_tree, new_tree)
    assert replayed(old, old_tree, data) == (new, new_tree)


@given(
    base=st.dictionaries(KEYS, VALUES, max_size=3),
    conversation=ITEMS,
    gathered=ITEMS.filter(bool),
    reply=ITEMS,
)
def test_gathered_results_merged_into_a_list_are_written_once(
    base: dict[str, Any], conversation: list[Any], gathered: list[Any], reply: list[Any]
) -> None:
    """``results`` appended to ``messages`` (and more after them), then removed: one move."""
    old = {**base, "messages": [*conversation, 0], "results": gathered}
    new = {k: v for k, v in old.items() if k != "results"}
    new["messages"] = [*old["messages"], *gathered, *reply]
    data = diff(old, new, [], [])
    assert data["mv"] == [["results", "messages"]]
    assert "del" not in data
    assert data.get("ext", {}).get("messages", []) == reply
    assert replayed(old, [], data)[0] == new


def test_only_changed_tree_nodes_are_kept() -> None:
    old = [{"id": "a", "status": "done"}, {"id": "b", "status": "running"}]
    new = [{"id": "a", "status": "done"}, {"id": "b", "status": "done"}, {"id": "c"}]
    data = diff({}, {}, old, new)
    assert data == {"tree": [1, new[1:]]}
    assert diff({"k": [1]}, {"k": [1]}, new, new) == {}
