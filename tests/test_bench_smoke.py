"""The benchmarks run: ``python -m bench --quick`` exits 0 and prints every section's rows.

Only that the suite runs is checked, never a figure: timings on a shared CI
machine are noise. The second test hides LangGraph (the ``bench`` extra is not
part of ``dev``) to pin that its rows then say how to install it. The rows on
PostgreSQL and Redis (S2p, S3) show figures, or ``n/a (server unreachable)``
when no server answers: either is accepted, a traceback is not.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"~?[\d,]+(?:\.\d+)?"
UNREACHABLE = r"n/a \(server unreachable\)$"
HIDE_LANGGRAPH = (
    "import runpy, sys; sys.modules['langgraph'] = None; "
    "runpy.run_module('bench', run_name='__main__', alter_sys=True)"
)

pytestmark = pytest.mark.slow


def _bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args, "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _row(out: str, scenario: str, contender: str, cells: int) -> None:
    pattern = rf"^{scenario}\s+{re.escape(contender)}" + rf"\s+{NUMBER}" * cells
    assert re.search(pattern, out, re.MULTILINE), f"no {scenario} row for {contender!r}:\n{out}"


def _server_row(out: str, scenario: str, contender: str, cells: int) -> None:
    """A row on PostgreSQL or Redis: figures, or n/a when the server does not answer."""
    head = rf"^{scenario}\s+{re.escape(contender)}\s+"
    if re.search(head + UNREACHABLE, out, re.MULTILINE) is None:
        _row(out, scenario, contender, cells)


def _durable_rows(out: str) -> None:
    """S2p, S3 and the bytes on disk: the floors and pausepoint on every store."""
    for scenario, runs_cells in (("S2p", 2), ("S3", 5)):
        floor_cells = 2 if scenario == "S2p" else 4  # the S3 floor resumes from one process only
        _row(out, scenario, "sqlite3 insert / update + commit", cells=floor_cells)
        _row(out, scenario, "pausepoint Runs, SQLite", cells=runs_cells)
        _row(out, scenario, "pausepoint Runs, SQLite, durability=pause", cells=runs_cells)
        _server_row(out, scenario, "psycopg insert / update (autocommit)", cells=floor_cells)
        _server_row(out, scenario, "pausepoint Runs, PostgreSQL", cells=runs_cells)
        _server_row(out, scenario, "pausepoint Runs, Redis", cells=runs_cells)
    for durability in ("", ", durability=pause"):
        _server_row(out, "S2p", f"pausepoint Runs, PostgreSQL{durability}", cells=2)
        _server_row(out, "S2p", f"pausepoint Runs, Redis{durability}", cells=2)
    assert re.search(r"^S3\s+LangGraph \(any saver\)\s+n/a \(no inbox", out, re.MULTILINE), out
    _row(out, "disk", "sqlite3 insert / update + commit", cells=2)
    _row(out, "disk", "pausepoint Runs, SQLite", cells=2)
    _row(out, "disk", "pausepoint Runs, SQLite, durability=pause", cells=2)
    for durability in ("stage", "pause"):
        _row(
            out,
            "agent",
            f"pausepoint, typical{'' if durability == 'stage' else ', durability=pause'}",
            cells=6,
        )
    for target in (
        "≤ 2x the sqlite3 floor, each direction",
        "≤ 2x the psycopg floor, each direction",
        "ahead of PostgresSaver, each direction",
        "≥ 3,000 runs created/s",
        "≤ 1 KB per paused run on disk",
        "written over its life ≤ 3x its record",
        "checkpoint ≤ 2x its messages",
    ):
        assert re.search(rf"{re.escape(target)}\s+\S+.*\s(met|NOT met|n/a)$", out, re.MULTILINE), (
            target
        )


def test_quick_bench_prints_every_scenario() -> None:
    out = _bench("-m", "bench")
    assert "pausepoint benchmarks (quick mode)" in out
    for contender in ("plain Python", "pausepoint (sync stages)", "pausepoint (async stages)"):
        _row(out, "S1", contender, cells=3)
    _row(out, "S2", "plain Python", cells=3)
    _row(out, "S2", "pausepoint", cells=3)
    _row(out, "S4", "pausepoint", cells=3)
    _row(out, "stage call", "asyncio.to_thread", cells=1)
    _row(out, "import", "import pausepoint", cells=2)
    _durable_rows(out)
    try:
        import langgraph  # noqa: F401
    except ImportError:
        assert "n/a (pip install 'pausepoint[bench]')" in out
    else:
        _row(out, "S1", "LangGraph + InMemorySaver", cells=2)  # N=1000 is skipped in --quick
        _row(out, "S2", "LangGraph + InMemorySaver", cells=3)
        _row(out, "S2p", "LangGraph + SqliteSaver", cells=2)
        _server_row(out, "S2p", "LangGraph + PostgresSaver", cells=2)


def test_quick_bench_without_langgraph_says_how_to_install_it() -> None:
    out = _bench("-c", HIDE_LANGGRAPH)
    assert re.search(
        r"^S1\s+LangGraph \+ InMemorySaver\s+n/a \(pip install 'pausepoint\[bench\]'\)$",
        out,
        re.MULTILINE,
    ), out
    assert re.search(r"^S2\s+LangGraph \+ InMemorySaver\s+n/a \(pip install", out, re.MULTILINE)
    for saver in ("SqliteSaver", "PostgresSaver"):
        assert re.search(
            rf"^S2p\s+LangGraph \+ {saver}\s+n/a \(pip install 'pausepoint\[bench\]'\)$",
            out,
            re.MULTILINE,
        ), out
    _row(out, "S1", "pausepoint (sync stages)", cells=3)
    _row(out, "S2", "pausepoint", cells=3)
    _durable_rows(out)


def test_quick_wrk_load_prints_every_phase() -> None:
    """``python -m bench.wrk_load --quick``: each store's phases with figures, or one n/a row."""
    out = _bench("-m", "bench.wrk_load")
    assert "pausepoint HTTP service under wrk (quick mode)" in out
    if re.search(r"^any\s+n/a \(wrk is not installed", out, re.MULTILINE):
        return
    for store in ("SQLite", "PostgreSQL"):
        if store == "PostgreSQL" and re.search(rf"^{store}\s+{UNREACHABLE}", out, re.MULTILINE):
            continue
        for phase in ("ceiling", "inbox", "inbox pages", "resume"):
            _row(out, store, phase, cells=6)


def test_quick_fresh_resume_prints_every_contender() -> None:
    """``python -m bench.fresh_resume --quick``: each fresh-process contender with its figures."""
    out = _bench("-m", "bench.fresh_resume")
    assert "a fresh process resumes one run (quick mode)" in out
    for contender in (
        "python -c pass",
        "sqlite3 floor: update + commit",
        "pausepoint Runs.resume, SQLite",
        "pausepoint resume --json (CLI)",
    ):
        _row(out, "fresh", contender, cells=3)


def test_quick_lifecycle_bench_lists_and_purges() -> None:
    """bench.lifecycle --quick prints first-page times, the purge rate and sizes per store."""
    out = _bench("-m", "bench.lifecycle")
    assert re.search(rf"^== sqlite: 2,400 runs loaded in {NUMBER} s$", out, re.MULTILINE), out
    assert re.search(rf"first page, failed\s+{NUMBER} ms", out), out
    assert re.search(rf"purge 2,000 completed runs: {NUMBER} s, {NUMBER} runs/s", out), out
    assert re.search(rf"longest batch \(lock held\) {NUMBER} ms", out), out
    assert re.search(rf"size after VACUUM\s+{NUMBER} MB", out), out


def test_quick_runs_page_bench_times_the_runs_page() -> None:
    """bench.runs_page --quick prints the /runs page's server time per store."""
    out = _bench("-m", "bench.runs_page")
    assert re.search(r"^== sqlite: 2,400 runs$", out, re.MULTILINE), out
    assert re.search(rf"/runs \(every status, in order\)\s+{NUMBER} ms median", out), out


def test_quick_batch_bench_answers_one_batch_per_store() -> None:
    """bench.batch --quick: a figure for Runs.resume_many and the route, per store (or n/a)."""
    out = _bench("-m", "bench.batch")
    assert "40 pauses answered in one batch (quick mode)" in out
    for store in ("PostgreSQL", "SQLite"):
        if re.search(rf"^batch\s+{store}\s+{UNREACHABLE}", out, re.MULTILINE):
            continue
        for how in ("Runs.resume_many, concurrency 8", "POST /api/runs/resume-batch"):
            pattern = rf"^batch\s+{store}\s+{re.escape(how)}.*\s{NUMBER} pauses\s+{NUMBER} s\s+{NUMBER} resumes/s$"
            assert re.search(pattern, out, re.MULTILINE), out
