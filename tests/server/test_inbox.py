"""The inbox read path: its JSON body, and identical reads in flight sharing one store read."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from pausepoint.server._inbox import SharedReads, inbox_body
from pausepoint.server._models import inbox_out
from pausepoint.stores.base import InboxEntry, PauseEntry, PendingPage

from .conftest import KIM, start_refund


def _page(data: object, created_at: float = 1_764_844_000.25) -> PendingPage:
    pause = PauseEntry(
        pause_id="p-1", stage_id="approve", data=data, created_at=created_at, deadline=None
    )
    item = InboxEntry(run_id="r-1", chart="refund", pause=pause, run_created_at=1_764_844_000)
    return PendingPage(items=(item,), next_cursor="next")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"question": "Approve €900?", "amount": 900, "nested": [1.5, None]}, id="obj"),
        pytest.param("just a string", id="str"),
        pytest.param({"amount": float("nan"), "limit": float("inf")}, id="nan"),
    ],
)
def test_inbox_body_is_what_the_model_writes(data: object) -> None:
    """The hand-built body is byte for byte the InboxPage model's JSON (ints as floats, NaN null)."""
    page = _page(data)
    assert inbox_body(page) == inbox_out(page).model_dump_json().encode()


async def test_inbox_answers_match_the_run_records(client: httpx.AsyncClient) -> None:
    """The inbox lists what the runs hold, with the pause as GET /api/runs/{id} shows it."""
    first, second = await start_refund(client), await start_refund(client)
    inbox = (
        await client.get("/api/runs", params={"status": "paused", "limit": 50}, headers=KIM)
    ).json()
    assert [item["run_id"] for item in inbox["items"]] == [second["run_id"], first["run_id"]]
    shown = (await client.get(f"/api/runs/{first['run_id']}", headers=KIM)).json()
    assert inbox["items"][1]["pause"] == shown["pause"]
    assert inbox["items"][1]["run_created_at"] == shown["created_at"]


class _Reads:
    """A read that waits to be released, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self, key: str) -> str:
        self.calls.append(key)
        await self.release.wait()
        self.release.clear()
        if self.fail is not None:
            raise self.fail
        return f"{key}#{len(self.calls)}"


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_arriving_during_a_read_share_the_next_one() -> None:
    """A read in flight is never handed to a later caller; all latecomers share one new read."""
    reads = _Reads()
    shared = SharedReads(reads)
    first = asyncio.create_task(shared.get("page"))
    await _settle()
    latecomers = [asyncio.create_task(shared.get("page")) for _ in range(3)]
    other = asyncio.create_task(shared.get("other page"))
    await _settle()
    assert reads.calls == ["page", "other page"]
    reads.release.set()  # ends both reads in flight; the latecomers' read starts
    await _settle()
    assert reads.calls == ["page", "other page", "page"]
    assert first.done()
    assert not any(t.done() for t in latecomers)
    reads.release.set()
    results = await asyncio.gather(first, *latecomers, other)
    assert reads.calls == ["page", "other page", "page"]
    assert results[0] != results[1]
    assert len(set(results[1:4])) == 1
    assert results[4].startswith("other page#")


async def test_a_failed_read_fails_every_caller_sharing_it_and_the_next_reads_again() -> None:
    """Each caller sharing a read gets its error; a later call starts a fresh read."""
    reads = _Reads()
    shared = SharedReads(reads)
    reads.fail = ValueError("bad cursor")
    callers = [asyncio.create_task(shared.get("page")) for _ in range(3)]
    await _settle()
    reads.release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes)
    reads.fail = None
    later = asyncio.create_task(shared.get("page"))
    await _settle()
    reads.release.set()
    assert await later == "page#2"


async def test_a_cancelled_caller_leaves_the_shared_read_to_the_others() -> None:
    """Cancelling one caller (a client that went away) does not cancel the read it shared."""
    reads = _Reads()
    shared = SharedReads(reads)
    leaving, staying = (asyncio.create_task(shared.get("page")) for _ in range(2))
    await _settle()
    leaving.cancel()
    await _settle()
    reads.release.set()
    assert await staying == "page#1"
    assert leaving.cancelled()


async def test_concurrent_inbox_requests_all_get_the_page(client: httpx.AsyncClient) -> None:
    """Many identical requests at once each get the whole page (shared reads, same answer)."""
    started = [await start_refund(client) for _ in range(3)]
    answers = await asyncio.gather(
        *(client.get("/api/runs?limit=2", headers=KIM) for _ in range(20))
    )
    bodies = {a.content for a in answers}
    assert all(a.status_code == 200 for a in answers)
    assert all(a.headers["content-type"] == "application/json" for a in answers)
    assert len(bodies) == 1
    page = json.loads(bodies.pop())
    assert [i["run_id"] for i in page["items"]] == [started[2]["run_id"], started[1]["run_id"]]
    assert page["next_cursor"] is not None
