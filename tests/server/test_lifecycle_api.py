"""History, fork and retry over HTTP."""

from __future__ import annotations

import httpx

from .conftest import KIM, LEE, start_refund

ANSWER = {"approved": True, "approver": "Kim"}


async def test_history_fork_and_their_errors(client: httpx.AsyncClient) -> None:
    paused = await start_refund(client)
    run_id = paused["run_id"]
    history = await client.get(f"/api/runs/{run_id}/history", headers=KIM)
    assert history.status_code == 200
    assert [(s["index"], s["kind"], s["stage_id"]) for s in history.json()] == [
        (0, "stage", "receive"),
        (1, "paused", "approve"),
    ]

    forked = await client.post(
        f"/api/runs/{run_id}/fork", json={"at": 1, "state_patch": {"amount": 1500}}, headers=LEE
    )
    assert forked.status_code == 201, forked.text
    child = forked.json()
    assert forked.headers["Location"] == f"/api/runs/{child['run_id']}"
    assert child["status"] == "paused"
    assert child["audit"][0]["kind"] == "forked"
    assert child["audit"][0]["actor"] == "lee"

    answered = await client.post(
        f"/api/runs/{child['run_id']}/resume", json={"input": ANSWER}, headers=KIM
    )
    assert answered.json()["status"] == "completed"
    steps = (await client.get(f"/api/runs/{child['run_id']}/history", headers=KIM)).json()
    assert [s["kind"] for s in steps] == ["stage", "paused", "resumed", "stage", "stage"]
    assert steps[2]["actor"] == "kim"

    unknown = await client.post(f"/api/runs/{run_id}/fork", json={"at": 9}, headers=KIM)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "StepNotFoundError"
    assert "has no step 9" in unknown.json()["message"]
    unsigned = await client.post(f"/api/runs/{run_id}/fork", json={"at": 0})
    assert unsigned.status_code == 401
    missing = await client.get("/api/runs/nope/history", headers=KIM)
    assert missing.status_code == 404


async def test_retry_refuses_a_run_that_did_not_fail(client: httpx.AsyncClient) -> None:
    paused = await start_refund(client)
    refused = await client.post(f"/api/runs/{paused['run_id']}/retry", headers=KIM)
    assert refused.status_code == 409
    assert refused.json()["error"] == "RunStateError"
    assert "only a failed run can be retried" in refused.json()["message"]
