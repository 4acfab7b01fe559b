"""The operator commands: run, ls, show, resume, cancel, sweep, serve."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import shlex
import time
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import typer
from rich.console import Console

from pausepoint._loading import CHARTS_ENV, DEFAULT_STORE, STORE_ENV
from pausepoint.errors import PausepointError
from pausepoint.logs import configure_logging
from pausepoint.runs import RunRecord, Runs
from pausepoint.stores import PendingPage

from ._app import (
    ChartsOption,
    JsonOption,
    LogFormatOption,
    StoreOption,
    app,
    check_chart_loaded,
    fail,
    guarded,
    load_registry,
    open_store_or_fail,
    parse_input,
    parse_object,
    print_json,
    resolve_chart,
    with_runs,
)
from ._render import (
    inbox_table,
    make_console,
    page_json,
    print_outcome,
    print_run,
    record_json,
)

TOKENS_ENV = "PAUSEPOINT_TOKENS"
SESSION_SECRET_ENV = "PAUSEPOINT_SESSION_SECRET"

InputOption = Annotated[
    str | None,
    typer.Option(
        "--input", "-i", metavar="JSON|@FILE", help="JSON inline, @path, or @- for stdin."
    ),
]
UnusedChartsOption = Annotated[
    str | None,
    typer.Option("--charts", envvar=CHARTS_ENV, hidden=True, help="Accepted; not needed here."),
]


@contextlib.contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner on stderr while work goes on (shown on terminals only)."""
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
    chart: Annotated[str | None, typer.Option("--chart", help="Only runs of this chart.")] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Only pauses at this stage id.")
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than", metavar="SECONDS", min=0, help="Only pauses waiting this long."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Page size.")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Next page: the cursor the last page printed.")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: UnusedChartsOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the inbox: pauses waiting for a person, newest first."""

    async def work(runs: Runs) -> PendingPage:
        return await runs.pending(
            chart=chart, stage=stage, older_than=older_than, limit=limit, cursor=cursor
        )

    page = with_runs(store, {}, work)
    if as_json:
        print_json(page_json(page))
        return
    console = make_console()
    if not page.items:
        console.print("No run is waiting for a person.")
    else:
        console.print(inbox_table(page, time.time()))
    if page.next_cursor:
        console.print(
            f"more: pausepoint ls --cursor {shlex.quote(page.next_cursor)}", soft_wrap=True
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
            "--as", metavar="ACTOR", help="Who answers (recorded in the audit).", show_default=False
        ),
    ],
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
    registry = load_registry(charts)

    async def work(runs: Runs) -> tuple[RunRecord, dict[str, Any]]:
        current = await runs.get(run_id)
        check_chart_loaded(current.chart, run_id, runs.charts)
        record = await runs.resume(
            run_id,
            answer,
            actor=actor,
            pause_id=pause_id,
            stage_id=stage_id,
            idempotency_key=idempotency_key,
        )
        return record, await _schemas(runs, record)

    with spinner(f"Resuming {run_id}…"):
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
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    as_json: JsonOption = False,
    log_format: LogFormatOption = None,
) -> None:
    """Apply overdue pauses' timeout policies and recover runs whose process died.

    Only runs of the loaded charts (see --charts) are swept; others are left alone.
    With --json, prints one line per sweep: {"expired": [...], "recovered": [...]}.
    """
    if log_format is not None:
        configure_logging(log_format.value)
    registry = load_registry(charts)
    console = make_console()

    def show(expired: list[str], recovered: list[str]) -> None:
        if as_json:
            print_json({"expired": expired, "recovered": recovered}, compact=True)
        elif expired or recovered or every is None:
            stamp = time.strftime("%H:%M:%S")
            console.print(
                f"{stamp} expired {len(expired)}: {', '.join(expired) or '—'}; "
                f"recovered {len(recovered)}: {', '.join(recovered) or '—'}",
                soft_wrap=True,
            )

    async def work(runs: Runs) -> None:
        while True:
            expired = await runs.expire_due()
            recovered = await runs.recover()
            show(expired, recovered)
            if every is None:
                return
            await asyncio.sleep(every)

    if every is not None and not as_json:
        Console(stderr=True).print(f"sweeping every {every:g}s; Ctrl-C stops", highlight=False)
    try:
        with_runs(store, registry, work)
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)


# -- serve ---------------------------------------------------------------------------


def parse_tokens(options: list[str], environment: str | None) -> dict[str, str]:
    """``TOKEN=ACTOR`` pairs from ``--token`` options and ``PAUSEPOINT_TOKENS`` (comma-separated)."""
    pairs = [*(part for part in (environment or "").split(",") if part.strip()), *options]
    tokens: dict[str, str] = {}
    for pair in pairs:
        token, sep, actor = pair.strip().partition("=")
        if not sep or not token or not actor:
            raise typer.BadParameter(f"{pair!r} is not TOKEN=ACTOR", param_hint="--token")
        tokens[token] = actor
    return tokens


@app.command("serve")
@guarded
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")
    ] = 8000,
    token: Annotated[
        list[str] | None,
        typer.Option(
            "--token",
            metavar="TOKEN=ACTOR",
            help=(
                "A bearer token and the actor it stands for; repeat for several. Also read "
                f"from {TOKENS_ENV} (TOKEN=ACTOR,TOKEN=ACTOR). Without any, writes are refused."
            ),
            show_default=False,
        ),
    ] = None,
    session_secret: Annotated[
        str | None,
        typer.Option(
            "--session-secret",
            envvar=SESSION_SECRET_ENV,
            metavar="SECRET",
            help=(
                "Key signing the review page's session cookies; give every process serving "
                "the same site the same one. Default: a random key per process."
            ),
            show_default=False,
        ),
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Serve the HTTP API and the review page (needs pausepoint's server extra).

    Also serves /healthz, /readyz, the API docs at /docs and, with the metrics
    extra installed, Prometheus metrics at /metrics.
    """
    tokens = parse_tokens(token or [], os.environ.get(TOKENS_ENV))
    try:
        server: Any = importlib.import_module("pausepoint.server")
        uvicorn: Any = importlib.import_module("uvicorn")
    except ImportError as exc:
        fail(f"serve needs the server extra ({exc}): pip install 'pausepoint[server]'")
    registry = load_registry(charts)
    runs = Runs(open_store_or_fail(store), registry)
    if not tokens:
        typer.echo(
            f"warning: no tokens given (--token or {TOKENS_ENV}); the service is read-only",
            err=True,
        )
    try:
        options = {} if session_secret is None else {"session_secret": session_secret}
        logs: dict[str, Any] = {}
        if log_format is not None:
            configure_logging(log_format.value)
            logs = {"log_config": None}  # uvicorn's loggers go through the root handler
        app = server.create_app(runs, tokens=tokens, **options)
        uvicorn.run(app, host=host, port=port, **logs)
    finally:
        with contextlib.suppress(PausepointError, RuntimeError):
            asyncio.run(runs.aclose())
