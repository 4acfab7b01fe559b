"""ls --status, purge, delete and sweep --retain through Typer's CliRunner."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .test_commands import ANSWER, start_refund


def finish(cli: Any, run_id: str) -> None:
    outcome = cli("resume", run_id, "--input", ANSWER, "--as", "kim", "--json")
    assert outcome.json()["status"] == "completed", outcome.stderr


def fail_one(cli: Any, charts_module: str) -> str:
    outcome = cli("run", "fragile", "--charts", charts_module, "--json")
    assert outcome.json()["status"] == "failed"
    return str(outcome.json()["run_id"])


def test_ls_status_lists_runs_of_that_status(cli: Any, charts_module: str) -> None:
    """--status failed lists failed runs with their stage and error; --status all every run."""
    failed = fail_one(cli, charts_module)
    waiting = start_refund(cli)
    listed = cli("ls", "--status", "failed", "--json").json()
    assert [(i["run_id"], i["status"], i["stage"]) for i in listed["items"]] == [
        (failed, "failed", "explode")
    ]
    assert listed["next_cursor"] is None
    table = cli("ls", "--status", "failed")
    assert table.code == 0, table.stderr
    assert failed in table.stdout
    assert "the ledger is on fire" in table.stdout
    everything = cli("ls", "--status", "all", "--limit", "1", "--json").json()
    assert [i["run_id"] for i in everything["items"]] == [waiting]
    assert everything["next_cursor"]
    rest = cli("ls", "--status", "all", "--cursor", everything["next_cursor"], "--json").json()
    assert [i["run_id"] for i in rest["items"]] == [failed]
    assert "No run is expired." in cli("ls", "--status", "expired").stdout


def test_ls_refuses_an_unknown_status_in_one_line(cli: Any) -> None:
    outcome = cli("ls", "--status", "done")
    assert outcome.code == 1
    assert "--status must be one of paused, running" in outcome.error_line()


def test_purge_erases_old_finished_runs_and_dry_run_only_counts(cli: Any) -> None:
    """--dry-run counts; a purge erases completed runs and leaves paused ones."""
    done = start_refund(cli)
    finish(cli, done)
    waiting = start_refund(cli)
    assert cli("purge", "--status", "completed", "--older-than", "30d").stdout.startswith(
        "erased 0 runs"
    )
    counted = cli("purge", "--status", "completed", "--dry-run", "--json").json()
    assert counted == {"purged": 0, "matched": 1, "dry_run": True}
    assert cli("show", done, "--json").code == 0
    assert "erased 1 run" in cli("purge", "--status", "completed", "--older-than", "0s").stdout
    assert cli("show", done).code == 1
    assert cli("show", waiting, "--json").json()["status"] == "paused"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("purge",), "a purge needs a filter"),
        (("purge", "--status", "running"), "running runs cannot be purged"),
        (("purge", "--older-than", "soon"), "--older-than 'soon' is not an age"),
    ],
)
def test_bad_purges_are_one_line_and_erase_nothing(
    cli: Any, args: tuple[str, ...], message: str
) -> None:
    done = start_refund(cli)
    finish(cli, done)
    outcome = cli(*args)
    assert outcome.code == 1
    assert message in outcome.error_line()
    assert cli("show", done, "--json").json()["status"] == "completed"


def test_delete_erases_a_run_and_refuses_an_unknown_one(cli: Any) -> None:
    run_id = start_refund(cli)
    outcome = cli("delete", run_id, "--as", "kim")
    assert outcome.code == 0, outcome.stderr
    assert f"deleted run {run_id}" in outcome.stdout
    assert "no run" in cli("show", run_id).error_line()
    assert "no run 'nope'" in cli("delete", "nope", "--as", "kim").error_line()


def test_sweep_applies_retain_options(cli: Any, charts_module: str) -> None:
    """--retain STATUS=AGE erases runs of that status unchanged that long; bad ones are refused."""
    failed = fail_one(cli, charts_module)
    kept = cli("sweep", "--charts", charts_module, "--retain", "failed=30d", "--json").json()
    assert kept["purged"] == 0
    time.sleep(0.05)
    swept = cli("sweep", "--charts", charts_module, "--retain", "fragile:failed=0.01s", "--json")
    assert swept.json() == {
        "expired": [],
        "recovered": [],
        "purged": 1,
        "escalated": [],
        "reminded": [],
        "notified": 0,
        "notify_retrying": 0,
        "notify_failed": 0,
    }
    assert cli("show", failed).code == 1
    bad = cli("sweep", "--retain", "running=1d")
    assert bad.code == 1
    assert "'running' is not a status runs can be purged in" in bad.error_line()
