"""The browser pages in Chromium: the playground, every run, retry, fork, batch answers, the
live inbox, keyboard use, phone width, the dark theme, and axe-core on every page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, expect

from .conftest import LiveServer, serving_charts
from .pages_charts import FAILING, PAGE_CHARTS

pytestmark = pytest.mark.browser

Screenshot = Callable[[Page, str], Path]
WAIT = 15_000  # ms: generous, the machine is shared
_AXE = Axe()  # axe-core's script ships inside the package: nothing is fetched


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """The refund demo plus the ticket and flaky charts."""
    FAILING["charge"] = True
    with serving_charts(tmp_path, PAGE_CHARTS) as live:
        yield live


@pytest.fixture
def contexts(chromium: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """New browser contexts, closed (with their event streams) before the server stops."""
    made: list[BrowserContext] = []

    def new(**options: Any) -> BrowserContext:
        context = chromium.new_context(**{"viewport": {"width": 1280, "height": 900}, **options})
        context.set_default_timeout(WAIT)
        made.append(context)
        return context

    yield new
    for context in made:
        context.close()


def signed_in(context: BrowserContext, server: LiveServer, token: str = "tok-kim") -> Page:
    page = context.new_page()
    external: list[str] = []
    page.on(
        "request",
        lambda request: (
            external.append(request.url) if not request.url.startswith(server.url) else None
        ),
    )
    page.goto(f"{server.url}/login?next=/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()
    page.external = external  # type: ignore[attr-defined]
    return page


def assert_accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation on the page as it stands."""
    results = _AXE.run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    details = [
        f"{v['id']} ({v['impact']}): {v['help']}: {[n['target'] for n in v['nodes']][:4]}"
        for v in bad
    ]
    assert not bad, f"{page.url}:\n" + "\n".join(details)


def api_start(server: LiveServer, chart: str, run_input: dict[str, Any]) -> dict[str, Any]:
    response = server.api.post("/api/runs", json={"chart": chart, "input": run_input})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def api_run(server: LiveServer, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = server.api.get(f"/api/runs/{run_id}").json()
    return body


def test_start_from_the_charts_page_and_answer_on_the_run_page(
    server: LiveServer, contexts: Callable[..., BrowserContext], screenshot: Screenshot
) -> None:
    """Charts → start form (bad input kept and named) → run page → raw JSON answer → done."""
    page = signed_in(contexts(), server)
    page.get_by_role("link", name="Charts", exact=True).click()
    expect(page.get_by_role("heading", name="Charts", exact=True)).to_be_visible()
    expect(page.locator("svg.diagram")).to_have_count(3)
    screenshot(page, "10-charts")
    assert_accessible(page)

    page.get_by_role("link", name="Start a run of ticket").click()
    expect(page.get_by_role("heading", name="Start a run")).to_be_visible()
    page.get_by_label("Title").fill("no")
    page.get_by_label("Priority").fill("9")
    page.get_by_role("button", name="Start the run as kim").click()
    expect(page.locator(".field.invalid")).to_have_count(2)
    expect(page.get_by_label("Title")).to_have_value("no")  # what was typed is kept
    expect(page.get_by_label("Priority")).to_have_value("9")
    expect(page.locator(".problem").first).to_contain_text("at least 3 characters")
    screenshot(page, "11-chart-start-invalid")
    assert_accessible(page)

    page.get_by_label("Title").fill("Printer on fire")
    page.get_by_label("Priority").fill("5")
    page.get_by_role("button", name="Start the run as kim").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+\?did=started$"))
    expect(page.locator(".status")).to_have_text("paused")
    expect(page.get_by_role("heading", name="Who takes ticket 'Printer on fire'?")).to_be_visible()
    expect(page.locator("svg.diagram .node.paused")).to_contain_text("Triage")
    expect(page.locator("svg.diagram .node.taken")).to_contain_text("OpenTicket")

    box = page.get_by_label("Answer (JSON)")
    box.fill('{"name": "Lee",')  # not JSON: the page says so and sends nothing
    page.get_by_role("button", name="Submit answer as kim").click()
    expect(page.locator("[data-problem-for]").first).to_contain_text("Not valid JSON")
    expect(page.locator(".status")).to_have_text("paused")
    screenshot(page, "12-run-raw-json-invalid")
    box.fill('{"name": "Lee"}')
    page.get_by_role("button", name="Submit answer as kim").click()
    expect(page.locator(".status")).to_have_text("completed")
    expect(page.locator("pre.json").first).to_contain_text('"closed": true')
    screenshot(page, "13-run-completed")
    assert_accessible(page)
    assert page.external == []  # type: ignore[attr-defined]


def test_keyboard_only_answer(
    server: LiveServer, contexts: Callable[..., BrowserContext], screenshot: Screenshot
) -> None:
    """Tab reaches the answer form's fields; Space and Enter answer it."""
    run = server.start_refund(700)
    page = signed_in(contexts(), server)
    page.goto(f"{server.url}/runs/{run['run_id']}")

    def tab_to(name: str) -> None:
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement && document.activeElement.name") == name:
                return
        raise AssertionError(f"Tab never reached {name}")

    tab_to("field:approved")
    page.keyboard.press("Space")  # the first choice: Yes
    tab_to("field:approver")
    page.keyboard.type("Kim by keyboard")
    page.keyboard.press("Enter")
    expect(page.locator(".status")).to_have_text("completed")
    assert api_run(server, str(run["run_id"]))["status"] == "completed"


def test_retry_a_failed_run(
    server: LiveServer, contexts: Callable[..., BrowserContext], screenshot: Screenshot
) -> None:
    """A failed run's page shows the error, the stage and where; Retry finishes it."""
    run = api_start(server, "flaky", {"basket": 2})
    assert run["status"] == "failed"
    page = signed_in(contexts(), server)
    page.get_by_role("link", name="Runs", exact=True).click()
    failed = page.locator("#section-failed")
    expect(failed.locator("tbody tr")).to_have_count(1)
    assert page.locator("section.status-section h2").all_inner_texts()[0].startswith("failed")
    screenshot(page, "20-runs")
    assert_accessible(page)

    failed.get_by_role("link").filter(has_text=str(run["run_id"])[:12]).click()
    failure = page.locator("section.failure")
    expect(failure).to_contain_text("The run failed at Charge")
    expect(failure).to_contain_text("the card processor is down")
    expect(failure.locator("pre.trace")).to_contain_text("in _charge")
    expect(page.locator("svg.diagram .node.failed")).to_contain_text("Charge")
    screenshot(page, "21-run-failed")
    assert_accessible(page)

    FAILING["charge"] = False  # the fix is deployed
    page.get_by_role("button", name="Retry from the failed stage").click()
    expect(page.locator(".status")).to_have_text("completed")
    expect(page.get_by_role("status")).to_contain_text("retried")
    kinds = [e["kind"] for e in api_run(server, str(run["run_id"]))["audit"]]
    assert kinds.count("retried") == 1


def test_fork_from_the_history(
    server: LiveServer, contexts: Callable[..., BrowserContext], screenshot: Screenshot
) -> None:
    """Fork a finished run at its pause with a state patch; a patch of the wrong type is named."""
    run = api_start(server, "ticket", {"title": "Broken mouse", "priority": 2})
    answered = server.api.post(
        f"/api/runs/{run['run_id']}/resume", json={"input": "kim", "pause_id": run["pause"]["id"]}
    )
    assert answered.status_code == 200, answered.text
    page = signed_in(contexts(), server)
    page.goto(f"{server.url}/runs/{run['run_id']}")
    history = page.locator("#history")
    expect(history.locator("ol.history li")).to_have_count(4)
    paused_step = history.locator("li").filter(has_text="paused")
    patch = page.get_by_label("State patch for a fork (JSON object, optional)")

    patch.fill("[1, 2]")  # JSON, but not an object: refused in the page
    paused_step.get_by_role("button").click()
    expect(page.locator('[data-problem-for="state-patch"]')).to_contain_text("JSON object")

    patch.fill('{"priority": "urgent"}')  # an object, but the state's priority is an int
    paused_step.get_by_role("button").click()
    expect(page.locator('[data-problem-for="state-patch"]')).to_contain_text("does not fit")
    expect(patch).to_have_value('{"priority": "urgent"}')
    screenshot(page, "30-fork-patch-invalid")

    patch.fill('{"priority": 5}')
    page.locator("#history li").filter(has_text="paused").get_by_role("button").click()
    expect(page.get_by_role("status")).to_contain_text("forked")
    expect(page.locator(".status")).to_have_text("paused")
    assert f"/runs/{run['run_id']}" not in page.url
    expect(page.locator("pre.json").first).to_contain_text('"priority": 5')
    screenshot(page, "31-fork-paused")
    assert_accessible(page)
    assert api_run(server, str(run["run_id"]))["status"] == "completed"  # untouched


def test_batch_answer_while_one_is_answered_from_another_browser(
    server: LiveServer, contexts: Callable[..., BrowserContext], screenshot: Screenshot
) -> None:
    """Five refunds answered with one form; lee answers one meanwhile: four done, one stale."""
    runs = [server.start_refund(200 + i) for i in range(5)]
    kim = signed_in(contexts(), server)
    rows = kim.locator("table.inbox tbody tr")
    expect(rows).to_have_count(5)
    for box in kim.locator("table.inbox input[name=pick]").all():
        box.check()
    kim.get_by_role("button", name="Answer the selected together").click()
    expect(kim.get_by_role("heading", name="Answer 5 runs together")).to_be_visible()
    screenshot(kim, "40-batch-form")
    assert_accessible(kim)

    lee = signed_in(contexts(), server, "tok-lee")
    lee.goto(f"{server.url}/runs/{runs[2]['run_id']}")
    lee.get_by_label("No", exact=True).check()
    lee.get_by_label("Approver").fill("Lee")
    lee.get_by_role("button", name="Submit answer as lee").click()
    expect(lee.locator(".status")).to_have_text("completed")

    kim.get_by_label("Yes", exact=True).check()
    kim.get_by_label("Approver").fill("Kim in bulk")
    kim.get_by_role("button", name="Answer 5 runs as kim").click()
    expect(kim.get_by_role("heading", name="4 of 5 answered")).to_be_visible()
    result_rows = kim.locator("table.results tbody tr")
    expect(result_rows).to_have_count(5)
    stale = kim.locator(f'tr[data-run="{runs[2]["run_id"]}"]')
    expect(stale).to_contain_text("stale")
    expect(stale).to_contain_text("already answered by lee")
    screenshot(kim, "41-batch-results")
    assert_accessible(kim)
    for i, run in enumerate(runs):
        events = api_run(server, str(run["run_id"]))["audit"]
        resumed = [e for e in events if e["kind"] == "resumed"]
        assert len(resumed) == 1, (i, resumed)  # each answered exactly once
        assert resumed[0]["actor"] == ("lee" if i == 2 else "kim")


def test_live_inbox_receives_a_pause_started_from_the_api(
    server: LiveServer, contexts: Callable[..., BrowserContext], screenshot: Screenshot
) -> None:
    """A pause started over the API appears without a reload; answered, it leaves."""
    server.start_refund(300)
    page = signed_in(contexts(), server)
    table = page.locator("table.inbox")
    expect(table).to_have_attribute("data-live-state", "open")
    expect(table.locator("tbody tr")).to_have_count(1)
    page.locator("table.inbox input[name=pick]").first.check()

    fresh = server.start_refund(450)
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").first).to_contain_text("Approve $450 refund")
    expect(page.locator("table.inbox input[name=pick]").nth(1)).to_be_checked()  # kept ticked
    screenshot(page, "50-inbox-live")

    answer = {"approved": True, "approver": "api"}
    server.api.post(f"/api/runs/{fresh['run_id']}/resume", json={"input": answer})
    expect(table.locator("tbody tr")).to_have_count(1)
    assert_accessible(page)


def test_inbox_without_javascript_works_with_a_reload(
    server: LiveServer, contexts: Callable[..., BrowserContext]
) -> None:
    """With scripts off the inbox is a plain page: a reload shows new pauses."""
    page = signed_in(contexts(java_script_enabled=False), server)
    expect(page.locator("table.inbox")).to_be_hidden()
    expect(page.get_by_text("Nothing is waiting for an answer")).to_be_visible()
    server.start_refund(333)
    page.reload()
    expect(page.locator("table.inbox tbody tr")).to_have_count(1)


def test_phone_width_dark_theme_and_every_page_accessible(
    server: LiveServer, contexts: Callable[..., BrowserContext], screenshot: Screenshot
) -> None:
    """390 px wide and dark: nothing overflows sideways; axe passes on every page."""
    run = server.start_refund(640)
    failed = api_start(server, "flaky", {})
    for scheme in ("light", "dark"):
        context = contexts(viewport={"width": 390, "height": 844}, color_scheme=scheme)
        page = context.new_page()
        page.goto(f"{server.url}/login?next=/")
        screenshot(page, f"60-sign-in-390-{scheme}")
        assert_accessible(page)
        page.get_by_label("Token").fill("tok-kim")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("table.inbox tbody tr")).to_have_count(1)
        pages = {
            "inbox": "/",
            "runs": "/runs",
            "run-paused": f"/runs/{run['run_id']}",
            "run-failed": f"/runs/{failed['run_id']}",
            "charts": "/charts",
            "chart": "/charts/refund",
            "not-found": "/runs/no-such-run",
        }
        for name, path in pages.items():
            response = page.goto(f"{server.url}{path}")
            assert response is not None
            assert response.status == (404 if name == "not-found" else 200)
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 390, f"{path} is {wide} px wide at 390 px ({scheme})"
            screenshot(page, f"61-{name}-390-{scheme}")
            assert_accessible(page)
        expect(page.get_by_role("link", name="Back to the inbox")).to_be_visible()
    dark = contexts(color_scheme="dark")
    page = signed_in(dark, server)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 23, 42)", background  # the dark theme's
    screenshot(page, "62-inbox-dark")
    page.goto(f"{server.url}/runs/{run['run_id']}")
    screenshot(page, "63-run-dark")
    assert_accessible(page)
    time_element = page.locator("time").first
    assert re.match(r"\d{4}-\d\d-\d\dT", time_element.get_attribute("datetime") or "")
    assert (time_element.get_attribute("title") or "").endswith("UTC")
    assert json.loads(json.dumps(page.external)) == []  # type: ignore[attr-defined]
