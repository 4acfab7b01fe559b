"""``pausepoint demo``: a refund waits for a manager, and another process answers it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from typing import Annotated, Any

import typer

from pausepoint.durable.runs import RunRecord, Runs

from ._app import DEMO_CHARTS, JsonOption, app, fail, guarded, print_json, with_runs
from ._commands import spinner
from ._plain import question_of, record_json

DEMO_STORE = "sqlite:///pausepoint-demo.db"
DEMO_INPUT = {"order_id": "ORD-2024-7891", "amount": 900}
DEMO_ACTOR = "kim"
DEMO_ANSWER = {"approved": True, "approver": "Kim", "note": "Approved as a goodwill gesture"}


@app.command("demo")
@guarded
def demo_command(
    store: Annotated[
        str,
        typer.Option(
            "--store",
            metavar="URL",
            help=(
                "Where the demo keeps its run. PAUSEPOINT_STORE is deliberately not read, "
                "so the demo never writes into your own store."
            ),
        ),
    ] = DEMO_STORE,
    as_json: JsonOption = False,
) -> None:
    """Run the refund demo: start a run, see it pause, answer it from a new process.

    A $900 refund waits for a manager. This process starts the run and stops
    at the pause; the run is then only a record in the store. A second Python
    process, started with `pausepoint resume`, answers as the manager and the
    run completes there. This process then reads the outcome back from the store.
    """
    if store.startswith("memory:"):
        fail(
            "the demo resumes the run in another process, which cannot see a memory:// "
            "store: use a sqlite:///file.db (or Redis/PostgreSQL) URL"
        )
    # Imported here, not at the top: every other command would pay for them.
    from rich.text import Text

    from pausepoint.demo import charts as demo_charts

    from ._render import make_console, print_narrative

    console = make_console()
    quiet = as_json

    async def start(runs: Runs) -> RunRecord:
        return await runs.start("refund", DEMO_INPUT, actor="demo")

    with spinner("Starting the refund run…"):
        paused = with_runs(store, demo_charts, start)
    if (
        paused.status != "paused" or paused.pause is None
    ):  # pragma: no cover - the chart pauses at $900
        fail(f"the demo run did not pause (it is {paused.status})")
    if not quiet:
        console.print(Text("pausepoint demo: a refund waits for a manager", style="bold"))
        console.print(Text(f"store {store}", style="dim"))
        console.print()
        console.print(
            Text.assemble(
                ("1. ", "bold"), f"Process {os.getpid()} started run ", (paused.run_id, "bold")
            )
        )
        print_narrative(console, (paused.snapshot or {}).get("narrative") or [], indent="   ")
        console.print(
            Text.assemble(
                "   ",
                ("paused", "bold yellow"),
                f" at {paused.pause.stage_id}: ",
                (question_of(paused.pause.data), "bold"),
            )
        )
        console.print(
            Text(
                "   The run is now only a record in the store; this process could exit.",
                style="dim",
            )
        )

    command = [
        sys.executable,
        "-m",
        "pausepoint",
        "resume",
        paused.run_id,
        "--store",
        store,
        "--charts",
        DEMO_CHARTS,
        "--input",
        json.dumps(DEMO_ANSWER),
        "--as",
        DEMO_ACTOR,
        "--json",
    ]
    with spinner("A new process answers as the manager…"):
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, errors = child.communicate()
    if child.returncode != 0:
        last = (errors.strip().splitlines() or ["no output"])[-1]
        fail(f"the resuming process exited with code {child.returncode}: {last}")

    async def read(runs: Runs) -> RunRecord:
        return await runs.get(paused.run_id)

    final = with_runs(store, demo_charts, read)
    if quiet:
        print_json(
            {
                "store": store,
                "run_id": paused.run_id,
                "started_in_pid": os.getpid(),
                "resumed_in_pid": child.pid,
                "paused": record_json(paused),
                "final": record_json(final),
            }
        )
        return
    shown = " ".join(shlex.quote(part) for part in ["pausepoint", *command[3:-1]])
    console.print()
    console.print(
        Text.assemble(
            ("2. ", "bold"),
            f"Process {child.pid} answered as {DEMO_ACTOR}: ",
            (json.dumps(DEMO_ANSWER), "bold"),
        )
    )
    console.print(Text(f"   $ {shown}", style="cyan"), soft_wrap=True)
    console.print()
    console.print(
        Text.assemble(
            ("3. ", "bold"),
            "Read back from the store: run ",
            (final.status, "bold green" if final.status == "completed" else "bold red"),
            ". The whole story, across both processes:",
        )
    )
    print_narrative(console, (final.snapshot or {}).get("narrative") or [], indent="   ")
    state: dict[str, Any] = (final.snapshot or {}).get("shared_state") or {}
    if "notified" in state:
        console.print(Text(f"   → {state['notified']}", style="green"))
    console.print()
    console.print(
        Text(f"Look closer: pausepoint show {paused.run_id} --store {shlex.quote(store)}"),
        soft_wrap=True,
    )
    if final.status != "completed":
        fail(f"the demo run ended {final.status}: {final.error}")
