"""The JSON API against the real app on a real store, as a backend would call it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pausepoint import Runs, open_store
from pausepoint.server import Tokens, create_app

from .conftest import KIM, LEE, TOKENS, all_charts, make_client, start_refund

ANSWER = {"approved": True, "approver": "Kim"}


async def test_start_pause_resume_complete_on_every_store(any_store_url: str) -> None:
    """Start → inbox → resume → completed, with the actor in the audit, on every backend."""
    async with Runs(open_store(any_store_url), all_charts()) as runs, make_client(runs) as client:
        started = await client.post(
            "/api/runs", json={"chart": "refund", "input": {"amount": 900}}, headers=KIM
        )
        assert started.status_code == 201
        run = started.json()
        assert started.headers["location"] == f"/api/runs/{run['run_id']}"
        assert run["status"] == "paused"
        assert run["pause"]["stage_id"] == "approve"
        assert run["pause"]["data"]["question"] == "Approve $900 refund for ORD-2024-7891?"

        inbox = (await client.get("/api/runs", params={"status": "paused"}, headers=KIM)).json()
        assert [i["run_id"] for i in inbox["items"]] == [run["run_id"]]
        assert inbox["items"][0]["pause"] == run["pause"]
        assert inbox["next_cursor"] is None

        resumed = await client.post(
            f"/api/runs/{run['run_id']}/resume",
            json={"input": ANSWER, "pause_id": run["pause"]["id"]},
            headers=LEE,
        )
        assert resumed.status_code == 200, resumed.text
        done = resumed.json()
        assert done["status"] == "completed"
        assert done["pause"] is None
        assert done["snapshot"]["shared_state"]["refund_status"] == "refunded"
        assert "ProcessRefund wrote refund_status." in done["snapshot"]["narrative"]
        actors = {e["kind"]: e["actor"] for e in done["audit"]}
        assert actors["started"] == "kim"
        assert actors["resumed"] == "lee"

        fetched = await client.get(f"/api/runs/{run['run_id']}", headers=KIM)
        assert fetched.json()["status"] == "completed"
        assert (await client.get("/api/runs", headers=KIM)).json()["items"] == []


async def test_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    """Reading, resuming or cancelling a run nobody started: 404 with the common body."""
    for response in (
        await client.get("/api/runs/nope", headers=KIM),
        await client.post("/api/runs/nope/resume", json={"input": {}}, headers=KIM),
        await client.post("/api/runs/nope/cancel", json={}, headers=KIM),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == "RunNotFoundError"
        assert "nope" in response.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer wrong"}, id="unknown-token"),
        pytest.param({"Authorization": "Basic a2ltOnNlY3JldA=="}, id="not-bearer"),
        pytest.param({"Authorization": "Bearer "}, id="empty-token"),
    ],
)
async def test_writes_need_a_known_bearer_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Start, resume and cancel answer 401 with WWW-Authenticate without a known token."""
    run = await start_refund(client)
    for response in (
        await client.post("/api/runs", json={"chart": "refund"}, headers=headers),
        await client.post(
            f"/api/runs/{run['run_id']}/resume", json={"input": ANSWER}, headers=headers
        ),
        await client.post(f"/api/runs/{run['run_id']}/cancel", json={}, headers=headers),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "Unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get(f"/api/runs/{run['run_id']}", headers=KIM)).json()[
        "status"
    ] == "paused"


async def test_a_revoked_token_stops_working_at_once(runs: Runs) -> None:
    """Tokens are read per request: removing one from the live table revokes it."""
    tokens = Tokens(TOKENS)
    async with make_client(runs, tokens) as client:
        await start_refund(client)
        del tokens["tok-kim"]
        response = await client.post("/api/runs", json={"chart": "refund"}, headers=KIM)
        assert response.status_code == 401
        assert (await client.get("/api/runs", headers=KIM)).status_code == 401


async def test_answer_failing_the_schema_is_422_with_details(client: httpx.AsyncClient) -> None:
    """pydantic's details come back; the run stays paused and still resumes."""
    run = await start_refund(client)
    url = f"/api/runs/{run['run_id']}/resume"
    response = await client.post(url, json={"input": {"approved": "maybe"}}, headers=KIM)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "ResumeInputError"
    assert {(tuple(d["loc"]), d["type"]) for d in body["details"]} == {
        (("approved",), "bool_parsing"),
        (("approver",), "missing"),
    }
    assert (await client.get(f"/api/runs/{run['run_id']}", headers=KIM)).json()[
        "status"
    ] == "paused"
    assert (await client.post(url, json={"input": ANSWER}, headers=KIM)).status_code == 200


async def test_malformed_requests_are_422_never_500(client: httpx.AsyncClient) -> None:
    """Bad JSON, missing fields, NaN, bad limits and cursors: 422 with the common body."""
    cases = [
        await client.post(
            "/api/runs",
            content=b"{not json",
            headers={**KIM, "content-type": "application/json"},
        ),
        await client.post("/api/runs", json={"input": {}}, headers=KIM),
        await client.post(
            "/api/runs",
            content=b'{"chart": "refund", "input": {"amount": NaN}}',
            headers={**KIM, "content-type": "application/json"},
        ),
        await client.post("/api/runs", json={"chart": "refund", "run_id": "a/b"}, headers=KIM),
        await client.get("/api/runs", params={"limit": 0}, headers=KIM),
        await client.get("/api/runs", params={"status": "done"}, headers=KIM),
        await client.get("/api/runs", params={"cursor": ""}, headers=KIM),
        await client.get("/api/runs", params={"cursor": "not a cursor!"}, headers=KIM),
    ]
    for response in cases:
        assert response.status_code == 422, response.text
        assert set(response.json()) >= {"error", "message"}
    assert cases[1].json()["details"][0]["loc"] == ["body", "chart"]
    assert cases[2].json()["error"] == "NotJSONError"


async def test_a_well_formed_cursor_no_page_has_is_404(client: httpx.AsyncClient) -> None:
    """A cursor that fits the documented pattern but names no page: 404, never 422."""
    for status in ("paused", "failed"):
        response = await client.get(
            "/api/runs", params={"status": status, "cursor": "garbage"}, headers=KIM
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "InvalidCursorError"


async def test_second_resume_is_409_and_names_who_answered(client: httpx.AsyncClient) -> None:
    """Answering twice: the second gets 409 RunAlreadyClaimedError with `answered_by`."""
    run = await start_refund(client)
    url = f"/api/runs/{run['run_id']}/resume"
    assert (await client.post(url, json={"input": ANSWER}, headers=KIM)).status_code == 200
    again = await client.post(url, json={"input": ANSWER}, headers=LEE)
    assert again.status_code == 409
    assert again.json()["error"] == "RunAlreadyClaimedError"
    assert again.json()["details"]["answered_by"] == "kim"
    audit = (await client.get(f"/api/runs/{run['run_id']}", headers=KIM)).json()["audit"]
    refused = [e for e in audit if e["kind"] == "resume_refused"]
    assert [e["actor"] for e in refused] == ["lee"]


async def test_concurrent_resumes_one_wins(client: httpx.AsyncClient) -> None:
    """Two answers at once: exactly one 200, the other 409."""
    run = await start_refund(client)
    url = f"/api/runs/{run['run_id']}/resume"
    first, second = await asyncio.gather(
        client.post(url, json={"input": ANSWER}, headers=KIM),
        client.post(url, json={"input": ANSWER}, headers=LEE),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]


async def test_stale_pause_is_409(client: httpx.AsyncClient) -> None:
    """An answer naming a pause that is no longer pending: 409 StalePauseError."""
    run = await start_refund(client)
    url = f"/api/runs/{run['run_id']}/resume"
    response = await client.post(url, json={"input": ANSWER, "pause_id": "old"}, headers=KIM)
    assert response.status_code == 409
    assert response.json()["error"] == "StalePauseError"
    assert (await client.get(f"/api/runs/{run['run_id']}", headers=KIM)).json()[
        "status"
    ] == "paused"


async def test_idempotency_key_returns_the_first_outcome(client: httpx.AsyncClient) -> None:
    """A retry with the same Idempotency-Key gets the first answer's record, not a 409."""
    run = await start_refund(client)
    url = f"/api/runs/{run['run_id']}/resume"
    headers = {**KIM, "Idempotency-Key": "retry-1"}
    first = await client.post(url, json={"input": ANSWER}, headers=headers)
    retry = await client.post(url, json={"input": ANSWER}, headers=headers)
    assert first.status_code == retry.status_code == 200
    assert retry.json()["status"] == "completed"
    assert retry.json()["version"] == first.json()["version"]
    other = await client.post(url, json={"input": ANSWER}, headers={**KIM, "Idempotency-Key": "x"})
    assert other.status_code == 409


async def test_parallel_pauses_need_a_target(client: httpx.AsyncClient) -> None:
    """Two pending pauses: no target is 422 (with the pending ids); a stage not paused is 409."""
    started = await client.post("/api/runs", json={"chart": "parallel"}, headers=KIM)
    run = started.json()
    assert {p["stage_id"] for p in run["pauses"]} == {"legal", "finance"}
    url = f"/api/runs/{run['run_id']}/resume"
    untargeted = await client.post(url, json={"input": {"x": 1}}, headers=KIM)
    assert untargeted.status_code == 422
    assert untargeted.json()["error"] == "ResumeTargetError"
    assert set(untargeted.json()["details"]["pending"]) == {"legal", "finance"}
    wrong = await client.post(url, json={"input": {}, "stage_id": "seed"}, headers=KIM)
    assert wrong.status_code == 409
    answered = await client.post(url, json={"input": {"ok": 1}, "stage_id": "finance"}, headers=KIM)
    assert answered.status_code == 200
    assert [p["stage_id"] for p in answered.json()["pauses"]] == ["legal"]


async def test_cancel(client: httpx.AsyncClient) -> None:
    """Cancel: 200 and out of the inbox, reason and actor in the audit; again: 409."""
    run = await start_refund(client)
    url = f"/api/runs/{run['run_id']}/cancel"
    response = await client.post(url, json={"reason": "duplicate"}, headers=LEE)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    event = response.json()["audit"][-1]
    assert (event["kind"], event["actor"], event["data"]) == (
        "cancelled",
        "lee",
        {"reason": "duplicate"},
    )
    assert (await client.get("/api/runs", headers=KIM)).json()["items"] == []
    again = await client.post(url, headers=LEE)  # the body is optional
    assert again.status_code == 409
    assert again.json()["error"] == "RunNotPausedError"


async def test_start_refusals(client: httpx.AsyncClient) -> None:
    """Unknown chart: 404; a run id already taken: 409."""
    unknown = await client.post("/api/runs", json={"chart": "nope"}, headers=KIM)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "ChartNotFoundError"
    await start_refund(client, run_id="order-1")
    taken = await client.post(
        "/api/runs", json={"chart": "refund", "run_id": "order-1"}, headers=KIM
    )
    assert taken.status_code == 409
    assert taken.json()["error"] == "RunExistsError"


async def test_inbox_filters_and_pages(client: httpx.AsyncClient) -> None:
    """Filters by chart and stage; pages through with the cursor, newest first."""
    ids = [(await start_refund(client, amount=200 + i))["run_id"] for i in range(5)]
    await client.post("/api/runs", json={"chart": "parallel"}, headers=KIM)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"chart": "refund", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/runs", params=params, headers=KIM)).json()
        seen += [item["run_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    by_stage = (await client.get("/api/runs", params={"stage": "legal"}, headers=KIM)).json()[
        "items"
    ]
    assert [item["pause"]["stage_id"] for item in by_stage] == ["legal"]


async def test_charts(client: httpx.AsyncClient) -> None:
    """Charts list their stages, each pausable stage's input JSON Schema, and Mermaid."""
    listed = (await client.get("/api/charts", headers=KIM)).json()["items"]
    assert {c["name"] for c in listed} == {"refund", "parallel", "payment"}
    refund = (await client.get("/api/charts/refund", headers=KIM)).json()
    assert [s["id"] for s in refund["stages"]] == ["receive", "approve", "process", "notify"]
    approve = refund["stages"][1]
    assert approve["kind"] == "pausable"
    assert approve["input_schema"]["required"] == ["approved", "approver"]
    assert approve["input_schema"]["properties"]["approved"]["type"] == "boolean"
    assert refund["mermaid"].startswith("flowchart TD")
    assert "ManagerApproval" in refund["mermaid"]
    missing = await client.get("/api/charts/nope", headers=KIM)
    assert missing.status_code == 404
    assert missing.json()["error"] == "ChartNotFoundError"


async def test_unreachable_store_is_503() -> None:
    """A store that cannot be reached: 503 StoreUnavailableError, not a 500."""
    async with Runs(open_store("redis://127.0.0.1:9/0"), all_charts()) as runs:
        app = create_app(runs, TOKENS)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/runs/anything", headers=KIM)
            assert response.status_code == 503
            assert response.json()["error"] == "StoreUnavailableError"
