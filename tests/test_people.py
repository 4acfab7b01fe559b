"""Who may answer a pause: assignees, groups, the admin group, re-assignment, "assigned to me".

The Runs tests run on every store (memory, SQLite, Redis, PostgreSQL), each
with a store of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pausepoint import (
    Actor,
    ChartError,
    FlowChartExecutor,
    OnTimeout,
    PausableHandler,
    PermissionDeniedError,
    RunNotPausedError,
    Runs,
    StalePauseError,
    flow_chart,
    open_store,
)
from pausepoint.durable.people import may_answer
from pausepoint.engine.scope import Scope
from pausepoint.stores import Store
from stores.support import BACKENDS, fresh_store_url


class Decision(BaseModel):
    approved: bool


def _ask(scope: Scope) -> dict[str, Any]:
    return {"question": f"refund {scope.amount}?"}


def _apply(scope: Scope, answer: Decision) -> None:
    scope.approved = answer.approved


def _by_amount(scope: Scope) -> list[str]:
    return ["directors"] if scope.amount > 1000 else ["managers"]


def _broken(scope: Scope) -> list[str]:
    raise LookupError("no directory")


def approval(assignees: Any) -> Any:
    return (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "Approve",
            PausableHandler(execute=_ask, resume=_apply),
            "approve",
            input_schema=Decision,
            assignees=assignees,
        )
        .add_function("Pay", lambda scope: None, "pay")
        .build()
    )


def charts() -> dict[str, Any]:
    timed = (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "Approve",
            PausableHandler(execute=_ask, resume=_apply),
            "approve",
            input_schema=Decision,
            assignees=["managers"],
            timeout=0.05,
            on_timeout=OnTimeout.resume_with({"approved": False}),
        )
        .build()
    )
    return {
        "timed": timed,
        "static": approval(["managers", "ana"]),
        "dynamic": approval(_by_amount),
        "broken": approval(_broken),
        "open": approval(None),
    }


# -- the rule and the builder ---------------------------------------------------


def test_an_actor_parses_from_the_token_syntax() -> None:
    assert Actor.parse("kim:managers,finance") == Actor("kim", ["finance", "managers"])
    assert Actor.parse("kim") == Actor("kim")
    assert Actor.parse("kim:managers").principals == {"kim", "managers"}
    assert str(Actor("kim", ["b", "a"])) == "kim:a,b"
    for bad in ("", ":managers", "kim:managers,,x"):
        with pytest.raises(ValueError, match="name"):
            Actor.parse(bad)
    with pytest.raises(ValueError, match=r"groups=\['managers'\]"):
        Actor("kim", groups="managers")


def test_who_may_answer() -> None:
    assert may_answer((), None)
    assert may_answer(("managers",), "kim", ["managers"])
    assert may_answer(("kim",), "kim")
    assert may_answer(("managers",), "root", ["admin"])
    assert not may_answer(("managers",), "lee", ["finance"])
    assert not may_answer(("managers",), None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"assignees": "managers"}, r"assignees=\['managers'\]"),
        ({"assignees": ["managers", ""]}, "non-empty strings"),
        ({"notify": "json://hooks.example"}, "notify must be a list"),
        ({"remind_every": 0}, "remind_every must be a positive duration"),
        ({"escalate_after": timedelta(hours=1)}, "escalate_after and escalate_to go together"),
        ({"escalate_to": ["directors"]}, "escalate_after and escalate_to go together"),
    ],
)
def test_a_stage_with_a_bad_people_setting_fails_at_build(
    kwargs: dict[str, Any], message: str
) -> None:
    builder = flow_chart("Receive", lambda scope: None, "receive")
    with pytest.raises(ChartError, match=message) as caught:
        builder.add_pausable_function(
            "Approve", PausableHandler(execute=_ask, resume=_apply), "approve", **kwargs
        )
    assert caught.value.stage_id == "approve"


def test_the_checkpoint_names_who_may_answer() -> None:
    executor = FlowChartExecutor(approval(_by_amount))
    executor.run_sync({"amount": 5000})
    (pause,) = executor.get_checkpoint()["pauses"]
    assert pause["assignees"] == ["directors"]
    resumed = FlowChartExecutor(approval(_by_amount))
    resumed.resume_sync(executor.get_checkpoint(), {"approved": True})
    assert resumed.get_snapshot()["shared_state"]["approved"] is True


# -- durable runs ------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_store_url(str(request.param), tmp_path) as url:
        yield url


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[Runs]:
    store: Store = open_store(store_url)
    made = Runs(store, charts())
    yield made
    await asyncio.to_thread(made._driver.keeper.close)
    await store.aclose()


async def test_someone_not_assigned_is_refused_and_the_run_stays_paused(runs: Runs) -> None:
    run = await runs.start("static", {"amount": 700})
    assert run.pause is not None
    assert run.pause.assignees == ("ana", "managers")
    with pytest.raises(PermissionDeniedError, match="not assigned") as caught:
        await runs.resume(run.run_id, {"approved": True}, actor="lee", groups=["finance"])
    error = caught.value
    assert (error.run_id, error.stage_id, error.actor) == (run.run_id, "approve", "lee")
    assert error.assignees == ("ana", "managers")
    assert "managers" in str(error)
    assert "lee (groups: finance)" in str(error)
    with pytest.raises(PermissionDeniedError):  # the check before a hand-off refuses too
        await runs.check_resume(run.run_id, {"approved": True}, actor="lee")
    after = await runs.get(run.run_id)
    assert after.status == "paused"
    assert after.version == run.version
    refused = [e for e in after.audit if e.kind == "resume_refused"]
    assert len(refused) == 2
    assert refused[0].actor == "lee"
    assert refused[0].data["error"] == "PermissionDeniedError"
    assert refused[0].data["reason"].startswith("not assigned")

    done = await runs.resume(run.run_id, {"approved": True}, actor="kim", groups=["managers"])
    assert done.status == "completed"


@pytest.mark.parametrize(
    ("actor", "groups"),
    [("ana", None), ("root", ["admin"]), (None, None)],
    ids=["assigned-by-name", "admin-group", "trusted-code"],
)
async def test_who_may_answer_an_assigned_pause(
    runs: Runs, actor: str | None, groups: list[str] | None
) -> None:
    run = await runs.start("static", {"amount": 700})
    done = await runs.resume(run.run_id, {"approved": True}, actor=actor, groups=groups)
    assert done.status == "completed"


async def test_an_unassigned_pause_is_anyones(runs: Runs) -> None:
    run = await runs.start("open", {"amount": 700})
    assert run.pause is not None
    assert run.pause.assignees == ()
    done = await runs.resume(run.run_id, {"approved": True}, actor="lee", groups=["finance"])
    assert done.status == "completed"


async def test_assignees_may_depend_on_the_scope(runs: Runs) -> None:
    small = await runs.start("dynamic", {"amount": 10})
    big = await runs.start("dynamic", {"amount": 5000})
    assert small.pause is not None
    assert small.pause.assignees == ("managers",)
    assert big.pause is not None
    assert big.pause.assignees == ("directors",)
    paused = next(e for e in big.audit if e.kind == "paused")
    assert paused.data["assignees"] == ["directors"]


async def test_an_assignees_function_that_raises_leaves_the_pause_unassigned(
    runs: Runs,
) -> None:
    run = await runs.start("broken", {"amount": 10})
    assert run.status == "paused"
    assert run.pause is not None
    assert run.pause.assignees == ()
    paused = next(e for e in run.audit if e.kind == "paused")
    assert paused.data["assign_error"] == "assignees= raised LookupError: no directory"
    done = await runs.resume(run.run_id, {"approved": True}, actor="lee", groups=["finance"])
    assert done.status == "completed"


async def test_the_inbox_filters_what_is_assigned_to_me(runs: Runs) -> None:
    for_managers = [(await runs.start("dynamic", {"amount": 10})).run_id for _ in range(3)]
    for_directors = [(await runs.start("dynamic", {"amount": 5000})).run_id for _ in range(2)]
    for_anyone = (await runs.start("open", {"amount": 1})).run_id

    async def mine(who: Any) -> list[str]:
        found, cursor = [], None
        while True:
            page = await runs.pending(assigned_to=who, limit=2, cursor=cursor)
            found.extend(item.run_id for item in page.items)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    kim = Actor("kim", ["managers"])
    assert sorted(await mine(kim)) == sorted(for_managers)
    assert sorted(await mine(["directors"])) == sorted(for_directors)
    both = await mine(Actor("dee", ["managers", "directors"]))
    assert sorted(both) == sorted(for_managers + for_directors)
    assert len(both) == len(set(both))  # one entry per pause, however many names match
    assert await mine(["nobody"]) == []
    everything = await runs.pending(limit=100)
    assert for_anyone in {item.run_id for item in everything.items}
    page = await runs.pending(assigned_to=kim, chart="static", limit=10)
    assert page.items == ()
    with pytest.raises(TypeError, match="Actor or a list"):
        await runs.pending(assigned_to="kim")

    # answered pauses leave the inbox of their assignees
    await runs.resume(for_managers[0], {"approved": True}, actor="kim", groups=["managers"])
    assert sorted(await mine(kim)) == sorted(for_managers[1:])


async def test_a_pause_can_be_reassigned(runs: Runs) -> None:
    run = await runs.start("static", {"amount": 700})
    assert run.pause is not None
    moved = await runs.reassign(
        run.run_id, run.pause.pause_id, ["directors"], actor="ops", reason="on leave"
    )
    assert moved.assignees == ("directors",)
    record = await runs.get(run.run_id)
    assert record.pause is not None
    assert record.pause.assignees == ("directors",)
    event = record.audit[-1]
    assert (event.kind, event.actor) == ("reassigned", "ops")
    assert event.data == {
        "pause_id": run.pause.pause_id,
        "stage_id": "approve",
        "from": ["ana", "managers"],
        "to": ["directors"],
        "reason": "on leave",
    }
    assert [p.run_id for p in (await runs.pending(assigned_to=["directors"])).items] == [run.run_id]
    assert (await runs.pending(assigned_to=["managers"])).items == ()
    with pytest.raises(PermissionDeniedError):
        await runs.resume(run.run_id, {"approved": True}, actor="kim", groups=["managers"])
    with pytest.raises(StalePauseError):
        await runs.reassign(run.run_id, "not-a-pause", ["x"])
    done = await runs.resume(run.run_id, {"approved": True}, actor="dee", groups=["directors"])
    assert done.status == "completed"
    with pytest.raises(RunNotPausedError):
        await runs.reassign(run.run_id, run.pause.pause_id, ["x"])


async def test_a_deadline_s_default_answer_needs_no_assignee(runs: Runs) -> None:
    """on_timeout=resume_with(...) answers as the run itself, whoever the pause is assigned to."""
    run = await runs.start("timed", {"amount": 5})
    assert run.pause is not None
    assert run.pause.assignees == ("managers",)
    await asyncio.sleep(0.1)
    assert await runs.expire_due() == [run.run_id]
    done = await runs.get(run.run_id)
    assert done.status == "completed"
    assert done.snapshot is not None
    assert done.snapshot["shared_state"]["approved"] is False
    assert "resume_refused" not in [e.kind for e in done.audit]
