"""docs/architecture.md's "Following a resume", held true: the calls a resume makes.

A stage's resume handler records the Python stack it runs on. A resume through
``POST /api/runs/{id}/resume`` must reach it through the functions the page
names, in that order, each a plain call a reader can follow.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from pausepoint import PausableHandler, Runs, Scope, flow_chart, open_store

from .conftest import KIM, make_client

PATH = [
    ("server/_api.py", "resume_run"),
    ("durable/runs.py", "answer"),
    ("durable/runs.py", "_answer"),
    ("durable/_driver.py", "drive"),
    ("durable/_driver.py", "proceed"),
    ("engine/executor.py", "_resume_checked"),
    ("engine/_traversal.py", "walk"),
    ("engine/_stages.py", "pausable"),
]

seen: list[list[tuple[str, str]]] = []


def ask(scope: Scope) -> dict[str, Any]:
    return {"question": "go on?"}


def answered(scope: Scope, answer: Any) -> None:
    seen.append([(frame.filename, frame.function) for frame in inspect.stack()])
    scope.answer = answer


def begin(scope: Scope) -> None:
    scope.asked = True


def chart() -> Any:
    return (
        flow_chart("Begin", begin, "begin")
        .add_pausable_function("Ask", PausableHandler(execute=ask, resume=answered), "ask")
        .build()
    )


def _where(filename: str) -> str:
    parts = Path(filename).parts
    return "/".join(parts[parts.index("pausepoint") + 1 :]) if "pausepoint" in parts else ""


async def test_a_resume_reaches_the_stage_through_the_calls_the_docs_name(tmp_path: Path) -> None:
    """Route → Runs.answer → Runs._answer → RunDriver.drive → proceed → executor → walk → stage."""
    seen.clear()
    async with Runs(open_store(f"sqlite:///{tmp_path / 'runs.db'}"), {"ask": chart()}) as runs:
        record = await runs.start("ask", {})
        async with make_client(runs) as client:
            response = await client.post(
                f"/api/runs/{record.run_id}/resume", json={"input": "yes"}, headers=KIM
            )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
    [stack] = seen
    ours = [(_where(filename), function) for filename, function in reversed(stack)]
    ours = [(where, function) for where, function in ours if where]
    positions = []
    for where, function in PATH:
        hits = [i for i, (w, f) in enumerate(ours) if w.startswith(where) and f == function]
        assert hits, f"{where} {function} is not on the stack: {ours}"
        positions.append(hits[0])
    assert positions == sorted(positions), ours
