"""The run-lifecycle commands: history, fork, retry."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Annotated, Any

import typer

from pausepoint.durable.runs import RunRecord, Runs, Step
from pausepoint.engine._loading import DEFAULT_STORE

from ._app import (
    ChartsOption,
    CLIError,
    JsonOption,
    StoreOption,
    app,
    guarded,
    print_json,
    with_runs,
)
from ._commands import drive_run

RunArgument = Annotated[str, typer.Argument(metavar="RUN", help="The run id.", show_default=False)]


@app.command("history")
@guarded
def history_command(
    run_id: RunArgument,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """List a run's steps: each stage that finished, each pause, each answer and who gave it."""

    async def work(runs: Runs) -> list[Step]:
        return await runs.history(run_id)

    steps = with_runs(store, {}, work)
    if as_json:
        print_json(
            [
                {
                    "index": s.index,
                    "kind": s.kind,
                    "stage_id": s.stage_id,
                    "at": s.at,
                    "actor": s.actor,
                }
                for s in steps
            ]
        )
        return
    if not steps:
        typer.echo(f"run {run_id} has no steps yet")
    for s in steps:
        who = f"  by {s.actor}" if s.actor else ""
        typer.echo(f"{s.index:>4}  {s.kind:<8} {s.stage_id}{who}")


def _patch(pairs: list[str]) -> dict[str, Any]:
    """``key=JSON`` pairs as a state patch."""
    patch: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--set takes KEY=JSON, got {pair!r}")
        try:
            patch[key] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CLIError(f"--set {key}: the value is not JSON ({exc.msg}): {text!r}") from None
    return patch


@app.command("fork")
@guarded
def fork_command(
    run_id: RunArgument,
    at: Annotated[
        int,
        typer.Option(
            "--at", metavar="STEP", help="The step to start from (see history).", show_default=False
        ),
    ],
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=JSON",
            help="Set a state key before the new run goes on (repeatable).",
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--as", metavar="ACTOR", help="Who forks (for the audit).")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a new run from a step of a run's history; the stages before it never run again."""
    patch = _patch(assignments or [])

    def fork(runs: Runs) -> Awaitable[RunRecord]:
        return runs.fork(run_id, at=at, state_patch=patch or None, actor=actor)

    drive_run(run_id, fork, f"Forking {run_id} at step {at}…", store, charts, as_json)


@app.command("retry")
@guarded
def retry_command(
    run_id: RunArgument,
    actor: Annotated[
        str | None, typer.Option("--as", metavar="ACTOR", help="Who retries (for the audit).")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a failed run again from the stage that failed, on the state before it."""

    def retry(runs: Runs) -> Awaitable[RunRecord]:
        return runs.retry(run_id, actor=actor)

    drive_run(run_id, retry, f"Retrying {run_id}…", store, charts, as_json)
