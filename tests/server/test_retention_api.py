"""The lifecycle routes: listing by status, DELETE, signals by business key, per-stage resume."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from pausepoint import Runs

from .conftest import KIM, start_refund

ANSWER = {"approved": True, "approver": "Kim"}


async def start_payment(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    response = await client.post(
        "/api/runs", json={"chart": "payment", "input": {"order_id": order_id}}, headers=KIM
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_list_runs_of_any_status(client: httpx.AsyncClient) -> None:
    """?status=completed lists runs (not pauses), newest first, paged; ?status=all every run."""
    done = []
    for _ in range(3):
        run = await start_refund(client)
        url = f"/api/runs/{run['run_id']}/resume"
        assert (await client.post(url, json={"input": ANSWER}, headers=KIM)).status_code == 200
        done.append(run["run_id"])
    waiting = await start_refund(client)
    first = (
        await client.get("/api/runs", params={"status": "completed", "limit": 2}, headers=KIM)
    ).json()
    assert [item["status"] for item in first["items"]] == ["completed", "completed"]
    assert set(first["items"][0]) == {
        "run_id",
        "chart",
        "status",
        "stage",
        "pauses",
        "error",
        "created_at",
        "updated_at",
    }
    second = await client.get(
        "/api/runs", params={"status": "completed", "cursor": first["next_cursor"]}, headers=KIM
    )
    listed = [i["run_id"] for i in first["items"] + second.json()["items"]]
    assert listed == done[::-1]
    everything = (await client.get("/api/runs", params={"status": "all"}, headers=KIM)).json()
    assert [i["run_id"] for i in everything["items"]] == [waiting["run_id"], *done[::-1]]
    inbox = (await client.get("/api/runs", headers=KIM)).json()
    assert [i["pause"]["stage_id"] for i in inbox["items"]] == ["approve"]


async def test_delete_erases_a_run_and_needs_a_token(client: httpx.AsyncClient) -> None:
    """DELETE is a write (401 without a token); afterwards the run is 404."""
    run = await start_refund(client)
    url = f"/api/runs/{run['run_id']}"
    assert (await client.delete(url)).status_code == 401
    response = await client.delete(url, headers=KIM)
    assert response.status_code == 204, response.text
    assert (await client.get(url, headers=KIM)).status_code == 404
    again = await client.delete(url, headers=KIM)
    assert again.status_code == 404
    assert again.json()["error"] == "RunNotFoundError"


async def test_signal_answers_every_waiter_by_key(client: httpx.AsyncClient) -> None:
    """POST /api/signals/{key} resumes every run waiting under the key, once each."""
    first = await start_payment(client, "A-1")
    second = await start_payment(client, "A-1")
    assert first["pause"]["key"] == "order:A-1"
    assert (
        await client.post("/api/signals/order:A-1", json={"input": {"paid": True}})
    ).status_code == 401
    response = await client.post(
        "/api/signals/order:A-1", json={"input": {"paid": True}}, headers=KIM
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["buffered"] is False
    assert sorted(r["run_id"] for r in body["items"]) == sorted([first["run_id"], second["run_id"]])
    assert {r["status"] for r in body["items"]} == {"completed"}
    assert body["items"][0]["audit"][-2]["actor"] == "kim"


async def test_a_signal_nobody_waits_for_is_404_unless_buffered(client: httpx.AsyncClient) -> None:
    """No waiter: 404 naming the key; with buffer the answer waits for the run to pause."""
    response = await client.post(
        "/api/signals/order:B-2", json={"input": {"paid": True}}, headers=KIM
    )
    assert response.status_code == 404
    assert response.json()["error"] == "NoWaiterError"
    assert response.json()["details"] == {"key": "order:B-2"}
    kept = await client.post(
        "/api/signals/order:B-2", json={"input": {"paid": True}, "buffer": 60}, headers=KIM
    )
    assert kept.json() == {"items": [], "buffered": True}
    run = await start_payment(client, "B-2")
    assert run["status"] == "completed"


async def test_the_per_stage_route_answers_only_its_stage(client: httpx.AsyncClient) -> None:
    """The stage's own route takes its schema; a run elsewhere is 409, a bad answer 422."""
    refund = await start_refund(client)
    payment = await start_payment(client, "C-3")
    url = "/api/charts/payment/stages/await-payment/resume"
    wrong = await client.post(
        url, json={"run_id": refund["run_id"], "input": {"paid": True}}, headers=KIM
    )
    assert wrong.status_code == 409
    assert "not paused at stage 'await-payment' of chart 'payment'" in wrong.json()["message"]
    bad = await client.post(
        url, json={"run_id": payment["run_id"], "input": {"paid": "maybe"}}, headers=KIM
    )
    assert bad.status_code == 422
    done = await client.post(
        url, json={"run_id": payment["run_id"], "input": {"paid": True}}, headers=KIM
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    twice = await client.post(
        url, json={"run_id": payment["run_id"], "input": {"paid": True}}, headers=KIM
    )
    assert twice.status_code == 409


async def test_delete_of_a_running_run_is_409_and_erases_nothing(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """A run a process holds is refused with 409 RunIsRunningError; it stays as it was."""
    run = await start_refund(client)
    stored = await runs.store.get(run["run_id"])
    await runs.store.replace(
        dataclasses.replace(stored, status="running", lease_owner="elsewhere"),
        expected_version=stored.version,
    )
    response = await client.delete(f"/api/runs/{run['run_id']}", headers=KIM)
    assert response.status_code == 409
    assert response.json()["error"] == "RunIsRunningError"
    assert "nothing was erased" in response.json()["message"]
    assert (await client.get(f"/api/runs/{run['run_id']}", headers=KIM)).json()[
        "status"
    ] == "running"
