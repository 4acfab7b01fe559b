"""``python -m bench.wrk_load [--quick] [--store NAME] [--profile DIR]``: the HTTP service under wrk.

:mod:`bench.load` drives the service from a Python client, which needs as much
CPU as the server and shares the same cores with it. This script uses ``wrk``
(C, one event loop per thread; installed with ``apt-get`` when missing and
possible), so the figures are the server's. For each store (a SQLite file, then
a fresh PostgreSQL schema; see :mod:`bench.servers`):

1. ``runs`` refund runs are started through ``Runs`` to their pause (no HTTP);
2. ``create_app(runs, tokens=...)`` is served by one uvicorn process
   (``python -m bench.load --serve URL --port N``: no access log; uvloop and
   httptools when installed, else the asyncio loop and h11; ``gc.freeze()``
   after startup, as ``pausepoint serve`` does) on ``127.0.0.1``;
3. wrk, ``connections`` keep-alive connections over ``threads`` threads, runs
   after a short warm-up:

   * the framework's ceiling: ``GET /openapi.json`` (a cached document, no
     store), for ``seconds``;
   * inbox reads: ``GET /api/runs?status=paused&limit=50`` (the newest page of
     50), for ``seconds``; requests arriving while that page is being read share
     the next read (see ``pausepoint.server._inbox``);
   * inbox pages: the same request cycling through every page of the inbox
     (``&cursor=...``, walked beforehand), each thread from its own place in the
     list, so concurrent requests rarely share a read, for ``seconds``;
   * resumes: ``POST /api/runs/{id}/resume`` with the bearer token, the pause
     id and ``{"approved": true, "approver": "kim"}``, each paused run once
     (``bench/wrk.lua`` walks the ids), until every run was sent;

4. the server is stopped and the store checked: every run completed.

Latencies are wrk's (from writing a request to reading its whole response).
The resume phase ends when every run was answered (wrk is then interrupted and
reports the time until then), or at ``resume_cap`` seconds.
``--profile DIR`` samples the server with py-spy during the inbox and resume
phases (the sampler takes CPU too: profile runs are not for figures), writes
collapsed stacks to ``DIR`` and prints the functions with most samples.

Full mode takes about two minutes; ``--quick`` (CI smoke) a few seconds, with
sizes whose figures are only indicative. A store or wrk that is missing gives an
``n/a`` row. The exit code is 1 when a request failed or a run did not complete.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import servers
from .load import HOST, TOKEN, check, precreate, serving, versions
from .servers import POSTGRES, SQLITE, Places
from .spy import hot_functions, sampled

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "wrk.lua"
INBOX = "/api/runs?status=paused&limit=50"
CEILING = "/openapi.json"
WRK_TIMEOUT = "10s"
STORES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Sizes:
    name: str
    runs: int
    connections: int
    threads: int
    seconds: float
    warmup: float
    resume_cap: float

    @property
    def pages(self) -> int:
        """Distinct inbox pages for the "inbox pages" phase: as many as there are."""
        return -(-self.runs // 50)


FULL = Sizes("full", 2_000, 32, 2, seconds=10, warmup=2, resume_cap=120)
QUICK = Sizes("quick", 60, 8, 2, seconds=1, warmup=0.5, resume_cap=10)


# -- wrk ---------------------------------------------------------------------


def find_wrk() -> str | None:
    """Return wrk's path; install the Debian package first if it is missing and we can."""
    found = shutil.which("wrk")
    if found or os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    _progress("wrk is missing: apt-get install wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    quiet: dict[str, Any] = {"env": env, "stdout": subprocess.DEVNULL, "check": False}
    if subprocess.run(install, stderr=subprocess.DEVNULL, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], **quiet)
        subprocess.run(install, **quiet)
    return shutil.which("wrk")


@dataclass
class Phase:
    """What wrk saw in one phase."""

    name: str
    requests: int = 0
    seconds: float = 0.0
    response_bytes: float = 0.0
    errors: int = 0
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    note: str = ""
    capped: bool = False

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    wrk: str,
    name: str,
    base: str,
    path: str,
    sizes: Sizes,
    seconds: float,
    answers: Path | None = None,
    paths: Path | None = None,
) -> Phase:
    """Run wrk on ``base + path`` for ``seconds``, or until every line of ``answers`` is answered.

    With ``paths``, wrk cycles through the paths in that file instead.
    """
    command = [
        wrk,
        f"--threads={sizes.threads}",
        f"--connections={sizes.connections}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT}",
        f"--script={SCRIPT}",
        "--header=Authorization: Bearer " + TOKEN,
        "--header=Content-Type: application/json",
        base + path,
    ]
    env = dict(os.environ)
    if answers is not None:
        env |= {"WRK_ANSWERS": str(answers), "WRK_THREADS": str(sizes.threads)}
    if paths is not None:
        env["WRK_PATHS"] = str(paths)
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    assert child.stderr is not None
    threads_done, report = 0, None
    for line in child.stdout:  # wrk ends by itself after its duration at the latest
        if line.startswith("WRK_THREAD_DONE"):
            threads_done += 1
            if threads_done == sizes.threads:
                child.send_signal(signal.SIGINT)  # wrk reports at once, timed until now
        elif line.startswith("WRK_JSON "):
            report = json.loads(line.removeprefix("WRK_JSON "))
    stderr = child.stderr.read()
    if child.wait() != 0 or report is None:
        raise RuntimeError(f"wrk failed ({child.returncode}): {stderr.strip()[:300]}")
    kinds = ("connect", "read", "write", "status", "timeout")
    return Phase(
        name,
        requests=report["requests"],
        seconds=report["duration_us"] / 1e6,
        response_bytes=report["bytes"] / report["requests"] if report["requests"] else 0.0,
        errors=sum(report[k] for k in kinds),
        mean_ms=report["mean_us"] / 1e3,
        p50_ms=report["p50_us"] / 1e3,
        p99_ms=report["p99_us"] / 1e3,
        max_ms=report["max_us"] / 1e3,
        note=", ".join(f"{report[k]} {k} errors" for k in kinds if report[k]),
        capped=answers is not None and threads_done < sizes.threads,
    )


def inbox_pages(base: str, count: int) -> list[str]:
    """The paths of the inbox's first ``count`` pages of 50, following ``next_cursor``."""
    import httpx

    paths, cursor = [], None
    auth = {"Authorization": f"Bearer {TOKEN}"}  # reads need a token too
    with httpx.Client(base_url=base, headers=auth, trust_env=False, timeout=10) as client:
        while len(paths) < count:
            path = INBOX if cursor is None else f"{INBOX}&cursor={quote(cursor)}"
            paths.append(path)
            cursor = client.get(path).raise_for_status().json()["next_cursor"]
            if cursor is None:
                break
    return paths


# -- one store ---------------------------------------------------------------


@dataclass
class StoreResult:
    label: str
    phases: list[Phase] = field(default_factory=list)
    note: str | None = None
    created_s: float = 0.0
    left_paused: int = 0
    not_completed: int = 0
    profiles: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(
            (self.note and not self.note.startswith("n/a"))
            or self.left_paused
            or self.not_completed
            or any(p.errors or p.capped for p in self.phases)
        )


def measure_store(
    wrk: str, label: str, url: str, sizes: Sizes, profile: Path | None
) -> StoreResult:
    result = StoreResult(label)
    _progress(f"{label}: {sizes.runs:,} paused runs")
    started = time.perf_counter()
    paused = asyncio.run(precreate(url, sizes.runs))
    result.created_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="pausepoint-wrk-") as scratch:
        answers = Path(scratch) / "answers.txt"
        answers.write_text("".join(f"{run_id} {pause_id}\n" for run_id, pause_id in paused))
        with serving(url) as (base, child):
            _progress(f"{label}: warm-up")
            run_wrk(wrk, "warm-up", base, INBOX, sizes, sizes.warmup)
            _progress(f"{label}: {CEILING}")
            result.phases.append(run_wrk(wrk, "ceiling", base, CEILING, sizes, sizes.seconds))
            pages = Path(scratch) / "pages.txt"
            pages.write_text("".join(f"{page}\n" for page in inbox_pages(base, sizes.pages)))
            plan = (
                ("inbox", INBOX, sizes.seconds, {}),
                ("inbox pages", INBOX, sizes.seconds, {"paths": pages}),
                ("resume", "/api/runs", sizes.resume_cap, {"answers": answers}),
            )
            for name, path, seconds, files in plan:
                _progress(f"{label}: {name}")
                stem = name.replace(" ", "-")
                out = profile / f"{label.lower()}-{stem}.txt" if profile else None
                with sampled(child.pid, out):
                    phase = run_wrk(wrk, name, base, path, sizes, seconds, **files)
                result.phases.append(phase)
                if out is not None and out.exists():
                    result.profiles[name] = hot_functions(out)
    left, not_completed = asyncio.run(check(url, [run_id for run_id, _ in paused]))
    result.left_paused, result.not_completed = left, not_completed
    return result


def measure(sizes: Sizes, stores: Sequence[str], profile: Path | None) -> list[StoreResult]:
    wrk = find_wrk()
    if wrk is None:
        return [StoreResult("any", note="n/a (wrk is not installed: apt-get install wrk)")]
    results = []
    with servers.places("wrk") as where:
        for label, server, url_of in (
            ("SQLite", SQLITE, lambda w: w.sqlite_url("wrk")),
            ("PostgreSQL", POSTGRES, Places.postgres_url),
        ):
            if label.lower() not in stores:
                continue
            unavailable = servers.down(server)
            if unavailable is not None:
                results.append(StoreResult(label, note=unavailable))
                continue
            try:
                results.append(measure_store(wrk, label, url_of(where), sizes, profile))
            except RuntimeError as exc:  # the server did not start, wrk failed
                results.append(StoreResult(label, note=f"failed: {exc}"))
    return results


# -- report ------------------------------------------------------------------


def _progress(what: str) -> None:
    print(f"  {what} ...", file=sys.stderr, flush=True)


def _uvicorn_flavour() -> str:
    """The loop and HTTP parser uvicorn picks ("auto") in the server, whose imports are ours."""
    loop = "uvloop" if find_spec("uvloop") else "asyncio loop"
    return f"{loop}, {'httptools' if find_spec('httptools') else 'h11'}"


def _wrk_version(wrk: str | None) -> str:
    if wrk is None:
        return "wrk not installed"
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).split(" [")[0].strip() or "wrk"


def table(sizes: Sizes, results: Sequence[StoreResult], took: float) -> str:
    from .__main__ import machine, render

    info = machine()
    out = [
        f"pausepoint HTTP service under wrk ({sizes.name} mode)",
        f"  CPU        {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)",
        f"  OS         {info['os']}",
        f"  Python     {info['python']} (built {info['python_build']})",
        f"  versions   {versions()}; {_wrk_version(shutil.which('wrk'))}",
        f"  server     uvicorn, 1 process ({_uvicorn_flavour()}), on {HOST}; create_app over Runs,",
        "             startup heap frozen out of the garbage collector (as pausepoint serve does)",
        f"  load       wrk, {sizes.connections} keep-alive connections over "
        f"{sizes.threads} threads, on the same machine",
        f"  runs       {sizes.runs:,} refund runs paused per store beforehand",
        "",
    ]
    header = ["wrk", "request", "requests", "KB each", "req/s", "avg ms", "p50 ms", "p99 ms"]
    header += ["max ms"]
    rows = [[*header, "of ceiling", "errors", "note"]]
    for result in results:
        if result.note is not None and not result.phases:
            rows.append([result.label, result.note])
            continue
        ceiling = next((p.rate for p in result.phases if p.name == "ceiling"), 0.0)
        for phase in result.phases:
            rows.append(
                [
                    result.label,
                    phase.name,
                    f"{phase.requests:,}",
                    f"{phase.response_bytes / 1e3:.1f}",
                    f"{phase.rate:,.0f}",
                    f"{phase.mean_ms:.1f}",
                    f"{phase.p50_ms:.1f}",
                    f"{phase.p99_ms:.1f}",
                    f"{phase.max_ms:.1f}",
                    f"{phase.rate / ceiling:.0%}" if ceiling else "",
                    phase.note or str(phase.errors),
                    f"stopped at the {sizes.resume_cap:g} s cap" if phase.capped else "",
                ]
            )
    out += render(rows, numeric_from=2)
    out += [
        f"    * ceiling: GET {CEILING}, the framework alone (a cached document, no store)",
        f"    * inbox: GET {INBOX}, the newest page of the inbox; requests for the same "
        "page that arrive during a read of it share the next read",
        f"    * inbox pages: the same, cycling through the inbox's {sizes.pages} pages "
        "(cursor=...), so that concurrent requests rarely ask for the same page",
        "    * resume: POST /api/runs/{id}/resume with the pause id; each run once, "
        "the run completes in the request",
        f"    * GET phases run {sizes.seconds:g} s each; latencies are wrk's",
        "    * targets on PostgreSQL, 32 connections: inbox ≥ 2,000 req/s, "
        "resumes ≥ 500 req/s, p99 ≤ 50 ms",
    ]
    for result in results:
        if result.phases:
            out.append(
                f"    * {result.label}: {sizes.runs:,} runs paused in {result.created_s:.1f} s "
                f"through Runs; after the load {result.left_paused} still paused, "
                f"{result.not_completed} not completed"
            )
        if result.note is not None and result.phases:
            out.append(f"    ! {result.label}: {result.note}")
    for result in results:
        for name, lines in result.profiles.items():
            out += ["", f"py-spy, {result.label} {name}: {lines[0]}", *lines[1:]]
    out.append(f"\ntook {took:.1f} s")
    if sizes.name == "quick":
        out.append("quick mode: small counts, figures are indicative only")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wrk_load",
        description="The HTTP service under wrk, on SQLite and PostgreSQL.",
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke mode: a few seconds")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="sample the server with py-spy during the inbox and resume phases",
    )
    parser.add_argument(
        "--store",
        action="append",
        choices=STORES,
        help="measure only this store (repeatable); both by default",
    )
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    results = measure(sizes, args.store or STORES, args.profile)
    print(table(sizes, results, time.perf_counter() - started))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
