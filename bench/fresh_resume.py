"""``python -m bench.fresh_resume [--quick] [--importtime]``: a fresh process resumes one run.

A command-line tool, a cron job or a serverless function starts a process,
resumes one paused run and exits: its cost is mostly the interpreter and the
imports. Each contender below is a fresh ``python -c`` process, timed from the
parent (wall, start to exit), run ``rounds`` times in turn (the contenders
interleaved, so that noise hits them alike):

* ``python -c pass``: the interpreter alone;
* the sqlite3 floor: ``import sqlite3``, update one row, commit (the issue's floor);
* the same from ``asyncio.run`` through ``asyncio.to_thread``, as an async
  store does;
* the same plus the refund chart's own import, pydantic with a model for
  the manager's answer, validated once (what any chart with a typed answer
  imports);
* pausepoint's imports only: what the next line imports, and nothing else;
* pausepoint: ``Runs(open_store("sqlite:///..."), charts)`` with the demo's refund
  chart resumes a paused run (a different one each time) to its end;
* the same from the command line: ``pausepoint resume RUN --input ... --as kim
  --store sqlite:///... --json`` (typer, the demo's charts by default).

The target is 60 ms for pausepoint. Bytecode is written once beforehand (the
children run without ``PYTHONDONTWRITEBYTECODE``), as an installed package has
it. ``--importtime`` prints what one pausepoint child imports, by cumulative
time (``python -X importtime``). ``--quick`` runs few rounds (CI smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .scenarios import REFUND_INPUT

TARGET_MS = 60.0

FLOOR = """\
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE runs SET doc = doc || 'x' WHERE id = ?", (sys.argv[2],))
db.commit()
"""

ASYNC_FLOOR = """\
import asyncio, sqlite3, sys
def update():
    db = sqlite3.connect(sys.argv[1])
    db.execute("UPDATE runs SET doc = doc || 'x' WHERE id = ?", (sys.argv[2],))
    db.commit()
asyncio.run(asyncio.to_thread(update))
"""

CHART_FLOOR = """\
import asyncio, sqlite3, sys
from pydantic import BaseModel
class Answer(BaseModel):
    approved: bool
    approver: str
def update():
    Answer.model_validate({"approved": True, "approver": "kim"})
    db = sqlite3.connect(sys.argv[1])
    db.execute("UPDATE runs SET doc = doc || 'x' WHERE id = ?", (sys.argv[2],))
    db.commit()
asyncio.run(asyncio.to_thread(update))
"""

IMPORTS = """\
import asyncio, sys
from pausepoint import Runs, open_store
from pausepoint.demo import charts
import pausepoint.stores.sqlite
"""

CLI = "from pausepoint.cli import main; main()"
CLI_ARGS = ("resume", "{run}", "--input", '{{"approved": true, "approver": "kim"}}', "--as", "kim")
CLI_ARGS += ("--store", "sqlite:///{database}", "--json")

PAUSEPOINT = """\
import asyncio, sys
from pausepoint import Runs, open_store
from pausepoint.demo import charts
async def main():
    async with Runs(open_store("sqlite:///" + sys.argv[1]), charts) as runs:
        record = await runs.resume(sys.argv[2], {"approved": True, "approver": "kim"})
    if record.status != "completed":
        sys.exit(f"run {sys.argv[2]} is {record.status}")
asyncio.run(main())
"""


@dataclass
class Contender:
    name: str
    code: str
    database: Path
    ids: list[str]
    arguments: tuple[str, ...] = ("{database}", "{run}")
    walls_ms: list[float] = field(default_factory=list)

    def argv(self, round_: int) -> list[str]:
        run = self.ids[round_]
        return [a.format(database=self.database, run=run) for a in self.arguments]

    def median(self) -> float:
        return statistics.median(self.walls_ms)

    def best(self) -> float:
        return min(self.walls_ms)


@dataclass(frozen=True)
class Sizes:
    name: str
    rounds: int
    warmup: int


FULL = Sizes("full", rounds=40, warmup=3)
QUICK = Sizes("quick", rounds=4, warmup=1)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    src = Path(__file__).resolve().parents[1] / "src"
    return env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))}


def run_child(code: str, *args: str, env: dict[str, str]) -> float:
    """Run ``python -c code args``; return its wall time in ms."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    wall = (time.perf_counter() - started) * 1e3
    if done.returncode != 0:
        raise RuntimeError(f"the child failed: {done.stderr.strip()[-500:]}")
    return wall


async def paused_runs(url: str, count: int) -> list[str]:
    from pausepoint import Runs, open_store
    from pausepoint.demo import charts

    async with Runs(open_store(url), charts) as runs:
        ids = []
        for _ in range(count):
            record = await runs.start("refund", REFUND_INPUT)
            if record.status != "paused":
                raise RuntimeError(f"run {record.run_id} did not pause: {record.status}")
            ids.append(record.run_id)
    return ids


def floor_table(path: Path, count: int) -> list[str]:
    ids = [f"run-{i}" for i in range(count)]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
        db.executemany("INSERT INTO runs VALUES (?, '')", [(i,) for i in ids])
    db.close()
    return ids


def measure(sizes: Sizes, directory: Path) -> list[Contender]:
    count = sizes.rounds + sizes.warmup
    floor_db, runs_db = directory / "floor.db", directory / "runs.db"
    floor_ids = floor_table(floor_db, count)
    _progress(f"{count} paused refund runs")
    run_ids = asyncio.run(paused_runs(f"sqlite:///{runs_db}", 2 * count))
    cli_ids = run_ids[count:]
    contenders = [
        Contender("python -c pass", "pass", floor_db, floor_ids),
        Contender("sqlite3 floor: update + commit", FLOOR, floor_db, floor_ids),
        Contender("  + asyncio.run, to_thread", ASYNC_FLOOR, floor_db, floor_ids),
        Contender("  + pydantic answer model", CHART_FLOOR, floor_db, floor_ids),
        Contender("pausepoint: its imports only", IMPORTS, runs_db, run_ids),
        Contender("pausepoint Runs.resume, SQLite", PAUSEPOINT, runs_db, run_ids),
        Contender("pausepoint resume --json (CLI)", CLI, runs_db, cli_ids, CLI_ARGS),
    ]
    env = child_env()
    _progress(f"{sizes.rounds} rounds of {len(contenders)} fresh processes")
    for i in range(count):
        for contender in contenders:
            wall = run_child(contender.code, *contender.argv(i), env=env)
            if i >= sizes.warmup:
                contender.walls_ms.append(wall)
    return contenders


def importtime(directory: Path) -> list[str]:
    """What one pausepoint child imports: the modules taking most cumulative time."""
    runs_db = directory / "importtime.db"
    (run_id,) = asyncio.run(paused_runs(f"sqlite:///{runs_db}", 1))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PAUSEPOINT, str(runs_db), run_id],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        head, _, rest = line.partition("|")
        own = head.removeprefix("import time:").strip()
        cumulative, _, name = rest.partition("|")
        if own.isdigit():
            rows.append((int(cumulative), int(own), name.rstrip()))
    rows.sort(reverse=True)
    out = ["import time, one pausepoint child (-X importtime inflates it): cumulative / self ms"]
    for cumulative, own, name in rows[:40]:
        out.append(f"  {cumulative / 1e3:7.1f} {own / 1e3:7.1f}  {name}")
    return out


def table(sizes: Sizes, contenders: Sequence[Contender], took: float) -> str:
    from .__main__ import machine, render

    info = machine()
    floor = contenders[1].median()
    out = [
        f"a fresh process resumes one run ({sizes.name} mode)",
        f"  CPU        {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)",
        f"  Python     {info['python']} (built {info['python_build']})",
        f"  rounds     {sizes.rounds} per contender (after {sizes.warmup} warm-up), interleaved",
        "",
    ]
    rows = [["fresh process", "contender", "median ms", "best ms", "x floor", "note"]]
    for contender in contenders:
        note = ""
        if contender.name.startswith("pausepoint Runs.resume"):
            verdict = "met" if contender.median() <= TARGET_MS else "NOT met"
            note = f"target ≤ {TARGET_MS:g} ms: {verdict}"
        rows.append(
            [
                "fresh",
                contender.name,
                f"{contender.median():.1f}",
                f"{contender.best():.1f}",
                f"{contender.median() / floor:.2f}",
                note,
            ]
        )
    out += render(rows, numeric_from=2)
    out += [
        "    * wall time of the whole child process, timed by the parent; x floor: "
        "median over the sqlite3 floor's median",
        f"\ntook {took:.1f} s",
    ]
    if sizes.name == "quick":
        out.append("quick mode: few rounds, figures are indicative only")
    return "\n".join(out)


def _progress(what: str) -> None:
    print(f"  {what} ...", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fresh_resume",
        description="A fresh process resumes one paused run from SQLite, beside its floors.",
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke mode: a few seconds")
    parser.add_argument(
        "--importtime", action="store_true", help="also list what a pausepoint child imports"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pausepoint-fresh-") as scratch:
        contenders = measure(sizes, Path(scratch))
        print(table(sizes, contenders, time.perf_counter() - started))
        if args.importtime:
            print("\n" + "\n".join(importtime(Path(scratch))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
