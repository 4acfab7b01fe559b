"""The pages beyond the inbox over HTTP: every run, run actions, the playground, batch answers."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from e2e.pages_charts import FAILING, PAGE_CHARTS
from pausepoint import Runs, open_store
from pausepoint.errors import ResumeInputError
from pausepoint.server._live import resume_each
from pausepoint.server._runs_pages import STATUS_ORDER

from .conftest import make_client
from .test_pages import hidden, sign_in

APPROVE = {"approved": True, "approver": "kim"}


@pytest.fixture
async def page_runs(tmp_path: Path) -> AsyncIterator[Runs]:
    FAILING["charge"] = True
    async with Runs(open_store(f"sqlite:///{tmp_path / 'runs.db'}"), PAGE_CHARTS) as opened:
        yield opened


@pytest.fixture
async def web(page_runs: Runs) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as kim: reading the pages needs a signed-in person."""
    async with make_client(page_runs) as client:
        await sign_in(client)
        yield client


@pytest.mark.parametrize("path", ["/runs", "/charts", "/charts/refund", "/inbox/batch"])
async def test_reading_the_pages_needs_sign_in(page_runs: Runs, path: str) -> None:
    async with make_client(page_runs) as client:
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
        assert (await client.get("/inbox/events")).status_code == 401
    async with make_client(page_runs, public_read=True) as client:
        assert (await client.get(path)).status_code == 200


async def signed_in(web: httpx.AsyncClient) -> str:
    """Sign in as kim; return a page's CSRF token."""
    await sign_in(web)
    return hidden((await web.get("/charts/refund")).text, "csrf")


async def test_runs_page_shows_statuses_in_order(web: httpx.AsyncClient, page_runs: Runs) -> None:
    """Failed first, then running, paused, completed, cancelled, expired."""
    await page_runs.start("refund", {"amount": 50})  # completed
    await page_runs.start("refund", {"amount": 900})  # paused
    cancelled = await page_runs.start("refund", {"amount": 901})
    await page_runs.cancel(cancelled.run_id, "kim", "duplicate")
    failed = await page_runs.start("flaky", {})
    assert failed.status == "failed"
    page = (await web.get("/runs")).text
    positions = [page.index(f'id="section-{status}"') for status in STATUS_ORDER]
    assert positions == sorted(positions)
    failed_section = page[positions[0] : positions[1]]
    assert failed.run_id[:12] in failed_section
    assert "RuntimeError: the card processor is down" in failed_section
    assert "No running run." in page


async def test_a_status_view_pages_on_with_cursors(web: httpx.AsyncClient, page_runs: Runs) -> None:
    """A status's own view shows 50 runs and a cursor link to the rest."""
    for _ in range(53):
        await page_runs.start("refund", {"amount": 10})
    first = (await web.get("/runs", params={"status": "completed"})).text
    assert first.count("<tr data-run=") == 50
    link = re.search(r'href="(/runs\?[^"]*cursor=[^"]*)">Older completed runs', first)
    assert link is not None
    second = (await web.get(html.unescape(link[1]))).text
    assert second.count("<tr data-run=") == 3
    ordered = (await web.get("/runs")).text
    assert ordered.count("<tr data-run=") == 10  # a section shows the first ten
    assert "More completed runs" in ordered


async def test_filters_by_chart_stage_and_age(web: httpx.AsyncClient, page_runs: Runs) -> None:
    paused = await page_runs.start("refund", {"amount": 900})
    await page_runs.start("flaky", {})
    by_chart = (await web.get("/runs", params={"chart": "refund"})).text
    assert paused.run_id[:12] in by_chart
    assert "the card processor" not in by_chart
    by_stage = (await web.get("/runs", params={"stage": "charge"})).text
    assert "the card processor" in by_stage
    assert paused.run_id[:12] not in by_stage
    by_age = (await web.get("/runs", params={"age": "1d"})).text
    assert "<tr data-run=" not in by_age  # everything changed just now


async def test_unknown_status_or_age_is_named(web: httpx.AsyncClient) -> None:
    response = await web.get("/runs", params={"status": "sleeping", "age": "3y"})
    assert response.status_code == 400
    assert "Unknown" in response.text
    assert "sleeping" in html.unescape(response.text)


async def test_search_by_run_id_or_question(web: httpx.AsyncClient, page_runs: Runs) -> None:
    """A run id opens the run; words search the waiting runs' questions."""
    run = await page_runs.start("refund", {"amount": 777, "order_id": "ORD-LOOKFOR"})
    other = await page_runs.start("refund", {"amount": 555})
    found = await web.get("/runs", params={"q": run.run_id})
    assert found.status_code == 303
    assert found.headers["location"] == f"/runs/{run.run_id}"
    text = (await web.get("/runs", params={"q": "ord-lookfor"})).text
    assert run.run_id[:12] in text
    assert other.run_id[:12] not in text
    assert "newest 2000 waiting pauses" in text
    nothing = (await web.get("/runs", params={"q": "no such words"})).text
    assert "No waiting run's question holds these words." in nothing


async def test_unknown_run_is_a_404_page_linking_back(web: httpx.AsyncClient) -> None:
    response = await web.get("/runs/no-such-run")
    assert response.status_code == 404
    assert 'href="/"' in response.text
    assert 'href="/runs"' in response.text


async def test_failed_run_page_shows_error_stage_and_traceback(
    web: httpx.AsyncClient, page_runs: Runs
) -> None:
    failed = await page_runs.start("flaky", {})
    failed_event = next(e for e in failed.audit if e.kind == "failed")
    trace = failed_event.data["traceback"]
    assert any(line.endswith("in _charge") for line in trace)
    assert trace[-1] == "RuntimeError: the card processor is down"
    page = (await web.get(f"/runs/{failed.run_id}")).text
    assert "The run failed at Charge" in page
    assert "in _charge" in page
    assert 'class="node stage failed"' in page


async def test_actions_need_sign_in_and_the_csrf_token(
    web: httpx.AsyncClient, page_runs: Runs
) -> None:
    run = await page_runs.start("refund", {"amount": 900})
    url = f"/runs/{run.run_id}/cancel"
    async with make_client(page_runs) as nobody:
        anonymous = await nobody.post(url, data={"reason": "x"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?")
    await sign_in(web)
    forged = await web.post(url, data={"reason": "x", "csrf": "forged"})
    assert forged.status_code == 403
    assert (await page_runs.get(run.run_id)).status == "paused"


async def test_cancel_with_a_reason_and_a_finished_run_refused(
    web: httpx.AsyncClient, page_runs: Runs
) -> None:
    csrf = await signed_in(web)
    run = await page_runs.start("refund", {"amount": 900})
    done = await web.post(f"/runs/{run.run_id}/cancel", data={"csrf": csrf, "reason": "dup"})
    assert done.status_code == 303
    assert done.headers["location"].endswith("?did=cancelled")
    record = await page_runs.get(run.run_id)
    cancelled = next(e for e in record.audit if e.kind == "cancelled")
    assert (record.status, cancelled.actor, cancelled.data["reason"]) == ("cancelled", "kim", "dup")
    again = await web.post(f"/runs/{run.run_id}/cancel", data={"csrf": csrf})
    assert again.status_code == 409
    assert "only a paused run can be cancelled" in again.text


async def test_retry_over_the_page(web: httpx.AsyncClient, page_runs: Runs) -> None:
    csrf = await signed_in(web)
    failed = await page_runs.start("flaky", {})
    FAILING["charge"] = False
    response = await web.post(f"/runs/{failed.run_id}/retry", data={"csrf": csrf})
    assert response.status_code == 303
    assert (await page_runs.get(failed.run_id)).status == "completed"
    again = await web.post(f"/runs/{failed.run_id}/retry", data={"csrf": csrf})
    assert again.status_code == 409


async def test_fork_patch_errors_keep_the_text_and_the_run(
    web: httpx.AsyncClient, page_runs: Runs
) -> None:
    """Invalid JSON, a non-object and a value of the wrong state type are each named."""
    csrf = await signed_in(web)
    run = await page_runs.start("ticket", {"title": "Broken", "priority": 2})
    url = f"/runs/{run.run_id}/fork"
    cases = {
        '{"priority": ': "not valid JSON",
        "[1]": "must be a JSON object",
        '{"priority": "urgent"}': "does not fit the chart's state",
    }
    for text, expected in cases.items():
        response = await web.post(url, data={"csrf": csrf, "at": "1", "state_patch": text})
        assert response.status_code == 422, text
        assert expected in html.unescape(response.text)
        assert f">{text.strip()}</textarea>" in html.unescape(response.text)  # kept as typed
    missing = await web.post(url, data={"csrf": csrf, "at": "99"})
    assert missing.status_code == 409
    good = await web.post(url, data={"csrf": csrf, "at": "1", "state_patch": '{"priority": 4}'})
    assert good.status_code == 303
    child_id = good.headers["location"].split("/")[-1].split("?")[0]
    child = await page_runs.get(child_id)
    assert child.status == "paused"
    assert child.snapshot is not None
    assert child.snapshot["shared_state"]["priority"] == 4
    assert (await page_runs.get(run.run_id)).status == "paused"  # the original, untouched


async def test_start_form_keeps_values_and_names_each_field(
    web: httpx.AsyncClient, page_runs: Runs
) -> None:
    csrf = await signed_in(web)
    form = (await web.get("/charts/ticket")).text
    assert 'name="field:title"' in form
    assert 'name="field:priority"' in form
    response = await web.post(
        "/charts/ticket", data={"csrf": csrf, "field:title": "no", "field:priority": "9"}
    )
    assert response.status_code == 422
    assert response.text.count('class="field invalid"') == 2
    assert "at least 3 characters" in response.text
    assert "less than or equal to 5" in response.text
    assert 'value="no"' in response.text
    assert 'value="9"' in response.text
    assert (await page_runs.list()).items == ()  # nothing started
    started = await web.post(
        "/charts/ticket", data={"csrf": csrf, "field:title": "Printer", "field:priority": "3"}
    )
    assert started.status_code == 303
    assert started.headers["location"].endswith("?did=started")


async def test_raw_start_box_refuses_bad_json(web: httpx.AsyncClient, page_runs: Runs) -> None:
    csrf = await signed_in(web)
    assert 'data-json="object"' in (await web.get("/charts/flaky")).text
    for text, expected in (("{", "Not valid JSON"), ("[1]", "must be a JSON object")):
        response = await web.post("/charts/flaky", data={"csrf": csrf, "answer_json": text})
        assert response.status_code == 422
        assert expected in response.text
    assert (await page_runs.list()).items == ()
    unknown = await web.get("/charts/nope")
    assert unknown.status_code == 404
    assert "Registered charts" in unknown.text


async def test_resume_each_answers_each_once_with_a_result_each(page_runs: Runs) -> None:
    runs = [await page_runs.start("refund", {"amount": 300 + i}) for i in range(3)]
    await page_runs.resume(runs[1].run_id, APPROVE, actor="lee")
    items = [(r.run_id, r.pauses[0].pause_id) for r in runs]
    results = await resume_each(page_runs, items, APPROVE, actor="kim", nonce="n1")
    assert [r.status for r in results] == ["done", "stale", "done"]
    assert "already answered by lee" in results[1].message
    again = await resume_each(page_runs, items, APPROVE, actor="kim", nonce="n2")
    assert [r.status for r in again] == ["stale", "stale", "stale"]
    fresh = await page_runs.start("refund", {"amount": 999})
    with pytest.raises(ResumeInputError):
        await resume_each(
            page_runs, [(fresh.run_id, fresh.pauses[0].pause_id)], {}, actor="kim", nonce=None
        )
    assert (await page_runs.get(fresh.run_id)).status == "paused"


async def test_batch_pages(web: httpx.AsyncClient, page_runs: Runs) -> None:
    """The batch form, a batch mixing stages refused, and per-run results."""
    refunds = [await page_runs.start("refund", {"amount": 200 + i}) for i in range(2)]
    ticket = await page_runs.start("ticket", {"title": "Printer", "priority": 1})
    picks = [f"{r.run_id} {r.pauses[0].pause_id}" for r in refunds]
    await sign_in(web)
    mixed = await web.get(
        "/inbox/batch",
        params=[("pick", p) for p in [*picks, f"{ticket.run_id} {ticket.pauses[0].pause_id}"]],
    )
    assert "wait at different places" in mixed.text
    form = (await web.get("/inbox/batch", params=[("pick", p) for p in picks])).text
    assert "Answer 2 runs together" in form
    await page_runs.resume(refunds[0].run_id, APPROVE, actor="lee")
    data: dict[str, str | list[str]] = {
        "csrf": hidden(form, "csrf"),
        "nonce": hidden(form, "nonce"),
        "pick": picks,
        "field:approved": "true",
        "field:approver": "Kim",
    }
    done = await web.post("/inbox/batch", data=data)
    assert done.status_code == 200
    assert "1 of 2 answered" in done.text
    assert "already answered by lee" in done.text
    assert (await page_runs.get(refunds[1].run_id)).status == "completed"
    twice = await web.post("/inbox/batch", data=data)  # the same form again: nothing waits
    assert twice.status_code == 409
    assert "None of the picked runs waits" in twice.text


async def test_pages_load_nothing_from_elsewhere(web: httpx.AsyncClient, page_runs: Runs) -> None:
    """Every src and href of every page is on this site; times carry their absolute value."""
    run = await page_runs.start("refund", {"amount": 900})
    failed = await page_runs.start("flaky", {})
    await sign_in(web)
    for path in (
        "/",
        "/runs",
        "/charts",
        "/charts/ticket",
        f"/runs/{run.run_id}",
        f"/runs/{failed.run_id}",
        "/login",
    ):
        page = (await web.get(path)).text
        for attribute, value in re.findall(r'\b(src|href|action)="([^"]*)"', page):
            assert value.startswith(("/", "#", "?")), (path, attribute, value)
        assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', ""), path
        assert "https://" not in page, path
    page = (await web.get(f"/runs/{run.run_id}")).text
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[\d:]+Z" title="[^"]+ UTC">', page)


async def test_live_streams_share_one_read_a_poll(page_runs: Runs) -> None:
    """Many streams polling the same inbox page cost about one store read a poll."""
    from types import SimpleNamespace

    from pausepoint.server._live import _LivePages

    await page_runs.start("refund", {"amount": 900})
    reads = 0
    pending = page_runs.pending

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await pending(*args, **kwargs)  # type: ignore[arg-type]

    page_runs.pending = counted  # type: ignore[method-assign]
    live = _LivePages(SimpleNamespace(runs=page_runs))  # type: ignore[arg-type]
    everyone = (None, None)  # no chart filter, nobody's assigned pauses: the whole inbox
    rows = await asyncio.gather(*(live.rows(everyone) for _ in range(50)))
    assert len(set(rows)) == 1
    assert "Approve $900 refund" in rows[0]
    assert reads == 1
    assert await live.rows(everyone) == rows[0]
    assert reads == 1  # younger than a poll: reused
