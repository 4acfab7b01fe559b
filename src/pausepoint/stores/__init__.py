"""Durable stores for runs: open one by URL with :func:`open_store`.

Start with ``open_store("sqlite:///runs.db")`` on one machine, or a Redis or
PostgreSQL URL for several servers; ``memory://`` keeps everything in the process.
What every store guarantees is written in :mod:`pausepoint.stores.base`.

A backend module, and the driver it needs, is imported only when a URL asks
for it, so ``import pausepoint`` never imports redis or psycopg.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from pausepoint.stores.base import (
    AuditEvent,
    AuditKind,
    BufferedSignal,
    InboxEntry,
    PauseEntry,
    PendingPage,
    RunPage,
    RunStatus,
    Store,
    StoredRun,
)

__all__ = [
    "AuditEvent",
    "AuditKind",
    "BufferedSignal",
    "InboxEntry",
    "PauseEntry",
    "PendingPage",
    "RunPage",
    "RunStatus",
    "Store",
    "StoredRun",
    "open_store",
]

# scheme -> (module under pausepoint.stores, class, extra that installs its driver)
_BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("memory", "MemoryStore", None),
    "sqlite": ("sqlite", "SQLiteStore", None),
    "redis": ("redis", "RedisStore", "redis"),
    "rediss": ("redis", "RedisStore", "redis"),
    "postgresql": ("postgres", "PostgresStore", "postgres"),
    "postgres": ("postgres", "PostgresStore", "postgres"),
}


def open_store(url: str) -> Store:
    """Return the store for ``url``, chosen by its scheme; it connects on first use.

    ``memory://``
        In this process only; each call gives a new, empty store.
    ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``
        A file, safe to share between processes on one machine. ``?synchronous=normal``
        commits without waiting for the disk (safe across crashes, not power cuts).
    ``redis://[:password@]host[:port][/db][?prefix=name]``, ``rediss://...``
        Keys under ``prefix`` (default ``pausepoint``). Needs ``pausepoint[redis]``.
    ``postgresql://user[:password]@host[:port]/db[?schema=name]``, ``postgres://...``
        Tables in ``schema`` (default ``pausepoint``), created if missing. Needs
        ``pausepoint[postgres]``.

    Any other query parameter goes to the driver unchanged (redis-py's
    ``socket_timeout``, libpq's ``sslmode``, ...).

    Raises:
        ValueError: The scheme is not one of the above.
        ImportError: The backend's driver is not installed; the message says what to install.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _BACKENDS:
        accepted = ", ".join(f"{name}://" for name in _BACKENDS)
        raise ValueError(f"no store for URL scheme {scheme!r} in {url!r}; use one of {accepted}")
    module_name, class_name, extra = _BACKENDS[scheme]
    try:
        module = importlib.import_module(f"pausepoint.stores.{module_name}")
    except ImportError as error:
        if extra is None or error.name is None or error.name.startswith("pausepoint"):
            raise
        raise ImportError(
            f"the {scheme}:// store needs the {error.name!r} package: "
            f"pip install 'pausepoint[{extra}]'"
        ) from error
    return cast(Store, getattr(module, class_name)(url))


def __getattr__(name: str) -> Any:
    """``PendingPause``, :class:`InboxEntry`'s old name, still works (deprecated)."""
    if name == "PendingPause":
        from . import base

        return base.PendingPause
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
