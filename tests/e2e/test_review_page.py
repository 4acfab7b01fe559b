"""The review page in a real browser: sign in, open the inbox and a run, answer, see it done."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import LiveServer

pytestmark = pytest.mark.browser

Screenshot = Callable[[Page, str], Path]


def sign_in(page: Page, server: LiveServer, token: str, next: str = "/") -> None:
    page.goto(f"{server.url}/login?next={next}")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()


def test_answer_a_paused_run_in_the_browser(
    live_server: LiveServer, chromium: Browser, screenshot: Screenshot
) -> None:
    """Sign in, open the inbox, open the run, fill and submit the form: the run completes."""
    run = live_server.start_refund(900)
    live_server.start_refund(250)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    page.goto(f"{live_server.url}/login?next=/")
    screenshot(page, "01-sign-in")
    page.get_by_label("Token").fill("tok-kim")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Waiting for a person")).to_be_visible()
    rows = page.locator("table.inbox tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Approve $250 refund")  # newest first
    screenshot(page, "02-inbox")

    page.get_by_role("link", name="Approve $900 refund for ORD-2024-7891?").click()
    expect(page).to_have_url(f"{live_server.url}/runs/{run['run_id']}")
    expect(
        page.get_by_role("heading", name="Approve $900 refund for ORD-2024-7891?")
    ).to_be_visible()
    expect(page.locator(".status")).to_have_text("paused")
    expect(page.locator("ol.chart li.paused")).to_contain_text("ManagerApproval")
    screenshot(page, "03-run-paused")

    page.get_by_label("Yes", exact=True).check()
    page.get_by_label("Approver").fill("Kim")
    page.get_by_label("Note").fill("Refund approved <b>quickly</b>")
    page.get_by_role("button", name="Submit answer as kim").click()

    expect(page.get_by_role("status")).to_have_text(
        "Your answer was recorded. The run is now completed."
    )
    expect(page.locator(".status")).to_have_text("completed")
    expect(page.locator("ol.path li")).to_have_count(4)
    expect(page.locator("pre.json").first).to_contain_text("Refund approved <b>quickly</b>")
    screenshot(page, "04-run-completed")

    page.goto(f"{live_server.url}/")
    expect(page.locator("table.inbox tbody tr")).to_have_count(1)
    context.close()


def test_second_tab_sees_already_answered(
    live_server: LiveServer, chromium: Browser, screenshot: Screenshot
) -> None:
    """Two people open the same pause; the one who submits second is told who answered."""
    run = live_server.start_refund(600)
    run_path = f"/runs/{run['run_id']}"
    kim_context = chromium.new_context(viewport={"width": 1280, "height": 900})
    lee_context = chromium.new_context(viewport={"width": 1280, "height": 900})
    kim, lee = kim_context.new_page(), lee_context.new_page()
    sign_in(kim, live_server, "tok-kim", run_path)
    sign_in(lee, live_server, "tok-lee", run_path)
    expect(kim.locator(".status")).to_have_text("paused")
    expect(lee.locator(".status")).to_have_text("paused")

    kim.get_by_label("No", exact=True).check()
    kim.get_by_label("Approver").fill("Kim")
    kim.get_by_role("button", name="Submit answer as kim").click()
    expect(kim.locator(".status")).to_have_text("completed")

    lee.get_by_label("Yes", exact=True).check()
    lee.get_by_label("Approver").fill("Lee")
    lee.get_by_role("button", name="Submit answer as lee").click()
    expect(lee.get_by_role("alert")).to_have_text("This pause was already answered by kim.")
    expect(lee.locator(".status")).to_have_text("completed")
    expect(lee.locator("form.answer")).to_have_count(0)
    expect(lee.locator("table.audit")).to_contain_text(re.compile(r"resume_refused\s*lee"))
    screenshot(lee, "05-already-answered")
    kim_context.close()
    lee_context.close()
