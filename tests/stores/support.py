"""Helpers of the store tests: server URLs, reachability, throwaway servers.

Redis and PostgreSQL come from PAUSEPOINT_TEST_REDIS_URL and
PAUSEPOINT_TEST_POSTGRES_URL (loopback defaults). A server that cannot be
reached skips its tests locally and fails them when CI=true (:func:`require`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pausepoint.stores import Store
from pausepoint.stores._common import redact_url

REDIS_URL = os.environ.get("PAUSEPOINT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "PAUSEPOINT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
DURABLE = BACKENDS[1:]
"""Backends whose data outlives the store object (a second store sees it)."""

OpenStore = Callable[[], Awaitable[Store]]


def require(ok: bool, reason: str) -> None:
    """Skip the test with ``reason`` unless ``ok``; under CI=true, fail it instead."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: every store test must run)")
    pytest.skip(reason)


_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "postgresql": 5432, "postgres": 5432}


@functools.cache
def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    address = (parts.hostname or "localhost", parts.port or _DEFAULT_PORTS.get(parts.scheme, 0))
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def require_server(url: str, env: str) -> None:
    """Skip (fail under CI) when nothing answers at ``url``'s host and port."""
    require(_reachable(url), f"no server at {redact_url(url)}: start it or set {env}")


def with_query(url: str, **params: str) -> str:
    """Return ``url`` with ``params`` added to its query string."""
    joiner = "&" if urlsplit(url).query else "?"
    return url + joiner + "&".join(f"{k}={v}" for k, v in params.items())


@contextlib.contextmanager
def fresh_store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a fresh, empty store of ``backend`` and clean it up afterwards.

    SQLite gets its own file, Redis its own key prefix, PostgreSQL its own
    schema; an unreachable server skips (fails under ``CI=true``).
    """
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
    elif backend == "redis":
        require_server(REDIS_URL, "PAUSEPOINT_TEST_REDIS_URL")
        import redis

        prefix = f"pptest-{uuid.uuid4().hex}"
        try:
            yield with_query(REDIS_URL, prefix=prefix)
        finally:
            with redis.Redis.from_url(REDIS_URL) as client:
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                if keys:
                    client.delete(*keys)
    else:
        require_server(POSTGRES_URL, "PAUSEPOINT_TEST_POSTGRES_URL")
        import psycopg

        schema = f"pptest_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield with_query(POSTGRES_URL, schema=schema)
        finally:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def schema_version(backend: str, url: str) -> int:
    """Read the migration count a durable store recorded, behind its back."""
    if backend == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])
    if backend == "redis":
        import redis

        prefix = urlsplit(url).query.rpartition("prefix=")[2]
        with redis.Redis.from_url(REDIS_URL) as client:
            return int(client.get(f"{prefix}:schema") or 0)
    import psycopg

    schema = urlsplit(url).query.rpartition("schema=")[2]
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute(f'SELECT version FROM "{schema}".schema_version').fetchone()
        assert row is not None
        return int(row[0])


# -- servers of our own, for stop/start tests ----------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.05)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RedisServer:
    """A throwaway ``redis-server`` on a spare port, with no persistence."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary directory, on a spare port."""

    def __init__(self, bindir: str, datadir: str) -> None:
        self.bindir = bindir
        self.datadir = datadir
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # PostgreSQL refuses to run as root: run its tools as the postgres user then.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _tool(self, name: str, *args: str, check: bool = True) -> None:
        command = [*self.prefix, os.path.join(self.bindir, name), *args]
        subprocess.run(command, check=check, capture_output=True, timeout=60)

    def init(self) -> None:
        self._tool("initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = os.path.join(self.datadir, "log")
        self._tool("pg_ctl", "start", "-D", self.datadir, "-l", log, "-w", "-o", options)

    def stop(self, *, check: bool = True) -> None:
        self._tool("pg_ctl", "stop", "-D", self.datadir, "-m", "immediate", "-w", check=check)
