"""``pausepoint doctor``: check a deployment's store, charts and broker, one line each."""

from __future__ import annotations

import asyncio
import importlib
from collections import Counter
from typing import Annotated, Any

import typer

from pausepoint.durable._probe import probe_store, schema_version_of
from pausepoint.engine._loading import DEFAULT_STORE
from pausepoint.engine.chart import FlowChart
from pausepoint.errors import PausepointError
from pausepoint.stores import Store

from ._app import ChartsOption, CLIError, StoreOption, app, load_registry, open_store_or_fail
from ._worker import BROKER_ENV

PENDING_CHECKED = 1000
"""How many waiting pauses doctor reads to find runs whose chart is missing or changed."""


class Findings:
    """What doctor found: ``ok`` lines and ``problem`` lines, printed as they come."""

    def __init__(self) -> None:
        self.problems = 0

    def ok(self, line: str) -> None:
        typer.echo(f"ok       {line}")

    def problem(self, line: str) -> None:
        self.problems += 1
        typer.echo(f"problem  {line}")


@app.command("doctor")
def doctor_command(
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            envvar=BROKER_ENV,
            metavar="URL",
            help="Also check the Celery broker workers use.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check the store (reachable, schema), the charts (load, fingerprints) and the broker.

    Prints one line per check, `ok` or `problem`, and exits with code 1 when any
    check found a problem. Waiting runs whose chart is not loaded, or changed
    since they paused, are problems too.
    """
    findings = Findings()
    registry: dict[str, FlowChart] | None = None
    try:
        registry = load_registry(charts)
    except (CLIError, LookupError) as exc:
        findings.problem(f"charts: {exc}")
    else:
        for name, chart in sorted(registry.items()):
            findings.ok(f"chart {name}: fingerprint {chart.fingerprint[:16]}")
        if not registry:
            findings.problem(f"charts: {charts} holds no chart")
    try:
        opened = open_store_or_fail(store)
    except CLIError as exc:
        findings.problem(f"store: {exc}")
    else:
        asyncio.run(_check_store(opened, registry, findings))
    if broker is not None:
        _check_broker(broker, findings)
    if findings.problems:
        raise typer.Exit(1)


async def _check_store(
    store: Store, registry: dict[str, FlowChart] | None, findings: Findings
) -> None:
    try:
        problem = await probe_store(store)
        if problem is not None:
            findings.problem(f"store {store.url}: {problem}")
            return
        version = schema_version_of(store)
        schema = "no schema" if version is None else f"schema version {version}, up to date"
        findings.ok(f"store {store.url}: reachable, {schema}")
        if registry is not None:
            await _check_waiting_runs(store, registry, findings)
    finally:
        await store.aclose()


async def _check_waiting_runs(
    store: Store, registry: dict[str, FlowChart], findings: Findings
) -> None:
    """Report waiting runs no loaded chart can resume: chart missing, or changed since."""
    missing: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    seen: set[str] = set()
    cursor: str | None = None
    while len(seen) < PENDING_CHECKED:
        page = await store.list_pending(limit=min(500, PENDING_CHECKED - len(seen)), cursor=cursor)
        for item in page.items:
            if item.run_id in seen:
                continue
            seen.add(item.run_id)
            chart = registry.get(item.chart)
            if chart is None:
                missing[item.chart] += 1
                continue
            try:
                record = await store.get(item.run_id)
            except PausepointError:
                continue  # answered or deleted meanwhile
            if record.fingerprint != chart.fingerprint:
                changed[item.chart] += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    for name, count in sorted(missing.items()):
        findings.problem(f"chart {name}: {count} waiting run(s) of it, but no such chart is loaded")
    for name, count in sorted(changed.items()):
        findings.problem(
            f"chart {name}: {count} waiting run(s) paused under another fingerprint; "
            "they resume only with the chart they started with or a compatibility rule"
        )
    if not missing and not changed:
        findings.ok(f"waiting runs: {len(seen)} checked, every one has its chart loaded")


def _check_broker(url: str, findings: Findings) -> None:
    try:
        kombu: Any = importlib.import_module("kombu")  # celery's transport layer, untyped
    except ImportError:
        findings.problem(
            "broker: checking it needs the celery extra: pip install 'pausepoint[celery]'"
        )
        return
    connection = kombu.Connection(url, connect_timeout=5)
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=5)
    except Exception as exc:  # every transport raises its own errors
        findings.problem(f"broker {connection.as_uri()}: {type(exc).__name__}: {exc}")
    else:
        findings.ok(f"broker {connection.as_uri()}: reachable")
    finally:
        connection.release()
