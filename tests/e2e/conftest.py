"""Browser tests: a real uvicorn server in a thread and headless Debian Chromium.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``); Playwright
never downloads a browser here. When Chromium cannot start, the tests skip
with the reason, and fail under ``CI=true``. Screenshots of every page go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Error, Page, sync_playwright

from pausepoint import Runs, open_store
from pausepoint.demo import charts
from pausepoint.engine.chart import FlowChart
from pausepoint.server import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKENS = {"tok-kim": "kim", "tok-lee": "lee"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``ok``; under CI=true, fail instead."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


@dataclass(frozen=True)
class LiveServer:
    """A running server: its base URL and a client for its API."""

    url: str
    api: httpx.Client

    def start_refund(self, amount: int) -> dict[str, object]:
        """Start a refund run over the API (as kim); it pauses for a manager."""
        response = self.api.post("/api/runs", json={"chart": "refund", "input": {"amount": amount}})
        assert response.status_code == 201, response.text
        run: dict[str, object] = response.json()
        return run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(runs: Runs, tokens: Mapping[str, Any], **options: Any) -> Iterator[str]:
    """Serve ``runs`` with uvicorn in a thread on a free loopback port; yield its base URL.

    The store is closed when the server stops, in the server's own loop.
    """
    app = create_app(runs, tokens, session_secret="e2e-secret", **options)
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="none",
        lifespan="off",
        timeout_graceful_shutdown=2,  # open event streams must not hold the shutdown
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await runs.aclose()  # in the server's own loop, where the store was used

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive(), "uvicorn did not stop within 10 s"


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The refund demo on SQLite behind uvicorn, on a free loopback port."""
    with serving_charts(tmp_path, charts) as server:
        yield server


@contextlib.contextmanager
def serving_charts(tmp_path: Path, served: Mapping[str, FlowChart]) -> Iterator[LiveServer]:
    """Serve ``served`` on SQLite behind uvicorn, with an API client signed in as kim."""
    runs = Runs(open_store(f"sqlite:///{tmp_path / 'runs.db'}"), served)
    with (
        serving(runs, TOKENS) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer tok-kim"}) as api,
    ):
        yield LiveServer(url, api)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Chromium from Debian, launched through Playwright.

    Module-scoped, not session-scoped: Playwright's sync API keeps an event
    loop running in the main thread while it is open, which the async tests
    elsewhere in the session cannot share.
    """
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        except Error as exc:
            require(False, f"Chromium at {CHROMIUM} cannot start: {exc.message.splitlines()[0]}")
            raise
        yield browser
        browser.close()


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    """Save a full-page screenshot as ``test-artifacts/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
