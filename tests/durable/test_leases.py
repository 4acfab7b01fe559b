"""A claim holds while its process lives, and a process that lost it writes nothing.

Every test runs on SQLite, Redis and PostgreSQL with real processes
(``lease_child.py``): one resumes a run whose ``slow`` stage holds its process,
while two others sweep the store every 0.3 s, one with ``pausepoint sweep``,
one calling ``Runs.recover()``. The lease is 1 s. A stage that holds its
process for four leases (sleeping, blocking the loop, burning CPU) must not be
taken over; a process killed in a stage is taken over once; a process stopped
past its lease is taken over, and once continued writes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint import RunRecord, Runs, open_store
from stores.support import DURABLE, fresh_store_url

from . import lease_child

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "celery"))  # its helpers
from celery_support import wait_until

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
CHILD = str(HERE / "lease_child.py")
LEASE = 1.0
SWEEP_EVERY = 0.3


# -- child processes -------------------------------------------------------------


class Child:
    """A child process whose stdout and stderr go to files in ``tmp_path``."""

    def __init__(self, name: str, command: list[str], tmp_path: Path) -> None:
        self.name = name
        self.out = tmp_path / f"{name}.out"
        self.err = tmp_path / f"{name}.err"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                command, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def done(self) -> bool:
        return self.process.poll() is not None

    def reports(self) -> list[Any]:
        """The JSON lines it printed so far."""
        lines = self.out.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate it (continued first, if stopped); kill it if it lingers."""
        if self.done():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __str__(self) -> str:
        return f"{self.name} (exit {self.process.returncode}):\n{self.stderr()[-3000:]}"


def resumer(tmp_path: Path, name: str, store_url: str, run_id: str) -> Child:
    return Child(name, [sys.executable, CHILD, "resume", store_url, str(LEASE), run_id], tmp_path)


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(params=DURABLE)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store: own SQLite file, Redis prefix or PostgreSQL schema."""
    with fresh_store_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[Runs]:
    """This process's ``Runs``: it starts the runs and reads them, nothing more."""
    async with Runs(open_store(store_url), lease_child.charts, lease_seconds=LEASE) as opened:
        yield opened


@pytest.fixture
async def sweepers(store_url: str, tmp_path: Path) -> AsyncIterator[list[Child]]:
    """Two processes sweeping the store every 0.3 s, started before the test's runs go on.

    One is ``pausepoint sweep --every``, the other calls ``Runs.recover()`` with a
    1 s lease. Both print one JSON line per sweep; the first says they sweep.
    """
    started: list[Child] = []
    try:
        sweep = [sys.executable, "-m", "pausepoint", "sweep", "--every", str(SWEEP_EVERY)]
        sweep += ["--json", "--store", store_url, "--charts", "lease_child"]
        started.append(Child("sweep-cli", sweep, tmp_path))
        recover = [sys.executable, CHILD, "recover", store_url, str(LEASE), str(SWEEP_EVERY)]
        started.append(Child("sweep-recover", recover, tmp_path))
        await wait_until(
            lambda: all(child.reports() or child.done() for child in started),
            60,
            "the sweepers to sweep",
        )
        for child in started:
            assert not child.done(), str(child)
        yield started
    finally:
        for child in started:
            child.stop()


@pytest.fixture
def side_log(tmp_path: Path) -> Path:
    return tmp_path / "side.log"


# -- helpers ---------------------------------------------------------------------------


async def start(runs: Runs, chart: str, side_log: Path, slow_seconds: list[float]) -> RunRecord:
    """Start a run of ``chart``; it pauses at ``approve`` (see :mod:`lease_child`)."""
    record = await runs.start(
        chart, {"side_log": str(side_log), "slow_seconds": slow_seconds}, actor="api"
    )
    assert record.status == "paused", record
    return record


def effects(side_log: Path, run_id: str) -> Counter[str]:
    """How often each side effect was recorded for ``run_id``."""
    lines = side_log.read_text().splitlines() if side_log.exists() else []
    return Counter(
        what for rid, _, what in (line.partition(" ") for line in lines) if rid == run_id
    )


def kinds(record: RunRecord) -> list[str]:
    return [event.kind for event in record.audit]


def recovered_by(sweepers: list[Child]) -> list[str]:
    """Every run id the sweepers reported recovering, once per takeover."""
    return [
        run_id for child in sweepers for line in child.reports() for run_id in line["recovered"]
    ]


async def have_status(runs: Runs, run_ids: Iterable[str], status: str) -> bool:
    return all([(await runs.get(run_id)).status == status for run_id in run_ids])


ONCE_EACH = Counter(
    {"receive": 1, "approve:ask": 1, "approve:answer": 1, "step1": 1}
    | {"slow-start": 1, "slow-end": 1, "step3": 1}
)
"""The side effects of a run started, answered and finished by one process each."""


# -- a claim holds while its process lives ------------------------------------------


async def test_stages_holding_their_process_for_four_leases_run_once_while_others_sweep(
    runs: Runs, store_url: str, sweepers: list[Child], side_log: Path, tmp_path: Path
) -> None:
    """A sync stage sleeping, an async stage blocking the loop and a CPU-bound stage, each
    for four leases, complete exactly once: no sweep takes their runs over.

    The three runs go on at once, each in a process of its own.
    """
    started = {
        flavour: await start(runs, flavour, side_log, [4 * LEASE])
        for flavour in ("sync", "blocking", "cpu")
    }
    sweeps_before = [len(child.reports()) for child in sweepers]
    resumers = {
        flavour: resumer(tmp_path, f"resume-{flavour}", store_url, record.run_id)
        for flavour, record in started.items()
    }
    try:
        await wait_until(
            lambda: all(child.done() for child in resumers.values()), 60, "the resumes to end"
        )
    finally:
        for child in resumers.values():
            child.stop()

    for child in sweepers:
        assert not child.done(), str(child)
    swept = [
        len(child.reports()) - before for child, before in zip(sweepers, sweeps_before, strict=True)
    ]
    assert min(swept) >= 5, f"the sweepers did not sweep throughout: {swept} sweeps"
    outcomes = {}
    for flavour, record in started.items():
        got = await runs.get(record.run_id)
        outcomes[flavour] = (
            resumers[flavour].reports(),
            got.status,
            kinds(got),
            effects(side_log, record.run_id),
        )
    once = ([{"status": "completed"}], "completed", ["started", "paused", "resumed", "completed"])
    assert outcomes == {flavour: (*once, ONCE_EACH) for flavour in started}, "\n".join(
        map(str, resumers.values())
    )
    assert recovered_by(sweepers) == []


# -- a dead process loses its claim once ---------------------------------------------


async def test_kill_9_mid_stage_is_taken_over_once_after_the_lease_and_only_that_stage_reruns(
    runs: Runs, store_url: str, sweepers: list[Child], side_log: Path, tmp_path: Path
) -> None:
    """SIGKILL during ``slow``: one sweeper takes the run over after the lease and
    finishes it; only ``slow`` runs again, and the audit has one ``recovered``."""
    record = await start(runs, "sync", side_log, [60, 0.2])
    child = resumer(tmp_path, "resume", store_url, record.run_id)
    try:
        await wait_until(
            lambda: effects(side_log, record.run_id)["slow-start"] or child.done(),
            60,
            "the child to reach the slow stage",
        )
        assert not child.done(), str(child)
        os.kill(child.pid, signal.SIGKILL)
        child.process.wait(timeout=10)
    finally:
        child.stop()
    assert child.process.returncode == -signal.SIGKILL, str(child)
    held = await runs.store.get(record.run_id)  # as the dead process left it
    assert held.lease_until is not None

    await wait_until(
        lambda: have_status(runs, [record.run_id], "completed"), 60, "the run to be taken over"
    )
    await wait_until(lambda: recovered_by(sweepers), 30, "the taker to report the run")
    assert recovered_by(sweepers) == [record.run_id]
    got = await runs.get(record.run_id)
    assert kinds(got) == ["started", "paused", "resumed", "recovered", "completed"]
    (recovered,) = [event for event in got.audit if event.kind == "recovered"]
    assert recovered.at >= held.lease_until  # not taken over before its lease lapsed
    assert effects(side_log, record.run_id) == ONCE_EACH + Counter({"slow-start": 1})
    for sweeper in sweepers:
        assert not sweeper.done(), str(sweeper)


# -- a stopped process is fenced off ----------------------------------------------------

STOPPED = {"sync": [2 * LEASE, 0.2], "async": [5 * LEASE, 0.2]}
"""How long ``slow`` holds in the process to stop, then in the one that takes over.

Stopped for three leases, the ``sync`` stage finds its time up when continued
and goes on to write; the ``async`` one waits a while more with its loop free,
while its lease thread finds the claim gone."""


async def test_a_process_stopped_past_its_lease_is_taken_over_and_writes_nothing_once_continued(
    runs: Runs, store_url: str, sweepers: list[Child], side_log: Path, tmp_path: Path
) -> None:
    """SIGSTOP during ``slow`` for three leases: a sweeper takes the run over and
    finishes it. Continued, the first process ends its stage in flight, writes
    nothing (audit, journal and version stay as the taker left them), runs no later
    stage, and logs that it lost its claim."""
    started = {
        flavour: await start(runs, flavour, side_log, seconds)
        for flavour, seconds in STOPPED.items()
    }
    run_ids = {flavour: record.run_id for flavour, record in started.items()}
    children = {
        flavour: resumer(tmp_path, f"resume-{flavour}", store_url, run_id)
        for flavour, run_id in run_ids.items()
    }
    taken: dict[str, tuple[RunRecord, list[Any]]] = {}
    try:
        await wait_until(
            lambda: all(
                effects(side_log, run_id)["slow-start"] or children[flavour].done()
                for flavour, run_id in run_ids.items()
            ),
            60,
            "the children to reach the slow stage",
        )
        for child in children.values():
            assert not child.done(), str(child)
            os.kill(child.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            await wait_until(
                lambda: have_status(runs, run_ids.values(), "completed"),
                60,
                "the runs to be taken over",
            )
            await wait_until(
                lambda: time.monotonic() - stopped_at >= 3 * LEASE, 10, "three leases to pass"
            )
            for flavour, run_id in run_ids.items():
                taken[flavour] = (await runs.get(run_id), await runs.history(run_id))
        finally:
            for child in children.values():
                os.kill(child.pid, signal.SIGCONT)
        await wait_until(
            lambda: all(child.done() for child in children.values()),
            60,
            "the continued processes to end",
        )
    finally:
        for child in children.values():
            child.stop()

    assert sorted(recovered_by(sweepers)) == sorted(run_ids.values())
    for flavour, run_id in run_ids.items():
        child = children[flavour]
        assert child.process.returncode == 0, str(child)
        [report] = child.reports()
        assert report["error"] == "ClaimLostError", (flavour, report)
        record, history = taken[flavour]
        assert kinds(record) == ["started", "paused", "resumed", "recovered", "completed"]
        got = await runs.get(run_id)
        assert (got.status, got.version, got.audit) == (record.status, record.version, record.audit)
        assert await runs.history(run_id) == history, flavour
        # the stage in flight at the stop ends in both processes; nothing after it runs twice
        assert effects(side_log, run_id) == ONCE_EACH + Counter({"slow-start": 1, "slow-end": 1}), (
            flavour
        )
        why = [
            line
            for line in child.stderr().splitlines()
            if line.startswith("pausepoint")
            and run_id in line
            and ("taken over" in line or "lost" in line)
        ]
        assert why, f"the stopped process did not log why it stopped: {child}"
