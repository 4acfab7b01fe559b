"""Is a store usable: shared by ``/readyz`` and ``pausepoint doctor``.

A store connects and applies its pending migrations when first used, so one
read of the inbox index answers both "is it reachable" and "is it migrated";
a store migrated by a newer pausepoint refuses that read with a ``StoreError``.
"""

from __future__ import annotations

import asyncio
import importlib

from pausepoint.errors import PausepointError
from pausepoint.stores.base import Store

__all__ = ["PROBE_TIMEOUT", "probe_store", "schema_version_of"]

PROBE_TIMEOUT = 5.0
"""Seconds a probe waits for the store before calling it unavailable."""


async def probe_store(store: Store, timeout: float = PROBE_TIMEOUT) -> str | None:  # noqa: ASYNC109  # a probe bounds itself
    """Read one inbox entry; return why the store is not usable, or ``None`` when it is."""
    try:
        async with asyncio.timeout(timeout):
            await store.list_pending(limit=1)
    except TimeoutError:
        return f"the store at {store.url} did not answer within {timeout:g} s"
    except PausepointError as exc:
        return str(exc)
    except Exception as exc:  # whatever a driver raises, the answer is "not usable"
        return f"{type(exc).__name__}: {exc}"
    return None


def schema_version_of(store: Store) -> int | None:
    """The schema version a store that answered a probe is at: its backend's migration count.

    ``None`` for a backend without migrations (the memory store).
    """
    from ._seal import unwrapped

    module = importlib.import_module(type(unwrapped(store)).__module__)
    migrations = getattr(module, "MIGRATIONS", None)
    return None if migrations is None else len(migrations)
