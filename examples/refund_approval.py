"""The refund-approval pipeline: run until a manager must approve, resume in a new process.

    python examples/refund_approval.py            # run → pause → resume in a second process (SQLite)
    python examples/refund_approval.py file       # the same with a bare checkpoint in a JSON file

The demo keeps the run in ``pausepoint-demo.db`` (the embedded SQLite store):
the first process starts it and exits while it waits for a manager; a second
process, knowing only the run id, finds it in the inbox and answers it.
The ``file`` variant shows the executor alone: the checkpoint is plain JSON.
The chart itself lives in ``pausepoint/demo.py`` so that ``pausepoint demo`` ships it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from pausepoint import FlowChartExecutor, Runs, open_store
from pausepoint.demo import chart  # receive → approve (pausable) → process → notify

CHECKPOINT = Path("refund-checkpoint.json")
STORE = os.environ.get("PAUSEPOINT_STORE", "sqlite:///pausepoint-demo.db")


async def start() -> str:
    async with Runs(open_store(STORE), charts={"refund": chart}) as runs:
        record = await runs.start(
            "refund", {"order_id": "ORD-2024-7891", "amount": 900}, actor="shop"
        )
        assert record.pause is not None, "a $900 refund always waits for a manager"
        print(
            f"[pid {os.getpid()}] run {record.run_id} is {record.status} at {record.pause.stage_id!r}"
        )
        print(f"[pid {os.getpid()}]   question: {record.pause.data['question']}")
        page = await runs.pending(chart="refund")
        print(
            f"[pid {os.getpid()}]   inbox of {STORE}: {len(page.items)} waiting; this process exits now"
        )
        return record.run_id


async def answer(run_id: str) -> None:
    async with Runs(open_store(STORE), charts={"refund": chart}) as runs:
        waiting = await runs.get(run_id)
        assert waiting.pause is not None
        print(f"[pid {os.getpid()}] found run {run_id} waiting at {waiting.pause.stage_id!r}")
        record = await runs.resume(
            run_id,
            {"approved": True, "approver": "Manager Kim"},
            actor="kim",
            pause_id=waiting.pause.id,
        )
        assert record.snapshot is not None
        print(
            f"[pid {os.getpid()}] run is {record.status}: {record.snapshot['shared_state']['notified']}"
        )
        print("narrative:")
        for line in record.snapshot["narrative"]:
            print(f"  {line}")
        print(
            "audit: "
            + " → ".join(f"{e.kind}{f' by {e.actor}' if e.actor else ''}" for e in record.audit)
        )


def run_to_file() -> None:
    executor = FlowChartExecutor(chart)
    executor.run_sync({"order_id": "ORD-2024-7891", "amount": 900})
    checkpoint = executor.get_checkpoint()
    assert checkpoint is not None
    CHECKPOINT.write_text(json.dumps(checkpoint, indent=2))
    print(
        f"[pid {os.getpid()}] paused at {checkpoint['paused_stage_id']!r}: {checkpoint['pause_data']}"
    )
    print(
        f"[pid {os.getpid()}] checkpoint saved to {CHECKPOINT} ({CHECKPOINT.stat().st_size} bytes)"
    )


def resume_from_file() -> None:
    checkpoint = json.loads(CHECKPOINT.read_text())
    executor = FlowChartExecutor(chart)  # a fresh executor, in a fresh process
    executor.resume_sync(checkpoint, {"approved": True, "approver": "Manager Kim"})
    print(f"[pid {os.getpid()}] {executor.status}: {executor.get_state()['notified']}")
    for line in executor.get_narrative():
        print(f"  {line}")
    CHECKPOINT.unlink()


if __name__ == "__main__":
    command = sys.argv[1:] or ["demo"]
    if command[0] == "demo":
        run_id = asyncio.run(start())
        subprocess.run([sys.executable, __file__, "answer", run_id], check=True)
    elif command[0] == "answer":
        asyncio.run(answer(command[1]))
    elif command[0] == "file":
        run_to_file()
        subprocess.run([sys.executable, __file__, "resume-file"], check=True)
    elif command[0] == "resume-file":
        resume_from_file()
    else:
        sys.exit(f"usage: {sys.argv[0]} [demo | file]")
