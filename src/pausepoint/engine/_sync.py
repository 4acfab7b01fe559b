"""The one bridge from synchronous code to the async core.

Each thread that calls a ``_sync`` method keeps one event loop and reuses it:
making a loop per call (as ``asyncio.run`` does) costs more than a short run
itself. The loop is closed when its thread ends, and the main thread's at
interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from pausepoint.errors import ExecutorUsageError

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")


class _Held:
    """One thread's event loop; closed when the thread ends and its locals are dropped."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        import asyncio  # here, so that `import pausepoint` stays without it

        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        _close(self.loop)


_local = threading.local()


def _close(loop: asyncio.AbstractEventLoop | None) -> None:
    if loop is None or loop.is_closed():
        return
    with contextlib.suppress(Exception):  # a loop closing at exit has nothing to report
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def _loop() -> asyncio.AbstractEventLoop:
    held: _Held | None = getattr(_local, "held", None)
    if held is None or held.loop.is_closed():
        held = _local.held = _Held()
        if threading.current_thread() is threading.main_thread():
            atexit.register(_close, held.loop)
    return held.loop


def run_until_complete(coro: Coroutine[Any, Any, T], hint: str) -> T:
    """Drive ``coro`` to completion on this thread's event loop.

    Like ``asyncio.run``, Ctrl-C cancels the task and lets it unwind, so
    ``finally`` blocks run, then raises ``KeyboardInterrupt``. Inside a running
    loop a nested loop cannot be driven; rather than block that loop or start
    a thread behind the caller's back, refuse and say what to call.

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
        pass
    else:
        coro.close()
        raise ExecutorUsageError(
            f"an event loop is already running in this thread: use `{hint}` instead of the "
            "_sync variant"
        )
    loop = _loop()
    task = loop.create_task(coro)
    try:
        return loop.run_until_complete(task)
    except KeyboardInterrupt:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
        raise
