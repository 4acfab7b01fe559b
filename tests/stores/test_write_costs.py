"""What a durable step costs the database: transactions per start and per resume.

Counted by PostgreSQL itself (``pg_stat_database``) in a database of the test's
own, so every transaction counts: writes, reads, pool checks, migrations.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from pausepoint import Runs, open_store
from pausepoint.demo import chart  # receive → approve (pausable) → process → notify

from .support import POSTGRES_URL, require_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RUNS = 20


@pytest.fixture
def database() -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards."""
    require_server(POSTGRES_URL, "PAUSEPOINT_TEST_POSTGRES_URL")
    import psycopg

    name = f"pp_costs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(POSTGRES_URL)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def transactions(url: str) -> int:
    """Transactions the database has seen, once every closed connection's figures are in.

    A backend reports its figures when it exits; the reading itself is one
    more transaction in the database, subtracted by the caller.
    """
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        last = -1
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                (name,),
            ).fetchone()
            assert row is not None
            if row[0] == last or time.monotonic() > deadline:
                return int(row[0])
            last = int(row[0])
            time.sleep(1.5)


@pytest.mark.parametrize(
    ("durability", "per_start", "per_resume"),
    [
        # one per stage transition: create+claim, receive; claim, approve, process
        ("stage", 3, 4),
        # the claim, and the outcome with its journal entries
        ("pause", 2, 2),
    ],
)
async def test_transactions_per_start_and_resume(
    database: str, durability: str, per_start: int, per_resume: int
) -> None:
    """Each transaction counted, pool checks and reads included, over RUNS runs."""
    async with Runs(open_store(database), {"refund": chart}, durability=durability) as runs:
        await runs.start("refund", {"order_id": "warm-up", "amount": 900})  # migrations
    before = transactions(database)
    async with Runs(open_store(database), {"refund": chart}, durability=durability) as runs:
        await runs.pending(limit=1)
    # What opening a store costs (its schema check) and one read: once per process.
    opening = transactions(database) - before - 1 - 1
    before += opening + 1 + 1
    async with Runs(open_store(database), {"refund": chart}, durability=durability) as runs:
        started = [
            await runs.start("refund", {"order_id": f"ORD-{i}", "amount": 900}) for i in range(RUNS)
        ]
    assert {rec.status for rec in started} == {"paused"}
    after_starts = transactions(database)
    async with Runs(open_store(database), {"refund": chart}, durability=durability) as runs:
        for rec in started:
            done = await runs.resume(rec.run_id, {"approved": True, "approver": "kim"})
            assert done.status == "completed"
    after_resumes = transactions(database)
    starts = after_starts - before - 1 - opening
    resumes = after_resumes - after_starts - 1 - opening
    assert starts <= per_start * RUNS, f"{starts / RUNS:.2f} transactions per start"
    assert resumes <= per_resume * RUNS, f"{resumes / RUNS:.2f} transactions per resume"
