"""The store contract for the run lifecycle: listing by status, erasing, keys, signals."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from pausepoint.errors import RunNotFoundError, VersionConflictError
from pausepoint.stores import BufferedSignal, Store, open_store

from .support import REDIS_URL, require_server
from .test_contract import event, make_pause, make_run


async def all_runs(store: Store, limit: int = 2, **filters: Any) -> list[str]:
    """Walk every page of a run listing; return the ids in order."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.list_runs(limit=limit, cursor=cursor, **filters)
        assert len(page.items) <= limit
        ids.extend(run.run_id for run in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def seed(store: Store) -> None:
    """Six runs of two charts in several statuses, changed at distinct times (one tie)."""
    runs = [
        make_run("a", status="completed", updated_at=10.0),
        make_run("b", status="failed", updated_at=20.0, stage="process"),
        make_run("c", status="completed", updated_at=30.0, chart="other"),
        make_run(
            "d", status="paused", updated_at=40.0, stage="approve", pauses=[make_pause("p", at=40)]
        ),
        make_run("e", status="completed", updated_at=50.0),
        make_run("f", status="completed", updated_at=50.0, chart="other"),
    ]
    for run in runs:
        await store.create(run, [event("started")])


async def test_list_runs_orders_by_last_change_newest_first_ties_by_run_id(store: Store) -> None:
    """Every run, most recently changed first; equal times by run id, descending."""
    await seed(store)
    assert await all_runs(store) == ["f", "e", "d", "c", "b", "a"]
    assert await all_runs(store, limit=1000) == ["f", "e", "d", "c", "b", "a"]


async def test_list_runs_filters_by_status_chart_stage_and_age(store: Store) -> None:
    """Each filter and their combinations narrow the listing; pages stay complete."""
    await seed(store)
    assert await all_runs(store, status="completed") == ["f", "e", "c", "a"]
    assert await all_runs(store, status="completed", chart="refund") == ["e", "a"]
    assert await all_runs(store, chart="other") == ["f", "c"]
    assert await all_runs(store, status="failed", stage="process") == ["b"]
    assert await all_runs(store, stage="approve") == ["d"]
    assert await all_runs(store, status="completed", updated_before=50.0) == ["c", "a"]
    assert await all_runs(store, status="expired") == []


async def test_list_runs_returns_light_records_that_follow_changes(store: Store) -> None:
    """Items carry the record without checkpoint and snapshot; a status change moves the run."""
    run = make_run("x", status="paused", pauses=[make_pause("p", at=1.0)], checkpoint={"big": 1})
    created = await store.create(run, [event("started")])
    (item,) = (await store.list_runs(status="paused")).items
    assert item == dataclasses.replace(created, checkpoint=None, snapshot=None)
    done = dataclasses.replace(created, status="completed", pauses=(), updated_at=200.0)
    await store.replace(done, expected_version=1)
    assert (await store.list_runs(status="paused")).items == ()
    assert await all_runs(store, status="completed") == ["x"]
    assert await all_runs(store) == ["x"]


async def test_list_runs_pages_stay_stable_while_runs_change(store: Store) -> None:
    """A cursor keeps working while runs are added or leave the listing."""
    for i in range(6):
        await store.create(make_run(f"r{i}", status="failed", updated_at=float(i)), [])
    first = await store.list_runs(status="failed", limit=2)
    assert [r.run_id for r in first.items] == ["r5", "r4"]
    await store.create(make_run("new", status="failed", updated_at=99.0), [])
    gone = await store.get("r3")
    await store.replace(dataclasses.replace(gone, status="completed"), expected_version=1)
    rest = await all_runs(store, status="failed", limit=2)
    assert rest == ["new", "r5", "r4", "r2", "r1", "r0"]
    second = await store.list_runs(status="failed", limit=10, cursor=first.next_cursor)
    assert [r.run_id for r in second.items] == ["r2", "r1", "r0"]


async def test_list_runs_refuses_foreign_cursors_and_bad_limits(store: Store) -> None:
    """A cursor from the inbox, or garbage, is a ValueError; so is a limit out of range."""
    for i in range(3):
        await store.create(
            make_run(f"p{i}", status="paused", pauses=[make_pause(f"x{i}", at=float(i))]), []
        )
    inbox = await store.list_pending(limit=1)
    assert inbox.next_cursor is not None
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_runs(cursor=inbox.next_cursor)
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_runs(cursor="garbage!")
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        await store.list_runs(limit=0)


async def test_pause_keys_round_trip_and_index_waiting_pauses(store: Store) -> None:
    """A pause's key comes back; list_keyed finds exactly the pauses waiting under it."""
    one = make_run(
        "k1",
        status="paused",
        pauses=[make_pause("p1", at=1.0, key="order:7"), make_pause("p2", at=2.0, stage="b")],
    )
    two = make_run("k2", status="paused", pauses=[make_pause("p3", at=3.0, key="order:7")])
    other = make_run("k3", status="paused", pauses=[make_pause("p4", at=4.0, key="order:8")])
    for run in (one, two, other):
        await store.create(run, [])
    assert (await store.get("k1")).pauses[0].key == "order:7"
    found = await store.list_keyed("order:7")
    assert [(p.run_id, p.pause.pause_id, p.pause.key) for p in found] == [
        ("k2", "p3", "order:7"),
        ("k1", "p1", "order:7"),
    ]
    assert found[0].chart == "refund"
    assert (await store.list_keyed("order:7", limit=1))[0].run_id == "k2"
    assert await store.list_keyed("nobody") == ()
    current = await store.get("k2")
    await store.replace(dataclasses.replace(current, status="running"), expected_version=1)
    assert [p.run_id for p in await store.list_keyed("order:7")] == ["k1"]
    inbox = await store.list_pending()
    assert {p.pause.pause_id: p.pause.key for p in inbox.items} == {
        "p1": "order:7",
        "p2": None,
        "p4": "order:8",
    }


async def test_delete_erases_the_run_and_everything_it_has(store: Store) -> None:
    """Record, audit, journal, inbox, key and listing entries go; other runs stay."""
    paused = make_run("gone", status="paused", pauses=[make_pause("p", at=1.0, key="k")])
    await store.create(paused, [event("started"), event("paused")])
    await store.create(make_run("kept", status="completed"), [event("started")])
    await store.delete("gone", expected_version=1)
    with pytest.raises(RunNotFoundError):
        await store.get("gone")
    with pytest.raises(RunNotFoundError):
        await store.audit("gone")
    with pytest.raises(RunNotFoundError):
        await store.journal("gone")
    assert (await store.list_pending()).items == ()
    assert await store.list_keyed("k") == ()
    assert await all_runs(store) == ["kept"]
    assert [e.kind for e in await store.audit("kept")] == ["started"]
    # the id is free again, with a fresh audit
    await store.create(make_run("gone", status="completed"), [event("completed")])
    assert [e.kind for e in await store.audit("gone")] == ["completed"]


async def test_delete_with_a_stale_version_or_unknown_id_erases_nothing(store: Store) -> None:
    """A version that moved on is a conflict; an unknown id is RunNotFoundError."""
    await store.create(make_run("r", status="completed"), [event("started")])
    with pytest.raises(VersionConflictError):
        await store.delete("r", expected_version=7)
    assert (await store.get("r")).version == 1
    with pytest.raises(RunNotFoundError, match="no run 'ghost'"):
        await store.delete("ghost", expected_version=1)


async def test_purge_erases_old_runs_of_one_status_in_batches(store: Store) -> None:
    """Oldest first, at most ``limit`` per call, only the status and age asked for."""
    for i in range(5):
        await store.create(make_run(f"c{i}", status="completed", updated_at=float(i)), [event()])
    await store.create(make_run("young", status="completed", updated_at=100.0), [])
    await store.create(make_run("failed", status="failed", updated_at=1.0), [])
    await store.create(
        make_run("paused", status="paused", updated_at=1.0, pauses=[make_pause("p", at=1.0)]), []
    )
    assert await store.purge(status="completed", updated_before=50.0, limit=2) == ("c0", "c1")
    assert await store.purge(status="completed", updated_before=50.0, limit=2) == ("c2", "c3")
    assert await store.purge(status="completed", updated_before=50.0, limit=2) == ("c4",)
    assert await store.purge(status="completed", updated_before=50.0, limit=2) == ()
    assert sorted(await all_runs(store)) == ["failed", "paused", "young"]
    with pytest.raises(RunNotFoundError):
        await store.audit("c0")
    assert await store.purge(status="paused", updated_before=50.0) == ("paused",)
    assert (await store.list_pending()).items == ()
    with pytest.raises(ValueError, match="limit"):
        await store.purge(status="failed", updated_before=50.0, limit=0)


async def test_purge_by_chart_and_with_charts_excluded(store: Store) -> None:
    """``chart`` keeps to one chart; ``exclude_charts`` leaves those charts alone."""
    for chart in ("refund", "other", "third"):
        for i in range(3):
            await store.create(make_run(f"{chart}{i}", status="failed", chart=chart), [])
    assert set(await store.purge(status="failed", updated_before=500.0, chart="third")) == {
        "third0",
        "third1",
        "third2",
    }
    erased = await store.purge(
        status="failed", updated_before=500.0, exclude_charts=["refund"], limit=2
    )
    assert len(erased) == 2
    erased += await store.purge(status="failed", updated_before=500.0, exclude_charts=["refund"])
    assert sorted(erased) == ["other0", "other1", "other2"]
    assert sorted(await all_runs(store)) == ["refund0", "refund1", "refund2"]


async def test_concurrent_purges_erase_each_run_once(store: Store, open_sibling: Any) -> None:
    """Two purgers at once: together they erase every match, no run twice."""
    for i in range(40):
        await store.create(make_run(f"r{i:02}", status="completed", updated_at=float(i)), [])
    other = await open_sibling()

    async def drain(s: Store) -> list[str]:
        erased: list[str] = []
        while batch := await s.purge(status="completed", updated_before=100.0, limit=5):
            erased.extend(batch)
        return erased

    first, second = await asyncio.gather(drain(store), drain(other))
    assert sorted(first + second) == [f"r{i:02}" for i in range(40)]
    assert await all_runs(store) == []


def signal(key: str, value: Any, *, at: float = 100.0, ttl: float = 60.0) -> BufferedSignal:
    return BufferedSignal(key=key, input=value, actor="stripe", at=at, expires_at=at + ttl)


async def test_buffered_signals_are_taken_once_oldest_first(store: Store) -> None:
    """Signals of one key come out in the order kept, each once; other keys are apart."""
    assert await store.buffer_signal(signal("k", {"n": 1}), limit=10)
    assert await store.buffer_signal(signal("k", {"n": 2}), limit=10)
    assert await store.buffer_signal(signal("j", {"n": 3}), limit=10)
    first = await store.take_signal("k", 101.0)
    assert first == signal("k", {"n": 1})
    assert (await store.take_signal("k", 101.0)) == signal("k", {"n": 2})
    assert await store.take_signal("k", 101.0) is None
    assert (await store.take_signal("j", 101.0)) == signal("j", {"n": 3})


async def test_signal_buffer_is_bounded_in_count_and_time(store: Store) -> None:
    """A full key refuses more; expired signals are never handed out and free their slot."""
    assert await store.buffer_signal(signal("k", 1, at=100.0, ttl=10.0), limit=2)
    assert await store.buffer_signal(signal("k", 2, at=100.0, ttl=50.0), limit=2)
    assert not await store.buffer_signal(signal("k", 3, at=101.0), limit=2)
    # at 120 the first has expired: room for one more
    assert await store.buffer_signal(signal("k", 4, at=120.0), limit=2)
    taken = await store.take_signal("k", 121.0)
    assert taken is not None
    assert taken.input == 2
    assert await store.take_signal("k", 1000.0) is None  # the last one expired meanwhile
    await store.buffer_signal(signal("a", 1, at=100.0, ttl=5.0), limit=5)
    await store.buffer_signal(signal("b", 1, at=100.0, ttl=5.0), limit=5)
    await store.buffer_signal(signal("c", 1, at=100.0, ttl=500.0), limit=5)
    assert await store.drop_expired_signals(200.0) == 2
    assert await store.take_signal("a", 101.0) is None
    assert await store.take_signal("c", 201.0) is not None


async def test_concurrent_takes_hand_a_signal_out_once(store: Store, open_sibling: Any) -> None:
    """Ten takers at once, three signals: three get one each."""
    for n in range(3):
        await store.buffer_signal(signal("k", n), limit=10)
    stores = [store, await open_sibling()]
    taken = await asyncio.gather(*(stores[i % 2].take_signal("k", 101.0) for i in range(10)))
    assert sorted(t.input for t in taken if t is not None) == [0, 1, 2]


@pytest.mark.redis
async def test_redis_migration_3_lists_runs_written_before_it() -> None:
    """Runs written before migration 3 join the status listings when a store opens."""
    require_server(REDIS_URL, "PAUSEPOINT_TEST_REDIS_URL")
    import redis.asyncio

    prefix = f"pp-mig3-{id(object())}"
    url = f"{REDIS_URL}?prefix={prefix}"
    store = open_store(url)
    client = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await store.create(make_run("old", status="completed", updated_at=5.0), [event()])
        # make it look as release 2 wrote it: in no listing set, no summary
        for key in await client.keys(f"{prefix}:runs:*"):
            await client.delete(key)
        await client.hdel(f"{prefix}:run:old", "summary", "chart")
        await client.set(f"{prefix}:schema", 2)
        await store.aclose()
        store = open_store(url)
        assert await all_runs(store, status="completed") == ["old"]
        assert await store.purge(status="completed", updated_before=10.0) == ("old",)
        assert await all_runs(store) == []
        assert await client.keys(f"{prefix}:runs:*") == []
    finally:
        await store.aclose()
        keys = await client.keys(f"{prefix}:*")
        if keys:
            await client.delete(*keys)
        await client.aclose()
