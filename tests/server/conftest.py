"""Fixtures for the HTTP service tests: a real store, ``Runs`` and the app, over httpx.

The app runs in-process through ``httpx.ASGITransport``; the store is a SQLite
file in ``tmp_path`` unless a test asks for ``any_store_url``, which also covers
memory, Redis and PostgreSQL (own key prefix or schema; skipped when the server
is down, failed under ``CI=true``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint import Runs, open_store
from pausepoint.demo import charts as demo_charts
from pausepoint.server import Tokens, create_app
from stores.support import (
    BACKENDS,
    fresh_store_url,
)

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
    with fresh_store_url(str(request.param), tmp_path) as url:
        yield url


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


def make_client(
    runs: Runs, tokens: Mapping[str, str] | Tokens = TOKENS, *, public_read: bool = False
) -> httpx.AsyncClient:
    app = create_app(runs, tokens, session_secret=SECRET, public_read=public_read)
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
