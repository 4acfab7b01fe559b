"""``pausepoint doctor``: one line per check, exit 1 with one ``problem`` line per problem."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pausepoint.demo import charts as demo_charts
from pausepoint.stores.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from stores.support import require_server

RABBITMQ_URL = os.environ.get("PAUSEPOINT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
NOTHING_LISTENS = "127.0.0.1:9"


def problems(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("problem")]


def test_doctor_passes_a_healthy_deployment(cli: Any, store_url: str) -> None:
    """A reachable store and loadable charts: every line is ok, with fingerprints, exit 0."""
    outcome = cli("doctor", "--store", store_url)
    assert outcome.code == 0, outcome.stdout
    lines = outcome.stdout.splitlines()
    assert all(line.startswith("ok ") for line in lines), lines
    fingerprint = demo_charts["refund"].fingerprint[:16]
    assert f"ok       chart refund: fingerprint {fingerprint}" in lines
    latest = len(SQLITE_MIGRATIONS)
    assert any(f"reachable, schema version {latest}, up to date" in line for line in lines)


def test_doctor_reports_each_problem_on_one_line(cli: Any) -> None:
    """Unloadable charts, an unreachable store and broker: three problem lines, exit 1."""
    outcome = cli(
        "doctor",
        "--store",
        f"redis://{NOTHING_LISTENS}/0",
        "--charts",
        "no_such_charts_module",
        "--broker",
        f"amqp://guest:guest@{NOTHING_LISTENS}//",
    )
    assert outcome.code == 1
    found = problems(outcome.stdout)
    assert len(found) == 3, outcome.stdout
    assert "no_such_charts_module" in found[0]
    assert f"store redis://{NOTHING_LISTENS}/0" in found[1]
    assert "broker amqp://guest:**@" in found[2]
    assert "Traceback" not in outcome.stdout + outcome.stderr


def test_doctor_finds_waiting_runs_without_their_chart(cli: Any, charts_module: str) -> None:
    """A run waiting under a chart the deployment no longer loads is a problem."""
    started = cli("run", "review", "--charts", charts_module, "--input", '{"item": "A"}')
    assert started.code == 0, started.stderr
    outcome = cli("doctor")  # the demo charts only
    assert outcome.code == 1
    assert problems(outcome.stdout) == [
        "problem  chart review: 1 waiting run(s) of it, but no such chart is loaded"
    ]
    assert cli("doctor", "--charts", charts_module).code == 0


def test_doctor_finds_waiting_runs_of_a_changed_chart(
    cli: Any, charts_module: str, tmp_path: Any
) -> None:
    """A run paused under another fingerprint of its chart is a problem."""
    assert cli("run", "review", "--charts", charts_module, "--input", '{"item": "A"}').code == 0
    (tmp_path / "changed_charts.py").write_text(
        "from pausepoint import flow_chart\n"
        "review = flow_chart('Other', lambda scope: None, 'other').build()\n"
        "charts = {'review': review}\n"
    )
    outcome = cli("doctor", "--charts", "changed_charts")
    assert outcome.code == 1
    [line] = problems(outcome.stdout)
    assert line.startswith(
        "problem  chart review: 1 waiting run(s) paused under another fingerprint"
    )


@pytest.mark.rabbitmq
def test_doctor_checks_a_reachable_broker(cli: Any, store_url: str) -> None:
    """--broker names a broker that answers: an ok line, and the password is not printed."""
    require_server(RABBITMQ_URL, "PAUSEPOINT_TEST_RABBITMQ_URL")
    outcome = cli("doctor", "--store", store_url, "--broker", RABBITMQ_URL)
    assert outcome.code == 0, outcome.stdout
    assert any(line.startswith("ok       broker amqp://") for line in outcome.stdout.splitlines())
