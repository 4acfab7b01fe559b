"""``python -m bench.load [--quick]``: the HTTP service under a bounded, concurrent load.

For each store (a SQLite file, then a fresh PostgreSQL schema; see
:mod:`bench.servers`), in order:

1. ``runs`` refund runs are started through ``Runs`` directly, each to its pause
   (no HTTP; ``resumes`` of them for phase b, the rest for phase c);
2. ``create_app(runs, tokens=...)`` is served by uvicorn in a child process
   (``python -m bench.load --serve URL --port N``: one process, its default
   asyncio loop and h11, no access log, the startup heap frozen out of the
   garbage collector as ``pausepoint serve`` does) on ``127.0.0.1`` and a free port;
3. ``concurrency`` clients (coroutines sharing one ``httpx.AsyncClient`` with as
   many keep-alive connections, proxies from the environment ignored) take
   requests from a fixed list until it is empty, in three timed phases:

   a. inbox reads: ``GET /api/runs?limit=50``, ``reads`` times;
   b. resumes: ``POST /api/runs/{id}/resume`` with the pause id and
      ``{"approved": true, "approver": "kim"}``, every run set aside for it once;
   c. mixed: ``mixed`` requests, four inbox reads then one resume, repeated
      (80 % reads, 20 % resumes of the remaining runs);

4. the server is stopped (SIGTERM, then SIGKILL after a grace period) and the
   store is checked: every resumed run completed, none left paused.

Every phase stops taking new requests after ``phase_cap`` seconds (a request
then still has its own timeout), and a store gives up after ``store_cap``; the
file and schema are removed afterwards. Traffic goes to 127.0.0.1 only. A
PostgreSQL server that does not answer gives an ``n/a`` row, never a failure;
the exit code is 1 when a request failed (a transport error, or a status other
than 2xx and the 409 of an already answered pause).

Full mode takes about a minute and a half on two cores; ``--quick`` (CI smoke) a few
seconds, with sizes whose figures are only indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import servers
from .scenarios import REFUND_INPUT
from .servers import POSTGRES, SQLITE, Places

HOST = "127.0.0.1"
TOKEN = "bench-load-token"
TOKENS = {TOKEN: "kim"}
CHART = "refund"
ANSWER: dict[str, Any] = {"approved": True, "approver": "kim"}
PAGE = 50
RESUME_EVERY = 5
"""In the mixed phase, every fifth request is a resume (20 %)."""

REQUEST_TIMEOUT = 10.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PRECREATE_AT_ONCE = 8

READS, RESUMES, MIXED = "a inbox reads", "b resumes", "c mixed 80/20"


@dataclass(frozen=True)
class Sizes:
    name: str
    reads: int
    resumes: int
    mixed: int
    concurrency: int
    phase_cap: float
    store_cap: float

    @property
    def mixed_resumes(self) -> int:
        return self.mixed // RESUME_EVERY

    @property
    def runs(self) -> int:
        return self.resumes + self.mixed_resumes


FULL = Sizes("full", 4_000, 2_000, 2_500, concurrency=32, phase_cap=120.0, store_cap=600.0)
QUICK = Sizes("quick", 200, 100, 125, concurrency=8, phase_cap=5.0, store_cap=12.0)


# -- one phase ---------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any] | None = None
    run_id: str | None = None  # the run a resume answers


READ = Request("GET", f"/api/runs?limit={PAGE}")


def resume_request(run_id: str, pause_id: str) -> Request:
    body = {"input": ANSWER, "pause_id": pause_id}
    return Request("POST", f"/api/runs/{run_id}/resume", body, run_id)


@dataclass
class Phase:
    """What one phase did: a latency per answered request, conflicts and errors."""

    name: str
    planned: int
    latencies_ns: list[int] = field(default_factory=list)
    conflicts: int = 0
    errors: int = 0
    examples: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    elapsed_ns: int = 0
    capped: bool = False

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.examples) < 3:
            self.examples.append(what)

    @property
    def answered(self) -> int:
        return len(self.latencies_ns)

    @property
    def rate(self) -> float:
        return self.answered / (self.elapsed_ns / 1e9) if self.elapsed_ns else 0.0

    def percentile_ms(self, p: float) -> float | None:
        """Nearest-rank percentile of the latencies, in ms."""
        if not self.latencies_ns:
            return None
        ordered = sorted(self.latencies_ns)
        rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
        return ordered[int(rank) - 1] / 1e6


async def drive(
    client: Any, name: str, requests: Sequence[Request], concurrency: int, cap: float
) -> Phase:
    """Send ``requests`` from ``concurrency`` clients at once; stop taking new ones after ``cap`` s."""
    import httpx

    phase = Phase(name, len(requests))
    pending: Iterator[Request] = iter(requests)
    deadline = time.monotonic() + cap

    async def client_loop() -> None:
        for request in pending:  # one shared iterator: each request is sent once
            if time.monotonic() > deadline:
                phase.capped = True
                return
            started = time.perf_counter_ns()
            try:
                response = await client.request(request.method, request.path, json=request.body)
            except httpx.HTTPError as exc:
                phase.error(f"{request.method} {request.path}: {type(exc).__name__}: {exc}")
                continue
            phase.latencies_ns.append(time.perf_counter_ns() - started)
            status = response.status_code
            if status == 409 and request.run_id is not None:
                phase.conflicts += 1
            elif not 200 <= status < 300:
                phase.error(f"{request.method} {request.path}: {status} {response.text[:200]}")
            elif request.run_id is not None:
                phase.resumed.append(request.run_id)
                if response.json().get("status") != "completed":
                    phase.error(f"{request.path}: run not completed: {response.text[:200]}")

    started = time.perf_counter_ns()
    async with asyncio.timeout(cap + REQUEST_TIMEOUT + 5):
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    phase.elapsed_ns = time.perf_counter_ns() - started
    return phase


def mixed_requests(count: int, runs: Iterable[tuple[str, str]]) -> list[Request]:
    paused = iter(runs)
    return [
        resume_request(*next(paused)) if i % RESUME_EVERY == RESUME_EVERY - 1 else READ
        for i in range(count)
    ]


# -- the server --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def serve(url: str, port: int) -> None:
    """The child process: the refund demo's charts over ``url``, served on ``HOST:port``."""
    import uvicorn

    from pausepoint import Runs, open_store
    from pausepoint.demo import charts
    from pausepoint.server import create_app

    runs = Runs(open_store(url), charts)
    app = create_app(runs, TOKENS, session_secret="bench-load")
    gc.collect()  # as `pausepoint serve` does: the startup heap leaves full GC passes
    gc.freeze()
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="off",
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        try:
            await server.serve()  # returns on SIGTERM / SIGINT
        finally:
            await runs.aclose()

    asyncio.run(run())


@contextlib.contextmanager
def server_process(url: str) -> Iterator[str]:
    """Serve ``url`` from a child process; yield its base URL; stop the child on exit."""
    with serving(url) as (base, _child):
        yield base


@contextlib.contextmanager
def serving(url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve ``url`` from a child process; yield its base URL and the child; stop it on exit."""
    import httpx

    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.load", "--serve", url, "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        auth = {"Authorization": f"Bearer {TOKEN}"}  # reads need a token too
        with httpx.Client(base_url=base, headers=auth, trust_env=False, timeout=1.0) as probe:
            while True:
                if child.poll() is not None:
                    raise RuntimeError(
                        f"the server exited while starting (code {child.returncode})"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer within {START_TIMEOUT:.0f} s")
                with contextlib.suppress(httpx.HTTPError):
                    if probe.get("/api/runs", params={"limit": 1}).status_code == 200:
                        break
                time.sleep(0.05)
        yield base, child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


# -- one store ---------------------------------------------------------------


@dataclass
class StoreResult:
    label: str
    phases: list[Phase] = field(default_factory=list)
    note: str | None = None
    created_s: float = 0.0
    left_paused: int = 0
    not_completed: int = 0
    failed: bool = False


async def precreate(url: str, count: int) -> list[tuple[str, str]]:
    """Start ``count`` refund runs to their pause; return (run id, pause id) oldest first."""
    from pausepoint import Runs, open_store
    from pausepoint.demo import charts

    async with Runs(open_store(url), charts) as runs:
        first = await runs.start(CHART, REFUND_INPUT)  # connects, creates the tables
        records = [first]
        gate = asyncio.Semaphore(PRECREATE_AT_ONCE)

        async def one() -> Any:
            async with gate:
                return await runs.start(CHART, REFUND_INPUT)

        records += await asyncio.gather(*(one() for _ in range(count - 1)))
    paused = []
    for record in records:
        if record.status != "paused" or record.pause is None:
            raise RuntimeError(f"run {record.run_id} did not pause: {record.status}")
        paused.append((record.run_id, record.pause.pause_id))
    return paused


async def check(url: str, resumed: Sequence[str]) -> tuple[int, int]:
    """(runs still paused, resumed runs not completed) in the store after the load."""
    from pausepoint import Runs, open_store
    from pausepoint.demo import charts

    async with Runs(open_store(url), charts) as runs:
        left, cursor = 0, None
        while True:
            page = await runs.pending(limit=1000, cursor=cursor)
            left += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        not_completed = 0
        for run_id in resumed:
            if (await runs.get(run_id)).status != "completed":
                not_completed += 1
    return left, not_completed


async def load(url: str, sizes: Sizes, result: StoreResult) -> None:
    import httpx

    started = time.perf_counter()
    paused = await precreate(url, sizes.runs)
    result.created_s = time.perf_counter() - started
    for_resumes, for_mixed = paused[: sizes.resumes], paused[sizes.resumes :]
    plan = (
        (READS, [READ] * sizes.reads),
        (RESUMES, [resume_request(*run) for run in for_resumes]),
        (MIXED, mixed_requests(sizes.mixed, for_mixed)),
    )
    c = sizes.concurrency
    with server_process(url) as base:
        if urlsplit(base).hostname != HOST:  # loopback only, whatever happens above
            raise RuntimeError(f"refusing to load {base}")
        async with httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {TOKEN}"},
            limits=httpx.Limits(max_connections=c, max_keepalive_connections=c),
            timeout=REQUEST_TIMEOUT,
            trust_env=False,
        ) as client:
            _progress(f"{result.label}: warm-up ({2 * c} inbox reads)")
            warm = await drive(client, "warm-up", [READ] * (2 * c), c, sizes.phase_cap)
            if warm.errors:
                raise RuntimeError(f"the warm-up failed: {warm.examples[0]}")
            for name, requests in plan:
                _progress(f"{result.label}: {name} ({len(requests):,} requests)")
                result.phases.append(await drive(client, name, requests, c, sizes.phase_cap))
    resumed = [run_id for phase in result.phases for run_id in phase.resumed]
    result.left_paused, result.not_completed = await check(url, resumed)


async def measure_store(label: str, url: str, sizes: Sizes) -> StoreResult:
    result = StoreResult(label)
    _progress(f"{label}: {sizes.runs:,} paused runs")
    try:
        async with asyncio.timeout(sizes.store_cap):
            await load(url, sizes, result)
    except TimeoutError:
        result.note, result.failed = f"stopped at the {sizes.store_cap:g} s cap", True
    except RuntimeError as exc:  # the server did not start, a run did not pause
        result.note, result.failed = f"failed: {exc}", True
    return result


def measure(sizes: Sizes) -> list[StoreResult]:
    results = []
    with servers.places("load") as where:
        for label, server, url_of in (
            ("SQLite", SQLITE, lambda w: w.sqlite_url("load")),
            ("PostgreSQL", POSTGRES, Places.postgres_url),
        ):
            unavailable = servers.down(server)
            if unavailable is not None:
                results.append(StoreResult(label, note=unavailable))
                continue
            results.append(asyncio.run(measure_store(label, url_of(where), sizes)))
    return results


# -- report ------------------------------------------------------------------


def _progress(what: str) -> None:
    print(f"  {what} ...", file=sys.stderr, flush=True)


def _postgres_version() -> str:
    if servers.down(POSTGRES) is not None:
        return "unreachable"
    import psycopg

    with psycopg.connect(servers.POSTGRES_URL, connect_timeout=servers.CONNECT_TIMEOUT) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def versions() -> str:
    from importlib.metadata import version

    import pausepoint

    return (
        f"pausepoint {pausepoint.__version__}; uvicorn {version('uvicorn')}; "
        f"fastapi {version('fastapi')}; httpx {version('httpx')}; "
        f"SQLite {sqlite3.sqlite_version}; PostgreSQL {_postgres_version()}"
    )


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(sizes: Sizes, results: Sequence[StoreResult], took: float) -> str:
    from .__main__ import machine, render

    info = machine()
    c = sizes.concurrency
    out = [
        f"pausepoint HTTP service under load ({sizes.name} mode)",
        f"  CPU        {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)",
        f"  OS         {info['os']}",
        f"  Python     {info['python']} (built {info['python_build']})",
        f"  versions   {versions()}",
        f"  server     uvicorn, 1 process (asyncio loop, h11), on {HOST}; create_app over Runs",
        f"  clients    {c} at once from 1 process: httpx.AsyncClient, {c} keep-alive connections",
        f"  runs       {sizes.runs:,} refund runs paused per store beforehand "
        f"({sizes.resumes:,} for b, {sizes.mixed_resumes:,} for c)",
        "",
    ]
    header = ["store", "phase", "requests", "wall s", "req/s", "p50 ms", "p99 ms", "409", "errors"]
    rows = [[*header, "note"]]
    for result in results:
        if result.note is not None and not result.phases:
            rows.append([result.label, result.note])
            continue
        for phase in result.phases:
            done = f"{phase.answered:,}"
            if phase.answered != phase.planned:
                done += f"/{phase.planned:,}"
            note = f"stopped at the {sizes.phase_cap:g} s cap" if phase.capped else ""
            rows.append(
                [
                    result.label,
                    phase.name,
                    done,
                    f"{phase.elapsed_ns / 1e9:.2f}",
                    f"{phase.rate:,.0f}",
                    _ms(phase.percentile_ms(50)),
                    _ms(phase.percentile_ms(99)),
                    str(phase.conflicts),
                    str(phase.errors),
                    note,
                ]
            )
        if result.note is not None:
            rows.append([result.label, result.note])
    out += render(rows, numeric_from=2)
    out += [
        f"    * a: GET /api/runs?limit={PAGE}, the first inbox page, {sizes.reads:,} times",
        "    * b: POST /api/runs/{id}/resume with pause_id, each run set aside for b once; "
        "the run completes in the request",
        f"    * c: {sizes.mixed:,} requests, 4 inbox reads then 1 resume, repeated",
        "    * req/s: answered requests over the phase's wall time; p50/p99: per request, "
        "from sending to the whole body read (client side, nearest rank)",
        "    * 409: a pause answered already (none expected: each run is resumed once); "
        "errors: transport errors, any other non-2xx, a resumed run not completed",
        "    * server, clients and PostgreSQL share the machine's cores; stores as "
        "open_store(url) makes them (SQLite: one thread; PostgreSQL: a pool of up to 10)",
    ]
    for result in results:
        if result.phases:
            out.append(
                f"    * {result.label}: {sizes.runs:,} runs paused in {result.created_s:.1f} s "
                f"through Runs; after the load {result.left_paused} still paused, "
                f"{result.not_completed} resumed runs not completed"
            )
        for phase in result.phases:
            out += [f"    ! {result.label} {phase.name}: {e}" for e in phase.examples]
    out.append(f"\ntook {took:.1f} s")
    if sizes.name == "quick":
        out.append("quick mode: small counts, figures are indicative only")
    return "\n".join(out)


# -- entry point -------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="The HTTP service under bounded concurrent load, on SQLite and PostgreSQL.",
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke mode: a few seconds")
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0

    started = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    results = measure(sizes)
    print(table(sizes, results, time.perf_counter() - started))
    failed = any(r.failed or r.not_completed or any(p.errors for p in r.phases) for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
