"""The benchmarks run: ``python -m bench --quick`` exits 0 and prints its S1 and S2 rows.

Only that the suite runs is checked, never a figure: timings on a shared CI
machine are noise. The second test hides LangGraph (the ``bench`` extra is not
part of ``dev``) to pin that its rows then say how to install it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"~?[\d,]+(?:\.\d+)?"
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


def test_quick_bench_prints_every_scenario() -> None:
    out = _bench("-m", "bench")
    assert "pausepoint benchmarks (quick mode)" in out
    for contender in ("plain Python", "pausepoint (sync stages)", "pausepoint (async stages)"):
        _row(out, "S1", contender, cells=3)
    _row(out, "S2", "plain Python", cells=3)
    _row(out, "S2", "pausepoint", cells=3)
    _row(out, "stage call", "asyncio.to_thread", cells=1)
    _row(out, "import", "import pausepoint", cells=2)
    try:
        import langgraph  # noqa: F401
    except ImportError:
        assert "n/a (pip install 'pausepoint[bench]')" in out
    else:
        _row(out, "S1", "LangGraph + InMemorySaver", cells=2)  # N=1000 is skipped in --quick
        _row(out, "S2", "LangGraph + InMemorySaver", cells=3)


def test_quick_bench_without_langgraph_says_how_to_install_it() -> None:
    out = _bench("-c", HIDE_LANGGRAPH)
    assert re.search(
        r"^S1\s+LangGraph \+ InMemorySaver\s+n/a \(pip install 'pausepoint\[bench\]'\)$",
        out,
        re.MULTILINE,
    ), out
    assert re.search(r"^S2\s+LangGraph \+ InMemorySaver\s+n/a \(pip install", out, re.MULTILINE)
    _row(out, "S1", "pausepoint (sync stages)", cells=3)
    _row(out, "S2", "pausepoint", cells=3)
