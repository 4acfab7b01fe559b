"""The operator commands: run, ls, show, resume, cancel, sweep (serve: ``_serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Annotated, Any

import typer

from pausepoint.durable.answer import Answer
from pausepoint.durable.runs import RunList, RunRecord, Runs, SweepReport
from pausepoint.engine._loading import CHARTS_ENV, DEFAULT_STORE, STORE_ENV
from pausepoint.logs import configure_logging
from pausepoint.stores import PendingPage

from ._app import (
    LISTED_STATUSES,
    ChartsOption,
    CLIError,
    JsonOption,
    LeaseOption,
    LogFormatOption,
    StoreOption,
    app,
    check_chart_loaded,
    fail,
    guarded,
    load_registry,
    parse_age,
    parse_input,
    parse_object,
    parse_retention_options,
    print_json,
    resolve_chart,
    with_runs,
)
from ._notify import BaseUrlOption, NotifyOption, NotifySecretFileOption, notify_options
from ._plain import page_json, record_json, run_list_json

InputOption = Annotated[
    str | None,
    typer.Option(
        "--input", "-i", metavar="JSON|@FILE", help="JSON inline, @path, or @- for stdin."
    ),
]
GroupOption = Annotated[
    list[str] | None,
    typer.Option(
        "--group",
        "-g",
        metavar="GROUP",
        help="A group you belong to (repeat for several); the admin group may answer any pause.",
        show_default=False,
    ),
]
UnusedChartsOption = Annotated[
    str | None,
    typer.Option("--charts", envvar=CHARTS_ENV, hidden=True, help="Accepted; not needed here."),
]


@contextlib.contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner on stderr while work goes on (shown on terminals only)."""
    if not sys.stderr.isatty():  # scripts and pipes: no spinner, and no rich to import
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def hint_flags(store: str, charts: str | None) -> str:
    """The ``--store``/``--charts`` flags a follow-up command needs beyond the environment."""
    flags = ""
    if store != (os.environ.get(STORE_ENV) or DEFAULT_STORE):
        flags += f" --store {shlex.quote(store)}"
    if charts and charts != os.environ.get(CHARTS_ENV):
        flags += f" --charts {shlex.quote(charts)}"
    return flags


def report(record: RunRecord, schemas: Mapping[str, Any], as_json: bool, flags: str) -> None:
    """Print a run's outcome; a failed run also exits with code 1."""
    if as_json:
        print_json(record_json(record))
    else:
        from ._render import make_console, print_outcome

        print_outcome(make_console(), record, schemas=schemas, flags=flags)
    if record.status == "failed":
        fail(f"run {record.run_id!r} failed: {record.error}")


async def _schemas(runs: Runs, record: RunRecord) -> dict[str, Any]:
    return {
        pause.stage_id: runs.input_schema(record.chart, pause.stage_id) for pause in record.pauses
    }


# -- run -------------------------------------------------------------------------


@app.command("run")
@guarded
def run_command(
    chart: Annotated[
        str,
        typer.Argument(
            metavar="CHART",
            help="A chart name from --charts, or module:attribute.",
            show_default=False,
        ),
    ],
    input: InputOption = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Use this id instead of a random one.")
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--as", metavar="ACTOR", help="Who starts it (for the audit).")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a run and drive it to its first pause (or its end).

    A chart named module:attribute is registered under its attribute name; later
    commands find it with --charts module (or --charts module:attribute).
    """
    name, registry = resolve_chart(chart, charts)
    seed = parse_object(input)

    async def work(runs: Runs) -> tuple[RunRecord, dict[str, Any]]:
        record = await runs.start(name, seed, run_id=run_id, actor=actor)
        return record, await _schemas(runs, record)

    with spinner(f"Running {name}…"):
        record, schemas = with_runs(store, registry, work)
    spec = charts
    if ":" in chart:  # later commands need the module too
        spec = f"{charts},{chart}" if charts else chart
    report(record, schemas, as_json, hint_flags(store, spec))


# -- ls ----------------------------------------------------------------------------


@app.command("ls")
@guarded
def ls_command(
    status: Annotated[
        str,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="paused (the inbox: one line per pause), running, completed, failed, "
            "cancelled, expired, or all.",
        ),
    ] = "paused",
    chart: Annotated[str | None, typer.Option("--chart", help="Only runs of this chart.")] = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Only pauses (or runs) at this stage id."),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Only pauses waiting (runs unchanged) this long: 90s, 30m, 12h, 30d, 2w.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Page size.")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Next page: the cursor the last page printed.")
    ] = None,
    mine: Annotated[
        bool,
        typer.Option(
            "--mine",
            help="Only pauses assigned to you: to --as NAME or one of the --group options.",
        ),
    ] = False,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as", "--actor", metavar="NAME", help="Who you are, for --mine.", show_default=False
        ),
    ] = None,
    group: GroupOption = None,
    store: StoreOption = DEFAULT_STORE,
    charts: UnusedChartsOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the inbox (pauses waiting for a person, newest first), or runs of any status.

    With --mine, only the pauses assigned to you (--as NAME, --group G): unassigned
    pauses, which anyone may answer, are left out.
    """
    age = None if older_than is None else parse_age(older_than, "--older-than")
    if status not in LISTED_STATUSES:
        raise CLIError(f"--status must be one of {', '.join(LISTED_STATUSES)}, not {status!r}")
    if (actor or group) and not mine:
        raise CLIError("--as and --group say who you are for --mine; add --mine")
    assigned_to: list[str] | None = None
    if mine:
        if not actor and not group:
            raise CLIError("--mine needs who you are: --as NAME and/or --group GROUP")
        if status != "paused":
            raise CLIError("--mine lists the inbox only (--status paused)")
        assigned_to = sorted({*([actor] if actor else []), *(group or [])})
    if status != "paused":
        ls_runs(
            None if status == "all" else status, chart, stage, age, limit, cursor, store, as_json
        )
        return

    async def work(runs: Runs) -> PendingPage:
        return await runs.pending(
            chart=chart,
            stage=stage,
            older_than=age,
            limit=limit,
            cursor=cursor,
            assigned_to=assigned_to,
        )

    page = with_runs(store, {}, work)
    if as_json:
        print_json(page_json(page))
        return
    from ._render import inbox_table, make_console

    console = make_console()
    if not page.items:
        console.print(
            "Nothing waiting is assigned to you." if mine else "No run is waiting for a person."
        )
    else:
        console.print(inbox_table(page, time.time()))
    if page.next_cursor:
        console.print(
            f"more: pausepoint ls{_mine_flags(mine, actor, group)} "
            f"--cursor {shlex.quote(page.next_cursor)}",
            soft_wrap=True,
        )


def _mine_flags(mine: bool, actor: str | None, groups: list[str] | None) -> str:
    if not mine:
        return ""
    flags = " --mine"
    if actor:
        flags += f" --as {shlex.quote(actor)}"
    for group in groups or []:
        flags += f" --group {shlex.quote(group)}"
    return flags


def ls_runs(
    status: str | None,
    chart: str | None,
    stage: str | None,
    age: float | None,
    limit: int,
    cursor: str | None,
    store: str,
    as_json: bool,
) -> None:
    """``ls --status S`` for any status but paused: one line per run."""

    async def work(runs: Runs) -> RunList:
        return await runs.list(
            status=status, chart=chart, stage=stage, older_than=age, limit=limit, cursor=cursor
        )

    page = with_runs(store, {}, work)
    if as_json:
        print_json(run_list_json(page))
        return
    from ._render import make_console, runs_table

    console = make_console()
    label = status or "any status"
    if not page.items:
        console.print(f"No run is {label}." if status else "No runs.")
    else:
        console.print(runs_table(page, time.time(), f"Runs ({label}), last changed first"))
    if page.next_cursor:
        console.print(
            f"more: pausepoint ls --status {status or 'all'} "
            f"--cursor {shlex.quote(page.next_cursor)}",
            soft_wrap=True,
        )


# -- show -------------------------------------------------------------------------


@app.command("show")
@guarded
def show_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run id.", show_default=False)],
    store: StoreOption = DEFAULT_STORE,
    charts: UnusedChartsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run: status, pauses, state, narrative, execution tree and audit."""

    async def work(runs: Runs) -> RunRecord:
        return await runs.get(run_id)

    record = with_runs(store, {}, work)
    if as_json:
        print_json(record_json(record))
    else:
        from ._render import make_console, print_run

        print_run(make_console(), record)


# -- resume -------------------------------------------------------------------------


@app.command("resume")
@guarded
def resume_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run id.", show_default=False)],
    input: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            metavar="JSON|@FILE",
            help="The answer: JSON inline, @path, or @- for stdin.",
            show_default=False,
        ),
    ],
    actor: Annotated[
        str,
        typer.Option(
            "--as",
            "--actor",
            metavar="NAME",
            help="Who answers (recorded in the audit). A pause assigned to others is refused "
            "unless NAME or one of the --group options is among its assignees.",
            show_default=False,
        ),
    ],
    group: GroupOption = None,
    pause_id: Annotated[
        str | None,
        typer.Option(
            "--pause", metavar="PAUSE_ID", help="The pause answered (needed when several wait)."
        ),
    ] = None,
    stage_id: Annotated[
        str | None,
        typer.Option("--stage", metavar="STAGE_ID", help="Or the paused stage answered."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="Retrying with the same key gives the first outcome.",
        ),
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer a paused run, exactly once, and drive it on to its next pause or its end."""
    answer = parse_input(input)

    given = Answer(
        input=answer,
        actor=actor,
        groups=frozenset(group or ()),
        pause_id=pause_id,
        stage_id=stage_id,
        idempotency_key=idempotency_key,
    )

    def resume(runs: Runs) -> Awaitable[RunRecord]:
        return runs.answer(run_id, given)

    drive_run(run_id, resume, f"Resuming {run_id}…", store, charts, as_json)


def drive_run(
    run_id: str,
    action: Callable[[Runs], Awaitable[RunRecord]],
    doing: str,
    store: str,
    charts: str | None,
    as_json: bool,
) -> None:
    """Run ``action`` (a resume, fork or retry of ``run_id``) with its chart loaded; report it."""
    registry = load_registry(charts)

    async def work(runs: Runs) -> tuple[RunRecord, dict[str, Any]]:
        current = await runs.get(run_id)
        check_chart_loaded(current.chart, run_id, runs.charts)
        record = await action(runs)
        return record, await _schemas(runs, record)

    with spinner(doing):
        record, schemas = with_runs(store, registry, work)
    report(record, schemas, as_json, hint_flags(store, charts))


# -- cancel --------------------------------------------------------------------------


@app.command("cancel")
@guarded
def cancel_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run id.", show_default=False)],
    actor: Annotated[
        str,
        typer.Option(
            "--as", metavar="ACTOR", help="Who cancels (recorded in the audit).", show_default=False
        ),
    ],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded in the audit).")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: UnusedChartsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a paused run; its pauses leave the inbox."""

    async def work(runs: Runs) -> RunRecord:
        return await runs.cancel(run_id, actor=actor, reason=reason)

    record = with_runs(store, {}, work)
    report(record, {}, as_json, "")


# -- sweep ---------------------------------------------------------------------------


@app.command("sweep")
@guarded
def sweep_command(
    every: Annotated[
        float | None,
        typer.Option(
            "--every", metavar="SECONDS", min=0.01, help="Sweep again every SECONDS until Ctrl-C."
        ),
    ] = None,
    lease: LeaseOption = 30.0,
    retain: Annotated[
        list[str] | None,
        typer.Option(
            "--retain",
            metavar="[CHART:]STATUS=AGE",
            help="Erase runs of STATUS (of CHART) unchanged for AGE, e.g. completed=30d "
            "or refund:failed=90d; repeat for more.",
        ),
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    as_json: JsonOption = False,
    log_format: LogFormatOption = None,
    notify: NotifyOption = None,
    base_url: BaseUrlOption = None,
    notify_secret_file: NotifySecretFileOption = None,
) -> None:
    """Apply deadlines, recover runs whose process died, escalate, remind, notify, apply retention.

    Only runs of the loaded charts (see --charts) are expired or recovered; retention
    (--retain) applies to runs of every chart; notifications of every chart are
    delivered. With --json, prints one line per sweep: {"expired": [...],
    "recovered": [...], "purged": N, "escalated": [...], "reminded": [...],
    "notified": N, "notify_retrying": N, "notify_failed": N}.
    """
    if log_format is not None:
        configure_logging(log_format.value)
    registry = load_registry(charts)
    retention = parse_retention_options(retain or [])

    def show(report: SweepReport) -> None:
        expired, recovered = report.expired, report.recovered
        told = report.notified or report.notify_failed or report.reminded or report.escalated
        if as_json:
            print_json(
                {
                    "expired": expired,
                    "recovered": recovered,
                    "purged": report.purged,
                    "escalated": report.escalated,
                    "reminded": report.reminded,
                    "notified": report.notified,
                    "notify_retrying": report.notify_retrying,
                    "notify_failed": report.notify_failed,
                },
                compact=True,
            )
        elif expired or recovered or report.purged or told or every is None:
            from ._render import make_console

            stamp = time.strftime("%H:%M:%S")
            make_console().print(
                f"{stamp} expired {len(expired)}: {', '.join(expired) or '—'}; "
                f"recovered {len(recovered)}: {', '.join(recovered) or '—'}; "
                f"purged {report.purged}; escalated {len(report.escalated)}; "
                f"reminded {len(report.reminded)}; notified {report.notified} "
                f"({report.notify_retrying} to retry, {report.notify_failed} given up)",
                soft_wrap=True,
            )

    async def work(runs: Runs) -> None:
        while True:
            show(await runs.sweep())
            if every is None:
                return
            await asyncio.sleep(every)

    if every is not None and not as_json:
        typer.echo(f"sweeping every {every:g}s; Ctrl-C stops", err=True)
    try:
        with_runs(
            store,
            registry,
            work,
            lease_seconds=lease,
            retention=retention,
            **notify_options(notify, base_url, notify_secret_file),
        )
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
