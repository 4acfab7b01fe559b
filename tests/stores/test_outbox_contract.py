"""The store contract for the notification outbox: written with the pause, claimed once, settled."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from pausepoint.stores import Store
from pausepoint.stores.base import OutboxEntry, Update

from .support import OpenStore
from .test_contract import event, make_pause, make_run


def entry(run_id: str, url: str = "json://hooks.test/x", **kw: Any) -> OutboxEntry:
    fields: dict[str, Any] = {
        "pause_id": "p1",
        "kind": "deliver",
        "tag": "paused",
        "payload": {"stage_id": "approve", "amount": 12.5, "note": "café"},
        "next_at": 100.0,
        "created_at": 100.0,
    }
    fields.update(kw)
    return OutboxEntry(run_id=run_id, url=url, **fields)


async def paused_with(store: Store, entries: list[OutboxEntry], run_id: str = "r1") -> None:
    run = make_run(run_id, status="paused", pauses=[make_pause("p1", at=100.0)])
    await store.create(run, [event("paused")], outbox=entries)


async def test_entries_are_written_with_the_run_and_deduplicated_by_id(store: Store) -> None:
    """create() and update() write outbox entries; one whose id exists is not written again."""
    first = entry("r1", payload={"n": 1})
    await paused_with(store, [first, entry("r1", url="mailto://a@b.test")])
    again = dataclasses.replace(first, payload={"n": 2}, next_at=5.0)
    third = entry("r1", tag="reminder:1", created_at=101.0)

    def decide(current: Any) -> Update:
        return Update(run=current, events=[event()], outbox=[again, third])

    await store.update("r1", decide)
    entries = await store.list_outbox("r1")
    assert len(entries) == 3
    kept = next(e for e in entries if e.id == first.id)
    assert kept.payload == {"n": 1}
    assert kept.next_at == 100.0
    assert [e.tag for e in entries][-1] == "reminder:1"
    assert await store.list_outbox("unknown") == ()


async def test_entries_round_trip_every_field(store: Store) -> None:
    """What list_outbox and claim_outbox return is what was written (floats exact)."""
    written = entry("r1", next_at=1764855000.123456, created_at=1764854999.654321, error="x")
    await paused_with(store, [written])
    (listed,) = await store.list_outbox("r1")
    assert listed == written
    (claimed,) = await store.claim_outbox(1764855000.2, owner="o1", lease_until=1764855060.5)
    assert claimed == dataclasses.replace(written, owner="o1", attempts=1, next_at=1764855060.5)


async def test_a_failed_update_writes_no_outbox_entry(store: Store) -> None:
    """A decider that raises writes nothing: no record, no event, no outbox entry."""
    await paused_with(store, [])

    def decide(current: Any) -> Update:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await store.update("r1", decide)
    assert await store.list_outbox("r1") == ()


async def test_claims_take_due_pending_entries_earliest_first_and_lease_them(
    store: Store,
) -> None:
    """Due entries are leased: a second claim before the lease lapses gets none of them."""
    await paused_with(
        store,
        [
            entry("r1", url="json://a", next_at=30.0),
            entry("r1", url="json://b", next_at=10.0),
            entry("r1", url="json://c", next_at=20.0),
            entry("r1", url="json://later", next_at=500.0),
        ],
    )
    claimed = await store.claim_outbox(100.0, owner="o1", lease_until=160.0, limit=2)
    assert [e.url for e in claimed] == ["json://b", "json://c"]
    assert all(e.owner == "o1" and e.attempts == 1 and e.next_at == 160.0 for e in claimed)
    rest = await store.claim_outbox(100.0, owner="o2", lease_until=160.0)
    assert [e.url for e in rest] == ["json://a"]
    assert await store.claim_outbox(150.0, owner="o3", lease_until=210.0) == ()
    # the first claimer died: its lease lapses, and another claimer gets the entries again
    again = await store.claim_outbox(161.0, owner="o3", lease_until=220.0)
    assert sorted(e.url for e in again) == ["json://a", "json://b", "json://c"]
    assert all(e.attempts == 2 for e in again)


async def test_settling_is_for_the_lease_holder_only(store: Store) -> None:
    """A claimer whose lease was taken over writes nothing; the holder's outcome sticks."""
    await paused_with(store, [entry("r1")])
    (old,) = await store.claim_outbox(100.0, owner="old", lease_until=110.0)
    (new,) = await store.claim_outbox(111.0, owner="new", lease_until=170.0)
    lost = await store.settle_outbox(
        old, owner="old", state="sent", next_at=111.0, events=[event("notified")]
    )
    assert lost is False
    assert [e.kind for e in await store.audit("r1")] == ["paused"]
    assert await store.settle_outbox(
        new, owner="new", state="sent", next_at=112.0, events=[event("notified")]
    )
    (settled,) = await store.list_outbox("r1")
    assert (settled.state, settled.owner, settled.attempts) == ("sent", None, 2)
    assert [e.kind for e in await store.audit("r1")] == ["paused", "notified"]
    assert await store.claim_outbox(1000.0, owner="x", lease_until=1100.0) == ()
    assert not await store.settle_outbox(new, owner="new", state="failed", next_at=1.0)


async def test_settling_pending_reschedules_and_adds_follow_up_entries(store: Store) -> None:
    """A retry or a timer goes back to pending at next_at, with its error, payload and new entries."""
    await paused_with(store, [entry("r1", kind="remind", url="", tag="remind")])
    (timer,) = await store.claim_outbox(100.0, owner="o", lease_until=160.0)
    follow = entry("r1", tag="reminder:1", next_at=101.0, created_at=101.0)
    assert await store.settle_outbox(
        timer,
        owner="o",
        state="pending",
        next_at=200.0,
        error="boom",
        payload={"count": 1},
        events=[event("reminded")],
        outbox=[follow],
    )
    assert await store.claim_outbox(150.0, owner="o", lease_until=210.0) == (
        dataclasses.replace(follow, owner="o", attempts=1, next_at=210.0),
    )
    (again,) = await store.claim_outbox(200.0, owner="p", lease_until=260.0)
    assert (again.error, again.payload, again.attempts) == ("boom", {"count": 1}, 2)


async def test_settling_refuses_an_unknown_state(store: Store) -> None:
    """Only pending, sent and failed exist."""
    await paused_with(store, [entry("r1")])
    (claimed,) = await store.claim_outbox(100.0, owner="o", lease_until=160.0)
    with pytest.raises(ValueError, match="outbox state"):
        await store.settle_outbox(claimed, owner="o", state="done", next_at=1.0)  # type: ignore[arg-type]


async def test_erasing_a_run_erases_its_outbox(store: Store) -> None:
    """delete() and purge() take the run's entries with it: nothing is claimed for it later."""
    await paused_with(store, [entry("r1")], run_id="r1")
    await paused_with(store, [entry("r2")], run_id="r2")
    await store.delete("r1", expected_version=1)
    await store.purge(status="paused", updated_before=1000.0)
    assert await store.list_outbox("r1") == ()
    assert await store.list_outbox("r2") == ()
    assert await store.claim_outbox(1000.0, owner="o", lease_until=1100.0) == ()


async def test_concurrent_claimers_get_each_entry_once(open_sibling: OpenStore) -> None:
    """Many claimers on several store objects at once: every entry claimed exactly once."""
    stores = [await open_sibling() for _ in range(4)]
    await paused_with(stores[0], [entry("r1", url=f"json://h/{i}") for i in range(60)])

    async def claimer(store: Store, name: str) -> list[str]:
        got: list[str] = []
        while batch := await store.claim_outbox(100.0, owner=name, lease_until=1000.0, limit=7):
            got.extend(e.url for e in batch)
        return got

    results = await asyncio.gather(*(claimer(s, f"o{i}") for i, s in enumerate(stores)))
    every = [url for got in results for url in got]
    assert sorted(every) == sorted(f"json://h/{i}" for i in range(60))
