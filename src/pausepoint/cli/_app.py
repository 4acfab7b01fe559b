"""The Typer app, the options every command shares, and how user mistakes are reported.

A user mistake (an unknown run, a bad URL, malformed JSON, a refused resume) is
reported as one line, ``error: ...``, on stderr with exit code 1; usage errors
(a missing argument, an unknown option) are Click's, with exit code 2. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from pausepoint.durable._lifecycle import parse_retention
from pausepoint.durable.runs import Runs
from pausepoint.engine._loading import CHARTS_ENV, STORE_ENV, load_chart, load_charts
from pausepoint.engine.chart import FlowChart
from pausepoint.errors import PausepointError
from pausepoint.stores import Store, open_store

P = ParamSpec("P")
T = TypeVar("T")

DEMO_CHARTS = "pausepoint.demo"
"""The charts used when neither ``--charts`` nor ``PAUSEPOINT_CHARTS`` names any."""

app = typer.Typer(
    name="pausepoint",
    help=(
        "Pause a pipeline for a human and resume it later, from any process.\n\n"
        "Start with `pausepoint demo`. Every command reads runs from --store "
        "(or PAUSEPOINT_STORE; default: the SQLite file pausepoint.db here) and "
        "prints machine-readable JSON with --json."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class CLIError(Exception):
    """A user mistake the CLI found itself (bad JSON, unreadable file, unknown chart)."""


# -- shared options ---------------------------------------------------------

StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        envvar=STORE_ENV,
        metavar="URL",
        help="Where runs live: sqlite:///file.db, redis://..., postgresql://..., memory://",
    ),
]
ChartsOption = Annotated[
    str | None,
    typer.Option(
        "--charts",
        envvar=CHARTS_ENV,
        metavar="MODULE",
        help=(
            "Charts module (its `charts` dict, else every chart at its top level) or "
            "module:attribute; several separated by commas. Without it, the demo's "
            f"charts ({DEMO_CHARTS}: 'refund') are used."
        ),
        show_default=False,
    ),
]


class LogFormatChoice(enum.StrEnum):
    """``--log-format``'s values."""

    json = "json"
    text = "text"


LogFormatOption = Annotated[
    LogFormatChoice | None,
    typer.Option(
        "--log-format",
        envvar="PAUSEPOINT_LOG_FORMAT",
        case_sensitive=False,
        help=(
            "Log to stderr in this format, each line about a run with its run_id, chart "
            "and stage. Without it, logging is left as it is."
        ),
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of tables and text.")
]
LeaseOption = Annotated[
    float,
    typer.Option(
        "--lease",
        envvar="PAUSEPOINT_LEASE",
        metavar="SECONDS",
        min=0.1,
        help="How long a run stays claimed once its process stops renewing it (a dead "
        "process's run is taken over this long after its last renewal; a live one renews "
        "from a thread every third of it, whatever its stages do). Give workers and "
        "sweepers the same.",
    ),
]


# -- error reporting ---------------------------------------------------------


def fail(message: str) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with code 1."""
    line = " ".join(str(message).split())
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(1)


def guarded(fn: Callable[P, T]) -> Callable[P, T]:
    """Turn user mistakes raised by a command into one ``error:`` line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (PausepointError, CLIError) as exc:
            fail(str(exc))
        except LookupError as exc:
            # load_chart(s) reports unknown modules and attributes as LookupError;
            # a bare KeyError or IndexError is a bug and keeps its traceback.
            if isinstance(exc, KeyError | IndexError):
                raise
            fail(str(exc))

    return wrapper


# -- inputs ------------------------------------------------------------------


def parse_input(text: str | None, option: str = "--input") -> Any:
    """Read a JSON value given inline, as ``@path`` (a file) or ``@-`` (stdin).

    Raises:
        CLIError: The file cannot be read or the text is not JSON.
    """
    if text is None:
        return None
    source = "inline"
    if text.startswith("@"):
        path = text[1:]
        if path == "-":
            source, text = "stdin", sys.stdin.read()
        else:
            source = repr(path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise CLIError(f"{option}: cannot read {path!r}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(
            f"{option} ({source}) is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


LISTED_STATUSES = (
    "paused",
    "running",
    "completed",
    "failed",
    "cancelled",
    "expired",
    "all",
)
"""What ``ls --status`` accepts."""

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str, option: str) -> float:
    """Read an age such as ``90s``, ``30m``, ``12h``, ``30d``, ``2w`` or plain seconds.

    Raises:
        CLIError: The text is not such an age.
    """
    value = text.strip().lower()
    unit = _AGE_UNITS.get(value[-1:])
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise CLIError(
            f"{option} {text!r} is not an age: write a number with s, m, h, d or w, e.g. 30d"
        )
    return seconds


def parse_retention_options(options: list[str]) -> dict[str | tuple[str, str], float]:
    """Read ``--retain [CHART:]STATUS=AGE`` options into a ``retention=`` mapping.

    Raises:
        CLIError: An option does not have that shape.
    """
    retention: dict[str | tuple[str, str], float] = {}
    for option in options:
        target, equals, age = option.partition("=")
        if not equals or not target:
            raise CLIError(f"--retain {option!r}: write [CHART:]STATUS=AGE, e.g. completed=30d")
        chart, colon, status = target.rpartition(":")
        retention[(chart, status) if colon else status] = parse_age(age, "--retain")
    try:
        parse_retention(retention)
    except ValueError as exc:
        raise CLIError(f"--retain: {exc}") from None
    return retention


def parse_object(text: str | None, option: str = "--input") -> dict[str, Any]:
    """Like :func:`parse_input`, for inputs that must be a JSON object (a run's input)."""
    value = parse_input(text, option)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CLIError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


# -- stores, charts, runs -----------------------------------------------------


def open_store_or_fail(url: str) -> Store:
    """Open the store at ``url``, reporting a bad scheme or a missing driver as a user error."""
    try:
        return open_store(url)
    except (ValueError, ImportError) as exc:
        raise CLIError(f"--store {url!r}: {exc}") from None


def load_registry(spec: str | None) -> dict[str, FlowChart]:
    """Return the charts named by ``--charts`` (comma-separated), or the demo's charts."""
    registry: dict[str, FlowChart] = {}
    for part in (spec or DEMO_CHARTS).split(","):
        if part.strip():
            registry.update(_import_charts(part.strip()))
    return registry


def resolve_chart(name: str, spec: str | None) -> tuple[str, dict[str, FlowChart]]:
    """Return the name to start ``name`` under and the charts to register.

    ``module:attribute`` is imported and registered under ``attribute`` (as the
    server and later commands given ``--charts module`` will find it); a plain
    name must be one of the charts named by ``--charts``.
    """
    registry = load_registry(spec)
    if ":" in name:
        try:
            attribute, chart = load_chart(name)
        except ImportError as exc:
            raise CLIError(f"cannot import chart {name!r}: {exc}") from None
        registry[attribute] = chart
        return attribute, registry
    if name not in registry:
        raise CLIError(
            f"no chart named {name!r} in {spec or DEMO_CHARTS} "
            f"(charts: {', '.join(sorted(registry)) or 'none'}); pass --charts MODULE "
            "or name the chart as module:attribute"
        )
    return name, registry


def _import_charts(spec: str) -> dict[str, FlowChart]:
    try:
        return load_charts(spec)
    except ImportError as exc:
        raise CLIError(f"cannot import charts {spec!r}: {exc}") from None


def with_runs(
    store_url: str,
    charts: Mapping[str, FlowChart],
    work: Callable[[Runs], Awaitable[T]],
    **options: Any,
) -> T:
    """Open the store, run ``work`` on a ``Runs`` over it in a fresh event loop, close it.

    ``options`` go to ``Runs`` (e.g. ``retention``); the notification settings
    and keys not among them come from the environment (``PAUSEPOINT_NOTIFY`` ...,
    :func:`keys_from_environment`), so a pause written by any command is notified
    and encrypted alike.
    """
    from ._notify import notify_options

    options = {**notify_options(None, None, None), **options}
    store = open_store_or_fail(store_url)
    options = {**keys_from_environment(), **options}

    async def go() -> T:
        async with Runs(store, charts, **options) as runs:
            return await work(runs)

    return asyncio.run(go())


def keys_from_environment() -> dict[str, Any]:
    """``Runs``' keys from the environment: ``PAUSEPOINT_SIGNING_KEY``, ``PAUSEPOINT_ENCRYPTION_KEYS``.

    Kept out of the command line, so they never show in ``ps``. Encryption
    keys are Fernet keys, newest first, separated by commas.
    """
    from pausepoint.durable._seal import keys_from_env

    return {
        "signing_key": os.environ.get("PAUSEPOINT_SIGNING_KEY") or None,
        "encryption_key": keys_from_env(os.environ),
    }


def check_chart_loaded(run_chart: str, run_id: str, charts: Mapping[str, FlowChart]) -> None:
    """Refuse early, with a hint, when the run's chart is not among the loaded charts."""
    if run_chart not in charts:
        raise CLIError(
            f"run {run_id!r} belongs to chart {run_chart!r}, which the loaded charts "
            f"({', '.join(sorted(charts)) or 'none'}) do not include: pass --charts MODULE "
            f"(or set {CHARTS_ENV}) naming the module that defines it"
        )


def print_json(value: Any, *, compact: bool = False) -> None:
    """Print ``value`` as JSON on stdout (indented, or one line for streams)."""
    text = json.dumps(value, ensure_ascii=False, indent=None if compact else 2, default=str)
    typer.echo(text)
