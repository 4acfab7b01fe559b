"""``python -m bench [--quick] [--json PATH]``: measure, then print one table.

Full mode takes a few minutes on two cores (most of it S3, which starts
10,000 runs in each store); ``--quick`` (CI smoke) about twenty seconds, with
tiny batches and sizes whose figures are only indicative. S2p and S3 need
PostgreSQL and Redis for some rows (see :mod:`bench.servers`); a server that
does not answer gives ``n/a`` rows, never a failure. Targets are
printed beside the figures they apply to and summed up at the end; missing a
target never changes the exit code (figures from shared CI machines are noise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pausepoint

from . import agent_size, disk, durable, foreach, inbox, lg, overhead, plain, pp, servers
from .harness import FULL, QUICK, Case, Sample, Settings, measure
from .inbox import CREATED, FIRST_PAGE, ONE_CHART, SEQUENTIAL
from .scenarios import CHAIN_SIZES

# -- figures and targets ---------------------------------------------------


@dataclass
class Figure:
    """One number in the table (``value`` is ``None`` when the contender is unavailable)."""

    scenario: str
    contender: str
    column: str
    value: float | None
    unit: str
    sample: Sample | None = None
    note: str | None = None


def _value(figures: Sequence[Figure], scenario: str, contender: str, column: str) -> float | None:
    for f in figures:
        if (f.scenario, f.contender, f.column) == (scenario, contender, column):
            return f.value
    return None


@dataclass(frozen=True)
class Target:
    """A limit that some figures of one row must stay under (or, ``at_least``, reach).

    With ``times``, the limit is that many times the figure of the row ``times``
    (of the same scenario) in the same column, and the figure is shown as a
    multiple of it (``against`` names that row). ``beside`` names a row shown
    for comparison only: the figure is followed by its multiple of that row's.
    """

    scenario: str
    contender: str
    columns: tuple[str, ...]
    limit: float
    text: str
    at_least: bool = False
    times: str | None = None
    against: str = "floor"
    beside: str | None = None

    def _checks(self, figures: Sequence[Figure]) -> list[tuple[float | None, float | None]]:
        """(figure, the limit it is held to) for each column."""
        checks = []
        for column in self.columns:
            bound: float | None = self.limit
            if self.times is not None:
                base = _value(figures, self.scenario, self.times, column)
                bound = None if base is None else base * self.limit
            checks.append((_value(figures, self.scenario, self.contender, column), bound))
        return checks

    def verdict(self, figures: Sequence[Figure]) -> str:
        checks = self._checks(figures)
        if any(value is None or bound is None for value, bound in checks):
            return "n/a"
        met = all(
            value >= bound if self.at_least else value <= bound
            for value, bound in checks
            if value is not None and bound is not None
        )
        return "met" if met else "NOT met"

    def shown(self, figures: Sequence[Figure]) -> str:
        """The figures held to the target (as multiples of the other row's, with ``times``)."""
        cells = []
        for column, (value, bound) in zip(self.columns, self._checks(figures), strict=True):
            if self.times is not None and value is not None and bound is not None:
                cells.append(f"{value / (bound / self.limit):.2f}x {self.against}")
                continue
            cell = _number(value, "")
            base = (
                None if self.beside is None else _value(figures, self.scenario, self.beside, column)
            )
            if value is not None and base:
                cell += f" ({value / base:.2f}x floor)"
            cells.append(cell)
        return " / ".join(cells)


SKIPPED = "skipped (--quick)"
S1_PP = "pausepoint (sync stages)"
S2_PP = "pausepoint"
IMPORT_PP = "import pausepoint"
RUN_TO_PAUSE = "run→pause µs"
RESUME_TO_DONE = "resume→done µs"
OVER_BARE = "over bare ms"

BOTH = (RUN_TO_PAUSE, RESUME_TO_DONE)
AGENT_WRITTEN = "written / record"
AGENT_CHECKPOINT = "checkpoint / messages"


def _durable_targets() -> list[Target]:
    """S2p and S3, for each durability: the issue's limits, held against the floors of the run."""
    targets = []
    for sqlite, postgres in (
        (durable.SQLITE_RUNS, durable.POSTGRES_RUNS),
        (durable.SQLITE_RUNS_PAUSE, durable.POSTGRES_RUNS_PAUSE),
    ):
        targets += [
            Target(
                "S2p",
                sqlite,
                BOTH,
                2.0,
                "≤ 2x the sqlite3 floor, each direction",
                times=durable.SQLITE_FLOOR,
            ),
            Target(
                "S2p",
                postgres,
                BOTH,
                2.0,
                "≤ 2x the psycopg floor, each direction",
                times=durable.POSTGRES_FLOOR,
            ),
            Target(
                "S2p",
                postgres,
                BOTH,
                1.0,
                "ahead of PostgresSaver, each direction",
                times=durable.POSTGRES_LANGGRAPH,
                against="PostgresSaver",
            ),
        ]
    for runs in (durable.SQLITE_RUNS, durable.SQLITE_RUNS_PAUSE):
        targets += [
            Target(
                "S3",
                runs,
                (CREATED,),
                3000.0,
                "≥ 3,000 runs created/s",
                at_least=True,
                beside=durable.SQLITE_FLOOR,
            ),
            Target(
                "S3",
                runs,
                (SEQUENTIAL,),
                2000.0,
                "≥ 2,000 resumes/s one after another",
                at_least=True,
                beside=durable.SQLITE_FLOOR,
            ),
        ]
    targets.append(Target("S3", durable.SQLITE_RUNS, (FIRST_PAGE,), 5.0, "first inbox page ≤ 5 ms"))
    return targets


TARGETS = (
    Target("S1", S1_PP, ("N=100", "N=1000"), 3.0, "≤ 3 µs/stage at N=100, 1000"),
    Target("S2", S2_PP, (RUN_TO_PAUSE,), 40.0, "≤ 40 µs run→pause"),
    Target("S2", S2_PP, (RESUME_TO_DONE,), 40.0, "≤ 40 µs resume→done"),
    *_durable_targets(),
    *(
        Target(
            "disk",
            label,
            (disk.FILE,),
            1024.0,
            "≤ 1 KB per paused run on disk",
            beside=durable.SQLITE_FLOOR,
        )
        for label in (disk.PP_STAGE, disk.PP_PAUSE)
    ),
    *(
        Target("agent", label, (AGENT_WRITTEN,), 3.0, "written over its life ≤ 3x its record")
        for label in ("pausepoint, typical", "pausepoint, typical, durability=pause")
    ),
    Target("agent", "pausepoint, terse", (AGENT_CHECKPOINT,), 2.0, "checkpoint ≤ 2x its messages"),
    Target("import", IMPORT_PP, (OVER_BARE,), 15.0, "≤ 15 ms over bare python"),
)


# -- measuring -------------------------------------------------------------


class Bench:
    """Runs the scenarios and collects their figures and footnotes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.figures: list[Figure] = []
        self.notes: dict[str, list[str]] = {}

    def time(
        self,
        scenario: str,
        contender: str,
        column: str,
        make: Callable[[], Case],
        *,
        per: float = 1.0,
        unavailable: str | None = None,
    ) -> None:
        """Measure ``make()``, record µs per call (divided by ``per``); or why it was not measured."""
        if unavailable is not None:
            self.figures.append(Figure(scenario, contender, column, None, "µs", note=unavailable))
            return
        _progress(f"{scenario} {contender} {column}")
        sample = measure(make(), self.settings).scaled(per)
        self.figures.append(
            Figure(scenario, contender, column, sample.median_ns / 1000, "µs", sample)
        )

    def s1(self) -> None:
        for n in CHAIN_SIZES:
            column = f"N={n}"
            skip = SKIPPED if self.settings.skip_slow_langgraph and n >= 1000 else None
            self.time("S1", "plain Python", column, lambda n=n: plain.chain_case(n), per=n)
            self.time("S1", S1_PP, column, lambda n=n: pp.chain_case(n), per=n)
            self.time(
                "S1",
                "pausepoint (async stages)",
                column,
                lambda n=n: pp.chain_case(n, async_stages=True),
                per=n,
            )
            self.time(
                "S1",
                "LangGraph + InMemorySaver",
                column,
                lambda n=n: lg.chain_case(n),
                per=n,
                unavailable=lg.UNAVAILABLE or skip,
            )
            self.time(
                "S1",
                "LangGraph, no checkpointer",
                column,
                lambda n=n: lg.chain_case(n, checkpointer=False),
                per=n,
                unavailable=lg.UNAVAILABLE or skip,
            )
        self.notes["S1"] = [
            "each stage reads x and writes x + 1; a run is a fresh executor / invoke from {x: 0}",
            "pausepoint keeps its full trace (reads, writes, time per stage) on every run",
            "LangGraph: one super-step per stage, recursion_limit = N + 10, default durability "
            "('async': checkpoints written by a background thread); 'no checkpointer' cannot pause",
        ]

    def s4(self) -> None:
        for column, per_second, sample in foreach.rows(self.settings):
            self.figures.append(Figure("S4", foreach.CONTENDER, column, per_second, "/s", sample))
        self.notes["S4"] = list(foreach.NOTES)

    def s2(self) -> None:
        contenders: list[tuple[str, Any, dict[str, Any], str | None]] = [
            ("plain Python", plain, {}, None),
            (S2_PP, pp, {}, None),
            ("pausepoint, run_sync/resume_sync", pp, {"sync_entry": True}, None),
            ("pausepoint, chart built per call", pp, {"fresh_chart": True}, None),
            ("LangGraph + InMemorySaver", lg, {}, lg.UNAVAILABLE),
        ]
        for label, module, options, unavailable in contenders:
            self.time(
                "S2",
                label,
                RUN_TO_PAUSE,
                lambda m=module, o=options: m.refund_pause_case(**o),
                unavailable=unavailable,
            )
            self.time(
                "S2",
                label,
                RESUME_TO_DONE,
                lambda m=module, o=options: m.refund_resume_case(**o),
                unavailable=unavailable,
            )
        notes = [
            "run→pause: a fresh run until the pause, then the checkpoint as a JSON string "
            "(LangGraph: invoke until interrupt(), then graph.get_state(config))",
            "resume→done: json.loads of the saved checkpoint, a fresh executor, resume to the end "
            "(LangGraph: invoke(Command(resume=...)) against the same saver, on a thread paused "
            "beforehand, off the clock)",
            "run_sync/resume_sync: the same, from code without an event loop (each thread keeps "
            "one loop and reuses it)",
            "chart built per call: flow_chart(...).build() inside each timed call, as a process "
            "that builds its chart for one run has it",
        ]
        for label, module in (("plain Python", plain), (S2_PP, pp)):
            size, what = module.refund_checkpoint_bytes()
            self.figures.append(Figure("S2", label, "checkpoint B", size, "B"))
            notes.append(f"checkpoint B, {label}: {what}")
        if lg.UNAVAILABLE is None:
            size, what, everything = lg.refund_checkpoint_bytes()
            self.figures.append(
                Figure("S2", "LangGraph + InMemorySaver", "checkpoint B", size, "B")
            )
            notes.append(
                f"checkpoint B, LangGraph: {what}; with the thread's earlier checkpoints, "
                f"their blobs and writes: {everything:,} B (ids, type tags and keys not counted)"
            )
        self.notes["S2"] = notes

    def s2p(self) -> None:
        with servers.places("s2p") as where:
            for contender in durable.CONTENDERS:
                unavailable = servers.down(contender.server) or durable.langgraph_missing(
                    contender.langgraph
                )
                if unavailable is None:
                    _progress(f"S2p {contender.label}")
                    samples: tuple[Sample | None, ...] = contender.measure(where, self.settings)
                else:
                    samples = (None, None)
                for column, sample in zip((RUN_TO_PAUSE, RESUME_TO_DONE), samples, strict=True):
                    value = None if sample is None else sample.median_ns / 1000
                    self.figures.append(
                        Figure("S2p", contender.label, column, value, "µs", sample, unavailable)
                    )
        self.notes["S2p"] = list(durable.NOTES)

    def s3(self) -> None:
        sizes = inbox.QUICK_SIZES if self.settings.name == "quick" else inbox.FULL_SIZES
        columns = (CREATED, FIRST_PAGE, ONE_CHART, SEQUENTIAL, sizes.parallel_column)
        units = dict(zip(columns, ("/s", "ms", "ms", "/s", "/s"), strict=True))
        workers = inbox.Workers(sizes.processes)
        try:
            with servers.places("s3") as where:
                for label, server, run in inbox.rows(where, sizes, self.settings, workers):
                    unavailable = servers.down(server)
                    if unavailable is not None:
                        for column in columns:
                            self.figures.append(
                                Figure("S3", label, column, None, units[column], note=unavailable)
                            )
                        continue
                    _progress(f"S3 {label} ({sizes.runs:,} runs)")
                    for column, outcome in run().items():
                        self.figures.append(
                            Figure(
                                "S3", label, column, outcome.value, units[column], outcome.sample
                            )
                        )
        finally:
            workers.close()
        for column in columns:
            self.figures.append(
                Figure("S3", inbox.LANGGRAPH, column, None, units[column], note=inbox.NO_INBOX)
            )
        self.notes["S3"] = [
            note.format(
                runs=sizes.runs,
                half=sizes.runs // 2,
                sequential=sizes.sequential,
                processes=sizes.processes,
                per_process=sizes.per_process,
            )
            for note in inbox.NOTES
        ]

    def disk(self) -> None:
        runs = 30 if self.settings.name == "quick" else 500
        contenders: list[tuple[str, Callable[[servers.Places], disk.Usage], str | None]] = [
            (durable.SQLITE_FLOOR, lambda where: disk.floor(where, runs), None),
            (disk.PP_STAGE, lambda where: disk.pausepoint(where, runs, "stage"), None),
            (disk.PP_PAUSE, lambda where: disk.pausepoint(where, runs, "pause"), None),
            (
                disk.LANGGRAPH,
                lambda where: disk.langgraph(where, runs),
                durable.langgraph_missing("sqlite"),
            ),
        ]
        notes = [note.format(runs=runs) for note in disk.NOTES]
        with servers.places("disk") as where:
            for label, usage_of, unavailable in contenders:
                if unavailable is not None:
                    for column in disk.COLUMNS:
                        self.figures.append(
                            Figure("disk", label, column, None, "B", note=unavailable)
                        )
                    continue
                _progress(f"disk {label}")
                usage = usage_of(where)
                self.figures.append(Figure("disk", label, disk.FILE, usage.file, "B"))
                self.figures.append(Figure("disk", label, disk.RECORDS, usage.records, "B"))
                notes += disk.breakdown(label, usage)
        self.notes["disk"] = notes

    def agent(self) -> None:
        turns = 10 if self.settings.name == "quick" else 100
        columns = ("record B", "written B", AGENT_WRITTEN, "checkpoint B", "messages B")
        notes = []
        for profile in ("typical", "terse"):
            script = agent_size.Script(turns, profile)
            _progress(f"agent {profile} ({turns} turns)")
            rows = []
            for durability in ("stage", "pause"):
                found, parts = asyncio.run(agent_size.measure_pausepoint(script, durability))
                suffix = "" if durability == "stage" else ", durability=pause"
                rows.append((f"pausepoint, {profile}{suffix}", found[0]))
                notes.append(
                    f"pausepoint, {profile}{suffix}: written = "
                    + " · ".join(
                        f"{k.split(': ')[1]} {v:,}"
                        for k, v in parts.items()
                        if k.startswith("written")
                    )
                    + "; its checkpoint = "
                    + " · ".join(
                        f"{k} {v:,}"
                        for k, v in parts.items()
                        if not k.startswith("written") and k != "checkpoint"
                    )
                )
            label = f"LangGraph + InMemorySaver, {profile}"
            if lg.UNAVAILABLE is not None:
                for column in (*columns, AGENT_CHECKPOINT):
                    self.figures.append(
                        Figure("agent", label, column, None, "B", note=lg.UNAVAILABLE)
                    )
            else:
                rows.append((label, agent_size.measure_langgraph(script, "dicts")))
            for label, row in rows:
                ratio = (
                    None if row.record is None or row.written is None else row.written / row.record
                )
                values = (row.record, row.written, ratio, row.latest, row.messages)
                for column, value in zip(columns, values, strict=True):
                    unit = "x" if column == AGENT_WRITTEN else "B"
                    self.figures.append(Figure("agent", label, column, value, unit))
                self.figures.append(
                    Figure("agent", label, AGENT_CHECKPOINT, row.latest / row.messages, "x")
                )
        self.notes["agent"] = [
            f"{turns} model turns of a scripted conversation (pausepoint.agent: model, then "
            "tools, each turn); ask_human at the middle turn and the last; measured while paused "
            "at the last. typical: each search result ~1 KB; terse: ~90 B",
            "record: the run record as stored (checkpoint, pauses, bookkeeping); written: every "
            "record, journal entry and audit event Runs handed the store from the start to the "
            "last pause, as JSON (a record counts whole at each write: the relational stores "
            "rewrite the row; lease renewals left out); checkpoint: pausepoint's as compact "
            "JSON, LangGraph's latest checkpoint with its blobs and pending writes; messages: the "
            "conversation as compact JSON (OpenAI format)",
            "LangGraph: a StateGraph model → tools loop with interrupt(), messages as dicts; "
            "written = every checkpoint it keeps (append-only); it has no record apart from them",
            *notes,
        ]

    def imports(self) -> None:
        runs = self.settings.import_runs
        with tempfile.TemporaryDirectory(prefix="pausepoint-bench-pyc-") as pycache:
            self._imports(runs, overhead.import_env(pycache))
        self.notes["import"] = [
            f"wall time of a fresh `python -c CODE`, best of {runs} after one untimed run, every "
            "module from cached bytecode; 'over bare' subtracts `python -c pass`",
            "pausepoint API = from pausepoint import flow_chart, FlowChartExecutor; LangGraph API = "
            "StateGraph, Command, interrupt, InMemorySaver",
        ]

    def _imports(self, runs: int, env: dict[str, str]) -> None:
        bare = None
        for label, code in overhead.IMPORTS.items():
            if label == "LangGraph API" and (lg.UNAVAILABLE or self.settings.skip_slow_langgraph):
                note = lg.UNAVAILABLE or SKIPPED
                for column in ("wall ms", OVER_BARE):
                    self.figures.append(Figure("import", label, column, None, "ms", note=note))
                continue
            _progress(f"import {label}")
            wall = overhead.best_start_ns(code, runs, env) / 1e6
            bare = wall if bare is None else bare
            self.figures.append(Figure("import", label, "wall ms", wall, "ms"))
            if label != "bare":
                self.figures.append(Figure("import", label, OVER_BARE, wall - bare, "ms"))

    def thread_hop(self) -> None:
        self.time("stage call", "inline (what the executor does)", "µs/call", overhead.inline_case)
        self.time("stage call", "asyncio.to_thread", "µs/call", overhead.to_thread_case)
        self.notes["stage call"] = [
            "a sync stage (one dict read and write) called from a coroutine on the event loop"
        ]


def _progress(what: str) -> None:
    print(f"  measuring {what} ...", file=sys.stderr, flush=True)


# -- machine ---------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _build() -> str:
    """Whether the interpreter was built with PGO / LTO (unoptimized builds run slower)."""
    flags = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    found = [
        name
        for option, name in (("--enable-optimizations", "PGO"), ("--with-lto", "LTO"))
        if option in flags
    ]
    return " + ".join(found) if found else "without PGO/LTO"


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": _build(),
        "pausepoint": pausepoint.__version__,
        "langgraph": lg.versions() or "not installed",
    }


# -- table -----------------------------------------------------------------


NOISY = 1.5
"""A figure whose slowest batch took this many times its fastest is marked ``~``."""


def _cell(figure: Figure) -> str:
    if figure.value is None and figure.note == SKIPPED:
        return "skipped"
    text = _number(figure.value, figure.unit)
    sample = figure.sample
    if sample is not None and sample.max_ns > NOISY * sample.min_ns:
        return "~" + text
    return text


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "B" or value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render(rows: list[list[str]], numeric_from: int) -> list[str]:
    """Align ``rows`` (the first is the header); a row shorter than the header spans the rest."""
    width = len(rows[0])
    widths = [max(len(r[i]) for r in rows if len(r) == width) for i in range(width)]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if len(row) < width and i == len(row) - 1:
                cells.append(cell)  # spans the remaining columns
            elif numeric_from <= i < width - 1:
                cells.append(cell.rjust(widths[i]))
            else:
                cells.append(cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


SECTIONS = {
    "S1": "S1  linear chain of N stages: µs per stage (run time / N), median",
    "S2": "S2  refund chart receive → approve (pause) → process, in memory: median µs, bytes",
    "S2p": "S2p the refund chart persisted, every step committed to a store: median µs",
    "S3": "S3  10,000 paused runs in one store (300 in --quick): rates per second, times in ms",
    "disk": "bytes on disk per paused refund run, SQLite (breakdown per run below)",
    "agent": "a 100-turn agent (10 in --quick): bytes over its life, and its checkpoint",
    "S4": "S4  for-each of 100 items, 30 of them pausing: items per second, median",
    "import": "import time, ms (best of several fresh interpreters)",
    "stage call": "a sync stage called from the event loop: µs per call, median",
}


def _timing(s: Settings) -> str:
    if s.repeats == s.min_repeats:
        timed = f"median of {s.repeats} timed batches"
    else:
        timed = f"median of up to {s.repeats} timed batches ({s.min_repeats} for slow cases)"
    warmup = "after a warm-up call and batch" if s.warmup_batch else "after a warm-up call"
    return f"{timed} {warmup}"


def table(bench: Bench, info: dict[str, Any]) -> str:
    s = bench.settings
    out = [
        f"pausepoint benchmarks ({s.name} mode)",
        f"  CPU        {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)",
        f"  OS         {info['os']}",
        f"  Python     {info['python']} (built {info['python_build']})",
        f"  versions   pausepoint {info['pausepoint']}; langgraph {info['langgraph']}",
        f"  timing     {_timing(s)}; time.perf_counter_ns; gc on, collected before each batch",
        f"             ~ marks a figure whose slowest batch took over {NOISY} times its fastest "
        "(a busy machine; --json has min and max)",
    ]
    for scenario, title in SECTIONS.items():
        figures = [f for f in bench.figures if f.scenario == scenario]
        if not figures:
            continue
        columns = list(dict.fromkeys(f.column for f in figures))
        contenders = list(dict.fromkeys(f.contender for f in figures))
        targets = [t for t in TARGETS if t.scenario == scenario]
        rows = [["", "contender", *columns, "target"]]
        for contender in contenders:
            mine = {f.column: f for f in figures if f.contender == contender}
            notes = {f.note for f in mine.values() if f.note}
            if notes and all(f.value is None for f in mine.values()):
                rows.append([scenario, contender, notes.pop()])
                continue
            cells = [_cell(mine[c]) if c in mine else "" for c in columns]
            verdicts = [
                f"{t.text}: {t.verdict(bench.figures)}" for t in targets if t.contender == contender
            ]
            rows.append([scenario, contender, *cells, "; ".join(verdicts)])
        out += ["", title, *render(rows, numeric_from=2)]
        out += [f"    * {note}" for note in bench.notes.get(scenario, [])]
    out += ["", "targets"]
    rows = [["", "target", "figure", "verdict"]]
    for t in TARGETS:
        rows.append(
            [
                t.scenario,
                f"{t.contender}: {t.text}",
                t.shown(bench.figures),
                t.verdict(bench.figures),
            ]
        )
    out += render(rows, numeric_from=2)
    if s.name == "quick":
        out += ["", "quick mode: tiny batches, figures are indicative only"]
    return "\n".join(out)


def as_json(bench: Bench, info: dict[str, Any]) -> dict[str, Any]:
    figures = []
    for f in bench.figures:
        record: dict[str, Any] = {
            "scenario": f.scenario,
            "contender": f.contender,
            "column": f.column,
            "value": f.value,
            "unit": f.unit,
        }
        if f.sample is not None:
            record["sample_ns"] = asdict(f.sample)
        if f.note:
            record["note"] = f.note
        figures.append(record)
    return {
        "mode": bench.settings.name,
        "machine": info,
        "settings": asdict(bench.settings),
        "figures": figures,
        "targets": [
            {**asdict(t), "columns": list(t.columns), "verdict": t.verdict(bench.figures)}
            for t in TARGETS
        ],
        "notes": bench.notes,
    }


# -- entry point -----------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="pausepoint vs plain Python vs LangGraph, measured in one run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke mode: tiny batches, a few seconds"
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the figures as JSON")
    sections = ("s1", "s2", "s2p", "s3", "disk", "agent", "s4", "thread_hop", "imports")
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        help=f"comma-separated sections to run, of {', '.join(sections)} (default: all)",
    )
    args = parser.parse_args(argv)
    chosen = sections if args.only is None else tuple(args.only.lower().split(","))
    unknown = sorted(set(chosen) - set(sections))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")

    bench = Bench(QUICK if args.quick else FULL)
    for section in sections:
        if section in chosen:
            getattr(bench, section)()
    info = machine()
    print(table(bench, info))
    if args.json is not None:
        args.json.write_text(json.dumps(as_json(bench, info), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
