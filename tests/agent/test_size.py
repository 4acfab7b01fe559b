"""Messages live once in the state; the checkpoint grows per turn by the tree alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pausepoint import FlowChartExecutor
from pausepoint.agent import (
    AssistantMessage,
    ScriptedModel,
    agent_chart,
    ask_human,
    tool,
    tool_call,
)

ROOT = Path(__file__).resolve().parents[2]


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


@tool
def search(query: str) -> str:
    """Search."""
    return f"found {query}"


async def paused_after(turns: int) -> dict[str, Any]:
    replies = [
        AssistantMessage(f"turn {n}", [tool_call("search", {"query": f"q{n}"})])
        for n in range(1, turns)
    ]
    replies.append(AssistantMessage(None, [tool_call("ask_human", {"question": "Go on?"})]))
    chart = agent_chart(
        ScriptedModel(replies, record=False), [search, ask_human], max_turns=turns + 1
    )
    executor = FlowChartExecutor(chart)
    assert await executor.run({"prompt": "go"}) == "paused"
    checkpoint = executor.get_checkpoint()
    assert checkpoint is not None
    return dict(checkpoint)


async def test_messages_are_kept_once_whatever_the_number_of_turns() -> None:
    """Besides the messages, the state stays a few hundred bytes at 5 and at 40 turns, and the
    checkpoint without its execution tree stays within 1.2x the messages' JSON."""
    for turns in (5, 40):
        checkpoint = await paused_after(turns)
        state = checkpoint["shared_state"]
        messages = size(state["messages"])
        assert size(state) - messages < 300
        assert size({**checkpoint, "execution_tree": []}) < 1.2 * messages + 1500
        assert json.dumps(checkpoint).count('"turn 3"') == 1


async def test_the_tree_is_what_grows_per_turn() -> None:
    """Measured: the execution tree adds about 1 KB per turn (see bench/agent_size.py)."""
    small, large = await paused_after(10), await paused_after(30)
    per_turn = (size(large["execution_tree"]) - size(small["execution_tree"])) / 20
    assert 700 < per_turn < 1300


@pytest.mark.slow
def test_the_size_benchmark_runs_in_quick_mode() -> None:
    """python -m bench.agent_size --quick prints the table for both profiles."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.agent_size", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "terse    pausepoint" in done.stdout
    assert "typical  LangGraph, add_messages" in done.stdout
