"""S3, many paused runs in one store: creation rate, the inbox, resumes one by one and at once.

For each store, in order, in a fresh file / schema / key prefix (SQLite twice:
``Runs`` with the default ``durability="stage"``, then with ``"pause"``):

1. ``runs`` refund runs are started one after another, each to its pause (the
   refund chart registered twice, as ``refund`` and ``expense``; runs alternate);
   the rate counts all but the first, which warms up;
2. the first inbox page, ``runs.pending(limit=50)``, timed by the harness policy;
3. every paused run of one chart (``expense``, half the runs), page by page
   (``limit=50``, ``cursor=next_cursor``), timed the same way;
4. ``sequential`` resumes, one after another, in this process;
5. ``processes`` x ``per_process`` resumes of other runs at once, from as many
   worker processes (``spawn``, started once for the section), each resuming its
   own runs one after another; the rate is every resume over the time from the
   first worker's start to the last one's end (workers connect and wait at a
   starting line first).

The floors (:mod:`bench.floor`) do steps 1 to 4 with one row per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from . import durable, pp
from .async_harness import measure_async
from .floor import Floor
from .harness import Case, Sample, Settings, measure
from .scenarios import REFUND_ANSWER, REFUND_FINAL_STATUS, REFUND_INPUT, REFUND_QUESTION, expect
from .servers import POSTGRES, REDIS, SQLITE, Places

CHARTS = ("refund", "expense")
LISTED = "expense"
PAGE = 50

CREATED = "created/s"
FIRST_PAGE = "inbox page ms"
ONE_CHART = "one chart, all pages ms"
SEQUENTIAL = "resumes/s"
PARALLEL = "resumes/s, {n} procs"


@dataclass(frozen=True)
class Sizes:
    runs: int
    sequential: int
    processes: int
    per_process: int

    def __post_init__(self) -> None:
        if self.sequential + self.processes * self.per_process >= self.runs:
            raise ValueError("more resumes than paused runs")

    @property
    def parallel_column(self) -> str:
        return PARALLEL.format(n=self.processes)


FULL_SIZES = Sizes(runs=10_000, sequential=1_000, processes=4, per_process=1_000)
QUICK_SIZES = Sizes(runs=300, sequential=30, processes=4, per_process=15)


@dataclass
class Outcome:
    """One figure of a row: a value, and its sample when it is a median of batches."""

    value: float
    sample: Sample | None = None


def _ms(sample: Sample) -> Outcome:
    return Outcome(sample.median_ns / 1e6, sample)  # the sample stays in ns, as --json says


def _rate(count: int, elapsed_ns: int) -> Outcome:
    return Outcome(count / (elapsed_ns / 1e9))


def _charts() -> dict[str, Any]:
    chart = pp.refund_chart()
    return dict.fromkeys(CHARTS, chart)


# -- pausepoint Runs --------------------------------------------------------


async def _runs(
    url: str, sizes: Sizes, settings: Settings, durability: durable.Durability
) -> tuple[dict[str, Outcome], list[str]]:
    from pausepoint import Runs, open_store

    out: dict[str, Outcome] = {}
    async with Runs(open_store(url), _charts(), durability=durability) as runs:
        ids = [(await runs.start(CHARTS[0], REFUND_INPUT)).run_id]  # connects, warms up
        gc.collect()
        started = time.perf_counter_ns()
        for i in range(1, sizes.runs):
            ids.append((await runs.start(CHARTS[i % 2], REFUND_INPUT)).run_id)
        out[CREATED] = _rate(sizes.runs - 1, time.perf_counter_ns() - started)

        page = await runs.pending(limit=PAGE)
        expect(len(page.items) == PAGE and page.next_cursor is not None, "a full inbox page")
        expect(page.items[0].pause.data["question"] == REFUND_QUESTION, "the inbox shows pauses")
        out[FIRST_PAGE] = _ms(await measure_async(lambda: runs.pending(limit=PAGE), settings))

        async def one_chart() -> int:
            count, cursor = 0, None
            while True:
                page = await runs.pending(chart=LISTED, limit=PAGE, cursor=cursor)
                count += len(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    return count

        expect(await one_chart() == sizes.runs // 2, f"every paused {LISTED} run is listed")
        out[ONE_CHART] = _ms(await measure_async(one_chart, settings))

        mine = ids[: sizes.sequential]
        gc.collect()
        started = time.perf_counter_ns()
        for run_id in mine:
            done = await runs.resume(run_id, REFUND_ANSWER)
        out[SEQUENTIAL] = _rate(len(mine), time.perf_counter_ns() - started)
        expect(done.status == "completed", "resumed runs complete")
    return out, ids[sizes.sequential :]


def measure_runs(
    url: str,
    sizes: Sizes,
    settings: Settings,
    workers: Workers,
    durability: durable.Durability = "stage",
) -> dict[str, Outcome]:
    """Steps 1 to 5 for pausepoint ``Runs`` on the store at ``url``."""
    out, still_paused = asyncio.run(_runs(url, sizes, settings, durability))
    shares = [
        still_paused[i * sizes.per_process : (i + 1) * sizes.per_process]
        for i in range(sizes.processes)
    ]
    count, elapsed_ns = workers.resume(url, shares, durability)
    out[sizes.parallel_column] = _rate(count, elapsed_ns)
    return out


# -- the floor ----------------------------------------------------------------


def measure_floor(floor: Floor, sizes: Sizes, settings: Settings) -> dict[str, Outcome]:
    """Steps 1 to 4 for the floor; closes it."""
    out: dict[str, Outcome] = {}
    try:
        ids = [floor.pause(CHARTS[0])]
        gc.collect()
        started = time.perf_counter_ns()
        for i in range(1, sizes.runs):
            ids.append(floor.pause(CHARTS[i % 2]))
        out[CREATED] = _rate(sizes.runs - 1, time.perf_counter_ns() - started)
        out[FIRST_PAGE] = _ms(measure(floor.first_page_case(), settings))
        expect(floor.all_of(LISTED) == sizes.runs // 2, "the floor lists one chart")
        out[ONE_CHART] = _ms(measure(Case(lambda: floor.all_of(LISTED)), settings))
        gc.collect()
        started = time.perf_counter_ns()
        for run_id in ids[: sizes.sequential]:
            state = floor.resume(run_id)
        out[SEQUENTIAL] = _rate(sizes.sequential, time.perf_counter_ns() - started)
        expect(state["status"] == REFUND_FINAL_STATUS, "the floor's resumes complete")
    finally:
        floor.close()
    return out


# -- worker processes ---------------------------------------------------------


class Workers:
    """Worker processes that resume runs of a store on command; started on first use."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pipes: list[Connection] = []
        self._processes: list[Any] = []

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        for _ in range(self.count):
            mine, theirs = context.Pipe()
            process = context.Process(target=_worker, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self._pipes.append(mine)
            self._processes.append(process)

    def resume(
        self, url: str, shares: Sequence[list[str]], durability: durable.Durability = "stage"
    ) -> tuple[int, int]:
        """Resume each share in its own worker, all at once; return (resumes, elapsed ns)."""
        if not self._processes:
            self._start()
        for pipe, share in zip(self._pipes, shares, strict=True):
            pipe.send((url, share, durability))
        for pipe in self._pipes:
            _check(pipe.recv(), "ready")  # connected, waiting at the starting line
        for pipe in self._pipes:
            pipe.send("go")
        reports = [_check(pipe.recv(), "done") for pipe in self._pipes]
        started = min(r[1] for r in reports)
        ended = max(r[2] for r in reports)
        return sum(r[3] for r in reports), ended - started

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):  # a worker that died has closed its end
                pipe.send(None)
        for process in self._processes:
            process.join(timeout=2)  # a bench worker has nothing to flush
            if process.is_alive():
                process.terminate()
                process.join()
        for pipe in self._pipes:
            pipe.close()
        self._pipes.clear()
        self._processes.clear()


def _check(message: Any, expected: str) -> Any:
    if message[0] != expected:
        raise RuntimeError(f"a resuming worker failed:\n{message[1]}")
    return message


def _worker(pipe: Connection) -> None:
    while (job := pipe.recv()) is not None:
        url, share, durability = job
        try:
            if not asyncio.run(_resume_share(pipe, url, share, durability)):
                return
        except BaseException:
            pipe.send(("failed", traceback.format_exc()))


async def _resume_share(
    pipe: Connection, url: str, share: list[str], durability: durable.Durability
) -> bool:
    """Resume ``share`` when the parent says go; ``False`` if it says stop instead."""
    from pausepoint import Runs, open_store

    async with Runs(open_store(url), _charts(), durability=durability) as runs:
        expect((await runs.get(share[0])).status == "paused", "the worker's runs are paused")
        pipe.send(("ready",))
        if pipe.recv() != "go":  # blocks the loop, which has nothing else to do
            return False  # the parent gave up (another worker failed)
        started = time.perf_counter_ns()  # CLOCK_MONOTONIC: comparable across processes
        for run_id in share:
            done = await runs.resume(run_id, REFUND_ANSWER)
            expect(done.status == "completed", "a worker's resume completes")
        pipe.send(("done", started, time.perf_counter_ns(), len(share)))
    return True


# -- the rows ---------------------------------------------------------------

LANGGRAPH = "LangGraph (any saver)"
NO_INBOX = "n/a (no inbox of paused runs: see the last note)"

Row = tuple[str, str, Callable[[], dict[str, Outcome]]]
"""Label, server, and what measures it."""


def rows(where: Places, sizes: Sizes, settings: Settings, workers: Workers) -> list[Row]:
    """The S3 rows, in order; nothing connects before a row is measured."""
    return [
        (
            durable.SQLITE_FLOOR,
            SQLITE,
            lambda: measure_floor(Floor.sqlite(where.sqlite_path("floor")), sizes, settings),
        ),
        (
            durable.SQLITE_RUNS,
            SQLITE,
            lambda: measure_runs(where.sqlite_url("pausepoint"), sizes, settings, workers),
        ),
        (
            durable.SQLITE_RUNS_PAUSE,
            SQLITE,
            lambda: measure_runs(
                where.sqlite_url("pausepoint-pause"), sizes, settings, workers, "pause"
            ),
        ),
        (
            durable.POSTGRES_FLOOR,
            POSTGRES,
            lambda: measure_floor(
                Floor.postgres(where.postgres_connect(autocommit=True)), sizes, settings
            ),
        ),
        (
            durable.POSTGRES_RUNS,
            POSTGRES,
            lambda: measure_runs(where.postgres_url(), sizes, settings, workers),
        ),
        (
            durable.REDIS_RUNS,
            REDIS,
            lambda: measure_runs(where.redis_url(), sizes, settings, workers),
        ),
    ]


NOTES = [
    "{runs:,} refund runs started one after another in one process, each to its pause; runs "
    "alternate between two chart names; created/s counts all but the first",
    "inbox page = runs.pending(limit=50) over all of them; one chart = every paused run of one "
    "chart ({half:,}), page by page with next_cursor (limit=50); median of batches, as above",
    "resumes/s: {sequential:,} resumes one after another in this process; resumes/s, "
    "{processes} procs: {processes} x {per_process:,} other runs resumed at once from "
    "{processes} worker processes (spawned beforehand, connected, released together)",
    "durability=pause: the same with Runs(..., durability='pause'): a start or a resume "
    "writes the claim and the outcome only (see S2p)",
    "the rates are absolute, so they follow the disk's commit time (synchronous = FULL): "
    "the floor's row, measured in the same run, shows what the disk allows",
    "floor: the S2p floor, one row per run with a partial index on paused rows; pages by "
    "(created_at, run_id); resumes = SELECT + UPDATE",
    "LangGraph keeps no inbox of paused runs: its open-source savers can only list checkpoints "
    "(checkpointer.list(None) walks every checkpoint of every thread, with no filter for "
    "'waiting on an interrupt'); its server has that, not the library. Its per-run cost is "
    "S2p's row: 1e6 / µs gives the one-at-a-time rate",
]
