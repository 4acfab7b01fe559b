"""Stores written by release 0.1 migrate when opened, and their paused runs resume.

The fixtures were made by that release: ``tests/fixtures/release-0.1.db`` (a
SQLite file) and ``release-0.1.postgres.sql`` (a ``pg_dump`` of its schema),
each holding two refund runs paused at ``approve`` (``old-1`` and ``old-2``).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pausepoint import Runs, open_store
from pausepoint.demo import chart
from pausepoint.stores import postgres, sqlite

from .support import POSTGRES_URL, require_server, schema_version, with_query

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURES / "release-0.1.db", path)
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    require_server(POSTGRES_URL, "PAUSEPOINT_TEST_POSTGRES_URL")
    import psycopg

    schema = f"pp_old_{uuid.uuid4().hex[:12]}"
    dump = (FIXTURES / "release-0.1.postgres.sql").read_text()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(dump.replace("pp_release_01", schema).encode())
    try:
        yield with_query(POSTGRES_URL, schema=schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def resume_old_runs(url: str) -> None:
    async with Runs(open_store(url), {"refund": chart}) as runs:
        page = await runs.pending()
        assert sorted(item.run_id for item in page.items) == ["old-1", "old-2"]
        old = await runs.get("old-1")
        assert old.status == "paused"
        assert old.snapshot is not None
        assert old.snapshot["shared_state"]["order_id"] == "ORD-OLD-1"
        assert old.pause is not None
        done = await runs.resume(
            "old-1", {"approved": True, "approver": "kim"}, pause_id=old.pause.id, actor="kim"
        )
        assert done.status == "completed"
        assert done.snapshot is not None
        assert done.snapshot["shared_state"]["refund_status"] == "refunded"
        assert [e.kind for e in done.audit] == ["started", "paused", "resumed", "completed"]
        # What a run resumed after the upgrade adds to the new journal.
        assert [(s.kind, s.stage_id) for s in await runs.history("old-1")] == [
            ("resumed", "approve"),
            ("stage", "process"),
            ("stage", "notify"),
        ]
        assert [item.run_id for item in (await runs.pending()).items] == ["old-2"]


async def test_a_release_0_1_sqlite_file_migrates_and_resumes(sqlite_url: str) -> None:
    assert schema_version("sqlite", sqlite_url) == 1
    await resume_old_runs(sqlite_url)
    assert schema_version("sqlite", sqlite_url) == len(sqlite.MIGRATIONS)


@pytest.mark.postgres
async def test_a_release_0_1_postgres_schema_migrates_and_resumes(postgres_url: str) -> None:
    assert schema_version("postgres", postgres_url) == 1
    await resume_old_runs(postgres_url)
    assert schema_version("postgres", postgres_url) == len(postgres.MIGRATIONS)
