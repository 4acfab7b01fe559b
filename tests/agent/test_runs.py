"""Agents through Runs: the inbox, other processes, exactly once, the HTTP API and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from pausepoint import FlowChartExecutor, Runs, open_store
from pausepoint.cli import app
from pausepoint.errors import RunAlreadyClaimedError
from pausepoint.server import create_app

from .charts import charts

CHILD = Path(__file__).with_name("agent_child.py")
TOKENS = {"tok-kim": "kim"}
KIM = {"Authorization": "Bearer tok-kim"}


def child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run agent_child.py in a fresh interpreter; return its JSON line."""
    done = subprocess.run(
        [sys.executable, str(CHILD), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return outcome


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[Runs]:
    async with Runs(open_store(store_url), charts) as opened:
        yield opened


async def test_ask_human_round_trip_through_json_and_a_fresh_process(tmp_path: Path) -> None:
    """Pause here, write the checkpoint as JSON, answer it in a new interpreter."""
    executor = FlowChartExecutor(charts["ask"])
    assert await executor.run({"prompt": "Paint my bike"}) == "paused"
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(executor.get_checkpoint()))

    outcome = child("file", str(saved), json.dumps({"answer": "orange"}))
    assert outcome["pid"] != os.getpid()
    assert outcome["status"] == "completed"
    assert outcome["answer"] == "Painting the bike orange."
    assert 'Ask human paused: "Which colour should the bike be?"' in outcome["narrative"]
    assert outcome["transcript"][-2:] == [
        'Human answered: "orange"',
        "Model: Painting the bike orange.",
    ]


async def test_the_question_is_in_the_inbox_with_its_answer_schema(runs: Runs) -> None:
    """runs.pending lists the agent's pause; its stage declares the approval form's schema."""
    record = await runs.start("refund", {"prompt": "ORD-1 arrived broken"}, actor="shop")
    assert record.status == "paused"
    page = await runs.pending(chart="refund")
    [item] = page.items
    assert item.run_id == record.run_id
    assert item.pause.stage_id == "tools[call_b]/approve_refund_order"
    assert item.pause.data["question"] == 'Approve refund_order(order_id="ORD-1", amount=900.0)?'
    schema = runs.input_schema("refund", item.pause.stage_id)
    assert schema is not None
    assert schema["properties"]["decision"]["enum"] == ["approve", "edit", "reject"]
    assert schema["required"] == ["decision"]
    ask = await runs.start("ask", {"prompt": "Paint it"})
    assert ask.pause is not None
    assert runs.input_schema("ask", ask.pause.stage_id) == {
        "description": "A person's answer to a question the agent asked with ``ask_human``.",
        "properties": {
            "answer": {
                "description": "Your answer. The agent reads it as the result of its question.",
                "minLength": 1,
                "title": "Answer",
                "type": "string",
            }
        },
        "required": ["answer"],
        "title": "HumanAnswer",
        "type": "object",
    }


async def test_a_paused_agent_resumes_in_another_process_exactly_once(
    runs: Runs, store_url: str, tmp_path: Path
) -> None:
    """A second process answers through Runs; answering that pause again is refused; one refund."""
    side_log = tmp_path / "side.log"
    env = {**os.environ, "AGENT_SIDE_LOG": str(side_log)}
    record = await runs.start("refund", {"prompt": "ORD-1 arrived broken"})
    assert record.pause is not None
    answer = json.dumps({"decision": "approve"})
    args = ("runs", store_url, "refund", record.run_id, record.pause.id, answer)
    first = child(*args, "kim", env=env)
    assert first["status"] == "completed"
    assert first["answer"].startswith("Done. A human approved this call.")
    second = child(*args, "lee", env=env)
    assert second["error"] == "RunAlreadyClaimedError"
    assert "already resumed" in second["message"]
    with pytest.raises(RunAlreadyClaimedError):
        await runs.resume(record.run_id, {"decision": "approve"}, pause_id=record.pause.id)
    assert side_log.read_text() == "refund ORD-1 900.0\n"
    done = await runs.get(record.run_id)
    assert [(e.kind, e.actor) for e in done.audit if e.kind == "resumed"] == [("resumed", "kim")]


async def test_parallel_approvals_in_the_inbox_answered_in_reverse_from_two_processes(
    runs: Runs, store_url: str
) -> None:
    """Both pauses are listed; each process answers one, newest call first; then it completes."""
    record = await runs.start("pair", {"prompt": "Refund both"})
    by_call = {p.data["tool_call_id"]: p for p in record.pauses}
    assert sorted(by_call) == ["c1", "c2"]
    later = by_call["c2"]
    outcome = child(
        "runs",
        store_url,
        "pair",
        record.run_id,
        later.pause_id,
        json.dumps({"decision": "reject", "reason": "small"}),
        "kim",
    )
    assert outcome["status"] == "paused"
    assert outcome["pending"] == [by_call["c1"].stage_id]
    earlier = by_call["c1"]
    outcome = child(
        "runs",
        store_url,
        "pair",
        record.run_id,
        earlier.pause_id,
        json.dumps({"decision": "approve"}),
        "lee",
    )
    assert outcome["status"] == "completed"
    assert "A human rejected this call; it did not run. Reason: small" in outcome["answer"]


async def test_the_agents_pause_is_answered_through_the_http_api(runs: Runs) -> None:
    """Inbox over HTTP shows the question; a resume with the answer completes the run."""
    app = create_app(runs, TOKENS, session_secret="test-secret", public_read=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        started = await client.post(
            "/api/runs", json={"chart": "ask", "input": {"prompt": "Paint my bike"}}, headers=KIM
        )
        assert started.status_code == 201, started.text
        run = started.json()
        listed = await client.get(
            "/api/runs", params={"status": "paused", "chart": "ask"}, headers=KIM
        )
        inbox = listed.json()
        [item] = inbox["items"]
        assert item["pause"]["data"]["question"] == "Which colour should the bike be?"
        assert item["pause"]["stage_id"] == "tools[call_1_0]/ask"

        refused = await client.post(
            f"/api/runs/{run['run_id']}/resume",
            json={"input": {"answer": ""}, "pause_id": item["pause"]["id"]},
            headers=KIM,
        )
        assert refused.status_code == 422

        resumed = await client.post(
            f"/api/runs/{run['run_id']}/resume",
            json={"input": {"answer": "blue"}, "pause_id": item["pause"]["id"]},
            headers=KIM,
        )
        assert resumed.status_code == 200, resumed.text
        done = resumed.json()
        assert done["status"] == "completed"
        assert done["snapshot"]["shared_state"]["answer"] == "Painting the bike blue."
        assert "Ask human resumed by input {answer}." in done["snapshot"]["narrative"]
        assert [e["actor"] for e in done["audit"] if e["kind"] == "resumed"] == ["kim"]

        page = await client.get(f"/runs/{run['run_id']}")
        assert page.status_code == 200
        assert "Painting the bike blue." in page.text


async def _signed_in_page(runs: Runs, run_id: str) -> str:
    import html
    import re

    app = create_app(runs, TOKENS, session_secret="test-secret")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        form = await client.get("/login")
        csrf = html.unescape(re.findall(r'name="csrf" value="([^"]*)"', form.text)[0])
        await client.post("/login", data={"token": "tok-kim", "csrf": csrf, "next": "/"})
        page = await client.get(f"/runs/{run_id}")
        assert page.status_code == 200
        return page.text


async def test_the_review_page_offers_approve_edit_reject(runs: Runs) -> None:
    """The approval form has a decision select, arguments as JSON text and a reason."""
    record = await runs.start("refund", {"prompt": "ORD-1 arrived broken"})
    page = await _signed_in_page(runs, record.run_id)
    assert 'name="field:decision"' in page
    assert 'name="field:arguments"' in page
    assert 'name="field:reason"' in page
    assert "Approve refund_order asks" in page
    # the chart marks the body stages each tool call went through, whatever its key
    assert re.search(r'<li class="taken"[^>]*>\s*<span class="name">Check call', page)
    assert re.search(r'<li class="paused"[^>]*>\s*<span class="name">Approve refund_order', page)


async def test_the_review_page_shows_the_agents_question(runs: Runs) -> None:
    """The page shows the proposed call, what the model said, and a form to answer."""
    record = await runs.start("refund", {"prompt": "ORD-1 arrived broken"})
    page = await _signed_in_page(runs, record.run_id)
    assert "Approve refund_order(order_id=&#34;ORD-1&#34;, amount=900.0)?" in page
    assert "The order qualifies; refunding in full." in page
    assert "<form" in page


def test_the_cli_lists_and_answers_agent_pauses(
    store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pausepoint run / ls / resume: the agent's approval shows in ls and is answered."""
    monkeypatch.setenv("PAUSEPOINT_STORE", store_url)
    monkeypatch.delenv("PAUSEPOINT_CHARTS", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def cli(*args: str) -> Any:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        return result

    started = cli(
        "run", "pair", "--charts", "agent.charts", "--input", '{"prompt": "Refund both"}', "--json"
    )
    run_id = json.loads(started.stdout)["run_id"]
    listing = cli("ls").stdout
    assert run_id in listing
    assert "Approve refund_order" in listing
    inbox = json.loads(cli("ls", "--json").stdout)["items"]
    assert {item["pause"]["stage_id"] for item in inbox} == {
        "tools[c1]/approve_refund_order",
        "tools[c2]/approve_refund_order",
    }
    record = json.loads(cli("show", run_id, "--json").stdout)
    for pause in reversed(record["pauses"]):
        cli(
            "resume",
            run_id,
            "--charts",
            "agent.charts",
            "--pause",
            pause["id"],
            "--input",
            '{"decision": "approve"}',
            "--as",
            "kim",
        )
    final = json.loads(cli("show", run_id, "--json").stdout)
    assert final["status"] == "completed"
