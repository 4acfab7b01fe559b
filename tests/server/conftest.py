"""Fixtures for the HTTP service tests: a real store, ``Runs`` and the app, over httpx.

The app runs in-process through ``httpx.ASGITransport``; the store is a SQLite
file in ``tmp_path`` unless a test asks for ``any_store_url``, which also covers
memory, Redis and PostgreSQL (own key prefix or schema; skipped when the server
is down, failed under ``CI=true``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint import Runs, open_store
from pausepoint.demo import charts as demo_charts
from pausepoint.server import create_app
from stores.support import BACKENDS, POSTGRES_URL, REDIS_URL, require_server, with_query

from .charts import CHARTS

TOKENS = {"tok-kim": "kim", "tok-lee": "lee"}
KIM = {"Authorization": "Bearer tok-kim"}
LEE = {"Authorization": "Bearer tok-lee"}
SECRET = "test-session-secret"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture(params=BACKENDS)
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store of every backend in turn."""
    backend = request.param
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
    elif backend == "redis":
        require_server(REDIS_URL, "PAUSEPOINT_TEST_REDIS_URL")
        import redis

        prefix = f"pptest-{uuid.uuid4().hex}"
        yield with_query(REDIS_URL, prefix=prefix)
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
        yield with_query(POSTGRES_URL, schema=schema)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def all_charts() -> dict[str, Any]:
    return {**demo_charts, **CHARTS}


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[Runs]:
    async with Runs(open_store(store_url), all_charts()) as opened:
        yield opened


@pytest.fixture
async def client(runs: Runs) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(runs) as opened:
        yield opened


def make_client(runs: Runs, tokens: Mapping[str, str] = TOKENS) -> httpx.AsyncClient:
    app = create_app(runs, tokens, session_secret=SECRET)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def start_refund(
    client: httpx.AsyncClient, amount: int = 900, **extra: Any
) -> dict[str, Any]:
    """Start the demo refund run over the API; it pauses for a manager."""
    response = await client.post(
        "/api/runs", json={"chart": "refund", "input": {"amount": amount}, **extra}, headers=KIM
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "paused"
    return body
