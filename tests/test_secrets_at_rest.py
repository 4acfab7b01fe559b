"""Secrets at rest: redacted values encrypted in every store, keys rotated, tampering refused.

Each test writes runs through ``Runs`` and then reads or edits the store's raw
storage behind its back: the SQLite file and its ``-wal`` file, every row of
every PostgreSQL table as text, every Redis key of the store's prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet

import _secret_charts as cards
from pausepoint import (
    CheckpointSignatureError,
    EncryptionKeyError,
    RunNotFoundError,
    Runs,
    open_store,
)
from pausepoint.durable._seal import SealedStore
from pausepoint.stores import Store, StoredRun
from pausepoint.stores.base import Decider, Update
from stores.support import DURABLE, POSTGRES_URL, REDIS_URL, fresh_store_url

SECRETS = (cards.CARD_DIGITS, cards.CARD, cards.CVV)
MakeRuns = Callable[..., Runs]


@pytest.fixture(params=DURABLE)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_store_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def make_runs(store_url: str) -> AsyncIterator[MakeRuns]:
    """Makes ``Runs`` of the card chart, each over a store object of its own."""
    opened: list[Store] = []

    def make(**kwargs: Any) -> Runs:
        opened.append(open_store(store_url))
        return Runs(opened[-1], {"card": cards.card_chart()}, **kwargs)

    yield make
    for store in opened:
        await store.aclose()


# -- the raw storage -----------------------------------------------------------


def raw_text(backend: str, url: str) -> str:
    """Everything the store keeps, as the server or the files hold it."""
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        files = [path, Path(f"{path}-wal")]
        assert files[1].exists(), "the store keeps a WAL file while it is open"
        return "".join(p.read_bytes().decode("latin-1") for p in files if p.exists())
    if backend == "postgres":
        import psycopg

        schema = urlsplit(url).query.rpartition("schema=")[2]
        with psycopg.connect(POSTGRES_URL) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (schema,),
                )
            ]
            assert {"runs", "pending", "audit", "steps"} <= set(tables), tables
            return "\n".join(
                str(row[0])
                for table in tables
                for row in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t')
            )
    import redis

    prefix = urlsplit(url).query.rpartition("prefix=")[2]
    parts: list[str] = []
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            kind = client.type(key).decode()
            dumped = client.dump(key)
            parts.append((dumped or b"").decode("latin-1"))
            if kind == "string":
                parts.append(str(client.get(key)))
            elif kind == "list":
                parts.append(str(client.lrange(key, 0, -1)))
            elif kind == "hash":
                parts.append(str(client.hgetall(key)))
            elif kind == "zset":
                parts.append(str(client.zrange(key, 0, -1, withscores=True)))
            elif kind == "set":
                parts.append(str(client.smembers(key)))
            else:
                raise AssertionError(f"unexpected Redis type {kind} of {key!r}")
    return "\n".join(parts)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert cards.QUESTION in text  # the raw read sees the data that is not secret


# -- editing a stored checkpoint behind the store's back ---------------------------


def edit_checkpoint(backend: str, url: str, run_id: str, edit: Callable[[Any], None]) -> str:
    """Apply ``edit`` to the stored checkpoint's JSON; return the stored text as it was."""
    if backend == "sqlite":
        path = url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            (before,) = conn.execute(
                "SELECT checkpoint FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            doc = json.loads(before)
            edit(doc)
            conn.execute(
                "UPDATE runs SET checkpoint = ? WHERE run_id = ?", (json.dumps(doc), run_id)
            )
            return str(before)
    if backend == "postgres":
        import psycopg

        schema = urlsplit(url).query.rpartition("schema=")[2]
        with psycopg.connect(POSTGRES_URL) as conn:
            row = conn.execute(
                f'SELECT checkpoint::text FROM "{schema}".runs WHERE run_id = %s', (run_id,)
            ).fetchone()
            assert row is not None
            doc = json.loads(row[0])
            edit(doc)
            conn.execute(
                f'UPDATE "{schema}".runs SET checkpoint = %s::jsonb WHERE run_id = %s',
                (json.dumps(doc), run_id),
            )
            return str(row[0])
    import redis

    prefix = urlsplit(url).query.rpartition("prefix=")[2]
    with redis.Redis.from_url(REDIS_URL) as client:
        key = f"{prefix}:run:{run_id}"
        before = client.hget(key, "record")
        assert before is not None
        record = json.loads(before)
        edit(record["checkpoint"])
        client.hset(key, "record", json.dumps(record))
        return before.decode()


def restore_checkpoint(backend: str, url: str, run_id: str, before: str) -> None:
    """Put back what :func:`edit_checkpoint` returned."""
    if backend == "sqlite":
        path = url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("UPDATE runs SET checkpoint = ? WHERE run_id = ?", (before, run_id))
    elif backend == "postgres":
        import psycopg

        schema = urlsplit(url).query.rpartition("schema=")[2]
        with psycopg.connect(POSTGRES_URL) as conn:
            conn.execute(
                f'UPDATE "{schema}".runs SET checkpoint = %s::jsonb WHERE run_id = %s',
                (before, run_id),
            )
    else:
        import redis

        prefix = urlsplit(url).query.rpartition("prefix=")[2]
        with redis.Redis.from_url(REDIS_URL) as client:
            client.hset(f"{prefix}:run:{run_id}", "record", before)


# -- encryption at rest ------------------------------------------------------------


async def test_no_redacted_value_in_clear_in_the_raw_store_and_runs_resume_after_rotation(
    backend: str, store_url: str, make_runs: MakeRuns
) -> None:
    """With encryption_key, the raw store holds no card number or CVV; runs resume, also after rotation."""
    old, new = Fernet.generate_key(), Fernet.generate_key()
    hook = "json://127.0.0.1:9/hook"  # the outbox keeps its messages: redacted, in clear
    runs = make_runs(encryption_key=old, signing_key="sign-me", notify=[hook])
    started = [
        await runs.start("card", {"card_number": cards.CARD, "order": i}, actor="api")
        for i in range(4)
    ]
    assert {r.status for r in started} == {"paused"}
    (message,) = await runs.store.list_outbox(started[0].run_id)
    assert message.payload["question"]["card_number"] == "***"
    for record in started[:2]:
        done = await runs.resume(record.run_id, cards.answer(), actor="kim")
        assert done.status == "completed"
    # what the run needs came back: the real values, after the pause
    charged = {line.split()[0]: line for line in cards.CHARGED}
    for record in started[:2]:
        assert charged[record.run_id] == f"{record.run_id} {cards.CARD_DIGITS} {cards.CVV}"
    assert_no_secret(raw_text(backend, store_url))

    # rotation: the new key first, the old one still decrypts
    rotated = make_runs(encryption_key=[new, old], signing_key="sign-me")
    done = await rotated.resume(started[2].run_id, cards.answer(), actor="lee")
    assert done.status == "completed"
    assert cards.CHARGED[-1] == f"{started[2].run_id} {cards.CARD_DIGITS} {cards.CVV}"
    fresh = await rotated.start("card", {"card_number": cards.CARD, "order": 9}, actor="api")
    assert_no_secret(raw_text(backend, store_url))

    # a run written under the new key only: the old key alone cannot read it
    with pytest.raises(EncryptionKeyError, match=fresh.run_id):
        await make_runs(encryption_key=old).resume(fresh.run_id, cards.answer())
    only_new = make_runs(encryption_key=new, signing_key="sign-me")
    done = await only_new.resume(fresh.run_id, cards.answer(), actor="lee")
    assert done.status == "completed"
    assert cards.CHARGED[-1] == f"{fresh.run_id} {cards.CARD_DIGITS} {cards.CVV}"
    assert_no_secret(raw_text(backend, store_url))


async def test_a_run_read_without_its_key_or_with_a_wrong_one_is_refused_and_unchanged(
    make_runs: MakeRuns,
) -> None:
    """No key, or a wrong key: EncryptionKeyError naming the run; the run stays paused and resumable."""
    key = Fernet.generate_key()
    runs = make_runs(encryption_key=key)
    paused = await runs.start("card", {"card_number": cards.CARD, "order": 1})
    before = await runs.get(paused.run_id)
    for other in (make_runs(), make_runs(encryption_key=Fernet.generate_key())):
        with pytest.raises(EncryptionKeyError, match=paused.run_id) as caught:
            await other.resume(paused.run_id, cards.answer(), actor="kim")
        assert caught.value.run_id == paused.run_id
        with pytest.raises(EncryptionKeyError):
            await other.get(paused.run_id)
        page = await other.pending()  # the inbox is redacted, never encrypted: it still reads
        assert [i.run_id for i in page.items] == [paused.run_id]
    after = await runs.get(paused.run_id)
    assert (after.status, after.version, len(after.audit)) == (
        "paused",
        before.version,
        len(before.audit),
    )
    done = await runs.resume(paused.run_id, cards.answer(), actor="kim")
    assert done.status == "completed"


def test_a_malformed_key_is_refused_at_once(tmp_path: Path) -> None:
    """encryption_key that is not a Fernet key, or an empty list: EncryptionKeyError saying so."""
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(EncryptionKeyError, match=r"#1 is not a Fernet key"):
        Runs(store, {}, encryption_key=[Fernet.generate_key(), "short"])
    with pytest.raises(EncryptionKeyError, match="empty"):
        Runs(store, {}, encryption_key=[])


async def test_without_a_key_nothing_is_encrypted(
    backend: str, store_url: str, make_runs: MakeRuns
) -> None:
    """The checkpoint keeps the real value (the run needs it); only shown copies are redacted."""
    runs = make_runs()
    paused = await runs.start("card", {"card_number": cards.CARD, "order": 1})
    assert cards.CARD_DIGITS in raw_text(backend, store_url)
    stored = await runs.store.get(paused.run_id)
    assert stored.checkpoint is not None
    assert stored.checkpoint["shared_state"]["card_number"] == cards.CARD_DIGITS
    assert stored.pauses[0].data["card_number"] == "***"


async def test_without_a_key_the_sealed_store_writes_what_it_is_given() -> None:
    """No key: the records and updates reach the store as they are, not copied or walked."""
    inner = open_store("memory://")
    written: list[Any] = []
    create, update = inner.create, inner.update

    async def spy_create(run: StoredRun, *args: Any) -> StoredRun:
        written.append(run)
        return await create(run, *args)

    async def spy_update(run_id: str, decide: Decider, **kwargs: Any) -> Any:
        def spy(current: StoredRun) -> Update | None:
            written.append(decide(current))
            return written[-1]  # type: ignore[no-any-return]

        return await update(run_id, spy, **kwargs)

    inner.create, inner.update = spy_create, spy_update  # type: ignore[method-assign]
    store = SealedStore(inner, None, ["card_number"])
    meta = {"redact": ["cvv"], "input": {"card_number": cards.CARD, "cvv": cards.CVV}}
    run = StoredRun(
        run_id="r",
        chart="card",
        fingerprint="fp",
        status="running",
        created_at=1.0,
        updated_at=1.0,
        checkpoint={"shared_state": {"card_number": cards.CARD}},
        meta=meta,
    )
    await store.create(run, [])
    change = Update(run=dataclasses.replace(run, status="completed", checkpoint=None))
    stored, _ = await store.update("r", lambda current: change)
    assert written[0] is run
    assert written[1] is change
    assert stored.meta == meta


# -- signed checkpoints: tampering refused ------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_a_tampered_stored_checkpoint_is_refused_audited_and_the_run_stays(
    backend: str, store_url: str, make_runs: MakeRuns, encrypted: bool
) -> None:
    """Editing the stored checkpoint: CheckpointSignatureError, audited; put back, the run resumes."""
    key = Fernet.generate_key() if encrypted else None
    runs = make_runs(signing_key="sign-me", encryption_key=key)
    paused = await runs.start("card", {"card_number": cards.CARD, "order": 1})

    def raise_risk(checkpoint: Any) -> None:
        checkpoint["shared_state"]["risk"] = 0  # looks harmless, signed as 3

    before = edit_checkpoint(backend, store_url, paused.run_id, raise_risk)
    with pytest.raises(CheckpointSignatureError):
        await runs.resume(paused.run_id, cards.answer(), actor="mallory")
    record = await runs.get(paused.run_id)
    assert (record.status, record.version) == ("paused", paused.version)
    refused = record.audit[-1]
    assert (refused.kind, refused.actor) == ("resume_refused", "mallory")
    assert refused.data["error"] == "CheckpointSignatureError"
    assert [i.run_id for i in (await runs.pending()).items] == [paused.run_id]

    restore_checkpoint(backend, store_url, paused.run_id, before)
    done = await runs.resume(paused.run_id, cards.answer(), actor="kim")
    assert done.status == "completed"
    assert cards.CHARGED[-1] == f"{paused.run_id} {cards.CARD_DIGITS} {cards.CVV}"


async def test_the_command_reads_its_keys_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PAUSEPOINT_ENCRYPTION_KEYS gives the CLI its keys; without them, one error line naming the run."""
    from typer.testing import CliRunner

    from pausepoint.cli import app

    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with Runs(open_store(url), {"card": cards.card_chart()}, encryption_key=key) as runs:
        paused = await runs.start("card", {"card_number": cards.CARD, "order": 1})
    monkeypatch.setenv("PAUSEPOINT_STORE", url)
    runner = CliRunner()

    def show() -> Any:
        return runner.invoke(app, ["show", paused.run_id, "--json"], catch_exceptions=False)

    monkeypatch.delenv("PAUSEPOINT_ENCRYPTION_KEYS", raising=False)
    refused = await asyncio.to_thread(show)
    assert refused.exit_code != 0
    assert paused.run_id in refused.stderr
    assert "encryption_key" in refused.stderr
    monkeypatch.setenv("PAUSEPOINT_ENCRYPTION_KEYS", f"{Fernet.generate_key().decode()},{key}")
    shown = await asyncio.to_thread(show)
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["pause"]["data"]["card_number"] == "***"


async def test_a_fork_replays_the_encrypted_journal_with_the_real_values(
    backend: str, store_url: str, make_runs: MakeRuns
) -> None:
    """Forking an encrypted run replays its journal: the child's stages see the real card number."""
    runs = make_runs(encryption_key=Fernet.generate_key())
    paused = await runs.start("card", {"card_number": cards.CARD, "order": 1})
    steps = await runs.history(paused.run_id)
    assert [s.kind for s in steps] == ["stage", "stage", "paused"]
    child = await runs.fork(paused.run_id, at=1, actor="kim")  # score runs again
    assert child.status == "paused"
    assert child.pause is not None
    assert child.pause.data["card_number"] == "***"
    done = await runs.resume(child.run_id, cards.answer(), actor="kim")
    assert done.status == "completed"
    assert cards.CHARGED[-1] == f"{child.run_id} {cards.CARD_DIGITS} {cards.CVV}"
    assert_no_secret(raw_text(backend, store_url))


async def test_an_encrypted_run_is_erased_without_its_key(make_runs: MakeRuns) -> None:
    """Erasing a run needs no key: runs.delete of an encrypted run by a Runs without one."""
    runs = make_runs(encryption_key=Fernet.generate_key())
    paused = await runs.start("card", {"card_number": cards.CARD, "order": 1})
    await make_runs().delete(paused.run_id, actor="dpo")
    with pytest.raises(RunNotFoundError):
        await runs.get(paused.run_id)


async def test_the_api_without_the_key_answers_500_naming_the_run(store_url: str) -> None:
    """A service without the run's key: 500 EncryptionKeyError on read and answer; the inbox still reads."""
    import httpx

    from pausepoint.server import create_app

    charts = {"card": cards.card_chart()}
    async with Runs(open_store(store_url), charts, encryption_key=Fernet.generate_key()) as runs:
        paused = await runs.start("card", {"card_number": cards.CARD, "order": 1})
    async with Runs(open_store(store_url), charts) as keyless:
        app = create_app(keyless, {"tok": "kim"}, session_secret="s")
        headers = {"Authorization": "Bearer tok"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            read = await http.get(f"/api/runs/{paused.run_id}", headers=headers)
            answer = await http.post(
                f"/api/runs/{paused.run_id}/resume", json={"input": cards.answer()}, headers=headers
            )
            inbox = await http.get("/api/runs", headers=headers)
        for response in (read, answer):
            assert response.status_code == 500
            assert response.json()["error"] == "EncryptionKeyError"
            assert paused.run_id in response.json()["message"]
        assert inbox.status_code == 200
        assert cards.CARD_DIGITS not in inbox.text
        assert (await keyless.store.list_pending()).items[0].run_id == paused.run_id
