"""Probes and offline API docs: /healthz, /readyz and /docs, /redoc answering with no network."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from pausepoint import Runs, open_store

from .conftest import all_charts, make_client

# where nothing listens: a store there is unreachable at once
UNREACHABLE_STORES = [
    "postgresql://postgres@127.0.0.1:9/test?connect_timeout=2",
    "redis://127.0.0.1:9/0",
]


async def test_healthz_answers_without_touching_the_store() -> None:
    """/healthz is 200 even when the store is down: the process itself serves."""
    down = open_store(UNREACHABLE_STORES[1])
    async with Runs(down, all_charts()) as runs, make_client(runs) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_when_the_store_answers(client: httpx.AsyncClient) -> None:
    """/readyz is 200 with a reachable, migrated store, and names the store."""
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["store"].startswith("sqlite:///")


async def test_readyz_migrates_a_fresh_store(tmp_path: Path) -> None:
    """A store file that does not exist yet is created and migrated by the first probe."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    async with Runs(open_store(url), all_charts()) as runs, make_client(runs) as client:
        assert (await client.get("/readyz")).status_code == 200
    assert (tmp_path / "fresh.db").exists()


@pytest.mark.parametrize("url", UNREACHABLE_STORES)
async def test_readyz_is_503_when_the_store_is_down(url: str) -> None:
    """An unreachable store gives 503 with the reason, never a 500."""
    async with Runs(open_store(url), all_charts()) as runs, make_client(runs) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["error"]


async def test_readyz_is_503_for_a_store_of_a_newer_schema(tmp_path: Path) -> None:
    """A store migrated by a newer pausepoint is not ready for this one."""
    import sqlite3

    path = tmp_path / "newer.db"
    url = f"sqlite:///{path}"
    async with Runs(open_store(url), all_charts()) as runs, make_client(runs) as client:
        assert (await client.get("/readyz")).status_code == 200
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = version + 1")
    async with Runs(open_store(url), all_charts()) as runs, make_client(runs) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "schema version" in response.json()["error"]


def _references(html: str) -> list[str]:
    """Every URL the page makes the browser fetch or open: src, href, and quoted URLs in scripts."""
    attributes = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    quoted = re.findall(r"""["'](\w+://[^"']*|//[^"']*)["']""", html)
    return attributes + quoted


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_api_docs_come_from_packaged_assets(client: httpx.AsyncClient, path: str) -> None:
    """/docs and /redoc reference no external host, and every asset they load is served here."""
    response = await client.get(path)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    references = _references(response.text)
    assert references, "the page loads its scripts from somewhere"
    external = [url for url in references if "://" in url or url.startswith("//")]
    assert external == []
    for url in references:
        asset = await client.get(url)
        assert asset.status_code == 200, url
    assert "fonts.googleapis.com" not in response.text


async def test_swagger_ui_does_not_call_the_online_validator(client: httpx.AsyncClient) -> None:
    """Swagger UI's validator badge would fetch validator.swagger.io: it is switched off."""
    response = await client.get("/docs")
    assert '"validatorUrl": null' in response.text
