"""History, fork and retry, against every store: side effects are counted."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pausepoint import (
    ChartChangedError,
    FlowChart,
    OnTimeout,
    PausableHandler,
    RunAlreadyClaimedError,
    Runs,
    RunStateError,
    Scope,
    StateError,
    StepNotFoundError,
    flow_chart,
    open_store,
)
from stores.support import fresh_store_url


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with fresh_store_url(request.param, tmp_path) as url:
        yield url


class Effects:
    """Counts what each stage did, and can make a stage fail until it is "fixed"."""

    def __init__(self) -> None:
        self.done: Counter[str] = Counter()
        self.broken: set[str] = set()

    def stage(self, name: str) -> Any:
        def run(scope: Scope) -> None:
            self.done[name] += 1
            if name in self.broken:
                raise RuntimeError(f"{name} is broken")
            scope[name] = scope.get(name, 0) + 1

        return run

    def chart(self) -> FlowChart:
        def ask(scope: Scope) -> dict[str, Any]:
            self.done["ask"] += 1
            return {"question": "ship?", "amount": scope.amount}

        def answer(scope: Scope, given: Any) -> None:
            self.done["answer"] += 1
            scope.decision = given["ok"]

        return (
            flow_chart("A", self.stage("a"), "a")
            .add_function("B", self.stage("b"), "b")
            .add_pausable_function("Ask", PausableHandler(ask, answer), "ask")
            .add_function("C", self.stage("c"), "c")
            .add_function("D", self.stage("d"), "d")
            .build()
        )


def kinds(steps: Any) -> list[tuple[str, str]]:
    return [(s.kind, s.stage_id) for s in steps]


async def finished(runs: Runs, effects: Effects) -> str:
    rec = await runs.start("c", {"amount": 5})
    await runs.resume(rec.run_id, {"ok": True}, actor="kim")
    return rec.run_id


async def test_fork_at_a_stage_runs_it_and_what_follows_only(url: str) -> None:
    effects = Effects()
    async with Runs(open_store(url), {"c": effects.chart()}) as runs:
        parent = await finished(runs, effects)
        history = await runs.history(parent)
        assert kinds(history) == [
            ("stage", "a"),
            ("stage", "b"),
            ("paused", "ask"),
            ("resumed", "ask"),
            ("stage", "c"),
            ("stage", "d"),
        ]
        before = (await runs.get(parent)).audit
        effects.done.clear()
        child = await runs.fork(parent, at=4, state_patch={"amount": 7}, actor="lee")
        assert child.status == "completed"
        assert effects.done == {"c": 1, "d": 1}  # a, b, ask, answer did not run again
        assert child.snapshot is not None
        state = child.snapshot["shared_state"]
        assert (state["amount"], state["decision"], state["c"], state["d"]) == (7, True, 1, 1)
        assert child.audit[0].kind == "forked"
        assert child.audit[0].data == {"parent_run_id": parent, "at": 4}
        assert child.audit[0].actor == "lee"
        parent_audit = (await runs.get(parent)).audit
        assert parent_audit[: len(before)] == before  # the original is untouched ...
        assert parent_audit[-1].kind == "forked_to"  # ... but for the link to its fork
        assert parent_audit[-1].data == {"run_id": child.run_id, "at": 4}
        # the fork's history goes on from the parent's steps before the fork point
        assert kinds(await runs.history(child.run_id)) == kinds(history)


async def test_fork_at_a_pause_waits_for_another_answer_and_forks_of_forks_work(
    url: str,
) -> None:
    effects = Effects()
    async with Runs(open_store(url), {"c": effects.chart()}) as runs:
        parent = await finished(runs, effects)
        effects.done.clear()
        child = await runs.fork(parent, at=3)  # the resumed step: its pause again
        assert child.status == "paused"
        assert child.pause is not None
        assert child.pause.data == {"question": "ship?", "amount": 5}
        assert effects.done == {}
        page = await runs.pending()
        assert [item.run_id for item in page.items] == [child.run_id]
        done = await runs.resume(child.run_id, {"ok": False}, actor="lee")
        assert done.status == "completed"
        assert done.snapshot is not None
        assert done.snapshot["shared_state"]["decision"] is False
        assert effects.done == {"answer": 1, "c": 1, "d": 1}

        effects.done.clear()
        grandchild = await runs.fork(done.run_id, at=5)  # d again, on the child's state
        assert grandchild.status == "completed"
        assert effects.done == {"d": 1}
        assert grandchild.snapshot is not None
        assert grandchild.snapshot["shared_state"]["decision"] is False
        assert grandchild.snapshot["shared_state"]["d"] == 1

        effects.done.clear()
        fresh = await runs.fork(parent, at=0, state_patch={"amount": 900})
        assert fresh.status == "paused"
        assert effects.done == {"a": 1, "b": 1, "ask": 1}
        assert fresh.pause is not None
        assert fresh.pause.data["amount"] == 900


async def test_bad_forks_are_refused_and_change_nothing(url: str) -> None:
    effects = Effects()
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold(scope: Scope) -> None:
        holding.set()
        await release.wait()

    slow = flow_chart("Hold", hold, "hold").build()
    async with Runs(open_store(url), {"c": effects.chart(), "slow": slow}) as runs:
        parent = await finished(runs, effects)
        audit = (await runs.get(parent)).audit
        with pytest.raises(StepNotFoundError, match=r"no step 6; its steps are 0 to 5"):
            await runs.fork(parent, at=6)
        with pytest.raises(StepNotFoundError):
            await runs.fork(parent, at=-1)
        with pytest.raises(StateError, match="amount"):
            await runs.fork(parent, at=4, state_patch={"amount": object()})
        assert (await runs.get(parent)).audit == audit
        assert (await runs.pending()).items == ()

        running = asyncio.create_task(runs.start("slow", {}, run_id="busy"))
        await asyncio.wait_for(holding.wait(), 30)
        with pytest.raises(RunStateError, match="is running"):
            await runs.fork("busy", at=0)
        release.set()
        await running


async def test_retry_after_a_fix_runs_the_failed_stage_on_the_last_good_state(url: str) -> None:
    effects = Effects()
    effects.broken.add("c")
    async with Runs(open_store(url), {"c": effects.chart()}) as runs:
        rec = await runs.start("c", {"amount": 5})
        failed = await runs.resume(rec.run_id, {"ok": True}, actor="kim")
        assert failed.status == "failed"
        assert "c is broken" in (failed.error or "")
        waiting = await runs.start("c", {"amount": 1})
        with pytest.raises(RunStateError, match="is paused; only a failed run"):
            await runs.retry(waiting.run_id)
        effects.done.clear()
        effects.broken.clear()  # the fix is deployed
        done = await runs.retry(rec.run_id, actor="ops")
        assert done.status == "completed"
        assert effects.done == {"c": 1, "d": 1}  # not a, b, ask, answer
        assert done.snapshot is not None
        state = done.snapshot["shared_state"]
        assert (state["a"], state["b"], state["c"], state["d"]) == (1, 1, 1, 1)
        assert [e.kind for e in done.audit] == [
            "started",
            "paused",
            "resumed",
            "failed",
            "retried",
            "completed",
        ]
        assert done.audit[4].actor == "ops"
        with pytest.raises(RunStateError, match="is completed"):
            await runs.retry(rec.run_id)


async def test_a_failed_first_stage_and_a_failed_answer_are_retried(url: str) -> None:
    effects = Effects()
    effects.broken.add("a")
    async with Runs(open_store(url), {"c": effects.chart()}) as runs:
        rec = await runs.start("c", {"amount": 5})
        assert rec.status == "failed"
        effects.broken.clear()
        again = await runs.retry(rec.run_id)
        assert again.status == "paused"
        assert effects.done == {"a": 2, "b": 1, "ask": 1}


async def test_two_concurrent_retries_give_one_retry(url: str) -> None:
    effects = Effects()
    effects.broken.add("d")
    async with Runs(open_store(url), {"c": effects.chart()}) as runs:
        run_id = await finished(runs, effects)
        assert (await runs.get(run_id)).status == "failed"
        effects.broken.clear()
        effects.done.clear()
        outcomes = await asyncio.gather(
            runs.retry(run_id), runs.retry(run_id), return_exceptions=True
        )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1
    assert won[0].status == "completed"
    assert len(lost) == 1
    assert isinstance(lost[0], RunAlreadyClaimedError | RunStateError), lost
    assert effects.done == {"d": 1}


async def test_a_run_failed_by_its_deadline_waits_again_after_a_retry(url: str) -> None:
    def ask(scope: Scope) -> dict[str, str]:
        return {"question": "?"}

    def answer(scope: Scope, given: Any) -> None:
        scope.given = given

    chart = flow_chart(
        "Ask",
        PausableHandler(ask, answer),
        "ask",
        timeout=0.01,
        on_timeout=OnTimeout.fail(),
    ).build()
    async with Runs(open_store(url), {"t": chart}) as runs:
        rec = await runs.start("t", {})
        await asyncio.sleep(0.05)
        assert await runs.expire_due() == [rec.run_id]
        assert (await runs.get(rec.run_id)).status == "failed"
        again = await runs.retry(rec.run_id)
        assert again.status == "paused"
        assert [p.pause_id for p in again.pauses] == [p.pause_id for p in rec.pauses]
        done = await runs.resume(rec.run_id, {"ok": 1})
        assert done.status == "completed"


@pytest.mark.parametrize("url", ["sqlite", "postgres", "redis"], indirect=True)
async def test_a_fork_of_a_run_whose_chart_changed_is_refused(url: str) -> None:
    """The chart registered under the run's name changed since it ran: ChartChangedError."""
    effects = Effects()
    async with Runs(open_store(url), {"c": effects.chart()}) as runs:
        parent = await finished(runs, effects)
    changed = (
        flow_chart("A", effects.stage("a"), "a").add_function("Z", effects.stage("z"), "z").build()
    )
    async with Runs(open_store(url), {"c": changed}) as runs:
        with pytest.raises(ChartChangedError, match="changed since"):
            await runs.fork(parent, at=1)
        assert [e.kind for e in (await runs.get(parent)).audit][-1] == "completed"
