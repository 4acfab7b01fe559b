"""The README's demo works as a user runs it: in fresh processes, from a clean directory."""

from __future__ import annotations

from pathlib import Path

from _processes import run_example


def _run(tmp_path: Path, *args: str) -> str:
    return run_example("refund_approval.py", tmp_path, *args)


def test_demo_pauses_in_one_process_and_completes_in_another(tmp_path: Path) -> None:
    """The SQLite demo starts a run, exits, and a second process answers it from the store."""
    out = _run(tmp_path, "demo")
    pids = {line.split("]")[0] for line in out.splitlines() if line.startswith("[pid")}
    assert len(pids) == 2, out
    assert "is paused at 'approve'" in out
    assert "run is completed: customer told: refund refunded by Manager Kim" in out
    assert 'ManagerApproval paused: "Approve $900 refund for ORD-2024-7891?"' in out
    assert "started by shop → paused → resumed by kim → completed" in out
    assert (tmp_path / "pausepoint-demo.db").exists()


def test_file_variant_resumes_a_json_checkpoint_in_a_new_process(tmp_path: Path) -> None:
    """The executor-only variant writes plain JSON and a fresh process resumes it."""
    out = _run(tmp_path, "file")
    assert "checkpoint saved to refund-checkpoint.json" in out
    assert "completed: customer told: refund refunded by Manager Kim" in out
    assert not (tmp_path / "refund-checkpoint.json").exists()
