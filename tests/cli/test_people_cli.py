"""Who may read and answer, from the command line: serve's tokens, ls --mine, resume --group."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint.cli._serve import parse_tokens
from pausepoint.durable.people import Actor

MODULE = "pp_people_charts"

SOURCE = '''
"""An approval assigned to the managers, and one anyone may answer."""

from pausepoint import PausableHandler, flow_chart


def ask(scope):
    return {"question": "Pay it?"}


def apply(scope, answer):
    scope.approved = answer["approved"]


def approval(assignees):
    return (
        flow_chart("Receive", lambda scope: None, "receive")
        .add_pausable_function(
            "Approve", PausableHandler(ask, apply), "approve", assignees=assignees
        )
        .build()
    )


charts = {"approval": approval(["managers"]), "anyone": approval(None)}
'''


@pytest.fixture
def people_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield MODULE
    sys.modules.pop(MODULE, None)


def start(cli: Any, module: str, chart: str = "approval") -> str:
    outcome = cli("run", chart, "--charts", module, "--json")
    assert outcome.code == 0, outcome.stderr
    return str(outcome.json()["run_id"])


# -- ls --mine and resume --as/--group ------------------------------------------------------


def test_ls_mine_lists_what_is_assigned_to_me(cli: Any, people_module: str) -> None:
    assigned = start(cli, people_module)
    unassigned = start(cli, people_module, "anyone")
    mine = cli("ls", "--mine", "--as", "kim", "--group", "managers", "--json").json()
    assert [i["run_id"] for i in mine["items"]] == [assigned]
    assert mine["items"][0]["pause"]["assignees"] == ["managers"]
    assert cli("ls", "--mine", "--as", "lee", "-g", "finance", "--json").json()["items"] == []
    by_name = cli("ls", "--mine", "--as", "managers", "--json").json()  # a name is a principal
    assert [i["run_id"] for i in by_name["items"]] == [assigned]
    every = cli("ls", "--json").json()
    assert {i["run_id"] for i in every["items"]} == {assigned, unassigned}
    table = cli("ls", "--mine", "--as", "lee", "--group", "finance")
    assert "Nothing waiting is assigned to you." in table.stdout
    table = cli("ls")
    assert "managers" in table.stdout
    assert "anyone" in table.stdout


def test_ls_mine_needs_who_you_are(cli: Any) -> None:
    assert "--mine needs who you are" in cli("ls", "--mine").error_line()
    assert "add --mine" in cli("ls", "--as", "kim").error_line()
    assert "inbox only" in cli("ls", "--mine", "--as", "kim", "--status", "all").error_line()


def test_resume_checks_the_name_and_groups(cli: Any, people_module: str) -> None:
    """--as lee --group finance is refused (exit 1, audited, still paused); a manager answers."""
    run_id = start(cli, people_module)
    answer = '{"approved": true}'
    refused = cli(
        "resume", run_id, "-i", answer, "--as", "lee", "--group", "finance",
        "--charts", people_module,
    )  # fmt: skip
    assert refused.code == 1
    line = refused.error_line()
    assert "not assigned" in line
    assert "managers" in line
    shown = cli("show", run_id, "--json").json()
    assert shown["status"] == "paused"
    assert [e["actor"] for e in shown["audit"] if e["kind"] == "resume_refused"] == ["lee"]
    done = cli(
        "resume", run_id, "-i", answer, "--actor", "kim", "--group", "managers",
        "--charts", people_module, "--json",
    )  # fmt: skip
    assert done.code == 0, done.stderr
    assert done.json()["status"] == "completed"


def test_resume_as_admin_answers_any_pause(cli: Any, people_module: str) -> None:
    run_id = start(cli, people_module)
    outcome = cli(
        "resume", run_id, "-i", '{"approved": false}', "--as", "ana", "-g", "admin",
        "--charts", people_module, "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.stderr


# -- serve ------------------------------------------------------------------------------


def test_parse_tokens_reads_groups_from_options_and_the_environment() -> None:
    found = parse_tokens(["t3=ana:admin"], "t1=kim:managers,finance,t2=lee\nt4=bo:ops;t5=cy")
    assert found == {
        "t1": Actor("kim", ["managers", "finance"]),
        "t2": Actor("lee"),
        "t3": Actor("ana", ["admin"]),
        "t4": Actor("bo", ["ops"]),
        "t5": Actor("cy"),
    }


class FakeServer:
    """Stands in for pausepoint.server and uvicorn: records what serve hands them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, real: bool = False) -> None:
        self.seen: dict[str, Any] = {}
        if real:
            from pausepoint import server

            create = server.create_app

            def create_app(runs: Any, **kwargs: Any) -> Any:
                self.seen.update(kwargs)
                return create(runs, **kwargs)
        else:

            def create_app(runs: Any, **kwargs: Any) -> Any:
                self.seen.update(kwargs)
                return "the-app"

        monkeypatch.setitem(
            sys.modules, "pausepoint.server", types.SimpleNamespace(create_app=create_app)
        )
        monkeypatch.setitem(
            sys.modules, "uvicorn", types.SimpleNamespace(run=lambda app, host, port: None)
        )


def test_serve_takes_tokens_from_a_file_the_environment_and_options(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeServer(monkeypatch)
    tokens_file = tmp_path / "tokens.txt"
    tokens_file.write_text("# reviewers\nk1=kim:managers\n\nl1=lee:finance\n")
    monkeypatch.setenv("PAUSEPOINT_TOKENS", "e1=eve:audit")
    outcome = cli("serve", "--tokens-file", str(tokens_file), "--token", "o1=oz")
    assert outcome.code == 0, outcome.stderr
    tokens = fake.seen["tokens"]
    assert tokens.actor_for("k1") == Actor("kim", ["managers"])
    assert tokens.actor_for("l1") == Actor("lee", ["finance"])
    assert tokens.actor_for("e1") == Actor("eve", ["audit"])
    assert tokens.actor_for("o1") == Actor("oz")
    assert fake.seen["public_read"] is False
    assert "session_secret" not in fake.seen
    tokens_file.write_text("k1=kim:managers\n")  # the server reads the file again
    assert tokens.actor_for("l1") is None


def test_serve_reads_the_tokens_file_from_the_environment(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeServer(monkeypatch)
    (tmp_path / "t.txt").write_text("k1=kim\n")
    monkeypatch.setenv("PAUSEPOINT_TOKENS_FILE", str(tmp_path / "t.txt"))
    assert cli("serve").code == 0
    assert fake.seen["tokens"].actor_for("k1") == Actor("kim")


def test_a_malformed_tokens_file_is_a_usage_error_with_the_line(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    FakeServer(monkeypatch)
    path = tmp_path / "tokens.txt"
    path.write_text("k1=kim\n# fine\nk2=lee:\n")
    outcome = cli("serve", "--tokens-file", str(path))
    assert outcome.code == 2
    assert "line 3" in outcome.stderr
    assert "k2" not in outcome.stderr
    bad = cli("serve", "--token", "k9=kim:a b")
    assert bad.code == 2
    assert "groups of 'kim'" in bad.stderr


def test_serve_session_secrets_and_public_read(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several keys, oldest first (the last signs): options, or the variable, newest last."""
    fake = FakeServer(monkeypatch)
    assert (
        cli("serve", "--session-secret", "old", "--session-secret", "new", "--public-read").code
        == 0
    )
    assert fake.seen["session_secret"] == ["old", "new"]
    assert fake.seen["public_read"] is True
    monkeypatch.setenv("PAUSEPOINT_SESSION_SECRETS", "old, new")
    monkeypatch.setenv("PAUSEPOINT_SESSION_SECRET", "ignored")
    assert cli("serve").code == 0
    assert fake.seen["session_secret"] == ["old", "new"]
    monkeypatch.delenv("PAUSEPOINT_SESSION_SECRETS")
    assert cli("serve").code == 0
    assert fake.seen["session_secret"] == ["ignored"]


def test_serve_refuses_a_chart_assigned_to_a_group_no_token_has(
    cli: Any, monkeypatch: pytest.MonkeyPatch, people_module: str
) -> None:
    FakeServer(monkeypatch, real=True)
    outcome = cli("serve", "--charts", people_module, "--token", "k1=kim:manager")
    assert outcome.code == 1
    line = outcome.error_line()
    assert "chart 'approval', stage 'approve'" in line
    assert "'managers'" in line
    assert "known: admin, kim, manager" in line
    ok = cli("serve", "--charts", people_module, "--token", "k1=kim:managers")
    assert ok.code == 0, ok.stderr
