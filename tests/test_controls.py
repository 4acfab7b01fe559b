"""Engine controls: retries, time limits, run timeouts, cancellation, decision evidence,
chart contracts and limits.

Resumes go through JSON and a fresh executor, as in another process. The run
cancelled from another OS process uses ``controls_child.py``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import controls_child
from _charts import Log, checkpoint_of, flat, resume_fresh, roundtrip, run_fresh
from pausepoint import (
    ChartError,
    CheckpointFormatError,
    FlowChart,
    FlowChartExecutor,
    PausableHandler,
    Retry,
    RunInputError,
    RunNotFoundError,
    RunNotPausedError,
    RunOutputError,
    Runs,
    RunTimeoutError,
    Scope,
    StageError,
    StageTimeoutError,
    When,
    decide,
    flow_chart,
    open_store,
    select,
)
from pausepoint.engine.builder import MAX_NESTING
from stores.support import DURABLE, fresh_store_url

CHILD = str(Path(controls_child.__file__))


class Flaky:
    """A stage that fails ``failures`` times, then succeeds; counts its calls."""

    def __init__(self, failures: int, error: type[Exception] = ValueError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, scope: Scope) -> None:
        self.calls += 1
        scope.partial = self.calls  # undone when the attempt fails
        if self.calls <= self.failures:
            raise self.error(f"boom {self.calls}")
        scope.done = self.calls


async def eventually(check: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait until ``check()`` holds, polling; fail after ``seconds``."""
    for _ in range(int(seconds / 0.005)):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"still not true after {seconds} s")


def node(executor: FlowChartExecutor, stage_id: str) -> Any:
    """The execution-tree node of ``stage_id`` (depth first)."""

    def find(tree: list[Any]) -> Any:
        for candidate in tree:
            if candidate["id"] == stage_id:
                return candidate
            found = find(candidate.get("children") or [])
            if found is not None:
                return found
        return None

    found = find(executor.get_snapshot()["execution_tree"])
    assert found is not None, stage_id
    return found


# -- 1. retries ------------------------------------------------------------------


async def test_retried_stage_succeeds_on_the_third_attempt() -> None:
    """Two failures are kept in the tree and told in the narrative; their writes are undone."""
    flaky = Flaky(failures=2)
    chart = (
        flow_chart("Start", Log().stage("start", partial=0), "start")
        .add_function("Fetch", flaky, "fetch", retry=Retry(attempts=3, backoff=0.001))
        .build()
    )
    executor = await run_fresh(chart)
    assert executor.status == "completed"
    assert flaky.calls == 3
    assert executor.get_state() == {"partial": 3, "done": 3}
    fetch = node(executor, "fetch")
    assert fetch["status"] == "done"
    assert [(a["attempt"], a["of"], a["error"]) for a in fetch["attempts"]] == [
        (1, 3, "ValueError: boom 1"),
        (2, 3, "ValueError: boom 2"),
    ]
    assert [a["retry_in"] for a in fetch["attempts"]] == [0.001, 0.002]
    assert executor.get_narrative() == [
        "Start wrote partial.",
        "Fetch failed (attempt 1 of 3): ValueError: boom 1; retrying.",
        "Fetch failed (attempt 2 of 3): ValueError: boom 2; retrying.",
        "Fetch wrote partial, done.",
    ]
    assert executor.get_metrics()["retries"] == 2


async def test_failed_attempt_writes_are_undone_before_the_retry() -> None:
    """A key a failed attempt created is gone, a key it overwrote is back, for the next attempt."""
    seen: list[tuple[Any, Any]] = []

    def stage(scope: Scope) -> None:
        seen.append((scope.get("created"), scope.kept))
        scope.created = "by a failed attempt"
        scope.kept = "overwritten"
        if len(seen) < 2:
            raise ValueError("again")

    chart = flow_chart("S", stage, "s", retry=Retry(attempts=2)).build()
    executor = await run_fresh(chart, {"kept": "original"})
    assert seen == [(None, "original"), (None, "original")]
    assert executor.get_state() == {"kept": "overwritten", "created": "by a failed attempt"}


async def test_every_attempt_failing_raises_the_last_failure() -> None:
    """When the attempts run out, the last failure is the StageError, chained, and the run can be told."""
    flaky = Flaky(failures=10)
    chart = flow_chart("Fetch", flaky, "fetch", retry=Retry(attempts=3)).build()
    executor = FlowChartExecutor(chart)
    with pytest.raises(
        StageError, match=r"stage 'fetch' \(Fetch\) raised: ValueError: boom 3"
    ) as info:
        await executor.run()
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "boom 3"
    assert flaky.calls == 3
    fetch = node(executor, "fetch")
    assert fetch["status"] == "failed"
    assert [("retry_in" in a) for a in fetch["attempts"]] == [True, True, False]
    assert executor.get_narrative()[-1] == "Fetch failed (attempt 3 of 3): ValueError: boom 3."
    assert executor.get_state() == {
        "partial": 3
    }  # the last attempt's writes stay, as any failure's


async def test_only_the_listed_exceptions_are_retried() -> None:
    """An error outside ``on`` fails the stage at the first attempt."""
    flaky = Flaky(failures=5, error=TypeError)
    chart = flow_chart("S", flaky, "s", retry=Retry(attempts=5, on=(ValueError,))).build()
    with pytest.raises(StageError, match="TypeError: boom 1"):
        await run_fresh(chart)
    assert flaky.calls == 1


def test_backoff_grows_by_its_factor_and_is_capped() -> None:
    """Waits are backoff · factor^(n-1), never above max_backoff; jitter stays below the wait."""
    policy = Retry(attempts=5, backoff=0.1, factor=3, max_backoff=0.5)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.3, 0.5, 0.5])
    jittered = Retry(backoff=1.0, jitter=True)
    assert all(0.0 <= jittered.delay(1) <= 1.0 for _ in range(50))
    assert Retry(on=KeyError).on == (KeyError,)


async def test_backoff_really_waits() -> None:
    """The attempts of a stage are spaced by its backoff."""
    flaky = Flaky(failures=2)
    chart = flow_chart("S", flaky, "s", retry=Retry(attempts=3, backoff=0.05, factor=1)).build()
    started = time.perf_counter()
    await run_fresh(chart)
    assert time.perf_counter() - started >= 0.1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: Retry(attempts=0), "attempts must be an int of at least 1", id="attempts"
        ),
        pytest.param(lambda: Retry(backoff=-1), "must not be negative", id="backoff"),
        pytest.param(lambda: Retry(factor=0.5), "factor must be at least 1", id="factor"),
        pytest.param(lambda: Retry(on=("x",)), "on must be exception types", id="on"),  # type: ignore[arg-type]  # the mistake tested
        pytest.param(
            lambda: flow_chart("S", print, "s", retry=3),  # type: ignore[arg-type]  # the mistake tested
            "retry must be a pausepoint.Retry",
            id="not-a-retry",
        ),
        pytest.param(
            lambda: flow_chart("S", print, "s", time_limit=0),
            "time_limit must be a positive number",
            id="limit",
        ),
        pytest.param(
            lambda: flow_chart("S", Log().pausable("p"), "s", retry_resume=True),
            "retry_resume=True needs a retry policy",
            id="retry-resume",
        ),
    ],
)
def test_bad_controls_are_chart_errors(make: Any, message: str) -> None:
    """Retry policies and time limits are checked when the chart is built."""
    with pytest.raises(ChartError, match=message):
        make()


async def test_pausable_execute_is_retried_and_resume_only_when_asked() -> None:
    """``execute`` retries under ``retry``; ``resume`` fails at once unless ``retry_resume``."""
    log = Log()
    failures = {"execute": 1, "resume": 1}

    def execute(scope: Scope) -> Any:
        log.calls.append("execute")
        if failures["execute"]:
            failures["execute"] -= 1
            raise ConnectionError("ledger down")
        return {"question": "ok?"}

    def resume(scope: Scope, answer: Any) -> None:
        log.calls.append("resume")
        if failures["resume"]:
            failures["resume"] -= 1
            raise ConnectionError("ledger still down")
        scope.answer = answer

    def chart(retry_resume: bool) -> FlowChart:
        return flow_chart(
            "Approve",
            PausableHandler(execute, resume),
            "approve",
            retry=Retry(attempts=2),
            retry_resume=retry_resume,
        ).build()

    paused = await run_fresh(chart(False))
    assert log.take() == ["execute", "execute"]
    checkpoint = checkpoint_of(paused)
    with pytest.raises(StageError, match="raised in resume: ConnectionError: ledger still down"):
        await resume_fresh(chart(False), checkpoint, True)
    assert log.take() == ["resume"]

    failures["resume"] = 1
    done = await resume_fresh(chart(True), checkpoint, True)
    assert log.take() == ["resume", "resume"]
    assert done.get_state() == {"answer": True}
    assert done.get_narrative() == [
        "Approve failed (attempt 1 of 2): ConnectionError: ledger down; retrying.",
        'Approve paused: "ok?"',
        "Approve failed (attempt 1 of 2) in resume: ConnectionError: ledger still down; retrying.",
        "Approve resumed by input {}.",
        "Approve wrote answer.",
    ]


async def test_decider_function_is_retried() -> None:
    """A decider's function retries like a stage, then routes."""
    calls = []

    def route(scope: Scope) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("rules service slow")
        return "yes"

    chart = (
        flow_chart("Start", Log().stage("start"), "start")
        .add_decider_function("Route", route, "route", retry=Retry(attempts=2))
        .add_function_branch("yes", "Yes", Log().stage("yes", routed=True))
        .end()
        .build()
    )
    executor = await run_fresh(chart)
    assert executor.get_state() == {"routed": True}
    assert node(executor, "route")["attempts"][0]["error"] == "TimeoutError: rules service slow"


async def test_checkpoint_keeps_the_attempts_and_refuses_mangled_ones() -> None:
    """Attempts travel in the checkpoint; a malformed attempt entry is a CheckpointFormatError."""
    log = Log()
    chart = (
        flow_chart("Fetch", Flaky(failures=1), "fetch", retry=Retry(attempts=2))
        .add_pausable_function("Approve", log.pausable("approve"), "approve")
        .build()
    )
    checkpoint = checkpoint_of(await run_fresh(chart))
    done = await resume_fresh(chart, checkpoint, "yes")
    assert done.get_narrative()[0] == "Fetch failed (attempt 1 of 2): ValueError: boom 1; retrying."
    mangled = roundtrip(checkpoint)
    mangled["execution_tree"][0]["attempts"][0]["seq"] = "late"
    with pytest.raises(CheckpointFormatError, match=r"execution_tree\[0\]\.attempts\[0\]"):
        await FlowChartExecutor(chart).resume(mangled, "yes")


# -- 2. time limits, run timeouts, cancellation -------------------------------------


async def test_async_stage_past_its_time_limit_is_cancelled() -> None:
    """An async stage over its limit is cancelled: StageTimeoutError naming stage and limit."""
    cancelled = asyncio.Event()

    async def hang(scope: Scope) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    chart = (
        flow_chart("Start", Log().stage("start"), "start")
        .add_function("Hang", hang, "hang", time_limit=0.05)
        .build()
    )
    executor = FlowChartExecutor(chart)
    with pytest.raises(
        StageTimeoutError,
        match=r"stage 'hang' \(Hang\) ran past its time limit of 0\.05 s and was cancelled",
    ) as info:
        await executor.run()
    assert (info.value.stage_id, info.value.limit) == ("hang", 0.05)
    assert isinstance(info.value, StageError)
    assert cancelled.is_set()
    assert executor.status == "failed"
    assert (
        executor.get_narrative()[-1]
        == "Hang failed: ran past its time limit of 0.05 s and was cancelled."
    )


async def test_sync_stage_past_its_time_limit_is_abandoned_and_its_late_writes_dropped() -> None:
    """A sync stage with a limit runs in a worker thread; when abandoned, what it writes later is lost."""
    loop_thread = threading.get_ident()
    ran_in: list[int] = []
    finished = threading.Event()

    def slow(scope: Scope) -> None:
        ran_in.append(threading.get_ident())
        scope.early = True
        time.sleep(0.2)
        scope.late = True
        finished.set()

    chart = flow_chart("Slow", slow, "slow", time_limit=0.05).build()
    executor = FlowChartExecutor(chart)
    with pytest.raises(StageTimeoutError, match="was abandoned in its worker thread"):
        await executor.run()
    assert ran_in
    assert ran_in[0] != loop_thread
    await asyncio.to_thread(finished.wait, 5)
    assert "late" not in executor.get_state()


async def test_fast_stage_with_a_time_limit_runs_normally() -> None:
    """A sync stage under its limit returns its writes as usual (from its worker thread)."""
    chart = flow_chart("Quick", Log().stage("quick", x=1), "quick", time_limit=5).build()
    executor = await run_fresh(chart)
    assert executor.get_state() == {"x": 1}
    assert executor.get_narrative() == ["Quick wrote x."]


async def test_a_stage_raising_timeout_error_itself_is_not_a_time_limit() -> None:
    """A TimeoutError the stage raises is its failure, not a StageTimeoutError."""

    async def stage(scope: Scope) -> None:
        raise TimeoutError("upstream said so")

    chart = flow_chart("S", stage, "s", time_limit=5).build()
    with pytest.raises(StageError, match="TimeoutError: upstream said so") as info:
        await run_fresh(chart)
    assert not isinstance(info.value, StageTimeoutError)


async def test_timed_out_attempt_is_retried() -> None:
    """A time limit and a retry policy combine: a timed-out attempt is a failed attempt."""
    calls = []

    async def sometimes_slow(scope: Scope) -> None:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(10)
        scope.ok = True

    chart = flow_chart("S", sometimes_slow, "s", time_limit=0.05, retry=Retry(attempts=2)).build()
    executor = await run_fresh(chart)
    assert executor.get_state() == {"ok": True}
    assert node(executor, "s")["attempts"][0]["error"] == (
        "ran past its time limit of 0.05 s and was cancelled"
    )


async def test_run_timeout_bounds_the_whole_run() -> None:
    """``run(timeout=)``: RunTimeoutError, status failed, the stage in flight failed in the tree."""

    async def slow(scope: Scope) -> None:
        await asyncio.sleep(10)

    chart = (
        flow_chart("Start", Log().stage("start", a=1), "start")
        .add_function("Slow", slow, "slow")
        .build()
    )
    executor = FlowChartExecutor(chart)
    started = time.perf_counter()
    with pytest.raises(RunTimeoutError, match=r"took longer than its timeout of 0\.05 s") as info:
        await executor.run(timeout=0.05, run_id="r1")
    assert time.perf_counter() - started < 5
    assert (info.value.run_id, info.value.limit) == ("r1", 0.05)
    assert executor.status == "failed"
    assert executor.get_state() == {"a": 1}
    assert flat(executor.get_snapshot()["execution_tree"]) == [
        ("start", "done"),
        ("slow", "failed"),
    ]
    assert executor.get_narrative()[-1] == "Slow failed: the run timed out after 0.05 s."


async def test_resume_timeout_is_honoured_and_the_checkpoint_still_resumes() -> None:
    """``resume(timeout=)`` stops a slow resume; the same checkpoint resumes later in a fresh executor."""
    slow = {"seconds": 10.0}

    async def resume(scope: Scope, answer: Any) -> None:
        await asyncio.sleep(slow["seconds"])
        scope.answer = answer

    chart = flow_chart(
        "Approve", PausableHandler(lambda scope: {"question": "ok?"}, resume), "approve"
    ).build()
    checkpoint = checkpoint_of(await run_fresh(chart))
    with pytest.raises(RunTimeoutError):
        await FlowChartExecutor(chart).resume(roundtrip(checkpoint), True, timeout=0.05)
    slow["seconds"] = 0
    done = await resume_fresh(chart, checkpoint, True, timeout=5)
    assert done.status == "completed"
    assert done.get_state() == {"answer": True}


def test_run_sync_takes_a_timeout() -> None:
    """``run_sync(timeout=)`` bounds the run like ``run``."""

    async def slow(scope: Scope) -> None:
        await asyncio.sleep(10)

    with pytest.raises(RunTimeoutError):
        FlowChartExecutor(flow_chart("Slow", slow, "slow").build()).run_sync(timeout=0.05)


def _steps(n: int, seconds: float, log: Log) -> FlowChart:
    def step(index: int) -> Any:
        async def run(scope: Scope) -> None:
            await asyncio.sleep(seconds)
            log.calls.append(f"s{index}")
            scope[f"s{index}"] = True

        return run

    builder = flow_chart("S0", step(0), "s0")
    for index in range(1, n):
        builder.add_function(f"S{index}", step(index), f"s{index}")
    return builder.build()


async def test_cancel_from_another_task_stops_before_the_next_stage() -> None:
    """cancel() lets the stage in flight finish, runs nothing after it, and keeps its writes."""
    log = Log()
    executor = FlowChartExecutor(_steps(10, 0.03, log))
    running = asyncio.create_task(executor.run())
    await eventually(lambda: len(log.calls) >= 2)
    assert executor.cancel("wrong batch", actor="kim") is True
    assert await running == "cancelled"
    ran = log.take()
    assert 2 <= len(ran) <= 3  # the stage in flight when cancel() came finished
    assert executor.status == "cancelled"
    assert executor.get_state() == {f"s{n}": True for n in range(len(ran))}
    assert executor.get_checkpoint() is None
    snapshot = executor.get_snapshot()
    assert snapshot["status"] == "cancelled"
    assert executor.get_narrative()[-1] == f"Cancelled by kim before S{len(ran)}: wrong batch."
    assert snapshot["execution_tree"][-1]["kind"] == "cancel"
    await asyncio.sleep(0.1)
    assert log.calls == []


async def test_cancel_stops_for_each_items_and_marks_what_was_in_flight() -> None:
    """Items stop at their next stage; the for-each and its items end ``cancelled``."""
    log = Log()
    body = _steps(5, 0.02, log)
    chart = (
        flow_chart("Load", Log().stage("load", items=list(range(4))), "load")
        .add_for_each("each", "items", body, "Each")
        .build()
    )
    executor = FlowChartExecutor(chart)
    running = asyncio.create_task(executor.run())
    await eventually(lambda: len(log.calls) >= 4)
    executor.cancel()
    assert await running == "cancelled"
    assert node(executor, "each")["status"] == "cancelled"
    assert executor.get_narrative()[-1].startswith("Cancelled before S")
    assert len(log.calls) < 20


async def test_cancel_when_nothing_runs_does_nothing() -> None:
    """cancel() of an idle or paused executor returns False and changes nothing."""
    chart = flow_chart("Approve", Log().pausable("approve"), "approve").build()
    executor = FlowChartExecutor(chart)
    assert executor.cancel() is False
    await executor.run()
    assert executor.cancel() is False
    assert executor.status == "paused"


# -- cancelling through Runs ---------------------------------------------------------


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_store_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[Runs]:
    async with Runs(open_store(store_url), controls_child.charts()) as opened:
        yield opened


def _side_effects(side_log: Path, run_id: str) -> list[str]:
    if not side_log.exists():
        return []
    return [
        what
        for rid, _, what in (line.partition(" ") for line in side_log.read_text().splitlines())
        if rid == run_id
    ]


@pytest.mark.parametrize("store_url", ["memory"], indirect=True)
async def test_runs_cancel_of_a_running_run_in_this_process(runs: Runs, tmp_path: Path) -> None:
    """Runs.cancel of a running run: requested, noticed at a stage boundary, recorded with who and why."""
    side_log = tmp_path / "side.log"
    running = asyncio.create_task(runs.start("slow", {"side_log": str(side_log)}, run_id="r1"))
    await eventually(lambda: len(_side_effects(side_log, "r1")) >= 2)
    record = await runs.cancel("r1", actor="ops", reason="wrong batch")
    assert record.status == "cancelled"
    assert (await running).status == "cancelled"
    kinds = [(event.kind, event.actor) for event in record.audit]
    assert kinds == [("started", None), ("cancel_requested", "ops"), ("cancelled", "ops")]
    assert record.audit[-1].data["reason"] == "wrong batch"
    done = _side_effects(side_log, "r1")
    assert len(done) < controls_child.SLOW_STAGES
    assert record.snapshot is not None
    assert record.snapshot["status"] == "cancelled"
    assert record.snapshot["shared_state"] == {
        "side_log": str(side_log),
        **{f"step{n}": True for n in range(len(done))},
    }
    assert (
        record.snapshot["narrative"][-1] == f"Cancelled by ops before Step{len(done)}: wrong batch."
    )
    with pytest.raises(RunNotPausedError, match="only a paused run can be cancelled"):
        await runs.cancel("r1", actor="ops")


@pytest.mark.parametrize("store_url", DURABLE, indirect=True)
async def test_runs_cancel_from_another_process_while_it_runs(
    runs: Runs, store_url: str, tmp_path: Path
) -> None:
    """A child process drives a run; this process cancels it; the child stops it and records who."""
    side_log = tmp_path / "side.log"
    run_id = uuid.uuid4().hex
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        CHILD,
        "start",
        store_url,
        run_id,
        str(side_log),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(lambda: len(_side_effects(side_log, run_id)) >= 3)
        record = await runs.cancel(run_id, actor="ops", reason="stop the batch", wait=20)
        assert child.stdout is not None
        async with asyncio.timeout(30):
            printed = (await child.stdout.readline()).decode().strip()
    finally:
        await child.wait()
    assert child.returncode == 0
    assert printed == "cancelled"
    assert record.status == "cancelled"
    cancelled = [event for event in record.audit if event.kind == "cancelled"]
    assert [(e.actor, e.data["reason"]) for e in cancelled] == [("ops", "stop the batch")]
    assert cancelled[0].data["stopped_by"] != runs._owner  # the child stopped it, not us
    done = _side_effects(side_log, run_id)
    assert 3 <= len(done) < controls_child.SLOW_STAGES
    assert done == [f"step{n}" for n in range(len(done))]  # each once, and nothing after the stop
    assert record.snapshot is not None
    state = record.snapshot["shared_state"]
    assert {key for key in state if key.startswith("step")} == {
        f"step{n}" for n in range(len(done))
    }
    await asyncio.sleep(3 * controls_child.SLOW_SECONDS)
    assert _side_effects(side_log, run_id) == done


def _stale(
    run_id: str, name: str, chart: FlowChart, at: float, input: dict[str, Any] | None = None
) -> Any:
    """A record of a run whose process died in its first stage, its lease lapsing at ``at + 60``."""
    from pausepoint.stores.base import StoredRun

    return StoredRun(
        run_id=run_id,
        chart=name,
        fingerprint=chart.fingerprint,
        status="running",
        created_at=at,
        updated_at=at,
        lease_owner="gone:1",
        lease_until=at + 60,
        meta={"input": input or {}},
    )


@pytest.mark.parametrize("store_url", ["memory"], indirect=True)
async def test_recover_finishes_a_dead_runs_cancel_request(runs: Runs) -> None:
    """A run whose process died with a cancel request pending is cancelled by recover(), not run on."""
    import dataclasses

    now = time.time()
    await runs.store.create(
        _stale("dead", "slow", runs.charts["slow"], now, {"side_log": "/dev/null"}), []
    )
    record = await runs.store.get("dead")
    await runs.store.replace(
        dataclasses.replace(
            record, meta={**record.meta, "cancel": {"actor": "ops", "reason": "x"}}
        ),
        expected_version=record.version,
        events=[],
    )
    assert await runs.recover(now=now + 120) == ["dead"]
    got = await runs.get("dead")
    assert got.status == "cancelled"
    assert got.audit[-1].kind == "cancelled"
    assert got.audit[-1].actor == "ops"


async def test_recover_drives_stale_runs_side_by_side() -> None:
    """Two recovered runs whose stages wait for each other both finish: one long stage does
    not hold up the others (with concurrency=1 they would wait forever)."""
    met = asyncio.Barrier(2)

    async def meet(scope: Scope) -> None:
        await asyncio.wait_for(met.wait(), 10)
        scope.met = True

    chart = flow_chart("Meet", meet, "meet").build()
    now = time.time()
    async with Runs(open_store("memory://"), {"meet": chart}) as runs:
        for run_id in ("a", "b"):
            await runs.store.create(_stale(run_id, "meet", chart, now), [])
        assert sorted(await runs.recover(now=now + 120)) == ["a", "b"]
        for run_id in ("a", "b"):
            got = await runs.get(run_id)
            assert got.status == "completed"
            assert [e.kind for e in got.audit] == ["recovered", "completed"]
        with pytest.raises(ValueError, match="concurrency must be at least 1"):
            await runs.recover(concurrency=0)


async def test_recover_goes_on_past_a_run_that_fails() -> None:
    """A stale run whose stage raises ends failed; the other stale runs are still recovered."""

    def maybe_fail(scope: Scope) -> None:
        if scope.run_id == "bad":
            raise RuntimeError("boom")

    chart = flow_chart("Meet", maybe_fail, "meet").build()
    now = time.time()
    async with Runs(open_store("memory://"), {"meet": chart}) as runs:
        for run_id in ("bad", "good"):
            await runs.store.create(_stale(run_id, "meet", chart, now), [])
        assert await runs.recover(now=now + 120, concurrency=1) == ["bad", "good"]
        assert (await runs.get("bad")).status == "failed"
        assert (await runs.get("good")).status == "completed"


# -- 4. decision evidence ------------------------------------------------------------


def _routed(route: Any, **build: Any) -> FlowChart:
    return (
        flow_chart("Receive", Log().stage("receive"), "receive")
        .add_decider_function("Route", route, "route")
        .add_function_branch("high", "High", Log().stage("high", lane="high"))
        .add_function_branch("low", "Low", Log().stage("low", lane="low"))
        .end()
        .build(**build)
    )


def _by_amount(scope: Scope) -> Any:
    return decide(
        scope, rules=[When(amount__gt=500, then="high", label="Large amount")], default="low"
    )


async def test_decision_evidence_in_narrative_and_tree() -> None:
    """The rule that matched and the values it compared are in the narrative and the tree."""
    executor = await run_fresh(_routed(_by_amount), {"amount": 900})
    assert 'Route chose "high": Large amount — amount 900 > 500.' in executor.get_narrative()
    route = node(executor, "route")
    assert route["reads"] == ["amount"]
    assert route["evidence"] == {
        "chose": ["high"],
        "matched": [
            {
                "rule": 0,
                "then": "high",
                "label": "Large amount",
                "checks": [
                    {"key": "amount", "op": "gt", "expected": 500, "value": 900, "ok": True}
                ],
            }
        ],
        "default": False,
    }


async def test_decision_evidence_of_the_default() -> None:
    """No rule matching: the default is taken, and the narrative says which check failed."""
    executor = await run_fresh(_routed(_by_amount), {"amount": 90})
    assert executor.get_state()["lane"] == "low"
    assert 'Route chose "low" by default: no rule matched (amount 90 is not > 500).' in (
        executor.get_narrative()
    )
    assert node(executor, "route")["evidence"]["checked"] == [
        {"key": "amount", "op": "gt", "expected": 500, "value": 90, "ok": False}
    ]


@pytest.mark.parametrize(
    ("rule", "state", "matches", "said"),
    [
        (When(tier="gold", then="high"), {"tier": "gold"}, True, 'tier "gold" == "gold"'),
        (
            When(tier__ne="gold", then="high"),
            {"tier": "gold"},
            False,
            'tier "gold" is not != "gold"',
        ),
        (When(n__ge=3, then="high"), {"n": 3}, True, "n 3 >= 3"),
        (When(n__lt=3, then="high"), {"n": 3}, False, "n 3 is not < 3"),
        (When(n__le=3, then="high"), {"n": 3}, True, "n 3 <= 3"),
        (
            When(country__in=("FR", "DE"), then="high"),
            {"country": "FR"},
            True,
            'country "FR" in ["FR", "DE"]',
        ),
        (
            When(tags__contains="vip", then="high"),
            {"tags": ["vip"]},
            True,
            'tags ["vip"] contains "vip"',
        ),
        (When(vip=True, then="high"), {}, False, "vip is not set"),
        (
            When(a__gt=1, b__lt=5, then="high", label="Both"),
            {"a": 2, "b": 4},
            True,
            "Both — a 2 > 1 and b 4 < 5",
        ),
    ],
)
async def test_decision_operators(
    rule: When, state: dict[str, Any], matches: bool, said: str
) -> None:
    """Each operator, a bare key (equality), a missing key, and several conditions together."""

    def route(scope: Scope) -> Any:
        return decide(scope, rules=[rule], default="low")

    executor = await run_fresh(_routed(route), state)
    assert executor.get_state()["lane"] == ("high" if matches else "low")
    sentence = next(line for line in executor.get_narrative() if line.startswith("Route chose"))
    assert said in sentence


async def test_selector_evidence_names_every_matching_rule() -> None:
    """select() returns the branch of every matching rule; the narrative gives each reason."""

    def notify(scope: Scope) -> Any:
        return select(
            scope,
            rules=[
                When(tier="gold", then="sms", label="VIP"),
                When(amount__gt=500, then="email", label="Large"),
                When(amount__gt=10_000, then="call", label="Huge"),
            ],
        )

    chart = (
        flow_chart("Receive", Log().stage("receive"), "receive")
        .add_selector_function("Notify", notify, "notify")
        .add_function_branch("sms", "SMS", Log().stage("sms", sms=True))
        .add_function_branch("email", "Email", Log().stage("email", email=True))
        .add_function_branch("call", "Call", Log().stage("call", call=True))
        .end()
        .build()
    )
    executor = await run_fresh(chart, {"tier": "gold", "amount": 900})
    assert executor.get_state()["sms"]
    assert executor.get_state()["email"]
    assert "call" not in executor.get_state()
    assert (
        'Notify chose "sms", "email": VIP — tier "gold" == "gold"; Large — amount 900 > 500.'
        in executor.get_narrative()
    )
    assert [m["rule"] for m in node(executor, "notify")["evidence"]["matched"]] == [0, 1]


async def test_evidence_is_dropped_when_the_function_returns_something_else() -> None:
    """Evidence is kept only if the decider returned what the rules chose."""

    def route(scope: Scope) -> str:
        decide(scope, rules=[When(amount__gt=500, then="high")], default="low")
        return "low"

    executor = await run_fresh(_routed(route), {"amount": 900})
    assert "evidence" not in node(executor, "route")
    assert 'Route chose branch "low".' in executor.get_narrative()


async def test_evidence_redacts_secret_values() -> None:
    """A redacted key's value shows as *** in the evidence and the narrative."""

    def route(scope: Scope) -> Any:
        return decide(scope, rules=[When(salary__gt=100_000, then="high")], default="low")

    executor = await run_fresh(_routed(route, redact=["salary"]), {"salary": 250_000})
    assert 'Route chose "high": salary "***" > 100000.' in executor.get_narrative()
    assert "250000" not in str(executor.get_snapshot())


async def test_evidence_travels_in_the_checkpoint_and_is_checked() -> None:
    """Evidence recorded before a pause is in the resumed run's narrative; mangled evidence is refused."""
    chart = (
        flow_chart("Receive", Log().stage("receive"), "receive")
        .add_decider_function("Route", _by_amount, "route")
        .add_pausable_branch("high", "High", Log().pausable("high"))
        .add_function_branch("low", "Low", Log().stage("low"))
        .end()
        .build()
    )
    checkpoint = checkpoint_of(await run_fresh(chart, {"amount": 900}))
    done = await resume_fresh(chart, checkpoint, "ok")
    assert 'Route chose "high": Large amount — amount 900 > 500.' in done.get_narrative()
    mangled = roundtrip(checkpoint)
    mangled["execution_tree"][1]["evidence"]["matched"][0]["checks"] = "amount"
    with pytest.raises(CheckpointFormatError, match="evidence"):
        await FlowChartExecutor(chart).resume(mangled, "ok")


def test_malformed_rules_are_refused() -> None:
    """``then`` must be a branch key; rules must be When objects."""
    with pytest.raises(ChartError, match="then must be a branch key"):
        When(amount__gt=5, then=1)  # type: ignore[arg-type]  # the mistake tested
    with pytest.raises(TypeError, match="rules must be a list of When"):
        decide(None, rules=When(then="x"))  # type: ignore[arg-type]  # the mistake tested


# -- 5. contracts --------------------------------------------------------------------


class RefundIn(BaseModel):
    order_id: str
    amount: int
    currency: str = "EUR"


class RefundOut(BaseModel):
    approved: bool
    amount: int


def _contract_chart(log: Log, **build: Any) -> FlowChart:
    return (
        flow_chart("Receive", log.stage("receive"), "receive")
        .add_function("Decide", log.stage("decide", approved=True), "decide")
        .build(**build)
    )


async def test_input_contract_refuses_bad_input_before_any_stage() -> None:
    """A bad input is a RunInputError naming the field, and no stage runs."""
    log = Log()
    executor = FlowChartExecutor(_contract_chart(log, input=RefundIn))
    with pytest.raises(
        RunInputError, match=r"does not fit RefundIn: amount: Input should be a valid integer"
    ) as info:
        await executor.run({"order_id": "A1", "amount": "lots"})
    assert [error["loc"] for error in info.value.errors] == [["amount"]]
    with pytest.raises(RunInputError, match="order_id: Field required"):
        await executor.run({"amount": 5})
    assert log.calls == []
    assert executor.status == "idle"


async def test_input_contract_seeds_validated_fields_with_defaults() -> None:
    """The state starts from the validated input, defaults included; a model instance is accepted."""
    chart = _contract_chart(Log(), input=RefundIn)
    executor = await run_fresh(chart, {"order_id": "A1", "amount": "12"})
    assert executor.get_state() == {
        "order_id": "A1",
        "amount": 12,
        "currency": "EUR",
        "approved": True,
    }
    from_model = await run_fresh(chart, RefundIn(order_id="A2", amount=3))  # type: ignore[arg-type]  # a model instance is accepted
    assert from_model.get_state()["order_id"] == "A2"


async def test_output_contract_is_checked_when_the_run_completes() -> None:
    """A completed run's state must fit the output model: RunOutputError naming the field, else get_output()."""
    good = await run_fresh(_contract_chart(Log(), output=RefundOut), {"amount": 5})
    assert good.get_output() == RefundOut(approved=True, amount=5)

    executor = FlowChartExecutor(_contract_chart(Log(), output=RefundOut))
    with pytest.raises(
        RunOutputError, match="does not fit the output model RefundOut: amount: Field required"
    ) as info:
        await executor.run({})
    assert [error["loc"] for error in info.value.errors] == [["amount"]]
    assert executor.status == "failed"
    assert executor.get_state() == {"approved": True}
    assert executor.get_output() is None


async def test_output_contract_applies_after_a_resume() -> None:
    """The output is validated at the end of whichever call completes the run."""
    chart = flow_chart("Approve", Log().pausable("approve", key="approved"), "approve").build(
        output=RefundOut
    )
    checkpoint = checkpoint_of(await run_fresh(chart, {"amount": 7}))
    done = await resume_fresh(chart, checkpoint, False)
    assert done.get_output() == RefundOut(approved=False, amount=7)


def test_contract_schemas_and_fingerprint() -> None:
    """input_schema()/output_schema() give JSON Schema (None undeclared); contracts leave the fingerprint alone."""
    plain = _contract_chart(Log())
    declared = _contract_chart(Log(), input=RefundIn, output=RefundOut)
    assert plain.input_schema() is None
    assert plain.output_schema() is None
    schema = declared.input_schema()
    assert schema is not None
    assert schema["required"] == ["order_id", "amount"]
    assert schema["properties"]["currency"]["default"] == "EUR"
    output = declared.output_schema()
    assert output is not None
    assert set(output["properties"]) == {"approved", "amount"}
    assert plain.fingerprint == declared.fingerprint
    controlled = (
        flow_chart("Receive", Log().stage("receive"), "receive", retry=Retry(), time_limit=3)
        .add_function("Decide", Log().stage("decide"), "decide")
        .build()
    )
    assert controlled.fingerprint == plain.fingerprint


def test_contract_that_pydantic_cannot_validate_is_a_chart_error() -> None:
    """A model pydantic cannot build a schema for is refused at build()."""

    class Opaque:
        pass

    with pytest.raises(ChartError, match="is not a model pydantic can validate"):
        _contract_chart(Log(), input=Opaque)


@pytest.mark.parametrize("store_url", ["memory"], indirect=True)
async def test_runs_start_refuses_bad_input_without_creating_a_run(store_url: str) -> None:
    """Through Runs, a bad input raises RunInputError and leaves no record behind."""
    chart = _contract_chart(Log(), input=RefundIn)
    async with Runs(open_store(store_url), {"refund": chart}) as runs:
        with pytest.raises(RunInputError, match="amount"):
            await runs.start("refund", {"order_id": "A1"}, run_id="bad")
        with pytest.raises(RunNotFoundError):
            await runs.get("bad")
        record = await runs.start("refund", {"order_id": "A1", "amount": "4"}, run_id="good")
        assert record.status == "completed"
        assert record.snapshot is not None
        assert record.snapshot["input"] == {"order_id": "A1", "amount": 4, "currency": "EUR"}


# -- 6. limits -------------------------------------------------------------------------


def _nested(depth: int) -> FlowChart:
    chart = flow_chart("Leaf", Log().stage("leaf"), "leaf").build()
    for level in range(depth):
        chart = (
            flow_chart(f"L{level}", Log().stage(f"l{level}"), f"l{level}")
            .add_subflow(f"sub{level}", chart, f"Sub{level}")
            .build()
        )
    return chart


async def test_nesting_up_to_the_limit_builds_and_runs() -> None:
    """Charts mounted MAX_NESTING deep build and run."""
    chart = _nested(MAX_NESTING)
    assert chart.nesting == MAX_NESTING
    executor = await run_fresh(chart)
    assert executor.status == "completed"


def test_nesting_past_the_limit_is_a_chart_error() -> None:
    """One level more is refused at build(), naming the limit; for-each bodies count too."""
    deepest = _nested(MAX_NESTING)
    with pytest.raises(
        ChartError, match=f"mounts charts {MAX_NESTING + 1} levels deep.*limit is {MAX_NESTING}"
    ):
        flow_chart("Top", Log().stage("top"), "top").add_subflow("sub", deepest, "Sub").build()
    with pytest.raises(ChartError, match="levels deep"):
        flow_chart("Top", Log().stage("top"), "top").add_for_each(
            "each", "xs", deepest, "Each"
        ).build()
