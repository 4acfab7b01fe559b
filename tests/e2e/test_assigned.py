"""Assigned pauses in a real browser: a manager sees them under "Assigned to me", finance not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from pydantic import BaseModel

from pausepoint import PausableHandler, Runs, Scope, flow_chart, open_store

from .conftest import serving

pytestmark = pytest.mark.browser

Screenshot = Callable[[Page, str], Path]
PEOPLE = {"tok-kim": "kim:managers", "tok-lee": "lee:finance"}


class Decision(BaseModel):
    approved: bool


def _ask(scope: Scope) -> dict[str, Any]:
    return {"question": f"Approve the {scope.get('what', 'purchase')}?"}


def _apply(scope: Scope, answer: Decision) -> None:
    scope.approved = answer.approved


def _approval(assignees: list[str] | None) -> Any:
    return (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "ManagerApproval",
            PausableHandler(_ask, _apply),
            "approve",
            input_schema=Decision,
            assignees=assignees,
        )
        .build()
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, httpx.Client]]:
    flows = {"purchase": _approval(["managers"]), "expense": _approval(None)}
    runs = Runs(open_store(f"sqlite:///{tmp_path / 'runs.db'}"), flows)
    with (
        serving(runs, PEOPLE) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer tok-kim"}) as api,
    ):
        yield url, api


def _sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/")  # reads need a sign-in: the inbox sends us to it
    expect(page).to_have_url(f"{url}/login?next=%2F")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()


def test_a_manager_sees_the_pause_under_assigned_to_me_and_finance_does_not(
    server: tuple[str, httpx.Client], chromium: Browser, screenshot: Screenshot
) -> None:
    url, api = server
    started = api.post("/api/runs", json={"chart": "purchase", "input": {"what": "laptop"}})
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    other = api.post("/api/runs", json={"chart": "expense", "input": {"what": "taxi"}})
    assert other.status_code == 201, other.text

    manager = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _sign_in(manager, url, "tok-kim")
    expect(manager.get_by_role("heading", name="Assigned to me")).to_be_visible()
    rows = manager.locator("table.inbox tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Approve the laptop?")
    expect(rows.first.locator("td.assignees")).to_have_text("managers")
    screenshot(manager, "10-assigned-to-me-manager")

    finance = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _sign_in(finance, url, "tok-lee")
    expect(finance.get_by_role("heading", name="Assigned to me")).to_be_visible()
    expect(finance.locator("table.inbox tbody tr")).to_have_count(0)
    expect(finance.get_by_text("Nothing is assigned to you")).to_be_visible()
    screenshot(finance, "11-assigned-to-me-finance")

    # "All waiting" shows both; the run page says finance may not answer the laptop
    finance.get_by_role("link", name="All waiting").click()
    expect(finance.locator("table.inbox tbody tr")).to_have_count(2)
    finance.get_by_role("link", name="Approve the laptop?").click()
    expect(finance).to_have_url(f"{url}/runs/{run_id}")
    expect(finance.locator(".not-assigned")).to_contain_text("lee may not answer it")
    expect(finance.get_by_role("button", name="Submit answer as lee")).to_have_count(0)
    screenshot(finance, "12-not-assigned")

    # the manager answers from the page
    manager.get_by_role("link", name="Approve the laptop?").click()
    manager.get_by_label("Yes", exact=True).check()
    manager.get_by_role("button", name="Submit answer as kim").click()
    expect(manager.locator(".status")).to_have_text("completed")
    manager.context.close()
    finance.context.close()
