"""``pausepoint worker``: a Celery worker that starts and resumes runs."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from typing import Annotated, Any

import typer

from pausepoint.engine._loading import DEFAULT_STORE
from pausepoint.logs import configure_logging

from ._app import (
    ChartsOption,
    LeaseOption,
    LogFormatOption,
    StoreOption,
    app,
    fail,
    guarded,
    load_registry,
    open_store_or_fail,
)
from ._notify import BaseUrlOption, NotifyOption, NotifySecretFileOption, notify_options

BROKER_ENV = "PAUSEPOINT_BROKER"  # pausepoint.celery.BROKER_ENV, without importing celery
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def notify_settings(
    notify: list[str] | None, base_url: str | None, secret_file: Any
) -> dict[str, Any]:
    """The notification fields of ``CelerySettings`` from the options (the environment fills the rest)."""
    given = notify_options(notify, base_url, secret_file, environ={})
    if "notify" in given:
        given["notify"] = tuple(given["notify"])
    return given


def parse_broker_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each value JSON when it parses (numbers, booleans), else a string."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--broker-option")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@app.command(
    "worker",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@guarded
def worker_command(
    ctx: typer.Context,
    broker: Annotated[
        str,
        typer.Option(
            "--broker",
            envvar=BROKER_ENV,
            metavar="URL",
            help="Celery broker: redis://host:6379/1, amqp://user:password@host//",
            show_default=False,
        ),
    ],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Worker processes (default: one per CPU).",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        str,
        typer.Option("--queue", "-Q", envvar="PAUSEPOINT_QUEUE", help="Queue to consume."),
    ] = "pausepoint",
    beat: Annotated[
        bool,
        typer.Option(
            "--beat",
            "-B",
            help=(
                "Also run celery beat in this worker, sending the sweep (deadlines, recovery "
                "of runs whose worker died). One beat is enough; more are harmless."
            ),
        ),
    ] = False,
    sweep_every: Annotated[
        float,
        typer.Option(
            "--sweep-every",
            envvar="PAUSEPOINT_SWEEP_EVERY",
            metavar="SECONDS",
            min=0.1,
            help="Seconds between two sweeps sent by beat.",
        ),
    ] = 10.0,
    lease: LeaseOption = 30.0,
    result_backend: Annotated[
        str | None,
        typer.Option(
            "--result-backend",
            envvar="PAUSEPOINT_RESULT_BACKEND",
            metavar="URL",
            help="Keep task results ({run_id, status}) there; by default none are kept.",
            show_default=False,
        ),
    ] = None,
    broker_option: Annotated[
        list[str] | None,
        typer.Option(
            "--broker-option",
            metavar="KEY=VALUE",
            help="A broker transport option, e.g. visibility_timeout=7200; repeat for several.",
            show_default=False,
        ),
    ] = None,
    loglevel: Annotated[
        str, typer.Option("--loglevel", "-l", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="PAUSEPOINT_METRICS_PORT",
            metavar="PORT",
            min=0,
            max=65535,
            help=(
                "Serve Prometheus metrics of every worker process on PORT (needs the metrics "
                "extra). Processes share PROMETHEUS_MULTIPROC_DIR, a fresh directory if unset."
            ),
            show_default=False,
        ),
    ] = None,
    log_format: LogFormatOption = None,
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    notify: NotifyOption = None,
    base_url: BaseUrlOption = None,
    notify_secret_file: NotifySecretFileOption = None,
) -> None:
    """Start a Celery worker that starts and resumes runs (needs pausepoint's celery extra).

    Every worker shares --store and --broker; any of them resumes any run, exactly
    once. Arguments after `--` go to `celery worker` unchanged, e.g.
    `pausepoint worker ... -- --hostname w1@%h --without-mingle`.
    """
    try:
        from pausepoint.celery import CelerySettings, make_celery_app
    except ImportError as exc:
        fail(f"worker needs the celery extra ({exc}): pip install 'pausepoint[celery]'")
    registry = load_registry(charts)  # a bad module stops here, before any process starts
    # a bad scheme or a missing driver stops here too (the store connects lazily)
    asyncio.run(open_store_or_fail(store).aclose())
    settings = CelerySettings.from_env(
        broker_url=broker,
        store_url=store,
        charts=registry,
        queue=queue,
        result_backend=result_backend,
        lease_seconds=lease,
        sweep_every=sweep_every,
        broker_options=parse_broker_options(broker_option or []),
        **notify_settings(notify, base_url, notify_secret_file),
    )
    if metrics_port is not None:
        _export_metrics(metrics_port)
    celery_app = make_celery_app(settings=settings)
    if log_format is not None:
        _log_as(log_format.value, loglevel)
    argv = [
        "worker",
        f"--concurrency={concurrency or os.cpu_count() or 1}",
        "--pool=prefork",
        f"--loglevel={loglevel}",
        f"--queues={queue}",
        *(["--beat"] if beat else []),
        *ctx.args,
    ]
    code = celery_app.worker_main(argv)
    if code:
        raise typer.Exit(code)


def _export_metrics(port: int) -> None:
    """Count runs in every worker process and serve their sum on ``port`` from this one.

    Celery's prefork children write their metrics to files in
    ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode), which
    must be set before prometheus-client is first imported.
    """
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="pausepoint-metrics-")
    try:
        from pausepoint.metrics import enable_metrics, start_exporter
    except ImportError as exc:
        fail(f"--metrics-port needs the metrics extra ({exc}): pip install 'pausepoint[metrics]'")
    enable_metrics()  # before the pool forks: every child counts
    start_exporter(port)


def _log_as(log_format: str, level: str) -> None:
    """Let pausepoint's handler, not Celery's, write the worker's logs (children inherit it)."""
    from celery import signals  # type: ignore[import-untyped]  # celery ships no type hints

    def setup(**_: Any) -> None:
        configure_logging(log_format, level)

    signals.setup_logging.connect(setup, weak=False)
