"""The inbox read path: a page as JSON bytes, and one store read shared by identical requests.

The inbox is what reviewers poll, often many at once and mostly the same first
page. Two things keep it cheap:

* :func:`inbox_body` writes the page's JSON straight from the store's records,
  byte for byte what the :class:`~._models.InboxPage` model would write,
  without building and validating a model per item;
* :class:`SharedReads` lets requests for the same page that arrive while one
  read of it is in flight share the next read, so ``n`` identical requests cost
  about one store read and one encoding per round trip instead of ``n``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic_core import to_json

from pausepoint.stores.base import PauseEntry, PendingPage

__all__ = ["SharedReads", "inbox_body"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def inbox_body(page: PendingPage) -> bytes:
    """Return the JSON body of an inbox page, byte for byte as the ``InboxPage`` model writes it.

    pydantic-core writes the JSON, as it does for the model, but from plain
    dicts: floats as floats (``5.0``), NaN and infinity as ``null``, keys in the
    model's order.
    """
    document = {
        "items": [
            {
                "run_id": item.run_id,
                "chart": item.chart,
                "pause": _pause(item.pause),
                "run_created_at": float(item.run_created_at),
            }
            for item in page.items
        ],
        "next_cursor": page.next_cursor,
    }
    return to_json(document, inf_nan_mode="null")


def _pause(entry: PauseEntry) -> dict[str, Any]:
    return {
        "id": entry.pause_id,
        "stage_id": entry.stage_id,
        "data": entry.data,
        "created_at": float(entry.created_at),
        "deadline": None if entry.deadline is None else float(entry.deadline),
        "key": entry.key,
        "assignees": list(entry.assignees),
    }


@dataclass
class _Key:
    """The reads of one key: whether one is in flight, and the one its latecomers share."""

    task: asyncio.Task[None] | None = None
    waiting: asyncio.Future[Any] | None = None


class SharedReads(Generic[K, T]):
    """Runs ``read(key)`` at most once at a time per key; requests that wait share a read.

    A caller never gets a result read before it asked: one that arrives while a
    read of its key is in flight waits for that read to end, then shares the next
    read with every caller that arrived meanwhile. At rest a call reads at once;
    under load, identical calls cost about one read per round trip. An exception
    from a read is raised to every caller sharing it. A cancelled caller does
    not cancel the read the others wait for.

    Args:
        read: Reads the value of a key (a page of the inbox, as JSON bytes).
    """

    def __init__(self, read: Callable[[K], Awaitable[T]]) -> None:
        self._read = read
        self._keys: dict[K, _Key] = {}

    async def get(self, key: K) -> T:
        """Return the value of ``key``, from a read that starts after this call did."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key()
        if state.waiting is None:
            state.waiting = asyncio.get_running_loop().create_future()
        shared = state.waiting
        if state.task is None:
            state.task = asyncio.create_task(self._drive(key, state))
        result: T = await asyncio.shield(shared)
        return result

    async def _drive(self, key: K, state: _Key) -> None:
        shared = None
        try:
            while state.waiting is not None:
                shared, state.waiting = state.waiting, None
                try:
                    value = await self._read(key)
                except Exception as exc:
                    shared.set_exception(exc)
                    shared.exception()  # retrieved: callers that left must not log it
                else:
                    shared.set_result(value)
        finally:
            del self._keys[key]
            for left in (shared, state.waiting):  # unresolved only if this task was cancelled
                if left is not None and not left.done():
                    left.cancel()
