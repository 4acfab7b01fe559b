"""pausepoint history, fork and retry, as a user runs them."""

from __future__ import annotations

from typing import Any

ANSWER = '{"approved": true, "approver": "Kim"}'


def paused_refund(cli: Any) -> str:
    record = cli("run", "refund", "--input", '{"amount": 900}', "--json").json()
    assert record["status"] == "paused"
    return str(record["run_id"])


def test_history_lists_the_steps_and_who_answered(cli: Any) -> None:
    run_id = paused_refund(cli)
    assert cli("resume", run_id, "--input", ANSWER, "--as", "kim").code == 0
    steps = cli("history", run_id, "--json").json()
    assert [(s["index"], s["kind"], s["stage_id"], s["actor"]) for s in steps] == [
        (0, "stage", "receive", None),
        (1, "paused", "approve", None),
        (2, "resumed", "approve", "kim"),
        (3, "stage", "process", None),
        (4, "stage", "notify", None),
    ]
    text = cli("history", run_id).stdout
    assert "resumed" in text
    assert "by kim" in text


def test_fork_at_the_pause_with_a_patch_waits_for_another_answer(cli: Any) -> None:
    run_id = paused_refund(cli)
    forked = cli("fork", run_id, "--at", "1", "--set", "amount=1200", "--as", "lee", "--json")
    assert forked.code == 0, forked.stderr
    child = forked.json()
    assert child["run_id"] != run_id
    assert child["status"] == "paused"
    assert child["audit"][0]["kind"] == "forked"
    assert child["audit"][0]["data"] == {"parent_run_id": run_id, "at": 1}
    assert child["snapshot"]["shared_state"]["amount"] == 1200
    done = cli("resume", child["run_id"], "--input", ANSWER, "--as", "kim", "--json").json()
    assert done["status"] == "completed"
    parent = cli("show", run_id, "--json").json()
    assert parent["status"] == "paused"
    assert parent["audit"][-1]["kind"] == "forked_to"


def test_bad_forks_and_retries_are_one_line_errors(cli: Any) -> None:
    run_id = paused_refund(cli)
    unknown = cli("fork", run_id, "--at", "7")
    assert unknown.code == 1
    assert "has no step 7; its steps are 0 to 1" in unknown.error_line()
    not_json = cli("fork", run_id, "--at", "0", "--set", "amount=lots")
    assert not_json.code == 1
    assert "--set amount: the value is not JSON" in not_json.error_line()
    not_failed = cli("retry", run_id)
    assert not_failed.code == 1
    assert "is paused; only a failed run can be retried" in not_failed.error_line()
    assert cli("show", run_id, "--json").json()["audit"][-1]["kind"] == "paused"


def test_sweep_takes_the_workers_lease(cli: Any) -> None:
    """--lease sets the lease of the runs a sweeper takes over; nonsense is refused."""
    assert cli("sweep", "--lease", "5", "--json").code == 0
    refused = cli("sweep", "--lease", "0")
    assert refused.code == 2
    assert "--lease" in refused.stderr
