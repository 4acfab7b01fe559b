"""open_store: choosing a backend by URL, importing drivers lazily, keeping passwords out."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest

from pausepoint.stores import StoredRun, open_store
from pausepoint.stores._common import decode_cursor, encode_cursor, pop_query_param, redact_url
from pausepoint.stores.memory import MemoryStore
from pausepoint.stores.sqlite import SQLiteStore

from .support import REDIS_URL, require_server, with_query


def test_open_store_picks_the_backend_by_scheme(tmp_path: object) -> None:
    """memory:// and sqlite:/// give their stores, without touching anything yet."""
    assert isinstance(open_store("memory://"), MemoryStore)
    assert isinstance(open_store(f"sqlite:///{tmp_path}/runs.db"), SQLiteStore)
    assert isinstance(open_store("sqlite:///relative.db"), SQLiteStore)


@pytest.mark.parametrize("url", ["mysql://h/db", "runs.db", "SQLITE3:///x"])
def test_open_store_refuses_an_unknown_scheme_and_lists_the_accepted_ones(url: str) -> None:
    """The error names the scheme it got and every scheme it takes."""
    with pytest.raises(ValueError, match="no store for URL scheme") as info:
        open_store(url)
    assert "memory://, sqlite://, redis://, rediss://, postgresql://, postgres://" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("redis://127.0.0.1:6379/0", "redis", "redis"),
        ("rediss://127.0.0.1:6379/0", "redis", "redis"),
        ("postgresql://u@h/db", "psycopg", "postgres"),
        ("postgres://u@h/db", "psycopg_pool", "postgres"),
    ],
)
def test_a_missing_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    """ImportError with the pip line, chained from the driver's own ImportError."""
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    for name in ("pausepoint.stores.redis", "pausepoint.stores.postgres"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError) as info:
        open_store(url)
    assert f"pip install 'pausepoint[{extra}]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_importing_pausepoint_imports_no_driver() -> None:
    """redis, psycopg and psycopg_pool load only when their scheme is opened."""
    code = (
        "import sys, pausepoint, pausepoint.stores\n"
        "pausepoint.stores.open_store('memory://')\n"
        "print(sorted(m for m in ('redis', 'psycopg', 'psycopg_pool') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://alice:s3cret@db.example:5432/app",
            "postgresql://alice:***@db.example:5432/app",
        ),
        ("redis://:s3cret@cache:6379/2?prefix=app", "redis://:***@cache:6379/2?prefix=app"),
        (
            "postgresql://alice@db/app?password=s3cret&sslmode=require",
            "postgresql://alice@db/app?password=***&sslmode=require",
        ),
        ("postgresql://alice@db/app", "postgresql://alice@db/app"),
        ("sqlite:////var/lib/runs.db", "sqlite:////var/lib/runs.db"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    """redact_url hides the password wherever the URL carries one."""
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "postgresql://alice:s3cret@127.0.0.1:5432/app?schema=s",
            "postgresql://alice:***@127.0.0.1:5432/app?schema=s",
        ),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ],
)
def test_store_url_property_is_redacted(url: str, redacted: str) -> None:
    """Store.url is safe to log."""
    assert open_store(url).url == redacted


def test_pausepoint_parameters_are_taken_out_and_the_rest_left_for_the_driver() -> None:
    """prefix/schema are ours; every other parameter reaches the driver unchanged."""
    url = "postgresql://u@h/db?sslmode=require&schema=runs&application_name=a/b"
    assert pop_query_param(url, "schema") == (
        "postgresql://u@h/db?sslmode=require&application_name=a/b",
        "runs",
    )
    assert pop_query_param("redis://h:6379/3", "prefix") == ("redis://h:6379/3", None)


def test_bad_store_arguments_are_refused_up_front() -> None:
    """A SQLite URL without a path or a schema that is no identifier fails at open_store."""
    with pytest.raises(ValueError, match="sqlite:///path"):
        open_store("sqlite:///")
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        open_store('postgresql://u@h/db?schema=x";drop')


@pytest.mark.parametrize(
    ("url", "kwargs", "level"),
    [
        ("runs.db", {}, 2),
        ("runs.db?synchronous=normal", {}, 1),
        ("runs.db?synchronous=NORMAL", {"synchronous": "full"}, 1),
        ("runs.db", {"synchronous": "normal"}, 1),
    ],
    ids=["default-full", "url-normal", "url-wins", "argument-normal"],
)
async def test_sqlite_synchronous_level_comes_from_the_url_or_the_argument(
    tmp_path: object, url: str, kwargs: dict[str, Any], level: int
) -> None:
    """FULL (2) by default; NORMAL (1) from ``?synchronous=normal`` or the argument."""
    store = SQLiteStore(f"sqlite:///{tmp_path}/{url}", **kwargs)
    try:
        await store.create(
            StoredRun(
                run_id="r",
                chart="c",
                fingerprint="f",
                status="running",
                created_at=1.0,
                updated_at=1.0,
            ),
            [],
        )
        assert (await store.get("r")).run_id == "r"
        conn = store._conn
        assert conn is not None
        found = await asyncio.get_running_loop().run_in_executor(
            store._thread, lambda: conn.execute("PRAGMA synchronous").fetchone()[0]
        )
        assert found == level
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite:///runs.db?synchronous=off", "synchronous must be 'full' or 'normal', not 'off'"),
        ("sqlite:///runs.db?mode=ro", "takes no parameters but synchronous="),
    ],
)
def test_bad_sqlite_parameters_are_refused_up_front(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        SQLiteStore(url)


def test_cursors_round_trip_exactly() -> None:
    """A cursor gives back the exact float and ids it was made from."""
    key = (1732545123.1234567, "run/é\u0000", "")
    assert decode_cursor(encode_cursor(key)) == key


@pytest.mark.redis
async def test_redis_url_database_number_reaches_the_driver() -> None:
    """The store writes to the database the URL names."""
    require_server(REDIS_URL, "PAUSEPOINT_TEST_REDIS_URL")
    import redis

    prefix = f"pptest-{uuid.uuid4().hex}"
    base = REDIS_URL.rsplit("/", 1)[0]
    store = open_store(with_query(f"{base}/3", prefix=prefix, socket_keepalive="true"))
    try:
        run = StoredRun(
            run_id="r1", chart="c", fingerprint="f", status="running", created_at=1, updated_at=1
        )
        await store.create(run, [])
        with redis.Redis.from_url(f"{base}/3") as client:
            keys = sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:*"))
            assert f"{prefix}:run:r1" in keys
            client.delete(*keys)
    finally:
        await store.aclose()
