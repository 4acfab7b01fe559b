"""Helpers of the Celery tests: servers, real worker processes, side-effect logs.

Servers come from PAUSEPOINT_TEST_REDIS_URL, PAUSEPOINT_TEST_POSTGRES_URL and
PAUSEPOINT_TEST_RABBITMQ_URL (loopback defaults); one that cannot be reached
skips its tests locally and fails them under CI=true, as in ``tests/stores``.

Workers are ``python -m pausepoint worker`` subprocesses, each the leader of its
own process group (its pool processes and embedded beat are in the group), so
a test can SIGKILL a whole worker the way a machine dies, and :meth:`Worker.stop`
leaves no process behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

sys.path.insert(0, str(HERE.parent))  # tests/, for the shared helpers of the store tests
from stores.support import POSTGRES_URL, REDIS_URL, require, with_query  # noqa: E402

RABBITMQ_URL = os.environ.get("PAUSEPOINT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")

_PORTS = {"redis": 6379, "postgresql": 5432, "postgres": 5432, "amqp": 5672}
_ENV = {
    "redis": "PAUSEPOINT_TEST_REDIS_URL",
    "postgresql": "PAUSEPOINT_TEST_POSTGRES_URL",
    "amqp": "PAUSEPOINT_TEST_RABBITMQ_URL",
}


def require_url(url: str) -> None:
    """Skip (fail under CI=true) when nothing answers at ``url``'s host and port."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or _PORTS.get(parts.scheme, 0))
    try:
        with socket.create_connection(address, timeout=1):
            return
    except OSError:
        pass
    require(False, f"no server at {address[0]}:{address[1]}: start it or set {_ENV[parts.scheme]}")


def token() -> str:
    return uuid.uuid4().hex[:12]


# -- brokers -------------------------------------------------------------------------


class Broker:
    """A broker URL plus what keeps one test's messages apart from every other's."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.url = REDIS_URL if kind == "redis" else RABBITMQ_URL
        self.queue = f"pptest-{token()}"
        # Redis: every key of this test (queue, bindings, unacked messages) under one prefix
        self.options = {"global_keyprefix": f"{self.queue}:"} if kind == "redis" else {}

    def worker_args(self) -> list[str]:
        args = ["--broker", self.url, "--queue", self.queue]
        for key, value in self.options.items():
            args += ["--broker-option", f"{key}={value}"]
        return args

    def cleanup(self) -> None:
        if self.kind == "redis":
            import redis

            with redis.Redis.from_url(REDIS_URL) as client:
                keys = list(client.scan_iter(match=f"{self.queue}*", count=1000))
                if keys:
                    client.delete(*keys)
            return
        import kombu

        with kombu.Connection(self.url) as conn:
            channel = conn.default_channel
            channel.queue_delete(self.queue)
            channel.exchange_delete(self.queue)


# -- stores ----------------------------------------------------------------------------


class StoreSpace:
    """A fresh Redis key prefix or PostgreSQL schema, dropped by :meth:`cleanup`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        name = f"pptest_{token()}"
        if kind == "redis":
            self.url = with_query(REDIS_URL, prefix=name)
        else:
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{name}"')
            self.url = with_query(POSTGRES_URL, schema=name)
        self.name = name

    def cleanup(self) -> None:
        if self.kind == "redis":
            import redis

            with redis.Redis.from_url(REDIS_URL) as client:
                keys = list(client.scan_iter(match=f"{self.name}:*", count=1000))
                if keys:
                    client.delete(*keys)
            return
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{self.name}" CASCADE')


# -- workers ------------------------------------------------------------------------------


class Worker:
    """One ``pausepoint worker`` process group, logging to a file."""

    def __init__(
        self,
        name: str,
        broker: Broker,
        store_url: str,
        log_dir: Path,
        *,
        concurrency: int = 2,
        beat: bool = False,
        lease: float = 30.0,
        sweep_every: float = 10.0,
        options: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.command = [
            sys.executable,
            "-m",
            "pausepoint",
            "worker",
            *broker.worker_args(),
            "--store",
            store_url,
            "--charts",
            "celery_charts",
            "--concurrency",
            str(concurrency),
            "--lease",
            str(lease),
            "--sweep-every",
            str(sweep_every),
            *(["--beat"] if beat else []),
            *options,
            "--",
            "--hostname",
            f"{name}-{broker.queue}@%h",
            "--pool=prefork",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **environ: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT / "src")]),
            **environ,
        }
        env.pop("PAUSEPOINT_STORE", None)
        env.pop("PAUSEPOINT_CHARTS", None)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: pool and beat included
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while " ready." not in self.text():
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker {self.name} not ready after {timeout}s:\n{self.tail()}"
                )
            time.sleep(0.1)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def owns(self, pid: int) -> bool:
        """Is ``pid`` one of this worker's processes (main, pool, beat)?"""
        try:
            return os.getpgid(pid) == self.pid
        except ProcessLookupError:
            return False

    def kill(self) -> None:
        """SIGKILL every process of the worker at once, as when its machine dies."""
        os.killpg(self.pid, signal.SIGKILL)
        self._reap(10.0)

    def terminate(self) -> None:
        """Ask for a warm shutdown (SIGTERM): running tasks finish, then the worker exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL whatever is left; no process survives."""
        if self.process is None:
            return
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        if live_members(self.pid):
            os.killpg(self.pid, signal.SIGKILL)
        self._reap(10.0)

    def _reap(self, timeout: float) -> None:
        assert self.process is not None
        self.process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while live_members(self.pid):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"processes of worker {self.name} survived: {live_members(self.pid)}"
                )
            time.sleep(0.05)


def live_members(pgid: int) -> list[int]:
    """Pids of running (not zombie) processes in process group ``pgid``."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def start_workers(workers: Iterable[Worker]) -> None:
    started = list(workers)
    for worker in started:
        worker.start()
    for worker in started:
        worker.wait_ready()


# -- side effects ---------------------------------------------------------------------------


class SideLog:
    """The lines the charts' stages append: ``<run_id> <what> <pid>``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[tuple[str, str, int]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            run_id, what, pid = line.split()
            out.append((run_id, what, int(pid)))
        return out

    def counts(self) -> collections.Counter[tuple[str, str]]:
        return collections.Counter((run_id, what) for run_id, what, _ in self.lines())

    def pids(self, run_id: str, what: str) -> list[int]:
        return [pid for r, w, pid in self.lines() if r == run_id and w == what]


async def wait_until(
    check: Callable[[], object], limit: float, what: str, *, every: float = 0.1
) -> None:
    """Await ``check()`` (sync or async) until it is truthy; fail naming ``what`` after ``limit`` s."""
    deadline = time.monotonic() + limit
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit}s waiting for {what}")
        await asyncio.sleep(every)


# -- a TCP proxy, to take a store away and give it back ---------------------------------


class Proxy:
    """Forwards 127.0.0.1:port to ``target``; :meth:`stop` refuses and cuts connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# -- test parameters ---------------------------------------------------------------


def combo(broker: str, store: str, *marks: Any) -> Any:
    """A ``(broker_kind, store_kind)`` parameter marked with the servers it needs."""
    needs = {broker, store}
    server_marks = [
        getattr(pytest.mark, "rabbitmq" if kind == "rabbitmq" else kind) for kind in sorted(needs)
    ]
    return pytest.param(
        broker, store, id=f"{broker}-broker-{store}-store", marks=[*server_marks, *marks]
    )


ALL_COMBOS = [
    combo("redis", "redis"),
    combo("redis", "postgres"),
    combo("rabbitmq", "redis"),
    combo("rabbitmq", "postgres"),
]
