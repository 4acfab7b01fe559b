"""The notification options of ``serve``, ``sweep`` and ``worker``, and their environment.

Every process that may write a pause (a server answering, a worker, a sweep
recovering or applying a deadline) writes that pause's notifications into the
outbox, so all of them take the same ``--notify`` URLs; sweeps and workers
deliver. ``PAUSEPOINT_NOTIFY`` (URLs separated by spaces), ``PAUSEPOINT_BASE_URL``
and ``PAUSEPOINT_NOTIFY_SECRET`` set them for every command at once, and keep
secrets (the webhook secret, passwords in apprise URLs) out of ``ps`` output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

NOTIFY_ENV = "PAUSEPOINT_NOTIFY"
BASE_URL_ENV = "PAUSEPOINT_BASE_URL"
NOTIFY_SECRET_ENV = "PAUSEPOINT_NOTIFY_SECRET"

NotifyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--notify",
        metavar="URL",
        help=(
            "Tell of every pause through URL: an apprise URL (mailto://, slack://, ...; "
            "needs the notify extra) or a json:// / jsons:// webhook; repeat for several. "
            f"Also read from {NOTIFY_ENV} (URLs separated by spaces)."
        ),
        show_default=False,
    ),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar=BASE_URL_ENV,
        metavar="URL",
        help="Where the server is reached (https://pp.example): notifications link there.",
        show_default=False,
    ),
]
NotifySecretFileOption = Annotated[
    Path | None,
    typer.Option(
        "--notify-secret-file",
        metavar="PATH",
        help=(
            "A file holding the secret that signs webhook requests (HMAC-SHA256). "
            f"Also read from {NOTIFY_SECRET_ENV}."
        ),
        show_default=False,
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


def notify_options(
    notify: list[str] | None,
    base_url: str | None,
    secret_file: Path | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``Runs`` keyword arguments from the options, falling back to the environment."""
    env = os.environ if environ is None else environ
    urls = list(notify or []) or env.get(NOTIFY_ENV, "").split()
    options: dict[str, Any] = {}
    if urls:
        options["notify"] = urls
    base = base_url or env.get(BASE_URL_ENV)
    if base:
        options["base_url"] = base
    secret = (
        secret_file.read_text().strip() if secret_file is not None else env.get(NOTIFY_SECRET_ENV)
    )
    if secret:
        options["notify_secret"] = secret
    return options
