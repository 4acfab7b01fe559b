"""The store contract of claims and the journal: update, append_steps, journal, renewer."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any

import pytest

from pausepoint.errors import ClaimLostError, RunNotFoundError
from pausepoint.stores import Store, StoredRun
from pausepoint.stores.base import JournalEntry, Update

from .support import OpenStore
from .test_contract import event, make_pause, make_run


def step(kind: str = "stage", stage_id: str = "a", **data: Any) -> JournalEntry:
    return JournalEntry(kind=kind, stage_id=stage_id, at=time.time(), data=data)


async def running(store: Store, owner: str = "me:1", lease: float = 60.0) -> StoredRun:
    return await store.create(
        make_run(lease_owner=owner, lease_until=time.time() + lease), [event("started")]
    )


async def test_update_writes_record_events_and_steps_in_one_go(store: Store) -> None:
    run = await running(store)

    def decide(current: StoredRun) -> Update:
        assert current.version == 1
        return Update(
            run=dataclasses.replace(current, status="paused", pauses=(make_pause("p", at=5.0),)),
            events=[event("paused")],
            steps=[step(x=1), step("paused", "b")],
        )

    stored, audit = await store.update(run.run_id, decide, audit=True)
    assert stored.version == 2
    assert stored.step_count == 2
    assert [e.kind for e in audit] == ["started", "paused"]
    assert [e.seq for e in audit] == [1, 2]
    got = await store.get(run.run_id)
    assert (got.status, got.version, got.step_count) == ("paused", 2, 2)
    assert [p.pause.pause_id for p in (await store.list_pending()).items] == ["p"]
    journal = await store.journal(run.run_id)
    assert [(s.index, s.kind, s.stage_id, dict(s.data)) for s in journal] == [
        (0, "stage", "a", {"x": 1}),
        (1, "paused", "b", {}),
    ]
    assert [s.index for s in await store.journal(run.run_id, start=1)] == [1]


async def test_update_that_decides_nothing_or_raises_writes_nothing(store: Store) -> None:
    run = await running(store)
    stored, audit = await store.update(run.run_id, lambda current: None)
    assert (stored.version, audit) == (1, ())

    def refuse(current: StoredRun) -> Update:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await store.update(run.run_id, refuse)
    assert (await store.get(run.run_id)).version == 1
    assert len(await store.audit(run.run_id)) == 1
    with pytest.raises(RunNotFoundError):
        await store.update("nope", lambda current: None)


async def test_update_light_leaves_out_checkpoint_and_snapshot(store: Store) -> None:
    run = await store.create(
        make_run(checkpoint={"big": [1] * 100}, snapshot={"s": 1}), [event("started")]
    )
    seen: list[StoredRun] = []
    await store.update(run.run_id, lambda current: seen.append(current), light=True)
    assert (seen[0].checkpoint, seen[0].snapshot) == (None, None)
    assert (await store.get(run.run_id)).checkpoint == {"big": [1] * 100}


async def test_concurrent_updates_lose_nothing(open_sibling: OpenStore) -> None:
    """Updaters from several store objects (connections) at once: every increment is kept."""
    stores = [await open_sibling() for _ in range(3)]
    run = await stores[0].create(make_run(meta={"n": 0}), [])

    def bump(current: StoredRun) -> Update:
        return Update(
            run=dataclasses.replace(current, meta={"n": current.meta["n"] + 1}),
            steps=[step(n=current.meta["n"])],
        )

    await asyncio.gather(*(s.update(run.run_id, bump) for s in stores for _ in range(10)))
    got = await stores[0].get(run.run_id)
    assert got.meta["n"] == 30
    assert got.version == 31
    journal = await stores[0].journal(run.run_id)
    assert [s.data["n"] for s in journal] == list(range(30))


async def test_append_steps_only_for_the_owner_of_a_running_run(store: Store) -> None:
    run = await running(store, lease=1.0)
    until = time.time() + 120
    assert await store.append_steps(run.run_id, "me:1", [step(a=1)], until) is None
    got = await store.get(run.run_id)
    assert got.step_count == 1
    assert got.lease_until == pytest.approx(until)
    assert await store.list_stale(time.time() + 60) == ()  # the lease was renewed
    before = await store.journal(run.run_id)

    with pytest.raises(ClaimLostError, match=run.run_id):
        await store.append_steps(run.run_id, "other:1", [step(a=2)], until)
    assert await store.journal(run.run_id) == before

    await store.update(
        run.run_id,
        lambda current: Update(run=dataclasses.replace(current, status="completed")),
    )
    with pytest.raises(ClaimLostError):
        await store.append_steps(run.run_id, "me:1", [step(a=3)], until)
    assert await store.journal(run.run_id) == before
    with pytest.raises(RunNotFoundError):
        await store.append_steps("nope", "me:1", [step()], until)


async def test_append_steps_reports_a_cancel_request(store: Store) -> None:
    run = await running(store)
    request = {"actor": "ops", "reason": "stop"}
    await store.update(
        run.run_id, lambda current: Update(run=dataclasses.replace(current, cancel=request))
    )
    assert await store.append_steps(run.run_id, "me:1", [step()], time.time() + 60) == request
    assert (await store.get(run.run_id)).cancel == request


async def test_renewer_works_from_a_thread_while_the_loop_is_blocked(store: Store) -> None:
    """The renewer has its own connection: it renews while the event loop sleeps in sync code."""
    held = await running(store, "me:1", lease=1.0)
    other = await running(store, "them:1", lease=1.0)
    done = await running(store, "me:2", lease=1.0)
    await store.update(
        done.run_id, lambda current: Update(run=dataclasses.replace(current, status="completed"))
    )
    await store.update(
        held.run_id,
        lambda current: Update(run=dataclasses.replace(current, cancel={"reason": "r"})),
    )
    until = time.time() + 300
    result: dict[str, Any] = {}

    def renew() -> None:
        renewer = store.renewer()
        try:
            claims = [(held.run_id, "me:1"), (other.run_id, "me:1"), (done.run_id, "me:2")]
            result.update(renewer.renew(claims, until))
        finally:
            renewer.close()

    thread = threading.Thread(target=renew)
    thread.start()
    thread.join(timeout=30)  # the loop is blocked meanwhile: the renewer must not need it
    assert not thread.is_alive()
    assert result == {held.run_id: {"reason": "r"}}
    assert (await store.get(held.run_id)).lease_until == pytest.approx(until)
    stale = {r.run_id for r in await store.list_stale(time.time() + 60)}
    assert held.run_id not in stale
    assert other.run_id in stale
