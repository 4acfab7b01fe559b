"""The other process of the agent tests: resume an agent run, print one JSON line.

Usage: ``python agent_child.py COMMAND ...``

``file CHECKPOINT_PATH ANSWER_JSON``
    Resume the ``ask`` chart from a checkpoint file with a fresh executor.
``runs STORE_URL CHART RUN_ID PAUSE_ID ANSWER_JSON ACTOR``
    Answer one pause through ``Runs`` (exactly once); print the outcome or the error type.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from charts import charts  # type: ignore[import-not-found]  # sys.path[0] when run as a script

from pausepoint import FlowChartExecutor, Runs, open_store
from pausepoint.agent import transcript
from pausepoint.errors import PausepointError


async def from_file(path: str, answer: str) -> dict[str, Any]:
    checkpoint = json.loads(Path(path).read_text())  # noqa: ASYNC240  # a script: nothing else runs
    executor = FlowChartExecutor(charts["ask"])
    status = await executor.resume(checkpoint, json.loads(answer))
    state = executor.get_state()
    return {
        "pid": os.getpid(),
        "status": status,
        "answer": state.get("answer"),
        "narrative": executor.get_narrative(),
        "transcript": transcript(state["messages"]),
    }


async def through_runs(
    url: str, chart: str, run_id: str, pause_id: str, answer: str, actor: str
) -> dict[str, Any]:
    async with Runs(open_store(url), charts) as runs:
        try:
            record = await runs.resume(run_id, json.loads(answer), actor=actor, pause_id=pause_id)
        except PausepointError as exc:
            return {"pid": os.getpid(), "error": type(exc).__name__, "message": str(exc)}
        assert record.chart == chart
        state = (record.snapshot or {}).get("shared_state", {})
        return {
            "pid": os.getpid(),
            "status": record.status,
            "answer": state.get("answer"),
            "pending": [p.stage_id for p in record.pauses],
        }


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "file":
        outcome = asyncio.run(from_file(*args))
    elif command == "runs":
        outcome = asyncio.run(through_runs(*args))
    else:
        sys.exit(f"unknown command {command!r}")
    print(json.dumps(outcome))
