"""``python -m bench.celery_bench [--quick] [--broker URL]``: resumes through Celery workers.

For 1, 2 and 4 worker processes (one ``pausepoint worker --concurrency N``,
prefork) on a PostgreSQL store, with the demo's refund chart (after the pause:
the answer, ``ProcessRefund`` and ``NotifyCustomer``, each followed by a progress
checkpoint, then the completion):

* **burst**: M runs are paused, then M resume tasks are sent as fast as the
  broker takes them; throughput is M over the time from the first send to the
  last completion, and each resume's latency is the time from just before its
  send to its completion (the record's ``updated_at``, written by the worker on
  the same machine's clock), queueing included. Full mode times three bursts
  and keeps the one with the median throughput;
* **one at a time**: K resumes, each sent once the previous one completed: the
  latency of a resume on an idle system.

Servers: PostgreSQL from ``PAUSEPOINT_BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``; a fresh schema, dropped after),
broker from ``--broker`` (default ``PAUSEPOINT_BENCH_REDIS_URL`` or
``redis://127.0.0.1:6379/0``, keys under a fresh prefix, deleted after; or an
``amqp://`` URL, a fresh queue, deleted after). ``--quick`` uses small batches
(figures only indicative). ``--processes N`` measures only that many worker
processes, ``--prefetch N`` runs the workers with that prefetch multiplier
(each one given is measured in turn), and ``--profile DIR`` samples the worker
and its pool with py-spy during the bursts and prints the functions with most
samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get(
    "PAUSEPOINT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PAUSEPOINT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ANSWER = {"approved": True, "approver": "bench"}
SEED = {"order_id": "ORD-1", "amount": 900}


@dataclass(frozen=True)
class Mode:
    name: str
    processes: tuple[int, ...]
    burst: int
    single: int
    warmup: int
    repeats: int


QUICK = Mode("quick", (1, 2, 4), burst=60, single=10, warmup=2, repeats=1)
FULL = Mode("full", (1, 2, 4), burst=1000, single=100, warmup=5, repeats=3)


@dataclass
class Row:
    processes: int
    prefetch: int | None
    per_second: float
    burst_p50: float
    burst_p99: float
    single_p50: float
    single_p99: float


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# -- servers ------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_schema() -> Iterator[tuple[str, str]]:
    import psycopg

    schema = f"ppbench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    joiner = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{joiner}schema={schema}", schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class Broker:
    def __init__(self, url: str) -> None:
        self.url = url
        self.queue = f"ppbench-{uuid.uuid4().hex[:12]}"
        self.redis = url.startswith(("redis://", "rediss://"))
        self.options = {"global_keyprefix": f"{self.queue}:"} if self.redis else {}

    def cleanup(self) -> None:
        if self.redis:
            import redis

            with redis.Redis.from_url(self.url) as client:
                keys = list(client.scan_iter(match=f"{self.queue}*", count=1000))
                if keys:
                    client.delete(*keys)
            return
        import kombu

        with kombu.Connection(self.url) as conn:
            conn.default_channel.queue_delete(self.queue)
            conn.default_channel.exchange_delete(self.queue)


class Worker:
    """One ``pausepoint worker --concurrency N`` process group."""

    def __init__(
        self, broker: Broker, store_url: str, processes: int, log: Path, prefetch: int | None
    ) -> None:
        self.log = log
        options = [f"--broker-option=global_keyprefix={v}" for v in broker.options.values()]
        self.command = [
            sys.executable,
            "-m",
            "pausepoint",
            "worker",
            "--broker",
            broker.url,
            "--queue",
            broker.queue,
            *options,
            "--store",
            store_url,
            "--charts",
            "pausepoint.demo",
            "--concurrency",
            str(processes),
            "--loglevel",
            "WARNING",
            "--",
            "--hostname",
            f"bench{processes}-{broker.queue}@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            *([f"--prefetch-multiplier={prefetch}"] if prefetch else []),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Worker:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # any pool process left behind

    def check(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise SystemExit(f"the worker exited:\n{self.log.read_text(errors='replace')}")


# -- measuring ---------------------------------------------------------------------------


class Bench:
    def __init__(self, app: Any, store_url: str, schema: str) -> None:
        import psycopg

        self.app = app
        self.store_url = store_url
        self.conn = psycopg.connect(POSTGRES_URL, autocommit=True)
        self.table = f'"{schema}".runs'

    def close(self) -> None:
        self.conn.close()

    def paused_runs(self, count: int) -> list[tuple[str, str]]:
        """Start ``count`` runs here (not through Celery) and return (run_id, pause_id)s."""
        from pausepoint import Runs, open_store
        from pausepoint.demo import charts

        async def go() -> list[tuple[str, str]]:
            limit = asyncio.Semaphore(8)

            async def one(runs: Runs) -> tuple[str, str]:
                async with limit:
                    record = await runs.start("refund", SEED)
                assert record.pause is not None, record.status
                return record.run_id, record.pause.id

            async with Runs(open_store(self.store_url), charts) as runs:
                return list(await asyncio.gather(*(one(runs) for _ in range(count))))

        return asyncio.run(go())

    def send(self, run_id: str, pause_id: str) -> float:
        sent = time.time()
        self.app.send_task(
            "pausepoint.resume",
            kwargs={"run_id": run_id, "input": ANSWER, "actor": "bench", "pause_id": pause_id},
        )
        return sent

    def completed(self, run_ids: Sequence[str]) -> dict[str, float]:
        rows = self.conn.execute(
            f"SELECT run_id, updated_at FROM {self.table} "
            "WHERE status = 'completed' AND run_id = ANY(%s)",
            (list(run_ids),),
        ).fetchall()
        return {run_id: updated for run_id, updated in rows}

    def wait(self, run_ids: Sequence[str], worker: Worker, pause: float) -> dict[str, float]:
        deadline = time.monotonic() + 60 + len(run_ids) * 0.1
        while True:
            done = self.completed(run_ids)
            if len(done) == len(run_ids):
                return done
            worker.check()
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(done)} of {len(run_ids)} resumes completed")
            time.sleep(pause)

    def burst(self, count: int, worker: Worker) -> tuple[float, list[float]]:
        runs = self.paused_runs(count)
        sent = {run_id: self.send(run_id, pause_id) for run_id, pause_id in runs}
        done = self.wait(list(sent), worker, 0.05)
        first = min(sent.values())
        throughput = count / (max(done.values()) - first)
        return throughput, [done[run_id] - sent[run_id] for run_id in sent]

    def one_at_a_time(self, count: int, worker: Worker) -> list[float]:
        latencies = []
        for run_id, pause_id in self.paused_runs(count):
            sent = self.send(run_id, pause_id)
            done = self.wait([run_id], worker, 0.001)
            latencies.append(done[run_id] - sent)
        return latencies


def measure(
    mode: Mode,
    broker_url: str,
    profile: Path | None = None,
    prefetches: Sequence[int | None] = (None,),
) -> tuple[list[Row], dict[str, str]]:
    from pausepoint.celery import make_celery_app

    from .spy import hot_functions, sampled

    rows = []
    broker = Broker(broker_url)
    logs = Path(tempfile.mkdtemp(prefix="ppbench-"))
    try:
        with fresh_schema() as (store_url, schema):
            app = make_celery_app(
                broker.url,
                store_url,
                "pausepoint.demo",
                queue=broker.queue,
                broker_options=broker.options,
            )
            bench = Bench(app, store_url, schema)
            info = {"postgres": bench.conn.execute("SHOW server_version").fetchone()[0]}
            try:
                for processes, prefetch in itertools.product(mode.processes, prefetches):
                    log = logs / f"w{processes}-{prefetch}.log"
                    with Worker(broker, store_url, processes, log, prefetch) as w:
                        # warm every pool process up: imports, store connection pool
                        bench.burst(mode.warmup * processes, w)
                        # the burst with the median throughput of `repeats` (a shared
                        # machine's noise comes and goes)
                        out = profile / f"worker-{processes}-{prefetch}.txt" if profile else None
                        assert w.process is not None
                        with sampled(w.process.pid, out, subprocesses=True):
                            bursts = sorted(
                                (bench.burst(mode.burst, w) for _ in range(mode.repeats)),
                                key=lambda outcome: outcome[0],
                            )
                        if out is not None and out.exists():
                            hot = hot_functions(out, top=25)
                            print(f"py-spy, {processes} process(es): " + "\n".join(hot))
                        per_second, burst = bursts[len(bursts) // 2]
                        single = bench.one_at_a_time(mode.single, w)
                    rows.append(
                        Row(
                            processes,
                            prefetch,
                            per_second,
                            statistics.median(burst) * 1000,
                            percentile(burst, 0.99) * 1000,
                            statistics.median(single) * 1000,
                            percentile(single, 0.99) * 1000,
                        )
                    )
                    print(f"  {processes} process(es) measured", file=sys.stderr, flush=True)
            finally:
                bench.close()
                app.close()
    finally:
        broker.cleanup()
        shutil.rmtree(logs, ignore_errors=True)
    return rows, info


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small batches (CI smoke)")
    parser.add_argument("--broker", default=REDIS_URL, help="redis://... or amqp://...")
    parser.add_argument(
        "--processes",
        type=int,
        action="append",
        metavar="N",
        help="measure only N worker processes (repeatable); 1, 2 and 4 by default",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        action="append",
        metavar="N",
        help="run the workers with --prefetch-multiplier=N (repeatable: each is measured)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the workers with py-spy during the bursts (figures then skewed)",
    )
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    if args.processes:
        mode = dataclasses.replace(mode, processes=tuple(args.processes))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    import celery
    import pausepoint

    rows, info = measure(mode, args.broker, args.profile, args.prefetch or (None,))
    broker_kind = "RabbitMQ" if args.broker.startswith("amqp") else "Redis"
    print(
        f"Celery resumes ({mode.name}: median of {mode.repeats} bursts of {mode.burst}, "
        f"{mode.single} one at a time), "
        f"refund chart, PostgreSQL {info['postgres']} store, {broker_kind} broker"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, pausepoint {pausepoint.__version__}, "
        f"celery {celery.__version__}"
    )
    header = (
        "processes",
        "prefetch",
        "burst resumes/s",
        "burst p50 ms",
        "burst p99 ms",
        "single p50 ms",
        "single p99 ms",
        "speed-up",
    )
    print(" | ".join(header))
    print(" | ".join("-" * len(h) for h in header))
    base = rows[0].per_second if rows else 1.0
    for row in rows:
        cells = (
            str(row.processes),
            "app's" if row.prefetch is None else str(row.prefetch),
            f"{row.per_second:,.0f}",
            f"{row.burst_p50:,.0f}",
            f"{row.burst_p99:,.0f}",
            f"{row.single_p50:,.1f}",
            f"{row.single_p99:,.1f}",
            f"{row.per_second / base:.2f}x",
        )
        print(" | ".join(cell.rjust(len(h)) for cell, h in zip(cells, header, strict=True)))


if __name__ == "__main__":
    main()
