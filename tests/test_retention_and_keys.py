"""Run lifecycle: listing by status, retention and purge, delete, answers by business key.

Every test runs on every store (memory, SQLite, Redis, PostgreSQL), each with a
store of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pausepoint import (
    ChartError,
    NoWaiterError,
    PausableHandler,
    PurgeRefusedError,
    ResumeInputError,
    ResumeTargetError,
    RunAlreadyClaimedError,
    RunIsRunningError,
    RunNotFoundError,
    Runs,
    SignalBufferFullError,
    StalePauseError,
    flow_chart,
    open_store,
)
from pausepoint.engine.scope import Scope
from pausepoint.stores import Store
from stores.support import BACKENDS, fresh_store_url

MakeRuns = Callable[..., Runs]


class Paid(BaseModel):
    paid: bool


def _pause_for_payment(scope: Scope) -> dict[str, Any]:
    return {"question": f"paid {scope.order_id}?"}


def _record_payment(scope: Scope, answer: Paid) -> None:
    scope.paid = answer.paid


def _fail_when_asked(scope: Scope) -> None:
    if scope.fail:
        raise RuntimeError("boom")
    scope.done = True


def charts() -> dict[str, Any]:
    """``payment`` pauses under ``order:<id>``; ``plain`` fails or completes as asked."""
    payment = (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "AwaitPayment",
            PausableHandler(execute=_pause_for_payment, resume=_record_payment),
            "await-payment",
            input_schema=Paid,
            key=lambda scope: f"order:{scope.order_id}",
        )
        .add_function("Ship", lambda scope: None, "ship")
        .build()
    )
    plain = flow_chart("Work", _fail_when_asked, "work").build()
    return {"payment": payment, "plain": plain}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_store_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def make_runs(backend: str, store_url: str) -> AsyncIterator[MakeRuns]:
    """Makes ``Runs`` over the test's store, each on a store object of its own (memory: shared)."""
    opened: list[Store] = []
    made: list[Runs] = []

    def make(**kwargs: Any) -> Runs:
        if backend != "memory" or not opened:
            opened.append(open_store(store_url))
        made.append(Runs(opened[-1], charts(), **kwargs))
        return made[-1]

    yield make
    for runs in made:
        await asyncio.to_thread(runs._driver.keeper.close)
    for store in opened:
        await store.aclose()


@pytest.fixture
def runs(make_runs: MakeRuns) -> Runs:
    return make_runs()


async def ids(runs: Runs, **filters: Any) -> list[str]:
    """Every run id of a listing, page by page."""
    found: list[str] = []
    cursor = None
    while True:
        page = await runs.list(limit=2, cursor=cursor, **filters)
        found.extend(item.run_id for item in page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def everything(runs: Runs) -> list[str]:
    return sorted(await ids(runs))


# -- listing ------------------------------------------------------------------------


async def test_list_pages_through_runs_of_any_status_newest_first(runs: Runs) -> None:
    """Completed, failed and paused runs are listed by status, with stage and error."""
    ok = await runs.start("plain", {"fail": False}, run_id="ok")
    bad = await runs.start("plain", {"fail": True}, run_id="bad")
    waiting = await runs.start("payment", {"order_id": 7}, run_id="waiting")
    assert (ok.status, bad.status, waiting.status) == ("completed", "failed", "paused")
    assert await ids(runs) == ["waiting", "bad", "ok"]
    assert await ids(runs, status="failed") == ["bad"]
    assert await ids(runs, status="completed", chart="plain") == ["ok"]
    assert await ids(runs, status="paused", stage="await-payment") == ["waiting"]
    assert await ids(runs, stage="work") == ["bad"]
    (failed,) = (await runs.list(status="failed")).items
    assert failed.stage == "work"
    assert failed.error is not None
    assert "boom" in failed.error
    (paused,) = (await runs.list(status="paused")).items
    assert paused.pauses[0].key == "order:7"
    assert await ids(runs, older_than=timedelta(hours=1)) == []
    with pytest.raises(ValueError, match="unknown status 'done'"):
        await runs.list(status="done")


# -- purge and retention -------------------------------------------------------------


async def test_a_purge_without_a_filter_or_of_running_runs_is_refused(runs: Runs) -> None:
    """No filter, ``running`` or an unknown status: a one-line error, nothing erased."""
    await runs.start("plain", {"fail": False}, run_id="kept")
    with pytest.raises(PurgeRefusedError, match=r"needs a filter.*nothing was erased"):
        await runs.purge()
    with pytest.raises(PurgeRefusedError, match="running runs cannot be purged"):
        await runs.purge(status="running", older_than=0)
    with pytest.raises(PurgeRefusedError, match="unknown status 'done'"):
        await runs.purge(status="done")
    assert await everything(runs) == ["kept"]


async def test_purge_erases_old_runs_of_a_status_and_keeps_paused_ones(runs: Runs) -> None:
    """Finished runs go with their audit; paused runs stay unless named; dry runs erase nothing."""
    for i in range(3):
        await runs.start("plain", {"fail": False}, run_id=f"done{i}")
    await runs.start("plain", {"fail": True}, run_id="failed")
    await runs.start("payment", {"order_id": 1}, run_id="waiting")
    assert await runs.purge(status="completed", older_than=timedelta(hours=1)) == 0
    assert await runs.purge(status="completed", dry_run=True) == 3
    assert len(await everything(runs)) == 5
    assert await runs.purge(status="completed", batch=2) == 3
    assert await everything(runs) == ["failed", "waiting"]
    with pytest.raises(RunNotFoundError):
        await runs.get("done0")
    assert await runs.purge(older_than=0) == 1  # every finished status; the paused run stays
    assert await everything(runs) == ["waiting"]
    assert await runs.purge(status="paused", chart="payment") == 1
    assert await everything(runs) == []
    assert (await runs.pending()).items == ()


async def test_sweep_applies_retention_per_status_and_per_chart(make_runs: MakeRuns) -> None:
    """A (chart, status) policy wins over the status alone; paused runs are never named here."""
    runs = make_runs(
        retention={"completed": timedelta(days=30), ("payment", "completed"): timedelta(days=90)}
    )
    await runs.start("plain", {"fail": False}, run_id="plain-done")
    paid = await runs.start("payment", {"order_id": 1}, run_id="paid")
    await runs.resume(paid.run_id, {"paid": True}, actor="kim")
    await runs.start("payment", {"order_id": 2}, run_id="waiting")
    soon = await runs.sweep()
    assert soon.purged == 0
    later = await runs.sweep(now=time.time() + timedelta(days=31).total_seconds())
    assert (later.purged, later.expired, later.recovered) == (1, [], [])
    assert await everything(runs) == ["paid", "waiting"]
    latest = await runs.sweep(now=time.time() + timedelta(days=91).total_seconds())
    assert latest.purged == 1
    assert await everything(runs) == ["waiting"]


def test_retention_names_statuses_runs_can_be_purged_in(make_runs: MakeRuns) -> None:
    """``running``, unknown statuses and ages that are not positive are refused at once."""
    with pytest.raises(ValueError, match="'running' is not a status runs can be purged in"):
        make_runs(retention={"running": 10})
    with pytest.raises(ValueError, match="'done' is not a status"):
        make_runs(retention={("refund", "done"): 10})
    with pytest.raises(ValueError, match="positive age"):
        make_runs(retention={"failed": timedelta(0)})


# -- delete ----------------------------------------------------------------------------


async def test_delete_erases_the_run_with_its_audit_and_inbox_entry(runs: Runs) -> None:
    """After delete nothing of the run is left; its id may be used again."""
    rec = await runs.start("payment", {"order_id": 3}, run_id="erase-me")
    await runs.delete(rec.run_id, actor="kim")
    with pytest.raises(RunNotFoundError):
        await runs.get("erase-me")
    with pytest.raises(RunNotFoundError):
        await runs.store.audit("erase-me")
    assert (await runs.pending()).items == ()
    assert await runs.store.list_keyed("order:3") == ()
    with pytest.raises(RunNotFoundError, match="no run 'erase-me'"):
        await runs.delete("erase-me", actor="kim")
    again = await runs.start("payment", {"order_id": 3}, run_id="erase-me")
    assert [e.kind for e in again.audit] == ["started", "paused"]


async def test_delete_of_a_running_run_is_refused_and_changes_nothing(runs: Runs) -> None:
    """A run a process holds stays whole; the error says what to do."""
    rec = await runs.start("payment", {"order_id": 4}, run_id="busy")
    stored = await runs.store.get(rec.run_id)
    await runs.store.replace(
        dataclasses.replace(stored, status="running", lease_owner="elsewhere"),
        expected_version=stored.version,
    )
    with pytest.raises(RunIsRunningError, match=r"'busy' is running.*nothing was erased"):
        await runs.delete("busy", actor="kim")
    assert (await runs.get("busy")).status == "running"
    assert len(await runs.store.audit("busy")) == 2


# -- business keys -------------------------------------------------------------------


async def test_resume_by_key_answers_the_pause_waiting_under_it_once(runs: Runs) -> None:
    """The key is computed when the stage pauses; answering by it completes the run."""
    rec = await runs.start("payment", {"order_id": 42}, run_id="o42")
    assert rec.pause is not None
    assert rec.pause.key == "order:42"
    done = await runs.resume_by_key("order:42", {"paid": True}, actor="stripe")
    assert done.run_id == "o42"
    assert done.status == "completed"
    resumed = [e for e in done.audit if e.kind == "resumed"]
    assert resumed[0].actor == "stripe"
    with pytest.raises(NoWaiterError, match="no pause waits under key 'order:42'"):
        await runs.resume_by_key("order:42", {"paid": True}, actor="stripe")


async def test_resume_by_key_checks_input_and_refuses_several_waiters(runs: Runs) -> None:
    """A bad answer leaves the run paused; two waiters under one key need signal()."""
    await runs.start("payment", {"order_id": 1}, run_id="a")
    with pytest.raises(ResumeInputError):
        await runs.resume_by_key("order:1", {"paid": "maybe"}, actor="stripe")
    assert (await runs.get("a")).status == "paused"
    await runs.start("payment", {"order_id": 1}, run_id="b")
    with pytest.raises(ResumeTargetError, match="several pauses wait under key 'order:1'"):
        await runs.resume_by_key("order:1", {"paid": True}, actor="stripe")


async def test_concurrent_answers_by_key_resume_exactly_once(make_runs: MakeRuns) -> None:
    """Two processes answer the same key at once: one wins, the other is refused."""
    first, second = make_runs(), make_runs()
    await first.start("payment", {"order_id": 9}, run_id="o9")
    outcomes = await asyncio.gather(
        first.resume_by_key("order:9", {"paid": True}, actor="a"),
        second.resume_by_key("order:9", {"paid": True}, actor="b"),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1
    assert len(lost) == 1
    assert isinstance(lost[0], RunAlreadyClaimedError | StalePauseError | NoWaiterError)
    record = await first.get("o9")
    assert [e.kind for e in record.audit].count("resumed") == 1


async def test_signal_answers_every_waiter_once(runs: Runs) -> None:
    """Every pause under the key is answered; other keys are left alone."""
    for run_id in ("x", "y"):
        await runs.start("payment", {"order_id": 5}, run_id=run_id)
    await runs.start("payment", {"order_id": 6}, run_id="other")
    records = await runs.signal("order:5", {"paid": True}, actor="stripe")
    assert sorted((r.run_id, r.status) for r in records) == [("x", "completed"), ("y", "completed")]
    assert (await runs.get("other")).status == "paused"
    assert await runs.signal("order:6", {"paid": False}, actor="stripe") != []


async def test_a_signal_nobody_waits_for_is_refused_and_changes_nothing(runs: Runs) -> None:
    """Without buffer=, an early answer is an error; the run that comes later still waits."""
    with pytest.raises(NoWaiterError, match=r"no pause waits under key 'order:8'.*buffer="):
        await runs.signal("order:8", {"paid": True}, actor="stripe")
    rec = await runs.start("payment", {"order_id": 8})
    assert rec.status == "paused"


async def test_a_buffered_signal_resumes_the_run_as_soon_as_it_pauses(runs: Runs) -> None:
    """The answer kept for the key is applied when the pause arrives, once."""
    assert await runs.signal("order:10", {"paid": True}, actor="stripe", buffer=60) == []
    rec = await runs.start("payment", {"order_id": 10})
    assert rec.status == "completed"
    assert rec.snapshot is not None
    assert rec.snapshot["shared_state"]["paid"] is True
    assert [e.actor for e in rec.audit if e.kind == "resumed"] == ["stripe"]
    second = await runs.start("payment", {"order_id": 10})
    assert second.status == "paused"  # the kept answer was used up


async def test_the_signal_buffer_is_bounded_in_count_and_time(runs: Runs) -> None:
    """A full buffer refuses more; an expired answer is never applied."""
    await runs.signal("order:11", {"paid": True}, buffer=60, buffer_limit=1)
    with pytest.raises(SignalBufferFullError, match="1 answers are kept for it already"):
        await runs.signal("order:11", {"paid": True}, buffer=60, buffer_limit=1)
    await runs.signal("order:12", {"paid": True}, buffer=0.05)
    await asyncio.sleep(0.2)
    assert (await runs.start("payment", {"order_id": 12})).status == "paused"
    report = await runs.sweep(now=time.time() + 120)
    assert report.signals_dropped == 1  # order:11's answer, expired by then


async def test_a_signal_racing_a_pause_is_never_lost(make_runs: MakeRuns) -> None:
    """A buffered signal sent while the run is on its way to the pause always meets it."""
    sender, runner = make_runs(), make_runs()
    for n in range(6):
        started, _ = await asyncio.gather(
            runner.start("payment", {"order_id": 100 + n}, run_id=f"race{n}"),
            sender.signal(f"order:{100 + n}", {"paid": True}, actor="stripe", buffer=60),
        )
        deadline = time.time() + 30
        while (await runner.get(started.run_id)).status != "completed":
            assert time.time() < deadline, f"race{n} never got its answer"
            await asyncio.sleep(0.05)


async def test_signal_answers_every_branch_of_one_run_waiting_under_the_key(runs: Runs) -> None:
    """Two parallel branches pause under one key: one signal answers both, each once."""
    both = (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_parallel("checks", "Checks")
        .add_pausable_branch(
            "legal",
            "Legal",
            PausableHandler(execute=_pause_for_payment, resume=_record_payment),
            input_schema=Paid,
            business_key=lambda scope: f"order:{scope.order_id}",
        )
        .add_pausable_branch(
            "finance",
            "Finance",
            PausableHandler(execute=_pause_for_payment, resume=_record_payment),
            input_schema=Paid,
            business_key=lambda scope: f"order:{scope.order_id}",
        )
        .end()
        .build()
    )
    runs.charts["both"] = both
    rec = await runs.start("both", {"order_id": 77})
    assert sorted(p.key or "" for p in rec.pauses) == ["order:77", "order:77"]
    records = await runs.signal("order:77", {"paid": True}, actor="bank")
    assert records[-1].status == "completed"
    done = await runs.get(rec.run_id)
    resumed = [e.data["stage_id"] for e in done.audit if e.kind == "resumed"]
    assert sorted(resumed) == ["finance", "legal"]


async def test_a_key_function_that_fails_fails_the_run_with_a_clear_error(runs: Runs) -> None:
    """A key= that raises, or returns no str, fails the stage, naming it."""
    broken = (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "AwaitPayment",
            PausableHandler(execute=_pause_for_payment, resume=_record_payment),
            "await-payment",
            key=lambda scope: scope.order_id,
        )
        .build()
    )
    runs.charts["broken"] = broken
    rec = await runs.start("broken", {"order_id": 5})
    assert rec.status == "failed"
    assert rec.error is not None
    assert "key= function must return a non-empty str, got 5" in rec.error
    with pytest.raises(ChartError, match="key= is for pausable stages only"):
        flow_chart("Work", _fail_when_asked, "work", key=lambda scope: "k")
