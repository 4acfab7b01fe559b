"""The review pages over HTTP: sign-in, CSRF, the inbox, the run page and its forms."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from pausepoint import Runs
from pausepoint.server._forms import RAW_FIELD, form_for, parse_form

from .charts import Review
from .conftest import KIM, make_client, start_refund


def hidden(page: str, name: str, nth: int = 0) -> str:
    values = re.findall(rf'name="{name}" value="([^"]*)"', page)
    return html.unescape(values[nth])


async def sign_in(client: httpx.AsyncClient, token: str = "tok-kim", next: str = "/") -> None:
    form = await client.get("/login", params={"next": next})
    response = await client.post(
        "/login", data={"token": token, "csrf": hidden(form.text, "csrf"), "next": next}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == next


def answer_form(page: str, nth: int = 0) -> dict[str, str]:
    return {name: hidden(page, name, nth) for name in ("csrf", "pause_id", "stage_id", "nonce")}


async def test_sign_in_sets_a_signed_http_only_cookie(client: httpx.AsyncClient) -> None:
    """A known token signs in (a new session, HttpOnly, SameSite=Lax); the header names the actor."""
    login = await client.get("/login")
    anonymous = client.cookies["pausepoint_session"]
    assert "httponly" in login.headers["set-cookie"].lower()
    assert "samesite=lax" in login.headers["set-cookie"].lower()
    await sign_in(client)
    assert client.cookies["pausepoint_session"] != anonymous
    assert "tok-kim" not in client.cookies["pausepoint_session"]
    inbox = await client.get("/")
    assert "Signed in as <strong>kim</strong>" in inbox.text


async def test_unknown_token_and_forged_cookie_do_not_sign_in(client: httpx.AsyncClient) -> None:
    """A wrong token gets 401 and the form again; a tampered cookie counts as signed out."""
    form = await client.get("/login")
    wrong = await client.post("/login", data={"token": "nope", "csrf": hidden(form.text, "csrf")})
    assert wrong.status_code == 401
    assert "That token is not known here." in wrong.text
    await sign_in(client)
    value = client.cookies["pausepoint_session"]
    client.cookies.set(
        "pausepoint_session", value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    )
    assert "Signed in as" not in (await client.get("/")).text


async def test_login_without_csrf_is_403(client: httpx.AsyncClient) -> None:
    """A sign-in post that did not come from our form (no session, no token) is refused."""
    response = await client.post("/login", data={"token": "tok-kim", "csrf": "x"})
    assert response.status_code == 403
    assert "pausepoint_session" not in client.cookies


async def test_open_redirects_are_refused(client: httpx.AsyncClient) -> None:
    """`next` only leads to a path on this site."""
    form = await client.get("/login")
    response = await client.post(
        "/login",
        data={"token": "tok-kim", "csrf": hidden(form.text, "csrf"), "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/"


async def test_inbox_lists_waiting_runs_newest_first(client: httpx.AsyncClient) -> None:
    """The inbox shows question, chart, stage, age and deadline, newest first."""
    first = await start_refund(client, amount=300)
    second = await start_refund(client, amount=700)
    await sign_in(client)
    page = (await client.get("/")).text
    assert page.index("Approve $700 refund") < page.index("Approve $300 refund")
    assert f'href="/runs/{second["run_id"]}"' in page
    assert f'href="/runs/{first["run_id"]}"' in page
    assert "ManagerApproval" in page
    assert "s ago" in page


async def test_run_page_shows_question_state_path_chart_audit_and_form(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """Everything a reviewer needs, and a form built from the stage's schema."""
    run = await start_refund(client)
    async with make_client(runs, public_read=True) as public:
        anonymous = (await public.get(f"/runs/{run['run_id']}")).text
    assert "Sign in to answer" in anonymous
    assert '<form method="post" action="/runs/' not in anonymous
    await sign_in(client)
    response = await client.get(f"/runs/{run['run_id']}")
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-frame-options"] == "DENY"
    page = response.text
    assert "Approve $900 refund for ORD-2024-7891?" in page
    assert 'data-status="paused"' in page
    assert "&#34;risk_level&#34;: &#34;high&#34;" in page  # the state, as JSON
    assert "ReceiveRequest wrote order_id, amount." in page  # the narrative
    assert re.search(r'<li class="taken"[^>]*>\s*<span class="name">ReceiveRequest', page)
    assert re.search(r'<li class="paused"[^>]*>\s*<span class="name">ManagerApproval', page)
    assert "class n_receive_7,n_approve_7 taken" in page  # the Mermaid source, path marked
    assert "<td>started</td>" in page
    assert "<td>kim</td>" in page  # the audit's actor
    # the form: a required yes/no, a required text, an optional text, help from descriptions
    assert 'name="field:approved" value="true" required' in page
    assert re.search(r'name="field:approver" type="text" value="" minlength="1" required', page)
    assert re.search(r'name="field:note" type="text" value="">', page)
    assert "Pay the refund?" in page
    assert "cdn" not in page.lower()


async def test_answering_completes_the_run(client: httpx.AsyncClient) -> None:
    """Submitting the form resumes the run as the signed-in actor; the page says so."""
    run = await start_refund(client)
    await sign_in(client)
    url = f"/runs/{run['run_id']}"
    page = (await client.get(url)).text
    form = {
        **answer_form(page),
        "field:approved": "true",
        "field:approver": "Kim",
        "field:note": "",
    }
    response = await client.post(url, data=form)
    assert response.status_code == 303
    assert response.headers["location"] == f"{url}?answered={run['pause']['id']}"
    outcome = (await client.get(response.headers["location"])).text
    assert "Your answer was recorded. The run is now completed." in outcome
    assert 'data-status="completed"' in outcome
    record = (await client.get(f"/api/runs/{run['run_id']}")).json()
    assert record["snapshot"]["shared_state"]["approver"] == "Kim"
    resumed = [e for e in record["audit"] if e["kind"] == "resumed"]
    assert [e["actor"] for e in resumed] == ["kim"]
    assert resumed[0]["data"]["input"] == {"approved": True, "approver": "Kim"}


async def test_double_submit_is_one_answer(client: httpx.AsyncClient) -> None:
    """The same rendered form posted twice (a double click) gives the first outcome again."""
    run = await start_refund(client)
    await sign_in(client)
    url = f"/runs/{run['run_id']}"
    form = {
        **answer_form((await client.get(url)).text),
        "field:approved": "false",
        "field:approver": "Kim",
    }
    assert (await client.post(url, data=form)).status_code == 303
    assert (await client.post(url, data=form)).status_code == 303


async def test_already_answered_elsewhere_says_by_whom(runs: Runs) -> None:
    """Two people open the same pause; the second to submit sees who answered, not an error."""
    async with make_client(runs) as kim, make_client(runs) as lee:
        run = await start_refund(kim)
        await sign_in(kim, "tok-kim")
        await sign_in(lee, "tok-lee")
        url = f"/runs/{run['run_id']}"
        kim_page, lee_page = (await kim.get(url)).text, (await lee.get(url)).text
        answer = {"field:approved": "true", "field:approver": "Kim"}
        assert (await kim.post(url, data={**answer_form(kim_page), **answer})).status_code == 303
        late = await lee.post(url, data={**answer_form(lee_page), **answer})
        assert late.status_code == 409
        assert "This pause was already answered by kim." in late.text
        assert 'data-status="completed"' in late.text
        assert "Traceback" not in late.text


async def test_invalid_answer_shows_problems_and_keeps_values(client: httpx.AsyncClient) -> None:
    """A refused answer re-renders the form with pydantic's message beside the field."""
    run = await start_refund(client)
    await sign_in(client)
    url = f"/runs/{run['run_id']}"
    form = {
        **answer_form((await client.get(url)).text),
        "field:approved": "true",
        "field:approver": "",
    }
    response = await client.post(url, data=form)
    assert response.status_code == 422
    assert "String should have at least 1 character" in response.text
    assert 'name="field:approved" value="true" checked' in response.text
    assert (await client.get(f"/api/runs/{run['run_id']}")).json()["status"] == "paused"


async def test_csrf_mismatch_is_403_and_changes_nothing(client: httpx.AsyncClient) -> None:
    """A post without this session's CSRF token is refused; the run stays paused."""
    run = await start_refund(client)
    await sign_in(client)
    url = f"/runs/{run['run_id']}"
    form = {
        **answer_form((await client.get(url)).text),
        "field:approved": "true",
        "field:approver": "X",
    }
    for csrf in ("forged", ""):
        response = await client.post(url, data={**form, "csrf": csrf})
        assert response.status_code == 403
        assert "did not come from this site" in response.text
    assert (await client.get(f"/api/runs/{run['run_id']}")).json()["status"] == "paused"


async def test_csrf_token_of_another_session_is_refused(runs: Runs) -> None:
    """A CSRF token is tied to its session: lee's token does not work in kim's session."""
    async with make_client(runs) as kim, make_client(runs) as lee:
        run = await start_refund(kim)
        await sign_in(kim, "tok-kim")
        await sign_in(lee, "tok-lee")
        url = f"/runs/{run['run_id']}"
        form = answer_form((await kim.get(url)).text)
        form["csrf"] = hidden((await lee.get(url)).text, "csrf")
        answer = {"field:approved": "true", "field:approver": "Kim"}
        assert (await kim.post(url, data={**form, **answer})).status_code == 403


async def test_answering_needs_sign_in(client: httpx.AsyncClient) -> None:
    """An answer from a browser that is not signed in goes to the sign-in page."""
    run = await start_refund(client)
    response = await client.post(f"/runs/{run['run_id']}", data={"field:approved": "true"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=%2Fruns%2F{run['run_id']}"


async def test_sign_out(client: httpx.AsyncClient) -> None:
    """Signing out ends the session (its CSRF token is checked too)."""
    await sign_in(client)
    page = (await client.get("/")).text
    assert (await client.post("/logout", data={"csrf": "x"})).status_code == 403
    assert (await client.post("/logout", data={"csrf": hidden(page, "csrf")})).status_code == 303
    assert "Signed in as" not in (await client.get("/")).text


async def test_state_and_pause_data_are_escaped(client: httpx.AsyncClient) -> None:
    """A <script> in the input, the state or the pause data is shown as text, never run."""
    evil = "<script>alert('x')</script>"
    started = await client.post(
        "/api/runs",
        json={"chart": "parallel", "input": {"note": evil, "<b>key</b>": evil}},
        headers=KIM,
    )
    run = started.json()
    await sign_in(client)
    for page in ((await client.get(f"/runs/{run['run_id']}")).text, (await client.get("/")).text):
        assert "<script>" not in page
        assert "<b>key</b>" not in page
    page = (await client.get(f"/runs/{run['run_id']}")).text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


async def test_parallel_pauses_get_one_form_each(client: httpx.AsyncClient) -> None:
    """Two pending pauses: two forms; each is answered on its own."""
    run = (await client.post("/api/runs", json={"chart": "parallel"}, headers=KIM)).json()
    await sign_in(client)
    url = f"/runs/{run['run_id']}"
    page = (await client.get(url)).text
    assert page.count('<form method="post" action="/runs/') == 2
    stages = [hidden(page, "stage_id", i) for i in range(2)]
    assert sorted(stages) == ["finance", "legal"]
    finance = stages.index("finance")
    # the finance stage declares no schema: one JSON text area
    assert 'name="answer_json"' in page
    form = {**answer_form(page, finance), "answer_json": '{"ok": true}'}
    response = await client.post(url, data=form)
    assert response.status_code == 303
    page = (await client.get(url)).text
    assert page.count('<form method="post" action="/runs/') == 1
    assert hidden(page, "stage_id") == "legal"
    # the legal stage's Review form: every widget kind
    assert 'name="field:ok" value="true" required' in page
    assert re.search(
        r'name="field:score" type="number" value="" step="1" min="0" max="10" required', page
    )
    assert '<option value="&#34;accept&#34;">accept</option>' in page
    assert '<option value="&#34;low&#34;" selected>low</option>' in page
    assert 'name="field:due" type="date"' in page
    assert 'name="field:tags" rows="3"' in page
    legal = {
        **answer_form(page),
        "field:ok": "false",
        "field:score": "7",
        "field:ratio": "0.25",
        "field:verdict": '"reject"',
        "field:priority": '"high"',
        "field:due": "2030-01-31",
        "field:tags": '["a", "b"]',
    }
    assert (await client.post(url, data=legal)).status_code == 303
    record = (await client.get(f"/api/runs/{run['run_id']}")).json()
    assert record["status"] == "completed"
    assert record["snapshot"]["shared_state"]["answer_legal"] == {
        "ok": False,
        "score": 7,
        "ratio": 0.25,
        "verdict": "reject",
        "priority": "high",
        "due": "2030-01-31",
        "comment": None,
        "tags": ["a", "b"],
    }


async def test_bad_json_in_the_text_area_is_shown_beside_it(client: httpx.AsyncClient) -> None:
    """Unparseable JSON never reaches the run: the page says what is wrong."""
    run = (await client.post("/api/runs", json={"chart": "parallel"}, headers=KIM)).json()
    await sign_in(client)
    url = f"/runs/{run['run_id']}"
    page = (await client.get(url)).text
    finance = [hidden(page, "stage_id", i) for i in range(2)].index("finance")
    response = await client.post(url, data={**answer_form(page, finance), "answer_json": "{oops"})
    assert response.status_code == 422
    assert "Not valid JSON" in response.text


async def test_unknown_run_page_is_a_404_page(client: httpx.AsyncClient) -> None:
    """An unknown run gives an HTML 404 page, not JSON and not a 500."""
    await sign_in(client)
    response = await client.get("/runs/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Not found" in response.text


@pytest.mark.parametrize(
    ("values", "expected", "problems"),
    [
        ({"field:ok": "true", "field:score": "3"}, {"ok": True, "score": 3}, {}),
        ({"field:score": "2.5", "field:ratio": "1"}, {"score": 2.5, "ratio": 1}, {}),
        ({"field:score": "abc"}, {"score": "abc"}, {}),  # left for the schema to reject
        ({"field:ratio": "inf"}, {}, {"ratio": "Enter a finite number."}),
        (
            {"field:tags": "[1,"},
            {},
            {"tags": "Not valid JSON: Expecting value: line 1 column 4 (char 3)"},
        ),
        ({"field:verdict": '"accept"', "field:ok": ""}, {"verdict": "accept"}, {}),
    ],
)
def test_form_values_become_json_types(
    values: dict[str, str], expected: dict[str, Any], problems: dict[str, str]
) -> None:
    """Numbers, booleans and JSON fields are converted; empty ones left out."""
    from pydantic import TypeAdapter

    form = form_for(TypeAdapter(Review).json_schema())
    assert parse_form(form, values) == (expected, problems)


def test_a_schema_that_is_not_an_object_gets_a_json_text_area() -> None:
    """No schema, or one without properties: the whole answer as JSON (NaN refused)."""
    for schema in (None, {"type": "boolean"}, {"type": "array", "items": {"type": "string"}}):
        form = form_for(schema)
        assert form.fields is None
        assert parse_form(form, {RAW_FIELD: "[true]"}) == ([True], {})
    assert parse_form(form_for(None), {RAW_FIELD: "NaN"})[1][RAW_FIELD].startswith("Not valid JSON")
    assert parse_form(form_for(None), {})[1] == {RAW_FIELD: "Enter the answer as JSON."}
