"""The retention commands: purge and delete."""

from __future__ import annotations

from typing import Annotated

import typer

from pausepoint.durable.runs import Runs
from pausepoint.engine._loading import DEFAULT_STORE

from ._app import JsonOption, StoreOption, app, guarded, parse_age, print_json, with_runs


@app.command("purge")
@guarded
def purge_command(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only runs with this status (completed, failed, cancelled, expired, paused); "
            "default: every finished status.",
        ),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Only runs unchanged this long: 90s, 30m, 12h, 30d, 2w.",
        ),
    ] = None,
    chart: Annotated[str | None, typer.Option("--chart", help="Only runs of this chart.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be erased; erase nothing.")
    ] = False,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Erase old runs with their audit and journal, in short batches.

    Paused runs are erased only with --status paused; running runs never. A purge
    needs at least one of --status, --older-than, --chart.
    """
    age = None if older_than is None else parse_age(older_than, "--older-than")

    async def work(runs: Runs) -> int:
        return await runs.purge(status=status, older_than=age, chart=chart, dry_run=dry_run)

    count = with_runs(store, {}, work)
    if as_json:
        print_json({"purged": 0 if dry_run else count, "matched": count, "dry_run": dry_run})
        return
    verb = "would erase" if dry_run else "erased"
    from ._render import make_console

    make_console().print(f"{verb} {count} run{'' if count == 1 else 's'}")


@app.command("delete")
@guarded
def delete_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run id.", show_default=False)],
    actor: Annotated[
        str,
        typer.Option(
            "--as",
            metavar="ACTOR",
            help="Who deletes (logged; the audit goes with the run).",
            show_default=False,
        ),
    ],
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Erase one run with its audit and journal (e.g. for an erasure request); not a running one."""

    async def work(runs: Runs) -> None:
        await runs.delete(run_id, actor=actor)

    with_runs(store, {}, work)
    if as_json:
        print_json({"run_id": run_id, "deleted": True})
    else:
        from ._render import make_console

        make_console().print(f"deleted run {run_id}")
