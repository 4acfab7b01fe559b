"""The one bridge from synchronous code to the async core."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import ExecutorUsageError

T = TypeVar("T")


def run_until_complete(coro: Coroutine[Any, Any, T], hint: str) -> T:
    """Drive ``coro`` to completion on a fresh event loop.

    ``asyncio.run`` cancels the task on Ctrl-C so ``finally`` blocks run. Inside
    a running loop a nested loop cannot be driven; rather than block that loop
    or start a thread behind the caller's back, refuse and say what to call.

    Args:
        coro: The coroutine to run.
        hint: The awaitable call to suggest, e.g. ``await executor.run(...)``.

    Raises:
        ExecutorUsageError: Called from inside a running event loop.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise ExecutorUsageError(
        f"an event loop is already running in this thread: use `{hint}` instead of the _sync variant"
    )
