"""Answering many pauses at once: Runs.resume_many and POST /api/runs/resume-batch.

Each run is resumed exactly once, whatever else answers it meanwhile; a batch
mixing stages is refused whole before anything runs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from pausepoint import (
    Actor,
    BatchItem,
    MixedBatchError,
    PausableHandler,
    ResumeInputError,
    Runs,
    Scope,
    flow_chart,
    open_store,
)
from pausepoint.server import create_app
from stores.support import BACKENDS, fresh_store_url

APPLIED: Counter[str] = Counter()
"""How often each run's answer was applied (its ``after`` stage ran)."""


def ask(scope: Scope) -> Any:
    return {"question": f"Refund {scope.amount}?"}


def apply(scope: Scope, answer: Any) -> None:
    scope.approved = answer["approved"] if isinstance(answer, dict) else answer.approved


def after(scope: Scope) -> None:
    APPLIED[scope.run_id] += 1


class Answer(BaseModel):
    approved: bool


def charts() -> dict[str, Any]:
    refund = (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "Approve", PausableHandler(ask, apply), "approve", input_schema=Answer
        )
        .add_function("After", after, "after")
        .build()
    )
    guarded = (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "Approve", PausableHandler(ask, apply), "approve", assignees=["managers"]
        )
        .add_function("After", after, "after")
        .build()
    )
    other = (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function("Check", PausableHandler(ask, apply), "check")
        .add_function("After", after, "after")
        .build()
    )
    return {"refund": refund, "guarded": guarded, "other": other}


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_store_url(str(request.param), tmp_path) as url:
        yield url


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[Runs]:
    async with Runs(open_store(store_url), charts()) as opened:
        yield opened


async def paused(runs: Runs, chart: str = "refund", n: int = 1) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        record = await runs.start(chart, {"amount": 100 + i})
        assert record.pause is not None
        out.append((record.run_id, record.pause.pause_id))
    return out


async def test_five_runs_one_answered_meanwhile_each_gets_its_result(runs: Runs) -> None:
    """Five runs, one answered before the batch: four done, one stale; each answer applied once."""
    items = await paused(runs, n=5)
    await runs.resume(items[2][0], {"approved": False}, actor="lee")
    missing = ("no-such-run", "p")
    results = await runs.resume_many([*items, missing], {"approved": True}, actor="kim")
    assert [r.run_id for r in results] == [*(i[0] for i in items), "no-such-run"]
    assert [r.status for r in results] == ["done", "done", "stale", "done", "done", "refused"]
    assert {r.run_status for r in results if r.status == "done"} == {"completed"}
    assert results[2].error is not None
    assert results[2].error.startswith(("StalePauseError", "RunAlreadyClaimedError"))
    assert results[5].error is not None
    assert results[5].error.startswith("RunNotFoundError")
    assert all(APPLIED[run_id] == 1 for run_id, _ in items)
    for run_id, _ in items:  # nothing lost: every run ended, with the right answer
        record = await runs.get(run_id)
        assert record.status == "completed"
        resumed = [e for e in record.audit if e.kind == "resumed"]
        assert [e.actor for e in resumed] == ["lee" if run_id == items[2][0] else "kim"]


async def test_concurrent_batches_over_the_same_runs_answer_each_run_once(runs: Runs) -> None:
    """Three batches over the same eight runs at once: each run done in exactly one of them."""
    items = await paused(runs, n=8)
    batches = await asyncio.gather(
        *(
            runs.resume_many(items, {"approved": True}, actor=who, concurrency=3)
            for who in ("kim", "lee", "ann")
        )
    )
    for position, (run_id, _) in enumerate(items):
        statuses = [batch[position].status for batch in batches]
        assert statuses.count("done") == 1, statuses
        assert set(statuses) <= {"done", "stale"}
        assert APPLIED[run_id] == 1
        assert (await runs.get(run_id)).status == "completed"


async def test_a_batch_mixing_stages_is_refused_whole(runs: Runs) -> None:
    """Pauses of two stages: MixedBatchError naming both, and no run resumed."""
    items = [*(await paused(runs, n=2)), *(await paused(runs, "other"))]
    with pytest.raises(
        MixedBatchError, match=r"2 stages: 'check' of chart 'other', 'approve' of chart 'refund'"
    ):
        await runs.resume_many(items, {"approved": True})
    for run_id, _ in items:
        assert (await runs.get(run_id)).status == "paused"
        assert APPLIED[run_id] == 0


async def test_an_unfit_answer_is_refused_whole(runs: Runs) -> None:
    """An answer failing the stage's schema: ResumeInputError before any run is claimed."""
    items = await paused(runs, n=2)
    with pytest.raises(ResumeInputError):
        await runs.resume_many(items, {"approved": "maybe"})
    assert [(await runs.get(r)).status for r, _ in items] == ["paused", "paused"]


async def test_not_assigned_items_are_told_and_stay_paused(runs: Runs) -> None:
    """Pauses assigned to managers: others get not_assigned (run stays), a manager answers."""
    items = await paused(runs, "guarded", n=2)
    refused = await runs.resume_many(items, {"approved": True}, actor="lee", groups=["staff"])
    assert {r.status for r in refused} == {"not_assigned"}
    assert [(await runs.get(r)).status for r, _ in items] == ["paused", "paused"]
    done = await runs.resume_many(
        [BatchItem(run_id=r, pause_id=p) for r, p in items],
        {"approved": True},
        actor="kim",
        groups=["managers"],
    )
    assert [(r.status, r.run_status) for r in done] == [("done", "completed")] * 2


async def test_a_run_named_twice_is_answered_once(runs: Runs) -> None:
    """The same run twice in one batch: done once, the repeat is stale."""
    (item,) = await paused(runs)
    results = await runs.resume_many(
        [item, {"run_id": item[0], "pause_id": item[1]}], {"approved": True}
    )
    assert [r.status for r in results] == ["done", "stale"]
    assert APPLIED[item[0]] == 1


# -- over HTTP -----------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[Runs, httpx.AsyncClient]]:
    tokens: dict[str, Any] = {"tok-kim": "kim", "tok-boss": Actor("bo", groups=["managers"])}
    async with Runs(open_store(f"sqlite:///{tmp_path / 'runs.db'}"), charts()) as opened:
        app = create_app(opened, tokens, session_secret="s")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield opened, http


KIM = {"Authorization": "Bearer tok-kim"}


def body(items: list[tuple[str, str]], answer: Any) -> dict[str, Any]:
    return {"items": [{"run_id": r, "pause_id": p} for r, p in items], "input": answer}


async def test_resume_batch_route_gives_one_result_per_run(
    client: tuple[Runs, httpx.AsyncClient],
) -> None:
    """POST /api/runs/resume-batch: done with the new status, stale for the one answered meanwhile."""
    runs, http = client
    items = await paused(runs, n=5)
    await runs.resume(items[0][0], {"approved": True}, actor="lee")
    response = await http.post(
        "/api/runs/resume-batch", json=body(items, {"approved": True}), headers=KIM
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["run_id"] for r in results] == [r for r, _ in items]
    assert [r["status"] for r in results] == ["stale", "done", "done", "done", "done"]
    assert results[1]["run_status"] == "completed"
    assert results[1]["error"] is None
    assert results[0]["error"]
    for run_id, _ in items[1:]:
        audit = (await runs.get(run_id)).audit
        assert [e.actor for e in audit if e.kind == "resumed"] == ["kim"]


async def test_resume_batch_route_refusals(client: tuple[Runs, httpx.AsyncClient]) -> None:
    """400 for mixed stages (nothing resumed), 422 for an unfit answer, 401 without a token, not_assigned."""
    runs, http = client
    mixed = [*(await paused(runs)), *(await paused(runs, "other"))]
    response = await http.post(
        "/api/runs/resume-batch", json=body(mixed, {"approved": True}), headers=KIM
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "MixedBatchError"
    assert "one batch per stage" in response.json()["message"]
    assert {(await runs.get(r)).status for r, _ in mixed} == {"paused"}

    unfit = await http.post(
        "/api/runs/resume-batch", json=body(mixed[:1], {"approved": "maybe"}), headers=KIM
    )
    assert unfit.status_code == 422
    anonymous = await http.post("/api/runs/resume-batch", json=body(mixed[:1], {"approved": True}))
    assert anonymous.status_code == 401

    guarded = await paused(runs, "guarded", n=2)
    refused = await http.post(
        "/api/runs/resume-batch", json=body(guarded, {"approved": True}), headers=KIM
    )
    assert [r["status"] for r in refused.json()["results"]] == ["not_assigned"] * 2
    boss = await http.post(
        "/api/runs/resume-batch",
        json=body(guarded, {"approved": True}),
        headers={"Authorization": "Bearer tok-boss"},
    )
    assert [r["status"] for r in boss.json()["results"]] == ["done"] * 2
