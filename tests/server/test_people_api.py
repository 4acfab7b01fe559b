"""Who may read and answer over HTTP: tokens with groups, 403 for others, "assigned to me"."""

from __future__ import annotations

import gc
import re
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from pausepoint import PausableHandler, Runs, Scope, UnknownAssigneeError, flow_chart, open_store
from pausepoint.server import Actor, Tokens, create_app

from .test_pages import hidden

KIM = {"Authorization": "Bearer k-secret"}  # kim, a manager
LEE = {"Authorization": "Bearer l-secret"}  # lee, in finance
BOSS = {"Authorization": "Bearer b-secret"}  # ana, an admin
PEOPLE = {
    "k-secret": "kim:managers",
    "l-secret": Actor("lee", groups=["finance"]),
    "b-secret": "ana:admin",
}


class Decision(BaseModel):
    approved: bool


def _ask(scope: Scope) -> dict[str, Any]:
    return {"question": f"Pay {scope.get('amount', 0)}?"}


def _apply(scope: Scope, answer: Decision) -> None:
    scope.approved = answer.approved


def approval(assignees: Any) -> Any:
    return (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "Approve",
            PausableHandler(execute=_ask, resume=_apply),
            "approve",
            input_schema=Decision,
            assignees=assignees,
        )
        .add_function("Pay", lambda scope: None, "pay")
        .build()
    )


def charts() -> dict[str, Any]:
    return {"approval": approval(["managers"]), "anyone": approval(None)}


@pytest.fixture
async def runs(tmp_path: Path) -> AsyncIterator[Runs]:
    async with Runs(open_store(f"sqlite:///{tmp_path / 'runs.db'}"), charts()) as opened:
        yield opened


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def client(runs: Runs) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(create_app(runs, PEOPLE, session_secret="s")) as opened:
        yield opened


async def start(client: httpx.AsyncClient, chart: str = "approval") -> dict[str, Any]:
    response = await client.post("/api/runs", json={"chart": chart, "input": {}}, headers=KIM)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_manager_answers_and_finance_is_refused_with_403(
    client: httpx.AsyncClient,
) -> None:
    """kim (managers) answers a pause assigned to managers; lee (finance) gets 403, audited."""
    run = await start(client)
    assert run["pause"]["assignees"] == ["managers"]
    url = f"/api/runs/{run['run_id']}/resume"

    refused = await client.post(url, json={"input": {"approved": True}}, headers=LEE)
    assert refused.status_code == 403
    body = refused.json()
    assert body["error"] == "PermissionDeniedError"
    assert "not assigned" in body["message"]
    assert "managers" in body["message"]
    assert "lee" in body["message"]
    assert body["details"] == {
        "run_id": run["run_id"],
        "stage_id": "approve",
        "actor": "lee",
        "assignees": ["managers"],
    }
    record = (await client.get(f"/api/runs/{run['run_id']}", headers=LEE)).json()
    assert record["status"] == "paused"
    [event] = [e for e in record["audit"] if e["kind"] == "resume_refused"]
    assert event["actor"] == "lee"
    assert event["data"]["error"] == "PermissionDeniedError"
    assert event["data"]["reason"].startswith("not assigned")

    answered = await client.post(url, json={"input": {"approved": True}}, headers=KIM)
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "completed"
    resumed = [e for e in answered.json()["audit"] if e["kind"] == "resumed"]
    assert [e["actor"] for e in resumed] == ["kim"]


async def test_the_stage_route_and_the_admin_group(client: httpx.AsyncClient) -> None:
    """The per-stage route refuses lee too; the admin group may answer any pause."""
    run = await start(client)
    url = "/api/charts/approval/stages/approve/resume"
    body = {"run_id": run["run_id"], "input": {"approved": False}}
    refused = await client.post(url, json=body, headers=LEE)
    assert refused.status_code == 403
    assert refused.json()["error"] == "PermissionDeniedError"
    answered = await client.post(url, json=body, headers=BOSS)
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "completed"


async def test_unassigned_pauses_are_answered_by_anyone_signed_in(
    client: httpx.AsyncClient,
) -> None:
    run = await start(client, "anyone")
    assert run["pause"]["assignees"] == []
    response = await client.post(
        f"/api/runs/{run['run_id']}/resume", json={"input": {"approved": True}}, headers=LEE
    )
    assert response.status_code == 200, response.text


async def test_mine_lists_the_pauses_assigned_to_the_caller(client: httpx.AsyncClient) -> None:
    """mine=true: kim sees the managers' pause, lee sees none; without it both see all."""
    assigned = await start(client)
    unassigned = await start(client, "anyone")
    params = {"mine": "true"}
    kim = (await client.get("/api/runs", params=params, headers=KIM)).json()
    assert [i["run_id"] for i in kim["items"]] == [assigned["run_id"]]
    assert kim["items"][0]["pause"]["assignees"] == ["managers"]
    lee = (await client.get("/api/runs", params=params, headers=LEE)).json()
    assert lee["items"] == []
    every = (await client.get("/api/runs", headers=LEE)).json()
    assert {i["run_id"] for i in every["items"]} == {assigned["run_id"], unassigned["run_id"]}
    by_group = await client.get("/api/runs", params={"assignee": "managers"}, headers=LEE)
    assert [i["run_id"] for i in by_group.json()["items"]] == [assigned["run_id"]]


async def test_an_unknown_group_in_a_filter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/runs", params={"assignee": "manager"}, headers=KIM)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "UnknownAssigneeError"
    assert "'manager'" in body["message"]
    assert "managers" in body["message"]
    assert body["details"]["assignee"] == "manager"
    assert set(body["details"]["known"]) >= {"kim", "lee", "managers", "finance", "admin"}


async def test_mine_needs_someone_and_filters_only_the_inbox(runs: Runs) -> None:
    async with client_of(create_app(runs, PEOPLE, public_read=True)) as client:
        anonymous = await client.get("/api/runs", params={"mine": "true"})
        assert anonymous.status_code == 401
        assert "mine=true" in anonymous.json()["message"]
        other = await client.get("/api/runs", params={"mine": "true", "status": "all"}, headers=KIM)
        assert other.status_code == 422
        assert "inbox only" in other.json()["message"]


async def test_a_signed_in_session_reads_and_answers_as_its_groups(
    client: httpx.AsyncClient,
) -> None:
    """The pages pass the session's groups: lee's form post is refused (403), kim's applies."""
    run = await start(client)
    url = f"/runs/{run['run_id']}"

    async def sign_in(token: str) -> None:
        client.cookies.clear()
        form = await client.get("/login")
        data = {"token": token, "csrf": hidden(form.text, "csrf"), "next": url}
        assert (await client.post("/login", data=data)).status_code == 303

    await sign_in("l-secret")
    page = (await client.get(url)).text
    assert 'assigned to <span class="assignees">managers</span>' in page
    assert "lee may not answer it" in page
    assert '<form method="post" action="/runs/' not in page
    # a hand-made post is refused all the same
    posted = await client.post(
        url,
        data={
            "csrf": hidden(page, "csrf"),
            "pause_id": run["pause"]["id"],
            "field:approved": "true",
        },
    )
    assert posted.status_code == 403
    assert "not assigned" in posted.text
    assert (await client.get(f"/api/runs/{run['run_id']}")).json()["status"] == "paused"

    await sign_in("k-secret")
    page = (await client.get(url)).text
    assert "Submit answer as kim" in page
    form = {
        **{n: hidden(page, n) for n in ("csrf", "pause_id", "nonce")},
        "field:approved": "true",
    }
    assert (await client.post(url, data=form)).status_code == 303
    assert (await client.get(f"/api/runs/{run['run_id']}")).json()["status"] == "completed"


async def test_the_inbox_page_opens_on_assigned_to_me(client: httpx.AsyncClient) -> None:
    """With assignment in use, / shows the viewer's pauses; ?view=all shows every one."""
    assigned = await start(client)
    unassigned = await start(client, "anyone")

    async def inbox(token: str, query: str = "") -> str:
        client.cookies.clear()
        form = await client.get("/login")
        data = {"token": token, "csrf": hidden(form.text, "csrf"), "next": "/" + query}
        response = await client.post("/login", data=data)
        return (await client.get(response.headers["location"])).text

    kim = await inbox("k-secret")
    assert "<h1>Assigned to me" in kim
    assert f"/runs/{assigned['run_id']}" in kim
    assert f"/runs/{unassigned['run_id']}" not in kim
    lee = await inbox("l-secret")
    assert f"/runs/{assigned['run_id']}" not in lee
    assert "Nothing is assigned to you" in lee
    every = await inbox("l-secret", "?view=all")
    assert f"/runs/{assigned['run_id']}" in every
    assert f"/runs/{unassigned['run_id']}" in every
    assert re.search(r'<td[^>]* class="assignees">managers</td>', every)


# -- the charts' assignees against the tokens ----------------------------------------------


async def test_an_assignee_no_token_has_is_refused_at_startup(runs: Runs) -> None:
    """A typo'd group in a chart is a startup error naming chart, stage, name and known ones."""
    with pytest.raises(UnknownAssigneeError) as caught:
        create_app(runs, {"t": "kim:manager"})
    error = caught.value
    assert (error.chart, error.stage_id, error.assignee) == ("approval", "approve", "managers")
    assert set(error.known) == {"kim", "manager", "admin"}
    assert "chart 'approval', stage 'approve'" in str(error)
    assert "'managers'" in str(error)
    assert "known: admin, kim, manager" in str(error)


async def test_an_actor_name_or_admin_counts_as_known(tmp_path: Path) -> None:
    flows = {"a": approval(["kim"]), "b": approval(["admin"]), "c": approval(lambda s: ["x"])}
    async with Runs(open_store(f"sqlite:///{tmp_path / 'r.db'}"), flows) as runs:
        create_app(runs, {"t": "kim"})  # no error: kim is a name, admin always known
        create_app(runs)  # without tokens nothing is checked


# -- reads need a token ---------------------------------------------------------------------


READS = ["/api/runs", "/api/runs?status=all", "/api/charts", "/api/charts/approval"]


async def test_reads_without_a_token_get_401_and_pages_go_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    run = await start(client)
    reads = [*READS, f"/api/runs/{run['run_id']}", f"/api/runs/{run['run_id']}/history"]
    for url in reads:
        response = await client.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"] == "Unauthorized"
        assert "signed-in session" in response.json()["message"]
        assert response.headers["www-authenticate"] == "Bearer"
        assert (await client.get(url, headers=LEE)).status_code == 200, url
        wrong = await client.get(url, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    for page in ("/", f"/runs/{run['run_id']}", "/?view=all"):
        response = await client.get(page)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    assert (await client.get("/", params={"chart": "x"})).headers["location"] == (
        "/login?next=%2F%3Fchart%3Dx"
    )
    for open_path in (
        "/healthz",
        "/readyz",
        "/docs",
        "/openapi.json",
        "/login",
        "/static/style.css",
    ):
        assert (await client.get(open_path)).status_code == 200, open_path


async def test_public_read_opens_reads_but_not_writes(runs: Runs) -> None:
    async with client_of(create_app(runs, PEOPLE, public_read=True)) as client:
        run = await start(client)
        for url in [*READS, f"/api/runs/{run['run_id']}"]:
            assert (await client.get(url)).status_code == 200, url
        assert (await client.get("/")).status_code == 200
        page = await client.get(f"/runs/{run['run_id']}")
        assert page.status_code == 200
        assert "Sign in to answer" in page.text
        write = await client.post(f"/api/runs/{run['run_id']}/resume", json={"input": {}})
        assert write.status_code == 401


async def test_the_app_keeps_digests_never_the_secrets(runs: Runs) -> None:
    """Nothing reachable from the app holds a token's secret."""
    app = create_app(runs, dict(PEOPLE), session_secret="s")
    table = app.state.tokens
    assert isinstance(table, Tokens)
    assert len(table) == 3
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in table.digests())
    # Everything reachable from the app, except modules' globals (the test's own
    # PEOPLE lives there) and classes: no string holds a secret.
    module_dicts = {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    seen: set[int] = set()
    found: list[str] = []
    todo: list[Any] = [app, table]
    while todo:
        value = todo.pop()
        if id(value) in seen or id(value) in module_dicts:
            continue
        seen.add(id(value))
        if isinstance(value, types.ModuleType | type):
            continue
        if isinstance(value, str | bytes):
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            found.extend(secret for secret in PEOPLE if secret in text)
            continue
        if isinstance(value, dict):  # the collector does not report a dict's str keys
            todo.extend(value.keys())
        todo.extend(gc.get_referents(value))
    assert len(seen) > 1000  # the walk did reach the routes and their closures
    assert found == []
    assert table.actor_for("k-secret") == Actor("kim", groups=["managers"])
