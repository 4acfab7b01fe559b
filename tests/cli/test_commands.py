"""Each command through Typer's CliRunner: output, --json, and one-line errors."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from pausepoint.cli._serve import parse_tokens
from pausepoint.durable.people import Actor
from pausepoint.durable.runs import Runs

ANSWER = '{"approved": true, "approver": "Kim"}'


def start_refund(cli: Any, amount: int = 900) -> str:
    outcome = cli("run", "refund", "--input", f'{{"amount": {amount}}}', "--json")
    assert outcome.code == 0, outcome.stderr
    return str(outcome.json()["run_id"])


# -- help ----------------------------------------------------------------------


def test_help_lists_every_command(cli: Any) -> None:
    """--help names every command."""
    outcome = cli("--help")
    assert outcome.code == 0
    for command in (
        "demo",
        "run",
        "ls",
        "show",
        "resume",
        "cancel",
        "sweep",
        "purge",
        "delete",
        "serve",
    ):
        assert command in outcome.stdout


def test_charts_help_says_what_happens_without_charts(cli: Any) -> None:
    """The --charts help documents the default: the demo's refund chart."""
    outcome = cli("run", "--help")
    assert "pausepoint.demo" in outcome.stdout
    assert "PAUSEPOINT_CHARTS" in outcome.stdout


# -- run -----------------------------------------------------------------------


def test_run_pauses_and_says_how_to_answer(cli: Any) -> None:
    """A run that pauses prints the question, the expected fields and the resume command."""
    outcome = cli("run", "refund", "--input", '{"amount": 300, "order_id": "ORD-1"}')
    assert outcome.code == 0, outcome.stderr
    assert "paused" in outcome.stdout
    assert "Approve $300 refund for ORD-1?" in outcome.stdout
    assert "approved: boolean" in outcome.stdout
    assert "pausepoint resume " in outcome.stdout
    assert "--as NAME" in outcome.stdout


def test_run_json_is_the_run_record(cli: Any) -> None:
    """--json prints the run record: status, pause, snapshot, audit."""
    outcome = cli("run", "refund", "--input", '{"amount": 300}', "--run-id", "r-1", "--json")
    record = outcome.json()
    assert record["run_id"] == "r-1"
    assert record["chart"] == "refund"
    assert record["status"] == "paused"
    assert record["pause"]["stage_id"] == "approve"
    assert set(record["pause"]) == {
        "id",
        "stage_id",
        "data",
        "created_at",
        "deadline",
        "key",
        "assignees",
    }
    assert record["pauses"] == [record["pause"]]
    assert record["snapshot"]["shared_state"]["amount"] == 300
    assert [event["kind"] for event in record["audit"]] == ["started", "paused"]


def test_run_reads_input_from_a_file(cli: Any, tmp_path: Path) -> None:
    """--input @path reads the JSON from a file."""
    (tmp_path / "input.json").write_text('{"amount": 444}')
    record = cli("run", "refund", "--input", "@input.json", "--json").json()
    assert record["snapshot"]["shared_state"]["amount"] == 444


def test_run_reads_input_from_stdin(cli: Any) -> None:
    """--input @- reads the JSON from stdin."""
    record = cli("run", "refund", "--input", "@-", "--json", input='{"amount": 555}').json()
    assert record["snapshot"]["shared_state"]["amount"] == 555


def test_run_module_attribute_then_resume_with_that_module(cli: Any, charts_module: str) -> None:
    """A chart given as module:attribute runs under its attribute name; --charts finds it later."""
    record = cli(
        "run", f"{charts_module}:review", "--input", '{"item": "invoice"}', "--json"
    ).json()
    assert record["chart"] == "review"
    assert record["pause"]["data"] == {"question": "Review invoice?"}
    done = cli(
        "resume",
        record["run_id"],
        "--input",
        '{"verdict": "ok"}',
        "--as",
        "kim",
        "--charts",
        charts_module,
        "--json",
    )
    assert done.code == 0, done.stderr
    assert done.json()["snapshot"]["shared_state"]["verdict"] == "ok"


def test_run_of_a_failing_chart_exits_1_with_the_record(cli: Any, charts_module: str) -> None:
    """A run that fails still prints its record, then one error line and exit code 1."""
    outcome = cli("run", "fragile", "--charts", charts_module, "--json")
    assert outcome.code == 1
    assert outcome.json()["status"] == "failed"
    assert "the ledger is on fire" in outcome.error_line()


# -- ls ------------------------------------------------------------------------


def test_ls_shows_the_inbox_as_a_table(cli: Any) -> None:
    """ls lists each waiting run with chart, stage, question, age and deadline."""
    run_id = start_refund(cli, 700)
    outcome = cli("ls")
    assert outcome.code == 0
    for header in ("run", "chart", "stage", "question", "age", "deadline"):
        assert header in outcome.stdout
    assert run_id in outcome.stdout
    assert "Approve $700 refund" in outcome.stdout


def test_ls_on_an_empty_inbox_says_so(cli: Any) -> None:
    assert "No run is waiting" in cli("ls").stdout


def test_ls_json_pages_with_a_cursor(cli: Any) -> None:
    """--limit pages the inbox; --cursor gets the next page; together they list every run."""
    ids = {start_refund(cli, amount) for amount in (200, 300, 400)}
    first = cli("ls", "--limit", "2", "--json").json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = cli("ls", "--limit", "2", "--cursor", first["next_cursor"], "--json").json()
    assert second["next_cursor"] is None
    seen = {item["run_id"] for item in first["items"] + second["items"]}
    assert seen == ids
    assert first["items"][0]["pause"]["stage_id"] == "approve"


def test_ls_filters_by_chart_and_stage(cli: Any, charts_module: str) -> None:
    refund = start_refund(cli)
    cli("run", "review", "--charts", charts_module, "--input", '{"item": "x"}')
    only_refund = cli("ls", "--chart", "refund", "--json").json()["items"]
    assert [item["run_id"] for item in only_refund] == [refund]
    only_review = cli("ls", "--stage", "review", "--json").json()["items"]
    assert [item["chart"] for item in only_review] == ["review"]


def test_ls_human_output_prints_the_next_page_command(cli: Any) -> None:
    start_refund(cli, 200)
    start_refund(cli, 300)
    assert "pausepoint ls --cursor" in cli("ls", "--limit", "1").stdout


# -- show ------------------------------------------------------------------------


def test_show_prints_state_narrative_tree_and_audit(cli: Any) -> None:
    run_id = start_refund(cli)
    cli("resume", run_id, "--input", ANSWER, "--as", "kim")
    outcome = cli("show", run_id)
    assert outcome.code == 0
    out = outcome.stdout
    assert "completed" in out
    for section in ("State", "Narrative", "Execution tree", "Audit"):
        assert section in out
    assert '"refund_status": "refunded"' in out
    assert "ManagerApproval resumed by input" in out
    assert "├── ✓ ReceiveRequest (receive) done" in out
    assert "▶ ManagerApproval (approve) resumed" in out
    assert "resumed" in out
    assert "kim" in out


def test_show_json_is_the_full_record(cli: Any) -> None:
    run_id = start_refund(cli)
    record = cli("show", run_id, "--json").json()
    assert record["run_id"] == run_id
    assert record["status"] == "paused"
    assert record["snapshot"]["execution_tree"][0]["id"] == "receive"


def test_show_waiting_run_shows_the_question(cli: Any) -> None:
    run_id = start_refund(cli, 650)
    assert "Approve $650 refund" in cli("show", run_id).stdout


# -- resume ----------------------------------------------------------------------


def test_resume_completes_the_run_and_records_the_actor(cli: Any) -> None:
    run_id = start_refund(cli)
    outcome = cli("resume", run_id, "--input", ANSWER, "--as", "kim", "--json")
    assert outcome.code == 0, outcome.stderr
    record = outcome.json()
    assert record["status"] == "completed"
    resumed = [event for event in record["audit"] if event["kind"] == "resumed"]
    assert resumed[0]["actor"] == "kim"
    assert record["snapshot"]["shared_state"]["notified"] == "customer told: refund refunded by Kim"


def test_resume_human_output_tells_the_story(cli: Any) -> None:
    run_id = start_refund(cli)
    outcome = cli("resume", run_id, "--input", ANSWER, "--as", "kim")
    assert "completed" in outcome.stdout
    assert "NotifyCustomer wrote notified." in outcome.stdout


def test_resume_with_a_bad_answer_is_one_line_and_the_run_stays_paused(cli: Any) -> None:
    run_id = start_refund(cli)
    outcome = cli("resume", run_id, "--input", '{"approved": "perhaps"}', "--as", "kim")
    assert outcome.code == 1
    line = outcome.error_line()
    assert "does not fit RefundDecision" in line
    assert "approver" in line
    assert cli("show", run_id, "--json").json()["status"] == "paused"
    assert cli("resume", run_id, "--input", ANSWER, "--as", "kim").code == 0


def test_resume_twice_is_refused(cli: Any) -> None:
    run_id = start_refund(cli)
    assert cli("resume", run_id, "--input", ANSWER, "--as", "kim").code == 0
    again = cli("resume", run_id, "--input", ANSWER, "--as", "lee")
    assert again.code == 1
    assert "already resumed" in again.error_line()


def test_resume_names_the_pause(cli: Any) -> None:
    """--pause answers that pause; a pause id that is not pending is refused as stale."""
    record = cli("run", "refund", "--input", '{"amount": 900}', "--json").json()
    stale = cli("resume", record["run_id"], "--input", ANSWER, "--as", "kim", "--pause", "nope")
    assert stale.code == 1
    assert "no longer pending" in stale.error_line()
    done = cli(
        "resume",
        record["run_id"],
        "--input",
        ANSWER,
        "--as",
        "kim",
        "--pause",
        record["pause"]["id"],
        "--json",
    )
    assert done.json()["status"] == "completed"


def test_resume_without_the_chart_loaded_says_to_pass_charts(cli: Any, charts_module: str) -> None:
    run_id = cli("run", "review", "--charts", charts_module, "--json").json()["run_id"]
    outcome = cli("resume", run_id, "--input", '{"verdict": "ok"}', "--as", "kim")
    assert outcome.code == 1
    line = outcome.error_line()
    assert "'review'" in line
    assert "--charts" in line


def test_charts_from_the_environment(
    cli: Any, charts_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PAUSEPOINT_CHARTS stands in for --charts."""
    monkeypatch.setenv("PAUSEPOINT_CHARTS", charts_module)
    record = cli("run", "review", "--input", '{"item": "memo"}', "--json").json()
    assert record["chart"] == "review"
    assert cli("run", "refund").code == 1  # explicit charts replace the demo's


# -- cancel ----------------------------------------------------------------------


def test_cancel_records_who_and_why(cli: Any) -> None:
    run_id = start_refund(cli)
    outcome = cli("cancel", run_id, "--as", "kim", "--reason", "duplicate request", "--json")
    assert outcome.code == 0, outcome.stderr
    record = outcome.json()
    assert record["status"] == "cancelled"
    cancelled = record["audit"][-1]
    assert (cancelled["kind"], cancelled["actor"]) == ("cancelled", "kim")
    assert cancelled["data"]["reason"] == "duplicate request"
    assert cli("ls", "--json").json()["items"] == []
    assert "cancelled" in cli("cancel", start_refund(cli), "--as", "kim").stdout


def test_cancel_a_finished_run_is_refused(cli: Any) -> None:
    run_id = start_refund(cli)
    cli("resume", run_id, "--input", ANSWER, "--as", "kim")
    outcome = cli("cancel", run_id, "--as", "kim")
    assert outcome.code == 1
    assert "only a paused run can be cancelled" in outcome.error_line()


# -- sweep -----------------------------------------------------------------------


def test_sweep_expires_an_overdue_pause(cli: Any, charts_module: str) -> None:
    run_id = cli(
        "run", "timed", "--charts", charts_module, "--input", '{"item": "x"}', "--json"
    ).json()["run_id"]
    time.sleep(0.1)
    outcome = cli("sweep", "--charts", charts_module, "--json")
    assert outcome.code == 0, outcome.stderr
    assert outcome.json() == {
        "expired": [run_id],
        "recovered": [],
        "purged": 0,
        "escalated": [],
        "reminded": [],
        "notified": 0,
        "notify_retrying": 0,
        "notify_failed": 0,
    }
    assert cli("show", run_id, "--json").json()["status"] == "expired"
    assert "expired 0" in cli("sweep", "--charts", charts_module).stdout


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("show", "nope"),
        ("resume", "nope", "--input", "{}", "--as", "kim"),
        ("cancel", "nope", "--as", "kim"),
    ],
)
def test_unknown_run_is_one_line(cli: Any, args: tuple[str, ...]) -> None:
    outcome = cli(*args)
    assert outcome.code == 1
    assert "no run 'nope'" in outcome.error_line()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "refund", "--input", "{bad"), "is not valid JSON"),
        (("run", "refund", "--input", "[1, 2]"), "must be a JSON object"),
        (("run", "refund", "--input", "@missing.json"), "cannot read 'missing.json'"),
        (("run", "nope"), "no chart named 'nope'"),
        (("run", "no_such_module:chart"), "no such module"),
        (("run", "pausepoint.demo:nothing"), "is not a built chart"),
        (("run", "refund", "--charts", "no_such_module"), "no such module"),
        (("ls", "--store", "ftp://example"), "no store for URL scheme 'ftp'"),
        (("resume", "x", "--input", "{bad", "--as", "kim"), "is not valid JSON"),
        (("demo", "--store", "memory://"), "cannot see a memory:// store"),
    ],
)
def test_user_mistakes_are_one_line(cli: Any, args: tuple[str, ...], message: str) -> None:
    outcome = cli(*args)
    assert outcome.code == 1
    assert message in outcome.error_line()


@pytest.mark.parametrize(
    "args",
    [
        ("resume", "some-run", "--input", "{}"),  # --as missing
        ("run",),  # CHART missing
        ("ls", "--limit", "0"),
        ("nonsense",),
    ],
)
def test_usage_errors_exit_2(cli: Any, args: tuple[str, ...]) -> None:
    outcome = cli(*args)
    assert outcome.code == 2
    assert "Traceback" not in outcome.stderr


# -- serve -----------------------------------------------------------------------


def test_parse_tokens_reads_options_and_environment() -> None:
    assert parse_tokens(["t2=lee"], "t1=kim, t3=ana") == {
        "t1": Actor("kim"),
        "t3": Actor("ana"),
        "t2": Actor("lee"),
    }


def test_serve_with_a_malformed_token_is_a_usage_error(cli: Any) -> None:
    assert cli("serve", "--token", "no-actor").code == 2


def test_serve_without_the_server_extra_says_what_to_install(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pausepoint.server", None)
    outcome = cli("serve")
    assert outcome.code == 1
    assert "pip install 'pausepoint[server]'" in outcome.error_line()


def test_serve_builds_the_app_and_runs_uvicorn(
    cli: Any, monkeypatch: pytest.MonkeyPatch, charts_module: str
) -> None:
    """serve hands Runs (with the loaded charts) and the tokens to create_app, then uvicorn."""
    seen: dict[str, Any] = {}

    def create_app(runs: Runs, *, tokens: Any, **options: Any) -> str:
        seen["charts"], seen["options"] = sorted(runs.charts), options
        seen["tokens"] = {t: tokens.actor_for(t) for t in ("t1", "t2")} | {"count": len(tokens)}
        return "the-app"

    def run(app: str, *, host: str, port: int) -> None:
        seen["run"] = (app, host, port)

    monkeypatch.setitem(
        sys.modules, "pausepoint.server", types.SimpleNamespace(create_app=create_app)
    )
    monkeypatch.setitem(sys.modules, "uvicorn", types.SimpleNamespace(run=run))
    monkeypatch.setenv("PAUSEPOINT_TOKENS", "t1=kim")
    outcome = cli(
        "serve",
        "--charts",
        charts_module,
        "--token",
        "t2=lee",
        "--host",
        "0.0.0.0",
        "--port",
        "9001",
    )
    assert outcome.code == 0, outcome.stderr
    assert seen == {
        "charts": ["fragile", "review", "timed"],
        "options": {"public_read": False},
        "tokens": {"t1": Actor("kim"), "t2": Actor("lee"), "count": 2},
        "run": ("the-app", "0.0.0.0", 9001),
    }


def test_serve_without_tokens_warns_that_it_is_read_only(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules,
        "pausepoint.server",
        types.SimpleNamespace(create_app=lambda runs, tokens, **options: None),
    )
    monkeypatch.setitem(
        sys.modules, "uvicorn", types.SimpleNamespace(run=lambda app, host, port: None)
    )
    outcome = cli("serve")
    assert outcome.code == 0
    assert "read-only" in outcome.stderr
