"""examples/agent_refund.py works as a user runs it: two processes, from a clean directory."""

from __future__ import annotations

from pathlib import Path

from _processes import run_example


def run(tmp_path: Path, *args: str) -> str:
    return run_example("agent_refund.py", tmp_path, *args)


def test_the_demo_pauses_in_one_process_and_finishes_in_another(tmp_path: Path) -> None:
    """Start pauses at the refund approval; a second process approves; the chain is printed."""
    out = run(tmp_path)
    pids = {line.split("]")[0] for line in out.splitlines() if line.startswith("[pid")}
    assert len(pids) == 2, out
    assert "waiting at 'tools[call_2_0]/approve_refund_order'" in out
    assert (
        'question: Approve refund_order(order_id="ORD-2024-7891", amount=900.0, '
        'reason="cracked screen")?' in out
    )
    assert "run is completed: Your refund RF-7891 of $900.00 is on its way." in out
    assert '  Model called lookup_order(order_id="ORD-2024-7891").' in out
    assert "  refund_order: A human approved this call. Result: " in out
    assert '  Approve refund_order paused: "Approve refund_order(' in out
    assert "audit: started by web-chat → paused → resumed by kim → completed" in out
    assert (tmp_path / "pausepoint-agent-demo.db").exists()


def test_a_rejection_reaches_the_customer(tmp_path: Path) -> None:
    """start, then answer with reject: no refund, and the model apologises."""
    started = run(tmp_path, "start")
    run_id = started.split("run ", 1)[1].split()[0]
    out = run(tmp_path, "answer", run_id, "reject", "send", "photos", "first")
    assert (
        "refund_order: A human rejected this call; it did not run. Reason: send photos first" in out
    )
    assert "run is completed: I'm sorry: a manager declined the refund." in out
