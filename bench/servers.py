"""Where the durable contenders keep their data, fresh for every section and removed after.

* SQLite: files in a temporary directory (one per contender);
* PostgreSQL: a new schema ``bench_<section>_<hex>`` on the server of
  ``PAUSEPOINT_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
  dropped with everything in it afterwards; pausepoint opens it with ``?schema=``,
  LangGraph and the psycopg floor with ``search_path`` set to it;
* Redis: a new key prefix on the server of ``PAUSEPOINT_BENCH_REDIS_URL``
  (default ``redis://127.0.0.1:6379/0``), its keys deleted afterwards.

A server that does not answer within :data:`CONNECT_TIMEOUT` seconds (or whose
driver is not installed) is reported once, and the contenders that need it print
:data:`UNREACHABLE` (or how to install the driver) instead of figures.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

POSTGRES_URL = os.environ.get(
    "PAUSEPOINT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PAUSEPOINT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CONNECT_TIMEOUT = 2
UNREACHABLE = "n/a (server unreachable)"

SQLITE, POSTGRES, REDIS = "sqlite", "postgres", "redis"


def with_query(url: str, **params: str) -> str:
    """Return ``url`` with ``params`` added to its query string."""
    joiner = "&" if urlsplit(url).query else "?"
    return url + joiner + "&".join(f"{k}={v}" for k, v in params.items())


def _postgres_down() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "n/a (pip install 'pausepoint[postgres]')"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return UNREACHABLE
    return None


def _redis_down() -> str | None:
    try:
        import redis
    except ImportError:
        return "n/a (pip install 'pausepoint[redis]')"
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=CONNECT_TIMEOUT) as client:
            client.ping()
    except (redis.RedisError, OSError):
        return UNREACHABLE
    return None


_down: dict[str, str | None] = {}


def down(server: str) -> str | None:
    """Why ``server`` cannot be used (asked once per process), or ``None``."""
    if server == SQLITE:
        return None
    if server not in _down:
        _down[server] = _postgres_down() if server == POSTGRES else _redis_down()
    return _down[server]


@dataclass
class Places:
    """One section's temporary directory, PostgreSQL schema and Redis prefix."""

    directory: Path
    schema: str
    prefix: str
    used: set[str] = field(default_factory=set)

    def sqlite_path(self, name: str) -> Path:
        return self.directory / f"{name}.db"

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.sqlite_path(name)}"  # an absolute path: sqlite:////tmp/...

    def postgres_url(self) -> str:
        """The URL pausepoint opens: the server, tables in this section's schema."""
        self._use(POSTGRES)
        return with_query(POSTGRES_URL, schema=self.schema)

    def postgres_connect(self, **kwargs: Any) -> Any:
        """A psycopg connection whose ``search_path`` is this section's schema."""
        import psycopg

        self._use(POSTGRES)
        return psycopg.connect(POSTGRES_URL, options=f"-c search_path={self.schema}", **kwargs)

    def redis_url(self) -> str:
        self._use(REDIS)
        return with_query(REDIS_URL, prefix=self.prefix)

    def _use(self, server: str) -> None:
        if server in self.used:
            return
        if server == POSTGRES:
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{self.schema}"')
        self.used.add(server)

    def remove(self) -> None:
        if POSTGRES in self.used:
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        if REDIS in self.used:
            import redis

            with redis.Redis.from_url(REDIS_URL) as client:
                keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start : start + 1000])


@contextlib.contextmanager
def places(section: str) -> Iterator[Places]:
    """Fresh places for ``section``; whatever was put there is removed on exit."""
    tag = f"bench_{section}_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix=f"pausepoint-{tag}-") as directory:
        where = Places(Path(directory), schema=tag, prefix=tag)
        try:
            yield where
        finally:
            where.remove()
