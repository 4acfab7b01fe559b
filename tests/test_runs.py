"""Durable runs: inbox, exactly-once resume, crash recovery, refusals, deadlines, cancel.

Behaviour tests run on every store (memory, SQLite, Redis, PostgreSQL); each
test gets its own SQLite file, Redis key prefix or PostgreSQL schema. Tests
that need several processes run on the durable stores only; their children
are ``runs_child.py``. Stages record side effects in a file (see
:mod:`runs_child`), so executions are counted across processes and crashes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import runs_child
from _processes import release_together
from pausepoint import (
    ChartChangedError,
    ChartMismatchError,
    ChartNotFoundError,
    FlowChartExecutor,
    PausableHandler,
    ResumeInputError,
    ResumeTargetError,
    RunAlreadyClaimedError,
    RunNotFoundError,
    RunNotPausedError,
    RunRecord,
    Runs,
    StalePauseError,
    StoreUnavailableError,
    flow_chart,
    open_store,
)
from pausepoint.stores import Store
from stores.support import (
    BACKENDS,
    DURABLE,
    fresh_store_url,
)

CHILD = str(Path(runs_child.__file__))
MakeRuns = Callable[..., Runs]


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL naming a fresh, empty store: own SQLite file, Redis prefix or Postgres schema."""
    with fresh_store_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def make_runs(backend: str, store_url: str) -> AsyncIterator[MakeRuns]:
    """Makes ``Runs`` over the test's store, each on its own store object (memory: shared)."""
    opened: list[Store] = []

    def make(charts: dict[str, Any] | None = None, **kwargs: Any) -> Runs:
        if backend != "memory" or not opened:
            opened.append(open_store(store_url))
        return Runs(opened[-1], runs_child.charts() if charts is None else charts, **kwargs)

    yield make
    for store in opened:
        await store.aclose()


@pytest.fixture
def runs(make_runs: MakeRuns) -> Runs:
    return make_runs()


@pytest.fixture
def side_log(tmp_path: Path) -> Path:
    return tmp_path / "side.log"


def effects(side_log: Path, run_id: str) -> Counter[str]:
    """How often each side effect was recorded for ``run_id``."""
    if not side_log.exists():
        return Counter()
    found: Counter[str] = Counter()
    for line in side_log.read_text().splitlines():
        rid, _, what = line.partition(" ")
        if rid == run_id:
            found[what] += 1
    return found


def kinds(record: RunRecord) -> list[str]:
    return [event.kind for event in record.audit]


def events(record: RunRecord, kind: str) -> list[Any]:
    return [event for event in record.audit if event.kind == kind]


async def start(runs: Runs, side_log: Path, chart: str = "approval", **input: Any) -> RunRecord:
    return await runs.start(chart, {"side_log": str(side_log), **input}, actor="api")


# -- 1. start, inbox, resume, snapshot, audit -----------------------------------


async def test_start_pauses_and_resume_completes_with_snapshot_and_audit(
    runs: Runs, side_log: Path
) -> None:
    """start pauses with id/stage/data, the inbox lists it, resume completes, get shows it all."""
    rec = await start(runs, side_log, amount=900)
    assert rec.status == "paused"
    assert rec.pause is not None
    assert rec.pause.stage_id == "approve"
    assert rec.pause.data == {"question": "approve?", "amount": 900}
    assert rec.pause.id == rec.pause.pause_id
    assert len(rec.pause.id) > 0
    assert rec.pauses == (rec.pause,)

    page = await runs.pending()
    assert [(i.run_id, i.chart, i.pause.id, i.pause.stage_id) for i in page.items] == [
        (rec.run_id, "approval", rec.pause.id, "approve")
    ]
    assert page.next_cursor is None

    done = await runs.resume(
        rec.run_id, {"approved": True, "note": "ok"}, actor="kim", pause_id=rec.pause.id
    )
    assert done.status == "completed"
    assert done.pause is None
    assert done.pauses == ()
    assert (await runs.pending()).items == ()

    got = await runs.get(rec.run_id)
    assert got.status == "completed"
    assert got.error is None
    assert got.snapshot is not None
    assert got.snapshot["shared_state"]["approve"] == {"approved": True, "note": "ok"}
    assert [(n["id"], n["status"]) for n in got.snapshot["execution_tree"]] == [
        ("receive", "done"),
        ("approve", "resumed"),
        ("step1", "done"),
        ("slow", "done"),
        ("step3", "done"),
    ]
    narrative = got.snapshot["narrative"]
    assert 'Approve paused: "approve?"' in narrative
    assert any(line.startswith("Approve resumed by input") for line in narrative)
    assert narrative[-1] == "Step3 ran."

    assert kinds(got) == ["started", "paused", "resumed", "completed"]
    started, paused, resumed, _ = got.audit
    assert [e.seq for e in got.audit] == [1, 2, 3, 4]
    assert started.actor == "api"
    assert started.data["input"] == {"side_log": str(side_log), "amount": 900}
    assert paused.data["pause_id"] == rec.pause.id
    assert paused.data["stage_id"] == "approve"
    assert resumed.actor == "kim"
    assert resumed.data["input"] == {"approved": True, "note": "ok"}
    assert resumed.data["pause_id"] == rec.pause.id

    assert effects(side_log, rec.run_id) == Counter(
        {
            "receive": 1,
            "approve:ask": 1,
            "approve:answer": 1,
            "step1": 1,
            "slow-start": 1,
            "slow-end": 1,
            "step3": 1,
        }
    )


async def test_a_paused_run_stores_its_state_once_and_the_snapshot_is_derived(
    make_runs: MakeRuns,
) -> None:
    """The record keeps the checkpoint only; the snapshot read back equals the executor's,
    secrets hidden, even for a reader that has no charts registered (``pausepoint show``)."""

    def receive(scope: Any) -> None:
        scope.card = "4111-1111"
        scope.amount = 900

    chart = (
        flow_chart("Pay", receive, "receive")
        .add_pausable_function(
            "Approve",
            PausableHandler(lambda s: {"question": "Pay?", "card": s.card}, lambda s, a: None),
            "approve",
        )
        .build(redact=["card"])
    )
    runs = make_runs({"pay": chart})
    rec = await runs.start("pay", {"note": "n"}, actor="api")
    stored = await runs.store.get(rec.run_id)
    assert stored.snapshot is None
    assert stored.checkpoint is not None
    executor = FlowChartExecutor(chart)
    await executor.run({"note": "n"}, run_id=rec.run_id)
    expected = dict(executor.get_snapshot())
    for snapshot in (rec.snapshot, (await make_runs({}).get(rec.run_id)).snapshot):
        assert snapshot is not None
        assert snapshot["shared_state"] == {"note": "n", "card": "***", "amount": 900}
        assert snapshot["pauses"][0]["data"] == {"question": "Pay?", "card": "***"}
        assert snapshot["narrative"] == expected["narrative"]
        assert snapshot["status"] == "paused"
        assert [n["id"] for n in snapshot["execution_tree"]] == ["receive", "approve"]
    cancelled = await runs.cancel(rec.run_id, actor="kim")
    assert cancelled.snapshot is not None
    assert (cancelled.snapshot["status"], cancelled.snapshot["pauses"]) == ("cancelled", [])


async def test_pending_filters_by_chart_stage_age_and_pages_with_cursor(
    runs: Runs, side_log: Path
) -> None:
    """pending() filters by chart, stage and older_than, and pages newest first with a cursor."""
    oldest = await start(runs, side_log)
    cut = time.time()  # the oldest paused before this; the others a second or more after
    await asyncio.sleep(1.0)
    newer = [await start(runs, side_log) for _ in range(3)]
    chained = await start(runs, side_log, "chain")
    everyone = [oldest.run_id, *(r.run_id for r in newer), chained.run_id]

    page = await runs.pending(chart="approval")
    assert {i.run_id for i in page.items} == {oldest.run_id, *(r.run_id for r in newer)}
    assert all(i.chart == "approval" for i in page.items)

    page = await runs.pending(stage="first")
    assert [(i.run_id, i.pause.stage_id) for i in page.items] == [(chained.run_id, "first")]
    assert (await runs.pending(chart="chain", stage="approve")).items == ()

    for as_given in (float, lambda seconds: timedelta(seconds=seconds)):
        # older than the cut: however long the starts above took on a busy machine
        page = await runs.pending(older_than=as_given(time.time() - cut))
        assert [i.run_id for i in page.items] == [oldest.run_id]
    assert (await runs.pending(older_than=timedelta(hours=1))).items == ()

    seen: list[str] = []
    created: list[float] = []
    cursor = None
    pages = 0
    while True:
        page = await runs.pending(limit=2, cursor=cursor)
        pages += 1
        assert len(page.items) <= 2
        seen += [i.run_id for i in page.items]
        created += [i.pause.created_at for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(everyone)
    assert created == sorted(created, reverse=True)
    assert seen[0] == chained.run_id
    assert seen[-1] == oldest.run_id


async def test_multi_pause_chain_resumes_pause_by_pause(runs: Runs, side_log: Path) -> None:
    """A chart with two pauses: each resume moves to the next pause, then completes."""
    rec = await start(runs, side_log, "chain")
    assert rec.pause is not None
    assert rec.pause.stage_id == "first"
    first = rec.pause

    rec = await runs.resume(rec.run_id, {"ok": 1}, actor="ann", pause_id=first.id)
    assert rec.status == "paused"
    assert rec.pause is not None
    assert rec.pause.stage_id == "second"
    assert rec.pause.id != first.id
    assert [(i.run_id, i.pause.stage_id) for i in (await runs.pending()).items] == [
        (rec.run_id, "second")
    ]

    done = await runs.resume(rec.run_id, {"ok": 2}, actor="bob", pause_id=rec.pause.id)
    assert done.status == "completed"
    assert kinds(done) == ["started", "paused", "resumed", "paused", "resumed", "completed"]
    assert [(e.actor, e.data["stage_id"]) for e in events(done, "resumed")] == [
        ("ann", "first"),
        ("bob", "second"),
    ]
    assert done.snapshot is not None
    assert done.snapshot["shared_state"]["first"] == {"ok": 1}
    assert done.snapshot["shared_state"]["second"] == {"ok": 2}
    assert effects(side_log, rec.run_id) == Counter(
        {
            "receive": 1,
            "first:ask": 1,
            "first:answer": 1,
            "second:ask": 1,
            "second:answer": 1,
            "done": 1,
        }
    )


async def test_parallel_fork_gives_two_inbox_entries_answered_in_reverse(
    runs: Runs, side_log: Path
) -> None:
    """Two parallel pauses are two inbox entries; answering each by pause_id in reverse completes."""
    rec = await start(runs, side_log, "fork")
    assert rec.status == "paused"
    by_stage = {p.stage_id: p for p in rec.pauses}
    assert set(by_stage) == {"legal", "finance"}
    inbox = (await runs.pending()).items
    assert {(i.run_id, i.pause.id) for i in inbox} == {(rec.run_id, p.id) for p in rec.pauses}

    last, first = rec.pauses[0], rec.pauses[1]  # reverse order of the pauses
    rec = await runs.resume(rec.run_id, {"by": first.stage_id}, actor="x", pause_id=first.id)
    assert rec.status == "paused"
    assert [(p.stage_id, p.id) for p in rec.pauses] == [(last.stage_id, last.id)]
    assert [i.pause.id for i in (await runs.pending()).items] == [last.id]
    assert effects(side_log, rec.run_id)["join"] == 0

    done = await runs.resume(rec.run_id, {"by": last.stage_id}, actor="y", pause_id=last.id)
    assert done.status == "completed"
    assert (await runs.pending()).items == ()
    assert done.snapshot is not None
    assert done.snapshot["shared_state"]["legal"] == {"by": "legal"}
    assert done.snapshot["shared_state"]["finance"] == {"by": "finance"}
    assert kinds(done) == ["started", "paused", "paused", "resumed", "resumed", "completed"]
    assert [e.data["pause_id"] for e in events(done, "resumed")] == [first.id, last.id]
    assert effects(side_log, rec.run_id) == Counter(
        {
            "receive": 1,
            "legal:ask": 1,
            "finance:ask": 1,
            "legal:answer": 1,
            "finance:answer": 1,
            "join": 1,
        }
    )


# -- 2. exactly once ---------------------------------------------------------------


async def test_concurrent_resumes_give_one_success_and_claimed_errors(
    make_runs: MakeRuns, side_log: Path
) -> None:
    """Eight concurrent resumes of one run: one completes it, seven get RunAlreadyClaimedError."""
    racers = [make_runs() for _ in range(8)]
    rec = await start(racers[0], side_log)
    assert rec.pause is not None
    outcomes = await asyncio.gather(
        *(
            r.resume(rec.run_id, {"approved": True}, actor=f"r{n}", pause_id=rec.pause.id)
            for n, r in enumerate(racers)
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, RunRecord)]
    claimed = [o for o in outcomes if isinstance(o, RunAlreadyClaimedError)]
    assert len(won) == 1, outcomes
    assert len(claimed) == 7, outcomes
    assert won[0].status == "completed"
    got = await racers[0].get(rec.run_id)
    assert got.status == "completed"
    assert len(events(got, "resumed")) == 1
    assert events(got, "resumed")[0].actor == f"r{outcomes.index(won[0])}"
    assert len(events(got, "resume_refused")) == 7
    assert len(events(got, "completed")) == 1
    found = effects(side_log, rec.run_id)
    assert (found["approve:answer"], found["step1"], found["step3"]) == (1, 1, 1)


async def test_same_idempotency_key_returns_the_first_outcome(
    make_runs: MakeRuns, side_log: Path
) -> None:
    """Concurrent and later resumes with one idempotency key all get the first resume's outcome."""
    racers = [make_runs() for _ in range(6)]
    rec = await start(racers[0], side_log)
    outcomes = await asyncio.gather(
        *(
            r.resume(rec.run_id, {"approved": n % 2 == 0}, actor=f"r{n}", idempotency_key="k-1")
            for n, r in enumerate(racers)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(o, RunRecord) for o in outcomes), outcomes
    records = [o for o in outcomes if isinstance(o, RunRecord)]
    assert {(r.run_id, r.status, r.version) for r in records} == {
        (rec.run_id, "completed", records[0].version)
    }
    again = await racers[1].resume(rec.run_id, {"approved": False}, idempotency_key="k-1")
    assert (again.status, again.version) == ("completed", records[0].version)

    got = await racers[0].get(rec.run_id)
    (resumed,) = events(got, "resumed")
    winner = int(str(resumed.actor)[1:])
    assert got.snapshot is not None
    assert got.snapshot["shared_state"]["approve"]["approved"] is (winner % 2 == 0)
    assert events(got, "resume_refused") == []
    assert effects(side_log, rec.run_id)["approve:answer"] == 1
    assert effects(side_log, rec.run_id)["step3"] == 1

    with pytest.raises(RunAlreadyClaimedError):
        await racers[0].resume(rec.run_id, {"approved": True}, idempotency_key="k-2")


@pytest.mark.parametrize("backend", DURABLE)
async def test_race_across_processes_completes_every_run_exactly_once(
    runs: Runs, store_url: str, side_log: Path
) -> None:
    """Four processes resume the same 30 runs: each completes once, its side effects once."""
    started = [await start(runs, side_log) for _ in range(30)]
    run_ids = [r.run_id for r in started]
    orders = [run_ids, run_ids, run_ids[::-1], run_ids[::-1]]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            CHILD,
            "race",
            store_url,
            f"p{n}",
            *order,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for n, order in enumerate(orders)
    ]
    reports = await release_together(children, seconds=60)
    assert [child.returncode for child in children] == [0, 0, 0, 0]

    wins = Counter(run_id for report in reports for run_id in report["won"])
    assert wins == Counter(run_ids)  # every run won by exactly one process
    for report in reports:
        assert sorted(report["won"] + report["claimed"]) == sorted(run_ids)
    for run_id in run_ids:
        got = await runs.get(run_id)
        assert got.status == "completed"
        assert len(events(got, "resumed")) == 1
        assert len(events(got, "completed")) == 1
        found = effects(side_log, run_id)
        assert (found["approve:answer"], found["step1"], found["slow-end"], found["step3"]) == (
            1,
            1,
            1,
            1,
        ), (run_id, found)


# -- 3. kill -9 and recover ----------------------------------------------------------


@pytest.mark.parametrize("backend", DURABLE)
async def test_kill_9_mid_stage_then_recover_finishes_from_last_stage(
    make_runs: MakeRuns, store_url: str, side_log: Path
) -> None:
    """SIGKILL during ``slow``: after the lease, recover() finishes; only ``slow`` ran twice."""
    runs = make_runs(lease_seconds=1)
    rec = await start(runs, side_log)
    child = await asyncio.create_subprocess_exec(
        sys.executable, CHILD, "kill", store_url, rec.run_id, stderr=asyncio.subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while effects(side_log, rec.run_id)["slow-start"] == 0:
            assert child.returncode is None, "the child exited before reaching the slow stage"
            assert time.monotonic() < deadline, "the child never reached the slow stage"
            await asyncio.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.returncode is None:
            child.kill()
        _, stderr = await child.communicate()
    assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")

    held = await runs.get(rec.run_id)
    assert held.status == "running"
    assert await runs.recover() == []  # the dead child's lease has not lapsed yet
    await asyncio.sleep(1.3)  # past the lease (1 s) renewed at most 1/3 s before the kill
    assert await runs.recover() == [rec.run_id]
    assert await runs.recover() == []

    got = await runs.get(rec.run_id)
    assert got.status == "completed"
    assert kinds(got) == ["started", "paused", "resumed", "recovered", "completed"]
    (resumed,) = events(got, "resumed")
    (recovered,) = events(got, "recovered")
    assert resumed.actor == "child"
    assert recovered.actor == "pausepoint"
    assert got.snapshot is not None
    assert got.snapshot["shared_state"]["approve"] == {"approved": True, "note": "child"}
    assert effects(side_log, rec.run_id) == Counter(
        {
            "receive": 1,
            "approve:ask": 1,
            "approve:answer": 1,  # the answer was applied once, not asked again
            "step1": 1,  # recorded as done before the crash
            "slow-start": 2,  # the stage in flight runs again
            "slow-end": 1,
            "step3": 1,
        }
    )


# -- 4. refusals leave the run paused --------------------------------------------------


async def test_input_failing_schema_is_refused_and_run_stays_resumable(
    runs: Runs, side_log: Path
) -> None:
    """Input failing the stage's pydantic schema: ResumeInputError with errors, audit, still paused."""
    rec = await start(runs, side_log)
    assert rec.pause is not None
    with pytest.raises(ResumeInputError) as caught:
        await runs.resume(rec.run_id, {"approved": "perhaps"}, actor="eve", pause_id=rec.pause.id)
    assert caught.value.stage_id == "approve"
    assert [e["loc"] for e in caught.value.errors] == [["approved"]]
    assert caught.value.errors[0]["type"] == "bool_parsing"

    got = await runs.get(rec.run_id)
    assert got.status == "paused"
    assert got.pause == rec.pause
    assert kinds(got) == ["started", "paused", "resume_refused"]
    refused = got.audit[-1]
    assert refused.actor == "eve"
    assert refused.data["error"] == "ResumeInputError"
    assert "approved" in refused.data["reason"]
    assert [i.run_id for i in (await runs.pending()).items] == [rec.run_id]
    assert effects(side_log, rec.run_id)["approve:answer"] == 0

    done = await runs.resume(rec.run_id, {"approved": True}, actor="kim", pause_id=rec.pause.id)
    assert done.status == "completed"


async def test_stale_pause_id_is_refused_and_run_stays_resumable(
    runs: Runs, side_log: Path
) -> None:
    """An answer to a pause already answered (or never issued) is a StalePauseError."""
    rec = await start(runs, side_log, "chain")
    assert rec.pause is not None
    first = rec.pause
    rec = await runs.resume(rec.run_id, {"ok": 1}, pause_id=first.id)
    assert rec.pause is not None
    assert rec.pause.stage_id == "second"

    for stale in (first.id, "no-such-pause"):
        with pytest.raises(StalePauseError) as caught:
            await runs.resume(rec.run_id, {"ok": "again"}, actor="eve", pause_id=stale)
        assert caught.value.run_id == rec.run_id
    got = await runs.get(rec.run_id)
    assert (got.status, got.pause) == ("paused", rec.pause)
    assert [e.data["error"] for e in events(got, "resume_refused")] == ["StalePauseError"] * 2
    assert effects(side_log, rec.run_id)["first:answer"] == 1

    done = await runs.resume(rec.run_id, {"ok": 2}, pause_id=rec.pause.id)
    assert done.status == "completed"


async def test_second_resume_after_completion_is_claimed_error(runs: Runs, side_log: Path) -> None:
    """Resuming a completed run again (same pause or none named) is RunAlreadyClaimedError."""
    rec = await start(runs, side_log)
    assert rec.pause is not None
    await runs.resume(rec.run_id, {"approved": True}, pause_id=rec.pause.id)
    with pytest.raises(RunAlreadyClaimedError):
        await runs.resume(rec.run_id, {"approved": False}, pause_id=rec.pause.id)
    with pytest.raises(RunAlreadyClaimedError):
        await runs.resume(rec.run_id, {"approved": False})
    got = await runs.get(rec.run_id)
    assert got.status == "completed"
    assert got.snapshot is not None
    assert got.snapshot["shared_state"]["approve"]["approved"] is True
    assert effects(side_log, rec.run_id)["approve:answer"] == 1


async def test_unknown_run_is_run_not_found(runs: Runs) -> None:
    """get, resume and cancel of an unknown run id raise RunNotFoundError."""
    with pytest.raises(RunNotFoundError):
        await runs.get("no-such-run")
    with pytest.raises(RunNotFoundError):
        await runs.resume("no-such-run", {"approved": True})
    with pytest.raises(RunNotFoundError):
        await runs.cancel("no-such-run", "kim", "why not")


async def test_changed_chart_is_refused_unless_compatibility_allows(
    make_runs: MakeRuns, side_log: Path
) -> None:
    """A chart changed under the same name refuses the resume; a compatibility rule allows it."""
    old = make_runs()
    rec = await start(old, side_log)
    assert rec.pause is not None
    changed = {"approval": runs_child.approval(extra_stage=True)}

    new = make_runs(changed)
    with pytest.raises(ChartChangedError) as caught:
        await new.resume(rec.run_id, {"approved": True}, actor="kim", pause_id=rec.pause.id)
    assert isinstance(caught.value, ChartMismatchError)
    assert caught.value.found == old.charts["approval"].fingerprint
    assert caught.value.expected == changed["approval"].fingerprint
    got = await new.get(rec.run_id)
    assert (got.status, got.pause) == ("paused", rec.pause)
    assert events(got, "resume_refused")[-1].data["error"] == "ChartChangedError"
    assert effects(side_log, rec.run_id)["approve:answer"] == 0

    seen: list[tuple[str, str]] = []

    def allow(stored: Any, chart: Any) -> bool:
        seen.append((stored.fingerprint, chart.fingerprint))
        return True

    tolerant = make_runs(changed, compatibility=allow)
    done = await tolerant.resume(rec.run_id, {"approved": True}, pause_id=rec.pause.id)
    assert done.status == "completed"
    assert seen == [(old.charts["approval"].fingerprint, changed["approval"].fingerprint)]
    found = effects(side_log, rec.run_id)
    assert (found["approve:answer"], found["step3"], found["step4"]) == (1, 1, 1)


async def test_several_pauses_without_pause_id_is_resume_target_error(
    runs: Runs, side_log: Path
) -> None:
    """With two pauses pending, a resume naming neither is a ResumeTargetError listing both."""
    rec = await start(runs, side_log, "fork")
    with pytest.raises(ResumeTargetError) as caught:
        await runs.resume(rec.run_id, {"by": "?"}, actor="eve")
    assert sorted(caught.value.pending) == ["finance", "legal"]
    got = await runs.get(rec.run_id)
    assert (got.status, got.pauses) == ("paused", rec.pauses)
    assert events(got, "resume_refused")[-1].data["error"] == "ResumeTargetError"
    assert len((await runs.pending()).items) == 2

    rec = await runs.resume(rec.run_id, {"by": "legal"}, stage_id="legal")
    assert [p.stage_id for p in rec.pauses] == ["finance"]
    done = await runs.resume(rec.run_id, {"by": "finance"})  # one left: no id needed
    assert done.status == "completed"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1:1/0?socket_connect_timeout=1", id="redis"),
        pytest.param("postgresql://postgres@127.0.0.1:1/test?connect_timeout=1", id="postgres"),
    ],
)
async def test_store_down_is_store_unavailable(url: str) -> None:
    """A store whose server is down raises StoreUnavailableError from start, get and pending."""
    async with Runs(open_store(url), runs_child.charts()) as runs:
        with pytest.raises(StoreUnavailableError):
            await runs.start("approval", {"side_log": "/nonexistent"})
        with pytest.raises(StoreUnavailableError):
            await runs.get("some-run")
        with pytest.raises(StoreUnavailableError):
            await runs.pending()


# -- 5. deadlines --------------------------------------------------------------------


async def test_deadline_resume_with_default_answer(runs: Runs, side_log: Path) -> None:
    """OnTimeout.resume_with: expire_due resumes the overdue pause with the default, as pausepoint."""
    rec = await start(runs, side_log, "deadline_resume")
    assert rec.pause is not None
    assert rec.pause.deadline is not None
    assert rec.pause.deadline == pytest.approx(rec.pause.created_at + 0.05)
    assert await runs.expire_due() == []  # not due yet
    await asyncio.sleep(0.1)
    assert await runs.expire_due() == [rec.run_id]
    assert await runs.expire_due() == []

    got = await runs.get(rec.run_id)
    assert got.status == "completed"
    assert kinds(got) == ["started", "paused", "expired", "resumed", "completed"]
    expired, resumed = events(got, "expired")[0], events(got, "resumed")[0]
    assert (expired.actor, expired.data["policy"]) == ("pausepoint", "resume")
    assert expired.data["pause_id"] == rec.pause.id
    assert resumed.actor == "pausepoint"
    assert resumed.data["input"] == {"approved": False, "note": "late"}
    assert got.snapshot is not None
    assert got.snapshot["shared_state"]["wait"] == {"approved": False, "note": "late"}
    assert effects(side_log, rec.run_id)["after"] == 1


@pytest.mark.parametrize(
    ("chart", "status", "policy"),
    [
        ("deadline_fail", "failed", "fail"),
        ("deadline_cancel", "expired", "cancel"),
        ("deadline_default", "expired", "cancel"),
    ],
)
async def test_deadline_fail_cancel_and_default(
    runs: Runs, side_log: Path, chart: str, status: str, policy: str
) -> None:
    """OnTimeout.fail() fails the run; cancel() and no policy leave it expired; inbox emptied."""
    rec = await start(runs, side_log, chart)
    await asyncio.sleep(0.1)
    assert await runs.expire_due() == [rec.run_id]
    got = await runs.get(rec.run_id)
    assert got.status == status
    assert got.pauses == ()
    assert kinds(got) == ["started", "paused", "expired"]
    assert (got.audit[-1].actor, got.audit[-1].data["policy"]) == ("pausepoint", policy)
    if status == "failed":
        assert got.error is not None
        assert "'wait'" in got.error
    assert (await runs.pending()).items == ()
    assert await runs.expire_due() == []
    with pytest.raises(RunNotPausedError, match="no pause to answer"):
        await runs.resume(rec.run_id, {"approved": True})
    assert effects(side_log, rec.run_id)["after"] == 0


async def test_concurrent_expire_due_acts_once_per_run(make_runs: MakeRuns, side_log: Path) -> None:
    """Five concurrent expire_due calls apply each overdue pause's policy exactly once."""
    sweepers = [make_runs() for _ in range(5)]
    resumed = [await start(sweepers[0], side_log, "deadline_resume") for _ in range(3)]
    failed = [await start(sweepers[0], side_log, "deadline_fail") for _ in range(2)]
    await asyncio.sleep(0.1)
    acted = await asyncio.gather(*(s.expire_due() for s in sweepers))
    every = [r.run_id for r in resumed + failed]
    assert Counter(run_id for ids in acted for run_id in ids) == Counter(every)
    for rec in resumed + failed:
        got = await sweepers[0].get(rec.run_id)
        assert got.status == ("completed" if rec in resumed else "failed")
        assert kinds(got) == (  # one expiry, no trace of the sweepers that lost
            ["started", "paused", "expired", "resumed", "completed"]
            if rec in resumed
            else ["started", "paused", "expired"]
        )
        assert effects(side_log, rec.run_id)["wait:answer"] == (1 if rec in resumed else 0)


@pytest.mark.parametrize("backend", DURABLE)
async def test_expire_due_from_two_processes_acts_once_per_run(
    runs: Runs, store_url: str, side_log: Path
) -> None:
    """Two processes sweeping the same store at once apply each policy exactly once."""
    resumed = [await start(runs, side_log, "deadline_resume") for _ in range(5)]
    failed = [await start(runs, side_log, "deadline_fail") for _ in range(5)]
    await asyncio.sleep(0.1)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            CHILD,
            "expire",
            store_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    acted = await release_together(children)
    assert [child.returncode for child in children] == [0, 0]
    assert Counter(run_id for ids in acted for run_id in ids) == Counter(
        r.run_id for r in resumed + failed
    )
    for rec in resumed + failed:
        got = await runs.get(rec.run_id)
        assert got.status == ("completed" if rec in resumed else "failed")
        assert kinds(got) == (  # one expiry, no trace of the sweepers that lost
            ["started", "paused", "expired", "resumed", "completed"]
            if rec in resumed
            else ["started", "paused", "expired"]
        )
        assert effects(side_log, rec.run_id)["wait:answer"] == (1 if rec in resumed else 0)


# -- 6. cancel -----------------------------------------------------------------------


async def test_cancel_records_who_and_why_and_leaves_the_inbox(runs: Runs, side_log: Path) -> None:
    """cancel() makes the run cancelled, removes it from the inbox and audits actor and reason."""
    rec = await start(runs, side_log)
    other = await start(runs, side_log)
    cancelled = await runs.cancel(rec.run_id, "kim", "duplicate request")
    assert cancelled.status == "cancelled"
    assert cancelled.pauses == ()
    assert [i.run_id for i in (await runs.pending()).items] == [other.run_id]
    got = await runs.get(rec.run_id)
    assert got.status == "cancelled"
    assert kinds(got) == ["started", "paused", "cancelled"]
    assert (got.audit[-1].actor, got.audit[-1].data["reason"]) == ("kim", "duplicate request")
    with pytest.raises(RunNotPausedError) as caught:
        await runs.cancel(rec.run_id, "kim", "again")
    assert caught.value.status == "cancelled"


async def test_cancel_completed_run_is_run_not_paused(runs: Runs, side_log: Path) -> None:
    """Cancelling a completed run raises RunNotPausedError and changes nothing."""
    rec = await start(runs, side_log)
    done = await runs.resume(rec.run_id, {"approved": True})
    with pytest.raises(RunNotPausedError) as caught:
        await runs.cancel(rec.run_id, "kim", "too late")
    assert (caught.value.run_id, caught.value.status) == (rec.run_id, "completed")
    got = await runs.get(rec.run_id)
    assert (got.status, got.version, kinds(got)) == ("completed", done.version, kinds(done))


# -- 7. failures ---------------------------------------------------------------------


async def test_failing_stage_after_resume_fails_the_run(runs: Runs, side_log: Path) -> None:
    """A stage raising after the resume gives status failed, an error naming it, audit 'failed'."""
    rec = await start(runs, side_log, "failing")
    failed = await runs.resume(rec.run_id, {"approved": True}, actor="kim")
    assert failed.status == "failed"
    assert failed.error is not None
    assert "'explode'" in failed.error
    assert "boom" in failed.error
    got = await runs.get(rec.run_id)
    assert got.status == "failed"
    assert kinds(got) == ["started", "paused", "resumed", "failed"]
    assert got.audit[-1].data["stage_id"] == "explode"
    assert "boom" in got.audit[-1].data["error"]
    assert got.snapshot is not None
    assert ("explode", "failed") in [(n["id"], n["status"]) for n in got.snapshot["execution_tree"]]
    assert (await runs.pending()).items == ()
    assert await runs.recover() == []  # a failed run holds no lease
    assert effects(side_log, rec.run_id)["explode"] == 1


async def test_unchanged_from_pause_lets_a_run_follow_a_change_before_its_pause() -> None:
    """A stage added before the pause is accepted (and the run resumes there); one after is refused."""
    from pausepoint import ChartChangedError, PausableHandler, flow_chart
    from pausepoint.durable.compat import unchanged_from_pause

    ran: list[str] = []

    def receive(scope: Any) -> None:
        scope.x = 1
        ran.append("receive")

    def extra(scope: Any) -> None:
        ran.append("extra")

    def process(scope: Any) -> None:
        ran.append("process")

    gate = PausableHandler(lambda s: {"question": "ok?"}, lambda s, a: ran.append("resume"))
    v1 = (
        flow_chart("R", receive, "receive")
        .add_pausable_function("Gate", gate, "gate")
        .add_function("P", process, "process")
        .build()
    )
    before = (
        flow_chart("R", receive, "receive")
        .add_function("X", extra, "extra")
        .add_pausable_function("Gate", gate, "gate")
        .add_function("P", process, "process")
        .build()
    )
    after = (
        flow_chart("R", receive, "receive")
        .add_pausable_function("Gate", gate, "gate")
        .add_function("X", extra, "extra")
        .add_function("P", process, "process")
        .build()
    )
    store = open_store("memory://")
    record = await Runs(store, {"c": v1}).start("c")
    with pytest.raises(ChartChangedError):
        await Runs(store, {"c": after}, compatibility=unchanged_from_pause).resume(
            record.run_id, {}
        )
    assert (await store.get(record.run_id)).status == "paused"
    ran.clear()
    done = await Runs(store, {"c": before}, compatibility=unchanged_from_pause).resume(
        record.run_id, {}
    )
    assert done.status == "completed"
    assert ran == ["resume", "process"]  # nothing before the pause runs, the new stage neither


async def test_an_unknown_chart_is_named_in_the_error_and_survives_pickling() -> None:
    """ChartNotFoundError says which name is unknown, as an attribute a worker hands on."""
    import pickle

    async with Runs(open_store("memory://"), {}) as empty:
        with pytest.raises(
            ChartNotFoundError, match="no chart is registered as 'refund'"
        ) as caught:
            await empty.start("refund", {"amount": 10})
    assert caught.value.chart == "refund"
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is ChartNotFoundError
    assert (again.chart, again.run_id, str(again)) == ("refund", "", str(caught.value))
