"""The OpenAPI document: valid, complete, and true to what the service does (schemathesis)."""

from __future__ import annotations

import asyncio
import copy
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import GenerationMode
from starlette.testclient import TestClient

from pausepoint import Runs, open_store
from pausepoint.server import create_app

from .conftest import KIM, TOKENS, all_charts

WRITES = {
    ("post", "/api/runs"),
    ("post", "/api/runs/{run_id}/resume"),
    ("post", "/api/runs/{run_id}/cancel"),
    ("post", "/api/runs/{run_id}/fork"),
    ("post", "/api/runs/{run_id}/retry"),
    ("delete", "/api/runs/{run_id}"),
    ("post", "/api/signals/{key}"),
    ("post", "/api/runs/resume-batch"),
}


def is_write(method: str, path: str) -> bool:
    return (method, path) in WRITES or (method == "post" and path.startswith("/api/charts/"))


async def openapi_of(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_document_is_valid_openapi(client: httpx.AsyncClient) -> None:
    """The document passes OpenAPI 3.1 meta-schema validation (and a broken one does not)."""
    document = await openapi_of(client)
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()
    broken = copy.deepcopy(document)
    broken["paths"]["/api/runs"]["get"]["responses"] = "nothing"
    with pytest.raises(Exception, match="nothing"):
        schemathesis.openapi.from_dict(broken).validate()


async def test_document_lists_every_route_with_typed_bodies(client: httpx.AsyncClient) -> None:
    """Every API route, typed request and response bodies, no HTML pages."""
    document = await openapi_of(client)
    paths = document["paths"]
    stage_routes = {p for p in paths if p.startswith("/api/charts/") and p.endswith("/resume")}
    assert set(paths) - stage_routes == {
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/resume",
        "/api/runs/{run_id}/cancel",
        "/api/runs/{run_id}/history",
        "/api/runs/{run_id}/fork",
        "/api/runs/{run_id}/retry",
        "/api/runs/resume-batch",
        "/api/signals/{key}",
        "/api/charts",
        "/api/charts/{name}",
    }
    assert "/api/charts/refund/stages/approve/resume" in stage_routes
    ref = "#/components/schemas/"
    ok = {
        ("post", "/api/runs"): ("201", "Run"),
        ("get", "/api/runs/{run_id}"): ("200", "Run"),
        ("post", "/api/runs/{run_id}/resume"): ("200", "Run"),
        ("post", "/api/runs/{run_id}/cancel"): ("200", "Run"),
        ("post", "/api/runs/{run_id}/fork"): ("201", "Run"),
        ("post", "/api/runs/{run_id}/retry"): ("200", "Run"),
        ("post", "/api/signals/{key}"): ("200", "SignalResult"),
        ("post", "/api/runs/resume-batch"): ("200", "BatchResponse"),
        ("get", "/api/charts"): ("200", "ChartList"),
        ("get", "/api/charts/{name}"): ("200", "Chart"),
    }
    for (method, path), (status, model) in ok.items():
        response = paths[path][method]["responses"][status]
        assert response["content"]["application/json"]["schema"] == {"$ref": ref + model}
    bodies = {
        ("post", "/api/runs"): "StartRequest",
        ("post", "/api/runs/{run_id}/resume"): "ResumeRequest",
        ("post", "/api/runs/{run_id}/fork"): "ForkRequest",
        ("post", "/api/runs/resume-batch"): "BatchRequest",
    }
    for (method, path), model in bodies.items():
        schema = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": ref + model}
    schemas = document["components"]["schemas"]
    assert set(schemas["Run"]["required"]) >= {"run_id", "chart", "status", "pause", "audit"}
    assert schemas["Pause"]["properties"]["id"]["type"] == "string"
    assert "HTTPValidationError" not in schemas  # every 422 uses the common error body
    listing = paths["/api/runs"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listing["schema"] == {
        "anyOf": [{"$ref": ref + "InboxPage"}, {"$ref": ref + "RunPage"}],
        "title": "Response List Runs Api Runs Get",
    }
    params = {p["name"]: p for p in paths["/api/runs"]["get"]["parameters"]}
    assert set(params) == {
        "status",
        "chart",
        "stage",
        "older_than",
        "limit",
        "cursor",
        "mine",
        "assignee",
    }
    cursor = params["cursor"]["schema"]["anyOf"][0]
    assert (cursor["minLength"], cursor["pattern"]) == (1, "^[A-Za-z0-9_-]+$")
    assert set(params["status"]["schema"]["anyOf"][0]["enum"]) >= {"failed", "completed"}
    resume_params = paths["/api/runs/{run_id}/resume"]["post"]["parameters"]
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= resume_params[1].items()


async def test_document_declares_errors_and_bearer_auth(client: httpx.AsyncClient) -> None:
    """Reads and writes need the bearer scheme and document 401; every error uses the Error body."""
    document = await openapi_of(client)
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token the service maps to an actor (who answers).",
        }
    }
    error = {"$ref": "#/components/schemas/Error"}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            write = is_write(method, path)
            assert "security" in operation, (method, path)  # reads need a token too
            codes = {c for c in operation["responses"] if c.startswith(("4", "5"))}
            if (method, path) == ("post", "/api/runs/resume-batch"):  # outcomes are per item
                assert codes == {"400", "401", "422", "503"}
            elif write and (path.endswith("/resume") or path.startswith("/api/signals/")):
                assert codes == {"401", "403", "404", "409", "422", "503"}  # 403: not assigned
            elif write:
                assert codes == {"401", "404", "409", "422", "503"}
            else:
                assert "401" in codes, (method, path)
            for code in codes:
                content = operation["responses"][code]["content"]["application/json"]
                assert content["schema"] == error, (method, path, code)
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "message"]


# -- schemathesis: generated requests never get a 5xx, and answers fit the document ---------


# Loaded at import: schemathesis's lazy `from_fixture` does not work with this pytest.
_FUZZ_DIR = Path(tempfile.mkdtemp(prefix="pausepoint-fuzz-"))
_FUZZ_RUNS = Runs(open_store(f"sqlite:///{_FUZZ_DIR / 'runs.db'}"), all_charts())
_FUZZ_APP = create_app(_FUZZ_RUNS, TOKENS, session_secret="fuzz")
schema = schemathesis.openapi.from_asgi("/openapi.json", _FUZZ_APP)


@pytest.fixture(scope="module", autouse=True)
def _fuzz_store_cleanup() -> Iterator[None]:
    yield
    asyncio.run(_FUZZ_RUNS.aclose())
    shutil.rmtree(_FUZZ_DIR, ignore_errors=True)


def _paused_run(chart: str) -> str:
    """Start a run to aim a generated request at (random ids would only ever get 404)."""
    with TestClient(_FUZZ_APP) as client:
        response = client.post("/api/runs", json={"chart": chart}, headers=KIM)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_fuzzed_requests_never_get_a_server_error(case: Any) -> None:
    """Generated requests, signed in, at real paused runs, every check: no 5xx, answers fit."""
    if case.path_parameters and "run_id" in case.path_parameters:
        chart = "parallel" if len(case.path_parameters["run_id"]) % 2 else "refund"
        case.path_parameters["run_id"] = _paused_run(chart)
    body = case.body if isinstance(case.body, dict) else {}
    stage_route = case.operation.path.startswith("/api/charts/")
    if stage_route and isinstance(body.get("run_id"), str):
        body["run_id"] = _paused_run(case.operation.path.split("/")[3])
    # Signed in as kim, unless the case's headers are the negative part (a missing or
    # mangled Authorization): then the request goes as generated and must be refused.
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    negative_header = header is not None and header.mode is GenerationMode.NEGATIVE
    response = case.call() if negative_header else case.call(headers=KIM)
    excluded = []
    if case.operation.path == "/api/runs/{run_id}/resume":
        # The generic route takes any JSON and checks it against whichever stage the run
        # is paused at (422 as designed); each stage's exact schema is its own route,
        # POST /api/charts/{chart}/stages/{stage}/resume, fuzzed with every check.
        excluded.append(schemathesis.checks.positive_data_acceptance)
    if case.operation.path == "/api/runs" and case.method.upper() == "GET":
        # A valid-looking `assignee` no token names is 400 by design; which names the
        # tokens know is not published in the document.
        excluded.append(schemathesis.checks.positive_data_acceptance)
    if stage_route:
        # Answers are validated as Runs.resume validates them, by pydantic in lax mode:
        # 0 passes for false and a timestamp for a date, though the schema says otherwise.
        excluded.append(schemathesis.checks.negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded)
