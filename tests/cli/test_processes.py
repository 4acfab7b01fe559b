"""The CLI as a user runs it: ``python -m pausepoint`` in real, separate processes."""

from __future__ import annotations

import importlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ANSWER = '{"approved": false, "approver": "Lee"}'


def test_demo_runs_end_to_end_across_two_processes(pp: Any, tmp_path: Path) -> None:
    """demo starts, pauses, resumes in a new process and tells the whole story."""
    outcome = pp("demo")
    assert outcome.code == 0, outcome.stderr
    out = outcome.stdout
    assert "paused at approve: Approve $900 refund for ORD-2024-7891?" in out
    assert "answered as kim" in out
    assert "run completed" in out
    assert "NotifyCustomer wrote notified." in out
    assert "customer told: refund refunded by Kim" in out
    assert (tmp_path / "pausepoint-demo.db").exists()  # the demo's own file, not PAUSEPOINT_STORE
    assert not (tmp_path / "runs.db").exists()
    run_id = out.split("Look closer: pausepoint show ")[1].split()[0]
    shown = pp("show", run_id, "--store", "sqlite:///pausepoint-demo.db", "--json")
    assert shown.json()["status"] == "completed"


def test_demo_json_reports_two_processes(pp: Any, store_url: str) -> None:
    outcome = pp("demo", "--store", store_url, "--json")
    assert outcome.code == 0, outcome.stderr
    report = outcome.json()
    assert report["paused"]["status"] == "paused"
    assert report["final"]["status"] == "completed"
    assert report["started_in_pid"] != report["resumed_in_pid"]
    resumed = [e for e in report["final"]["audit"] if e["kind"] == "resumed"]
    assert resumed[0]["actor"] == "kim"


def test_run_ls_resume_show_each_in_its_own_process(pp: Any) -> None:
    started = pp("run", "refund", "--input", '{"amount": 250, "order_id": "ORD-7"}', "--json")
    assert started.code == 0, started.stderr
    run_id = started.json()["run_id"]

    listed = pp("ls")
    assert run_id in listed.stdout
    assert "Approve $250 refund for ORD-7?" in listed.stdout

    resumed = pp("resume", run_id, "--input", ANSWER, "--as", "lee")
    assert resumed.code == 0, resumed.stderr
    assert "completed" in resumed.stdout

    shown = pp("show", run_id)
    assert "completed" in shown.stdout
    assert "ProcessRefund wrote refund_status." in shown.stdout
    assert '"refund_status": "rejected"' in shown.stdout
    assert pp("ls", "--json").json()["items"] == []


def test_cancel_in_a_new_process(pp: Any) -> None:
    run_id = pp("run", "refund", "--json").json()["run_id"]
    cancelled = pp("cancel", run_id, "--as", "kim", "--reason", "customer withdrew", "--json")
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json()["status"] == "cancelled"
    record = pp("show", run_id, "--json").json()
    assert record["status"] == "cancelled"
    assert record["audit"][-1]["data"]["reason"] == "customer withdrew"


def test_sweep_expires_a_timed_out_pause(pp: Any) -> None:
    """A pause with timeout=0.05 and OnTimeout.cancel() is expired by sweep in another process."""
    started = pp("run", "timed", "--charts", "pp_cli_charts", "--input", '{"item": "x"}', "--json")
    assert started.code == 0, started.stderr
    run_id = started.json()["run_id"]
    time.sleep(0.1)
    swept = pp("sweep", "--charts", "pp_cli_charts", "--json")
    assert swept.code == 0, swept.stderr
    assert swept.json() == {
        "expired": [run_id],
        "recovered": [],
        "purged": 0,
        "escalated": [],
        "reminded": [],
        "notified": 0,
        "notify_retrying": 0,
        "notify_failed": 0,
    }
    record = pp("show", run_id, "--json").json()
    assert record["status"] == "expired"
    assert record["audit"][-1]["kind"] == "expired"


def test_sweep_every_stops_cleanly_on_ctrl_c(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """sweep --every loops, one JSON line per pass, until SIGINT; then exits 0 without a traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pausepoint", "sweep", "--every", "0.05", "--json"],
        cwd=tmp_path,
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
        assert (
            json.loads(first)
            == json.loads(second)
            == {
                "expired": [],
                "recovered": [],
                "purged": 0,
                "escalated": [],
                "reminded": [],
                "notified": 0,
                "notify_retrying": 0,
                "notify_failed": 0,
            }
        )
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "stopped" in errors
    assert "Traceback" not in errors


def test_user_error_in_a_process_is_one_line_without_traceback(pp: Any) -> None:
    outcome = pp("resume", "missing-run", "--input", "{}", "--as", "kim")
    assert outcome.code == 1
    assert outcome.error_line().startswith("error: no run 'missing-run'")
    assert outcome.stdout == ""


def test_python_m_pausepoint_cli_works_too(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pausepoint.cli", "ls", "--json"],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"items": [], "next_cursor": None}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def _serve(cwd: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``pausepoint serve`` on a free port; return the process and its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pausepoint", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return server, f"http://127.0.0.1:{port}"


def _first_answer(server: subprocess.Popen[str], url: str) -> tuple[int, Any]:
    """GET ``url`` once the server listens (within 20 s), as ``_get_json`` does."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return _get_json(url)
        except (urllib.error.URLError, ConnectionError):
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "serve did not start listening"
            time.sleep(0.1)


def test_serve_answers_http_and_shares_the_store_with_the_cli(
    pp: Any, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """serve starts uvicorn on the store: a run the CLI started is in its inbox; Ctrl-C stops it."""
    try:
        importlib.import_module("pausepoint.server")
    except ImportError as exc:
        pytest.skip(f"the server extra is not importable: {exc}")
    server, base = _serve(tmp_path, subprocess_env, "--token", "s3cret=kim")
    try:
        status, page = _first_answer(server, f"{base}/api/runs")
        assert (status, page["items"]) == (200, [])
        run_id = pp("run", "refund", "--input", '{"amount": 321}', "--json").json()["run_id"]
        status, page = _get_json(f"{base}/api/runs")
        assert [item["run_id"] for item in page["items"]] == [run_id]
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=20)
        assert server.returncode == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_serve_logs_json_and_answers_probes_and_metrics(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """serve --log-format json: uvicorn's lines are JSON; /healthz, /readyz and /metrics answer."""
    try:
        importlib.import_module("pausepoint.server")
        importlib.import_module("pausepoint.metrics")
    except ImportError as exc:
        pytest.skip(f"the server and metrics extras are not importable: {exc}")
    server, base = _serve(tmp_path, subprocess_env, "--log-format", "json")
    try:
        status, body = _first_answer(server, f"{base}/healthz")
        assert (status, body) == (200, {"status": "ok"})
        assert _get_json(f"{base}/readyz")[0] == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            assert b"pausepoint_runs_total" in response.read()
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=20)
        assert server.returncode == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(entry["logger"].startswith("uvicorn") for entry in logged), stderr
    assert all({"time", "level", "message", "run_id"} <= set(entry) for entry in logged)
