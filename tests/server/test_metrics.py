"""GET /metrics: the metric names and labels DESIGN.md pins, after a scripted workload."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from pausepoint import PausableHandler, Runs, flow_chart, open_store
from pausepoint.durable._observe import remove_observer
from pausepoint.metrics import OBSERVER

from .conftest import KIM, all_charts, make_client

ANSWER = {"approved": True, "approver": "Kim", "note": "ok"}

PINNED = {
    "pausepoint_runs": ("counter", {"chart", "status"}),
    "pausepoint_pauses_waiting": ("gauge", {"chart", "stage"}),
    "pausepoint_oldest_pause_age_seconds": ("gauge", {"chart"}),
    "pausepoint_stage_duration_seconds": ("histogram", {"chart", "stage"}),
    "pausepoint_resume_duration_seconds": ("histogram", {"chart"}),
    "pausepoint_claims_lost": ("counter", set()),
    "pausepoint_recoveries": ("counter", set()),
}


def explode(scope: Any) -> None:
    raise RuntimeError("the ledger is on fire")


def ask_each(scope: Any) -> dict[str, Any]:
    return {"question": f"Check {scope.item}?"}


def keep(scope: Any, answer: Any) -> None:
    scope.result = answer


FRAGILE = flow_chart("Explode", explode, "explode").build()
ITEM = flow_chart("Check", PausableHandler(execute=ask_each, resume=keep), "check").build()
BATCH = (
    flow_chart("Load", lambda scope: None, "load")
    .add_for_each("items", "items", ITEM, "Items")
    .build()
)


@pytest.fixture
def no_metrics_observer() -> Iterator[None]:
    yield
    remove_observer(OBSERVER)


@pytest.fixture
async def client(tmp_path: Path, no_metrics_observer: None) -> AsyncIterator[httpx.AsyncClient]:
    charts = {**all_charts(), "fragile": FRAGILE, "batch": BATCH}
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    async with Runs(store, charts) as runs, make_client(runs) as opened:
        yield opened


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def scrape(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


async def test_metrics_after_a_workload(client: httpx.AsyncClient) -> None:
    """Every pinned metric is there with its labels, and counts what the workload did."""
    before_started = sample("pausepoint_runs_total", chart="refund", status="started")
    before_completed = sample("pausepoint_runs_total", chart="refund", status="completed")
    before_failed = sample("pausepoint_runs_total", chart="fragile", status="failed")
    before_resumes = sample("pausepoint_resume_duration_seconds_count", chart="refund")

    runs = []
    for _ in range(3):
        started = await client.post(
            "/api/runs", json={"chart": "refund", "input": {"amount": 900}}, headers=KIM
        )
        assert started.status_code == 201, started.text
        runs.append(started.json())
    resumed = await client.post(
        f"/api/runs/{runs[0]['run_id']}/resume", json={"input": ANSWER}, headers=KIM
    )
    assert resumed.json()["status"] == "completed"
    cancelled = await client.post(
        f"/api/runs/{runs[1]['run_id']}/cancel", json={"reason": "dup"}, headers=KIM
    )
    assert cancelled.json()["status"] == "cancelled"
    failed = await client.post("/api/runs", json={"chart": "fragile"}, headers=KIM)
    assert failed.json()["status"] == "failed"
    batch = await client.post(
        "/api/runs", json={"chart": "batch", "input": {"items": ["a", "b"]}}, headers=KIM
    )
    assert batch.json()["status"] == "paused"

    families = await scrape(client)
    for name, (kind, labels) in PINNED.items():
        assert name in families, name
        assert families[name].type == kind, name
        for found in families[name].samples:
            assert set(found.labels) - {"le"} == labels, (name, found.labels)

    assert sample("pausepoint_runs_total", chart="refund", status="started") == before_started + 3
    assert (
        sample("pausepoint_runs_total", chart="refund", status="completed") == before_completed + 1
    )
    assert sample("pausepoint_runs_total", chart="refund", status="cancelled") >= 1
    assert sample("pausepoint_runs_total", chart="fragile", status="failed") == before_failed + 1
    assert sample("pausepoint_resume_duration_seconds_count", chart="refund") == before_resumes + 1
    assert sample("pausepoint_stage_duration_seconds_count", chart="refund", stage="process") >= 1

    waiting = {
        (s.labels["chart"], s.labels["stage"]): s.value
        for s in families["pausepoint_pauses_waiting"].samples
    }
    # one refund still waits; the for-each items' keys are blanked in the stage label
    assert waiting == {("refund", "approve"): 1, ("batch", "items[]/check"): 2}
    ages = {
        s.labels["chart"]: s.value for s in families["pausepoint_oldest_pause_age_seconds"].samples
    }
    assert set(ages) == {"refund", "batch"}
    assert all(age >= 0 for age in ages.values())


async def test_metrics_is_public_and_not_in_the_api_document(client: httpx.AsyncClient) -> None:
    """Prometheus scrapes without a token; /metrics is no part of the OpenAPI document."""
    assert (await client.get("/metrics")).status_code == 200
    document = (await client.get("/openapi.json")).json()
    assert "/metrics" not in document["paths"]


def test_the_grafana_dashboard_uses_only_exported_metrics() -> None:
    """Every metric the dashboard in docs/ queries is one pausepoint exports."""
    import json
    import re

    dashboard = json.loads(
        (Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text()
    )
    queried = {
        re.sub(r"_(bucket|total|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"pausepoint_\w+", target["expr"])
    }
    assert queried == set(PINNED)
