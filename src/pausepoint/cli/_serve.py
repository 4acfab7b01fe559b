"""``pausepoint serve``: the HTTP API and the review pages, with who may read and answer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from pausepoint._tokens import Tokens, TokensFile, parse_token
from pausepoint.durable.people import Actor
from pausepoint.durable.runs import Runs
from pausepoint.engine._loading import DEFAULT_STORE
from pausepoint.errors import PausepointError, TokenFormatError
from pausepoint.logs import configure_logging

from ._app import (
    ChartsOption,
    LogFormatOption,
    StoreOption,
    app,
    fail,
    guarded,
    keys_from_environment,
    load_registry,
    open_store_or_fail,
)
from ._notify import BaseUrlOption, NotifyOption, NotifySecretFileOption, notify_options

__all__ = ["parse_tokens", "serve_command", "session_secrets"]

TOKENS_ENV = "PAUSEPOINT_TOKENS"
TOKENS_FILE_ENV = "PAUSEPOINT_TOKENS_FILE"
SESSION_SECRET_ENV = "PAUSEPOINT_SESSION_SECRET"
SESSION_SECRETS_ENV = "PAUSEPOINT_SESSION_SECRETS"
PUBLIC_READ_ENV = "PAUSEPOINT_PUBLIC_READ"


def _split_environment(text: str) -> list[str]:
    """Split ``PAUSEPOINT_TOKENS`` into entries.

    Entries end at a newline or ``;``, or at a comma followed by a new
    ``SECRET=``; a comma followed by a bare name adds a group to the entry.
    """
    entries: list[str] = []
    for chunk in text.replace(";", "\n").splitlines():
        for part in chunk.split(","):
            if not part.strip():
                continue
            if "=" in part or not entries:
                entries.append(part.strip())
            else:
                entries[-1] += "," + part.strip()
    return entries


def parse_tokens(options: list[str], environment: str | None) -> dict[str, Actor]:
    """Tokens from ``--token`` options and ``PAUSEPOINT_TOKENS``.

    Each is ``SECRET=ACTOR[:GROUP,GROUP]``; in the variable, entries are
    separated by newlines, ``;``, or commas (``a=kim,b=lee:managers,finance``).

    Raises:
        typer.BadParameter: A malformed token (exit code 2); the secret is not repeated.
    """
    tokens: dict[str, Actor] = {}
    sources = [(TOKENS_ENV, e) for e in _split_environment(environment or "")]
    sources += [("--token", o) for o in options]
    for source, text in sources:
        try:
            secret, actor = parse_token(text, source=source)
        except TokenFormatError as exc:
            raise typer.BadParameter(str(exc), param_hint=source) from None
        tokens[secret] = actor
    return tokens


def session_secrets(options: list[str], many: str | None, one: str | None) -> list[str] | None:
    """The session keys, oldest first (the last one signs).

    From ``--session-secret`` (repeatable, newest last), else
    ``PAUSEPOINT_SESSION_SECRETS`` (comma-separated, newest last), else
    ``PAUSEPOINT_SESSION_SECRET`` (one key); ``None`` for a random key.
    """
    if options:
        keys = options
    elif many:
        keys = [k.strip() for k in many.split(",") if k.strip()]
    elif one:
        keys = [one]
    else:
        return None
    if any(not key for key in keys):
        raise typer.BadParameter(
            "a session secret must not be empty", param_hint="--session-secret"
        )
    return keys


def _token_table(options: list[str], environment: str | None, tokens_file: Path | None) -> Tokens:
    static = parse_tokens(options, environment)
    if tokens_file is None:
        return Tokens(static)
    try:
        return TokensFile(tokens_file, extra=static)
    except TokenFormatError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tokens-file") from None


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
            metavar="SECRET=ACTOR[:GROUP,GROUP]",
            help=(
                "A bearer token, who it stands for and their groups, e.g. "
                "s3cret=kim:managers,finance; repeat for several. Also read from "
                f"{TOKENS_ENV} (entries separated by ';' or newlines). Options show in ps: "
                "prefer --tokens-file or the variable. Without any token, writes are refused."
            ),
            show_default=False,
        ),
    ] = None,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            envvar=TOKENS_FILE_ENV,
            metavar="PATH",
            help=(
                "A file of tokens, one SECRET=ACTOR[:GROUP,GROUP] per line (blank lines and "
                "# comments allowed). Read again when it changes: deleting a line revokes "
                "that token on the next request."
            ),
            show_default=False,
        ),
    ] = None,
    public_read: Annotated[
        bool,
        typer.Option(
            "--public-read",
            envvar=PUBLIC_READ_ENV,
            help=(
                "Let anyone read runs and charts without a token or sign-in. By default "
                "reads need one (401 on the API, the sign-in page on the review pages)."
            ),
        ),
    ] = False,
    session_secret: Annotated[
        list[str] | None,
        typer.Option(
            "--session-secret",
            metavar="SECRET",
            help=(
                "Key signing the review pages' session cookies; repeat to rotate keys, "
                "oldest first: the last signs, every one verifies. Also read from "
                f"{SESSION_SECRETS_ENV} (comma-separated, newest last) or "
                f"{SESSION_SECRET_ENV} (one key). Give every process serving the same site "
                "the same keys. Default: a random key per process."
            ),
            show_default=False,
        ),
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    charts: ChartsOption = None,
    log_format: LogFormatOption = None,
    notify: NotifyOption = None,
    base_url: BaseUrlOption = None,
    notify_secret_file: NotifySecretFileOption = None,
) -> None:
    """Serve the HTTP API and the review pages (needs pausepoint's server extra).

    Reads need a token or a signed-in session unless --public-read. Also serves
    /healthz, /readyz, the API docs at /docs and, with the metrics extra
    installed, Prometheus metrics at /metrics (all of them open).
    """
    tokens = _token_table(token or [], os.environ.get(TOKENS_ENV), tokens_file)
    secrets = session_secrets(
        session_secret or [],
        os.environ.get(SESSION_SECRETS_ENV),
        os.environ.get(SESSION_SECRET_ENV),
    )
    try:
        server: Any = importlib.import_module("pausepoint.server")
        uvicorn: Any = importlib.import_module("uvicorn")
    except ImportError as exc:
        fail(f"serve needs the server extra ({exc}): pip install 'pausepoint[server]'")
    registry = load_registry(charts)
    runs = Runs(
        open_store_or_fail(store),
        registry,
        **notify_options(notify, base_url, notify_secret_file),
        **keys_from_environment(),
    )
    if not len(tokens):
        typer.echo(
            f"warning: no tokens given (--token, --tokens-file or {TOKENS_ENV}); "
            "the service is read-only",
            err=True,
        )
    try:
        options: dict[str, Any] = {"public_read": public_read}
        if secrets is not None:
            options["session_secret"] = secrets
        logs: dict[str, Any] = {}
        if log_format is not None:
            configure_logging(log_format.value)
            logs = {"log_config": None}  # uvicorn's loggers go through the root handler
        app_ = server.create_app(runs, tokens=tokens, **options)
        # What exists now (modules, the app, its routes and schemas) lives as long
        # as the process: keep it out of the collector's full passes, each of which
        # would stall every request in flight (about 40 ms on a small machine).
        gc.collect()
        gc.freeze()
        uvicorn.run(app_, host=host, port=port, **logs)
    finally:
        with contextlib.suppress(PausepointError, RuntimeError):
            asyncio.run(runs.aclose())
