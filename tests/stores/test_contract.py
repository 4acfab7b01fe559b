"""The store contract (pausepoint.stores.base), checked on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pausepoint.errors import (
    RunExistsError,
    RunNotFoundError,
    StoreUnavailableError,
    VersionConflictError,
)
from pausepoint.stores import (
    AuditEvent,
    InboxEntry,
    PauseEntry,
    RunStatus,
    Store,
    StoredRun,
    open_store,
)
from pausepoint.stores.base import Update

from .support import DURABLE, OpenStore, PostgresServer, RedisServer, require_server, schema_version

WON = b"won\n"
durable = pytest.mark.parametrize("backend", DURABLE, indirect=True)

JSON_VALUE: dict[str, Any] = {
    "text": 'héllo ✓ "quoted" \\ back',
    "int": 2**62,
    "float": 1732545123.1234567,
    "nested": {"list": [1, 2.5, None, True, False, {"deep": []}], "empty": {}},
}


def make_pause(pause_id: str, *, at: float, stage: str = "approve", **kw: Any) -> PauseEntry:
    return PauseEntry(
        pause_id=pause_id, stage_id=stage, data={"form": pause_id}, created_at=at, **kw
    )


def make_run(
    run_id: str | None = None,
    *,
    status: RunStatus = "running",
    pauses: Sequence[PauseEntry] = (),
    chart: str = "refund",
    **kw: Any,
) -> StoredRun:
    return StoredRun(
        run_id=run_id or uuid.uuid4().hex,
        chart=chart,
        fingerprint="fp1",
        status=status,
        created_at=kw.pop("created_at", 100.0),
        updated_at=kw.pop("updated_at", 100.0),
        pauses=tuple(pauses),
        **kw,
    )


def event(kind: Any = "progress", **kw: Any) -> AuditEvent:
    return AuditEvent(kind=kind, at=kw.pop("at", 1.0), **kw)


async def all_pending(store: Store, limit: int = 3, **filters: Any) -> list[InboxEntry]:
    """Walk every page of the inbox."""
    items: list[InboxEntry] = []
    cursor = None
    while True:
        page = await store.list_pending(limit=limit, cursor=cursor, **filters)
        assert len(page.items) <= limit
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def keys(items: Sequence[InboxEntry]) -> list[tuple[float, str, str]]:
    return [(i.pause.created_at, i.run_id, i.pause.pause_id) for i in items]


# -- records -------------------------------------------------------------------


async def test_create_then_get_round_trips_every_field(store: Store) -> None:
    """A created record comes back equal, at version 1, JSON values intact."""
    run = make_run(
        status="paused",
        pauses=[make_pause("p1", at=150.5, deadline=900.25)],
        checkpoint=JSON_VALUE,
        snapshot={"state": JSON_VALUE, "tree": []},
        error=None,
        lease_owner="worker-1",
        lease_until=123.456,
        meta={"owner": "ops", "n": 3},
        version=77,  # ignored: the store sets versions
    )
    created = await store.create(run, [event("started")])
    assert created == dataclasses.replace(run, version=1)
    assert await store.get(run.run_id) == created


async def test_create_refuses_an_existing_id_and_writes_nothing(store: Store) -> None:
    """A second create with the same id raises RunExistsError and changes nothing."""
    run = make_run("dup", status="paused", pauses=[make_pause("p1", at=1.0)])
    await store.create(run, [event("started")])
    other = make_run("dup", chart="other", status="completed")
    with pytest.raises(RunExistsError, match="'dup' already exists") as info:
        await store.create(other, [event("completed")])
    assert info.value.run_id == "dup"
    assert (await store.get("dup")).chart == "refund"
    assert [e.kind for e in await store.audit("dup")] == ["started"]
    assert len((await store.list_pending()).items) == 1


async def test_unknown_run_raises_run_not_found(store: Store) -> None:
    """Every per-run operation names the missing id."""
    with pytest.raises(RunNotFoundError, match="no run 'ghost'") as info:
        await store.get("ghost")
    assert info.value.run_id == "ghost"
    with pytest.raises(RunNotFoundError):
        await store.replace(make_run("ghost"), expected_version=1)
    with pytest.raises(RunNotFoundError):
        await store.append_audit("ghost", [event()])
    with pytest.raises(RunNotFoundError):
        await store.audit("ghost")


async def test_replace_bumps_the_version_and_returns_the_stored_record(store: Store) -> None:
    """replace writes the whole record at expected_version + 1, ignoring run.version."""
    run = await store.create(make_run(), [])
    paused = dataclasses.replace(
        run, status="paused", pauses=(make_pause("p1", at=5.0),), checkpoint={"at": "approve"}
    )
    stored = await store.replace(dataclasses.replace(paused, version=99), expected_version=1)
    assert stored == dataclasses.replace(paused, version=2)
    assert await store.get(run.run_id) == stored
    done = dataclasses.replace(stored, status="completed", pauses=(), checkpoint=None)
    assert (await store.replace(done, expected_version=2)).version == 3


async def test_replace_with_a_stale_version_conflicts_and_writes_nothing(store: Store) -> None:
    """A lost compare-and-set leaves record, inbox and audit exactly as they were."""
    run = make_run(status="paused", pauses=[make_pause("p1", at=5.0)])
    await store.create(run, [event("started")])
    await store.replace(run, expected_version=1, events=[event("progress")])
    completed = dataclasses.replace(run, status="completed", pauses=())
    with pytest.raises(VersionConflictError, match="expected version 1, the store has 2") as info:
        await store.replace(completed, expected_version=1, events=[event("completed")])
    assert (info.value.run_id, info.value.expected) == (run.run_id, 1)
    assert await store.get(run.run_id) == dataclasses.replace(run, version=2)
    assert [e.kind for e in await store.audit(run.run_id)] == ["started", "progress"]
    assert keys(await all_pending(store)) == [(5.0, run.run_id, "p1")]


async def test_a_write_failing_half_way_leaves_nothing_behind(store: Store) -> None:
    """An event that cannot be stored as JSON aborts the whole replace."""
    run = make_run(status="paused", pauses=[make_pause("p1", at=5.0)])
    await store.create(run, [])
    completed = dataclasses.replace(run, status="completed", pauses=())
    with pytest.raises(TypeError):
        await store.replace(completed, expected_version=1, events=[event(data={"x": {1, 2}})])
    assert (await store.get(run.run_id)).version == 1
    assert await store.audit(run.run_id) == ()
    assert len(await all_pending(store)) == 1


async def test_a_burst_of_more_calls_than_connections_waits_instead_of_failing(
    store: Store,
) -> None:
    """250 creates and 250 reads at once, well past any connection pool: every call succeeds."""
    runs = [make_run() for _ in range(250)]
    await asyncio.gather(*(store.create(run, [event("started")]) for run in runs))
    got = await asyncio.gather(*(store.get(run.run_id) for run in runs))
    assert [g.run_id for g in got] == [run.run_id for run in runs]


async def test_concurrent_replaces_in_one_process_have_exactly_one_winner(
    store: Store, open_sibling: OpenStore
) -> None:
    """Sixteen tasks over four store objects race on version 1: one wins, fifteen conflict."""
    stores = [store, *[await open_sibling() for _ in range(3)]]
    run = await store.create(make_run(), [event("started")])
    attempts = [
        stores[i % 4].replace(
            dataclasses.replace(run, meta={"winner": i}),
            expected_version=1,
            events=[event(actor=str(i))],
        )
        for i in range(16)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [r for r in results if isinstance(r, StoredRun)]
    assert len(winners) == 1, results
    assert all(isinstance(r, VersionConflictError) for r in results if r is not winners[0])
    final = await store.get(run.run_id)
    assert final.version == 2
    assert final.meta == winners[0].meta
    log = await store.audit(run.run_id)
    assert [(e.kind, e.actor) for e in log] == [
        ("started", None),
        ("progress", str(winners[0].meta["winner"])),
    ]


@durable
async def test_concurrent_replaces_from_several_processes_have_exactly_one_winner(
    store: Store, store_url: str
) -> None:
    """Four processes open a fresh store together (racing migrations), then race replace."""
    child = str(Path(__file__).with_name("_race_child.py"))
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            child,
            store_url,
            "raced",
            f"p{i}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(4)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert await asyncio.wait_for(racer.stdout.readline(), 30) == b"ready\n"
        await store.create(make_run("raced"), [event("started")])
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write(b"go\n")
            await racer.stdin.drain()
        outputs = [(await asyncio.wait_for(r.communicate(), 30))[0] for r in racers]
    finally:
        for racer in racers:
            if racer.returncode is None:
                racer.kill()
                await racer.wait()
    assert sorted(outputs) == [b"lost\n"] * 3 + [WON]
    winner = f"p{outputs.index(WON)}"
    final = await store.get("raced")
    assert (final.version, final.meta) == (2, {"winner": winner})
    log = await store.audit("raced")
    assert [(e.seq, e.kind, e.actor) for e in log] == [
        (1, "started", None),
        (2, "progress", winner),
    ]


# -- the inbox -----------------------------------------------------------------


async def test_inbox_follows_status_and_pauses(store: Store) -> None:
    """Entries exist per pause while paused, are replaced with the pauses, vanish otherwise."""
    run = make_run("r", status="paused", pauses=[make_pause("a", at=1.0), make_pause("b", at=2.0)])
    await store.create(run, [])
    bystander = make_run("s", status="paused", pauses=[make_pause("z", at=0.5)])
    await store.create(bystander, [])
    assert keys(await all_pending(store)) == [(2.0, "r", "b"), (1.0, "r", "a"), (0.5, "s", "z")]

    run = dataclasses.replace(run, pauses=(make_pause("c", at=3.0),))
    await store.replace(run, expected_version=1)
    assert keys(await all_pending(store)) == [(3.0, "r", "c"), (0.5, "s", "z")]

    await store.replace(dataclasses.replace(run, status="running"), expected_version=2)
    assert keys(await all_pending(store)) == [(0.5, "s", "z")]

    await store.replace(run, expected_version=3)
    assert keys(await all_pending(store)) == [(3.0, "r", "c"), (0.5, "s", "z")]

    await store.replace(dataclasses.replace(run, status="completed"), expected_version=4)
    assert keys(await all_pending(store)) == [(0.5, "s", "z")]


async def test_updates_keep_the_assigned_index_in_step_with_the_pauses(store: Store) -> None:
    """A pause is under each assignee's name while paused, whoever is named or not before."""

    def to(**changes: Any) -> Any:
        return lambda current: Update(run=dataclasses.replace(current, **changes))

    async def mine(who: str = "kim") -> list[tuple[float, str, str]]:
        return keys(await all_pending(store, assignees=[who]))

    kim = ("kim",)
    await store.create(
        make_run("r", status="paused", pauses=[make_pause("a", at=1.0, assignees=kim)]), []
    )
    await store.create(make_run("s", status="paused", pauses=[make_pause("b", at=2.0)]), [])
    assert await mine() == [(1.0, "r", "a")]

    # re-assigned: from nobody to kim, then from kim to ann
    await store.update("s", to(pauses=(make_pause("b", at=2.0, assignees=kim),)))
    assert await mine() == [(2.0, "s", "b"), (1.0, "r", "a")]
    await store.update("r", to(pauses=(make_pause("a", at=1.0, assignees=("ann",)),)))
    assert await mine() == [(2.0, "s", "b")]
    assert await mine("ann") == [(1.0, "r", "a")]

    # claimed (light, as a resume claims), then paused again with nobody named
    await store.update("s", to(status="running", pauses=()), light=True)
    assert await mine() == []
    await store.update("s", to(status="paused", pauses=(make_pause("c", at=3.0),)), light=True)
    await store.update("r", to(status="completed", pauses=()), light=True)
    assert await mine() == []
    assert await mine("ann") == []
    assert keys(await all_pending(store)) == [(3.0, "s", "c")]


async def test_inbox_entries_carry_the_run_and_the_pause(store: Store) -> None:
    """An entry shows the chart, when the run started and the pause as stored."""
    pause = make_pause("p1", at=7.5, stage="payment/approve", deadline=99.0)
    pause = dataclasses.replace(pause, data=JSON_VALUE)
    await store.create(make_run("r1", status="paused", pauses=[pause], created_at=3.25), [])
    page = await store.list_pending()
    assert page.items == (
        InboxEntry(run_id="r1", chart="refund", pause=pause, run_created_at=3.25),
    )
    assert page.next_cursor is None


async def test_inbox_orders_newest_first_with_ties_by_run_then_pause(store: Store) -> None:
    """Order is (created_at, run_id, pause_id) descending, ids compared by code point."""
    await store.create(
        make_run("b", status="paused", pauses=[make_pause("x", at=5.0), make_pause("y", at=5.0)]),
        [],
    )
    await store.create(make_run("a", status="paused", pauses=[make_pause("z", at=5.0)]), [])
    await store.create(make_run("ab", status="paused", pauses=[make_pause("q", at=5.0)]), [])
    await store.create(make_run("B", status="paused", pauses=[make_pause("n", at=6.0)]), [])
    await store.create(make_run("é", status="paused", pauses=[make_pause("m", at=5.0)]), [])
    assert keys(await all_pending(store, limit=2)) == [
        (6.0, "B", "n"),
        (5.0, "é", "m"),
        (5.0, "b", "y"),
        (5.0, "b", "x"),
        (5.0, "ab", "q"),
        (5.0, "a", "z"),
    ]


async def test_pages_are_complete_ordered_and_stable_while_runs_are_added(store: Store) -> None:
    """Walking the inbox page by page, with runs added between pages, yields every entry that
    was there once, in order; entries added above the cursor are not served."""
    before: list[tuple[float, str, str]] = []
    for i in range(30):
        at = 1000.0 + i // 4  # several runs share each timestamp
        pauses = [make_pause(f"p{i}", at=at)] + ([make_pause(f"q{i}", at=at)] if i % 5 == 0 else [])
        await store.create(make_run(f"run-{i:02d}", status="paused", pauses=pauses), [])
        before += [(at, f"run-{i:02d}", p.pause_id) for p in pauses]
    before.sort(reverse=True)

    served: list[tuple[float, str, str]] = []
    older: list[tuple[float, str, str]] = []
    cursor = None
    for page_number in range(100):
        page = await store.list_pending(limit=7, cursor=cursor)
        served += keys(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        newer_run = make_run(status="paused", pauses=[make_pause("new", at=5000.0 + page_number)])
        older_run = make_run(status="paused", pauses=[make_pause("old", at=10.0 + page_number)])
        await store.create(newer_run, [])
        await store.create(older_run, [])
        older.append((10.0 + page_number, older_run.run_id, "old"))

    assert served == sorted(served, reverse=True)
    assert len(set(served)) == len(served)
    assert served[: len(before)] == before
    assert set(served[len(before) :]) <= set(older)


async def test_inbox_filters_by_chart_stage_and_creation_time(store: Store) -> None:
    """Each filter and their combinations select exactly the matching entries, paged."""
    expected: list[tuple[str, str, float, tuple[float, str, str]]] = []
    for i in range(24):
        chart, stage, at = ("a", "b")[i % 2], ("s1", "s2", "s3")[i % 3], float(i // 2)
        await store.create(
            make_run(
                f"r{i:02d}",
                chart=chart,
                status="paused",
                pauses=[make_pause("p", at=at, stage=stage)],
            ),
            [],
        )
        expected.append((chart, stage, at, (at, f"r{i:02d}", "p")))
    expected.sort(key=lambda row: row[3], reverse=True)

    for chart in (None, "a", "b", "nope"):
        for stage in (None, "s1", "s3"):
            for created_before in (None, 6.0, 0.0):
                filters = {"chart": chart, "stage": stage, "created_before": created_before}
                want = [
                    key
                    for c, s, at, key in expected
                    if chart in (None, c)
                    and stage in (None, s)
                    and (created_before is None or at < created_before)
                ]
                assert keys(await all_pending(store, limit=2, **filters)) == want, filters


async def test_inbox_refuses_foreign_cursors_and_bad_limits(store: Store) -> None:
    """A cursor not made by a store, or a limit outside 1..1000, is a ValueError."""
    for cursor in ("garbage", "", "e30", "WyJwcDEiLDEsMiwzXQ"):
        with pytest.raises(ValueError, match="invalid cursor"):
            await store.list_pending(cursor=cursor)
    for limit in (0, -1, 1001):
        with pytest.raises(ValueError, match="limit"):
            await store.list_pending(limit=limit)


# -- due pauses and stale leases -------------------------------------------------


async def test_list_due_returns_paused_runs_with_a_lapsed_deadline(store: Store) -> None:
    """Due means paused with some pause deadline at or before now; earliest first, once per run."""
    two = [make_pause("p1", at=1.0, deadline=50.0), make_pause("p2", at=1.0, deadline=5.0)]
    await store.create(make_run("two-pauses", status="paused", pauses=two), [])
    await store.create(
        make_run("later", status="paused", pauses=[make_pause("p", at=1.0, deadline=20.0)]), []
    )
    await store.create(
        make_run("no-deadline", status="paused", pauses=[make_pause("p", at=1.0)]), []
    )
    await store.create(
        make_run("running", status="running", pauses=[make_pause("p", at=1.0, deadline=1.0)]), []
    )

    assert [r.run_id for r in await store.list_due(4.0)] == []
    assert [r.run_id for r in await store.list_due(10.0)] == ["two-pauses"]
    assert [r.run_id for r in await store.list_due(20.0)] == ["two-pauses", "later"]
    assert [r.run_id for r in await store.list_due(1e9, limit=1)] == ["two-pauses"]

    finished = await store.get("two-pauses")
    await store.replace(dataclasses.replace(finished, status="expired"), expected_version=1)
    assert [r.run_id for r in await store.list_due(1e9)] == ["later"]
    assert (await store.list_due(1e9))[0] == await store.get("later")


async def test_list_stale_returns_running_runs_whose_lease_lapsed(store: Store) -> None:
    """Stale means running with lease_until at or before now; oldest lapse first."""
    await store.create(make_run("old", lease_owner="w1", lease_until=5.0), [])
    await store.create(make_run("young", lease_owner="w2", lease_until=50.0), [])
    await store.create(make_run("unleased"), [])
    await store.create(
        make_run("paused", status="paused", lease_until=1.0, pauses=[make_pause("p", at=1.0)]), []
    )

    assert [r.run_id for r in await store.list_stale(4.0)] == []
    assert [r.run_id for r in await store.list_stale(5.0)] == ["old"]
    assert [r.run_id for r in await store.list_stale(50.0)] == ["old", "young"]
    assert [r.run_id for r in await store.list_stale(50.0, limit=1)] == ["old"]

    renewed = dataclasses.replace(await store.get("old"), lease_until=100.0)
    await store.replace(renewed, expected_version=1)
    assert [r.run_id for r in await store.list_stale(50.0)] == ["young"]
    done = dataclasses.replace(await store.get("young"), status="completed")
    await store.replace(done, expected_version=1)
    assert await store.list_stale(50.0) == ()


# -- audit ---------------------------------------------------------------------


async def test_audit_is_append_only_and_numbered_per_run(store: Store) -> None:
    """Events from create, append_audit and replace keep their order; seq counts from 1 per run."""
    run = await store.create(make_run("r1"), [event("started", at=1.0)])
    await store.create(make_run("r2"), [event("started", at=1.5)])
    refused = event(
        "resume_refused", at=2.0, actor="bob", data={"reason": "bad input", "v": JSON_VALUE}
    )
    await store.append_audit("r1", [refused])
    await store.append_audit("r1", [])
    await store.replace(
        run, expected_version=1, events=[event("resumed", at=3.0), event("completed", at=4.0)]
    )

    log = await store.audit("r1")
    assert [(e.seq, e.kind, e.at) for e in log] == [
        (1, "started", 1.0),
        (2, "resume_refused", 2.0),
        (3, "resumed", 3.0),
        (4, "completed", 4.0),
    ]
    assert log[1] == dataclasses.replace(refused, seq=2)
    assert [(e.seq, e.kind) for e in await store.audit("r2")] == [(1, "started")]
    assert await store.audit("r1") == log


async def test_audit_of_a_run_created_without_events_is_empty(store: Store) -> None:
    """A run with no events has an empty log, not a missing one."""
    await store.create(make_run("quiet"), [])
    assert await store.audit("quiet") == ()


# -- schema, connectivity ------------------------------------------------------


@durable
async def test_migrations_run_once_and_a_second_store_reuses_them(
    backend: str, store: Store, store_url: str, open_sibling: OpenStore
) -> None:
    """Opening the same database again applies nothing and sees the same data."""
    await store.create(make_run("r1"), [event("started")])
    version = schema_version(backend, store_url)
    assert version >= 1
    second = await open_sibling()
    assert (await second.get("r1")).run_id == "r1"
    await second.create(make_run("r2"), [])
    assert schema_version(backend, store_url) == version
    assert (await store.get("r2")).version == 1


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"sqlite:////nonexistent-{uuid.uuid4().hex}/runs.db", id="sqlite"),
        pytest.param("redis://:s3cret@127.0.0.1:1/0", id="redis", marks=pytest.mark.redis),
        pytest.param(
            "postgresql://alice:s3cret@127.0.0.1:1/db?connect_timeout=2",
            id="postgres",
            marks=pytest.mark.postgres,
        ),
    ],
)
async def test_unreachable_server_raises_store_unavailable_without_the_password(url: str) -> None:
    """Every operation fails with StoreUnavailableError naming the URL, password redacted."""
    store = open_store(url)
    try:
        for operation in (
            lambda: store.get("r1"),
            lambda: store.create(make_run(), [event("started")]),
            lambda: store.list_pending(),
        ):
            with pytest.raises(StoreUnavailableError, match="cannot reach the store at") as info:
                await operation()
            assert "s3cret" not in str(info.value)
            assert "s3cret" not in info.value.url
            assert info.value.url == store.url
            assert info.value.__cause__ is not None
        if "127.0.0.1:1" in url:
            assert ":***@127.0.0.1:1" in str(info.value)
    finally:
        await store.aclose()


@pytest.mark.redis
@pytest.mark.slow
async def test_redis_store_recovers_after_a_server_restart(redis_server: RedisServer) -> None:
    """Server down: StoreUnavailableError; server back: the same store object works."""
    from pausepoint.stores.redis import RedisStore

    store = RedisStore(redis_server.url, socket_timeout=2)
    try:
        await store.create(make_run("before"), [])
        redis_server.stop()
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{redis_server.port}"):
            await store.get("before")
        with pytest.raises(StoreUnavailableError):
            await store.create(make_run("during"), [])
        redis_server.start()  # without persistence: an empty server
        await store.create(make_run("after"), [event("started")])
        assert (await store.get("after")).version == 1
        assert [e.seq for e in await store.audit("after")] == [1]
    finally:
        await store.aclose()


@pytest.mark.postgres
@pytest.mark.slow
async def test_postgres_store_recovers_after_a_server_restart(
    postgres_server: PostgresServer,
) -> None:
    """Server down: StoreUnavailableError, nothing written; server back: the same store works."""
    from pausepoint.stores.postgres import PostgresStore

    store = PostgresStore(postgres_server.url, timeout=2)
    try:
        await store.create(make_run("before"), [event("started")])
        postgres_server.stop()
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{postgres_server.port}"):
            await store.get("before")  # waits out the pool's timeout
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="Connection refused"):
            await store.create(make_run("during"), [])
        assert time.monotonic() - started < 1.5  # later calls fail at once
        postgres_server.start()
        assert (await store.get("before")).version == 1
        with pytest.raises(RunNotFoundError):
            await store.get("during")
        await store.create(make_run("after"), [])
        assert [e.kind for e in await store.audit("before")] == ["started"]
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_an_unreachable_server_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    """The reachability helper skips a test whose server is down, except under CI=true."""
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=re.escape("no server at redis://127.0.0.1:1/0")):
        require_server("redis://127.0.0.1:1/0", "PAUSEPOINT_TEST_REDIS_URL")


def test_the_inbox_entry_keeps_its_old_name_with_a_warning() -> None:
    """``PendingPause`` was both a checkpoint's pause and an inbox entry; the entry is InboxEntry."""
    import pausepoint.stores as stores
    import pausepoint.stores.base as base

    with pytest.warns(DeprecationWarning, match="now InboxEntry"):
        assert base.PendingPause is InboxEntry
    with pytest.warns(DeprecationWarning, match="now InboxEntry"):
        assert stores.PendingPause is InboxEntry
