"""Fixtures for the store conformance suite: one fresh store per backend per test.

Each test gets its own SQLite file, Redis key prefix or PostgreSQL schema, removed
afterwards; see :mod:`.support` for where servers come from.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pausepoint.stores import Store, open_store

from .support import (
    BACKENDS,
    OpenStore,
    PostgresServer,
    RedisServer,
    fresh_store_url,
    require,
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL naming a fresh, empty store of ``backend``."""
    with fresh_store_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def open_sibling(backend: str, store_url: str) -> AsyncIterator[OpenStore]:
    """Opens more store objects on ``store_url`` (memory: the same one), closed afterwards."""
    opened: list[Store] = []
    shared: list[Store] = []

    async def open_one() -> Store:
        if backend == "memory":
            if not shared:
                shared.append(open_store(store_url))
                opened.append(shared[0])
            return shared[0]
        opened.append(open_store(store_url))
        return opened[-1]

    yield open_one
    for store in opened:
        await store.aclose()


@pytest.fixture
async def store(open_sibling: OpenStore) -> Store:
    """A fresh store of the backend under test."""
    return await open_sibling()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server is not installed")
    assert binary is not None
    server = RedisServer(binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    bindir = next(reversed(sorted(glob.glob("/usr/lib/postgresql/*/bin"))), None)
    if bindir is None and (initdb := shutil.which("initdb")):
        bindir = os.path.dirname(initdb)
    require(bindir is not None, "PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    assert bindir is not None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        require(
            shutil.which("runuser") is not None and _user_exists("postgres"),
            "running as root without runuser or a postgres user to start PostgreSQL as",
        )
    workdir = tempfile.mkdtemp(prefix="pptest-pg-")  # not tmp_path: its parents are 0700 root
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    server = PostgresServer(bindir, os.path.join(workdir, "data"))
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop(check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
