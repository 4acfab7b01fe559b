"""Notifications of pauses: written with the pause, delivered by sweeps, at least once.

Deliveries go to a local webhook receiver and a local SMTP server; every
delivery test runs on SQLite, Redis and PostgreSQL. Sweeps are given ``now=``
so that retries, reminders and escalations fall due without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint import NotifyURLError, Runs, WebhookSignatureError, open_store
from pausepoint.notify import verify_signature
from pausepoint.stores import Store
from stores.support import DURABLE, fresh_store_url

from .charts import approval
from .receivers import Receiver, SmtpServer

SECRET = "webhook-s3cret"


@pytest.fixture(params=DURABLE)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_store_url(str(request.param), tmp_path) as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver().start()
    yield made
    made.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
async def opened(store_url: str) -> AsyncIterator[list[Runs]]:
    """Runs objects made by the test (``make``), closed afterwards."""
    made: list[Runs] = []
    yield made
    for runs in made:
        await runs.aclose()


def make(opened: list[Runs], store_url: str, charts: dict[str, Any], **options: Any) -> Runs:
    store: Store = open_store(store_url)
    runs = Runs(store, charts, notify_secret=SECRET, **options)
    opened.append(runs)
    return runs


def kinds(audit: Any) -> list[str]:
    return [e.kind for e in audit]


async def sweep_until(runs: Runs, done: Any, *, start: float, rounds: int = 30) -> float:
    """Sweep at growing times (1 s, 2 s, 4 s ... after ``start``) until ``done()``; return the time."""
    now, step = start, 1.0
    for _ in range(rounds):
        await runs.sweep(now=now)
        if done():
            return now
        now += step
        step = min(step * 2, 300.0)
    raise AssertionError("not done after the sweeps")


async def test_a_pause_writes_its_notifications_in_the_same_transaction(
    opened: list[Runs], store_url: str, receiver: Receiver
) -> None:
    """The outbox entry exists as soon as start() returns, before any sweep."""
    runs = make(opened, store_url, {"a": approval([receiver.url()])}, base_url="https://pp.test/")
    run = await runs.start("a", {"amount": 5})
    assert run.status == "paused"
    assert receiver.requests == []  # a pause never waits for a delivery
    (entry,) = await runs.store.list_outbox(run.run_id)
    assert (entry.kind, entry.tag, entry.state, entry.pause_id) == (
        "deliver",
        "paused",
        "pending",
        run.pause.pause_id if run.pause else None,
    )
    report = await runs.sweep()
    assert report.notified == 1
    (got,) = receiver.requests
    body = got.json
    assert body["event"] == "paused"
    assert (body["chart"], body["stage_id"], body["run_id"]) == ("a", "approve", run.run_id)
    assert body["question"] == {"question": "refund 5?", "amount": 5}
    assert body["assignees"] == ["managers"]
    assert body["link"] == f"https://pp.test/runs/{run.run_id}"
    assert got.headers["X-Pausepoint-Delivery"] == entry.id
    verify_signature(
        SECRET,
        got.body,
        timestamp=got.headers["X-Pausepoint-Timestamp"],
        signature=got.headers["X-Pausepoint-Signature"],
    )
    audit = (await runs.get(run.run_id)).audit
    notified = [e for e in audit if e.kind == "notified"]
    assert len(notified) == 1
    assert notified[0].data["url"] == f"json://127.0.0.1:{receiver.port}/hook"
    assert notified[0].data["attempts"] == 1
    assert (await runs.sweep()).notified == 0  # delivered once


@pytest.mark.slow
async def test_200_pauses_with_a_failing_receiver_are_each_delivered_once(
    opened: list[Runs], store_url: str
) -> None:
    """The receiver fails the first two tries of each: every pause arrives exactly once."""
    receiver = Receiver(fail_first=2).start()
    try:
        runs = make(opened, store_url, {"a": approval([receiver.url()])})
        started = await asyncio.gather(*(runs.start("a", {"amount": i}) for i in range(200)))
        pauses = {r.pause.pause_id for r in started if r.pause is not None}
        assert len(pauses) == 200

        def all_delivered() -> bool:
            return set(receiver.delivered()) == pauses

        await sweep_until(runs, all_delivered, start=time.time())
        delivered = receiver.delivered()
        assert set(delivered) == pauses
        assert set(delivered.values()) == {1}
        assert len(receiver.requests) == 600  # 2 failures + 1 success each, no more
        for run in started[:20]:
            audit = (await runs.get(run.run_id)).audit
            (notified,) = [e for e in audit if e.kind == "notified"]
            assert notified.data["attempts"] == 3  # the retries, audited
            assert notified.data["last_error"] == "the receiver answered HTTP 500"
    finally:
        receiver.stop()


async def test_an_unreachable_url_is_retried_never_blocks_and_is_given_up(
    opened: list[Runs], store_url: str
) -> None:
    """Nothing listens: the run pauses and resumes as usual; after N tries, notify_failed."""
    with socket_port() as dead:
        url = f"json://127.0.0.1:{dead}/hook"
        runs = make(opened, store_url, {"a": approval()}, notify=[url], notify_attempts=3)
        began = time.monotonic()
        run = await runs.start("a", {"amount": 7})
        assert run.status == "paused"
        assert time.monotonic() - began < 5
        now = time.time()
        first = await runs.sweep(now=now)
        assert (first.notified, first.notify_retrying, first.notify_failed) == (0, 1, 0)
        assert (await runs.sweep(now=now + 0.5)).notify_retrying == 0  # backoff: not due yet
        assert (await runs.sweep(now=now + 1)).notify_retrying == 1
        assert (await runs.sweep(now=now + 3)).notify_failed == 1
        assert (await runs.sweep(now=now + 1000)).notify_failed == 0
        audit = (await runs.get(run.run_id)).audit
        (failed,) = [e for e in audit if e.kind == "notify_failed"]
        assert failed.data["attempts"] == 3
        assert "cannot reach the receiver" in failed.data["error"]
        (entry,) = await runs.store.list_outbox(run.run_id)
        assert (entry.state, entry.attempts) == ("failed", 3)
        done = await runs.resume(run.run_id, {"approved": True})
        assert done.status == "completed"


async def test_e_mail_through_apprise_reaches_the_smtp_server_once(
    opened: list[Runs], store_url: str, smtp: SmtpServer
) -> None:
    """A mailto:// URL sends one e-mail per pause naming chart, stage, question, link, assignees."""
    runs = make(opened, store_url, {"a": approval([smtp.url()])}, base_url="http://pp.test")
    first = await runs.start("a", {"amount": 11})
    second = await runs.start("a", {"amount": 12})
    report = await runs.sweep()
    assert report.notified == 2
    assert (await runs.sweep()).notified == 0
    assert len(smtp.messages) == 2
    texts = {str(m["Subject"]): _text(m) for m in smtp.messages}
    assert set(texts) == {"a waits for an answer at approve"}
    bodies = [_text(m) for m in smtp.messages]
    for run, amount in ((first, 11), (second, 12)):
        (body,) = [b for b in bodies if run.run_id in b]
        assert f"refund {amount}?" in body
        assert f"http://pp.test/runs/{run.run_id}" in body
        assert "Told (assignees): managers" in body
    assert smtp.mailbox.recipients == [["kim@example.com"], ["kim@example.com"]]


async def test_an_smtp_server_refusing_at_first_gets_each_e_mail_once(
    opened: list[Runs], store_url: str
) -> None:
    """The server answers 451 to the first try of each message: each still arrives once."""
    server = SmtpServer(fail_first=1).start()
    try:
        runs = make(opened, store_url, {"a": approval([server.url()])})
        started = [await runs.start("a", {"amount": 20 + n}) for n in range(5)]
        now = time.time()
        first = await runs.sweep(now=now)
        assert (first.notified, first.notify_retrying) == (0, 5)
        assert server.mailbox.refused == 5
        await sweep_until(runs, lambda: len(server.messages) == 5, start=now + 1)
        for _ in range(3):  # later sweeps send nothing more
            await runs.sweep(now=now + 600)
        assert len(server.messages) == 5
        bodies = [_text(m) for m in server.messages]
        for run in started:
            assert sum(run.run_id in body for body in bodies) == 1
            audit = (await runs.get(run.run_id)).audit
            assert kinds(audit).count("notified") == 1
    finally:
        server.stop()


def _text(message: Any) -> str:
    if message.is_multipart():
        return "".join(_text(part) for part in message.get_payload())
    payload = message.get_payload(decode=True)
    return payload.decode() if isinstance(payload, bytes) else str(payload)


async def test_stage_and_global_urls_are_both_told_once_each(
    opened: list[Runs], store_url: str, receiver: Receiver
) -> None:
    """The stage's notify= and Runs(notify=) add up; a URL named twice is told once."""
    stage_url, global_url = receiver.url("/stage"), receiver.url("/global")
    runs = make(
        opened,
        store_url,
        {"a": approval([stage_url, global_url])},
        notify=[global_url, global_url],
    )
    run = await runs.start("a", {"amount": 1})
    entries = await runs.store.list_outbox(run.run_id)
    assert sorted(e.url for e in entries) == sorted([stage_url, global_url])
    await runs.sweep()
    assert len(receiver.requests) == 2


async def test_a_pause_answered_before_delivery_is_not_announced(
    opened: list[Runs], store_url: str, receiver: Receiver
) -> None:
    """The sweep finds the pause gone: nothing is sent, nothing is audited as notified."""
    runs = make(opened, store_url, {"a": approval([receiver.url()])})
    run = await runs.start("a", {"amount": 1})
    await runs.resume(run.run_id, {"approved": False})
    report = await runs.sweep()
    assert report.notified == 0
    assert receiver.requests == []
    (entry,) = await runs.store.list_outbox(run.run_id)
    assert entry.state == "failed"
    assert "no longer waits" in (entry.error or "")


async def test_a_bad_notification_url_is_refused_at_once(store_url: str) -> None:
    """Runs(notify=...) checks its URLs: a specific error naming the URL, secrets hidden."""
    store = open_store(store_url)
    try:
        with pytest.raises(NotifyURLError, match="no scheme"):
            Runs(store, {}, notify=["hooks.example/x"])
        with pytest.raises(NotifyURLError, match="apprise does not understand") as caught:
            Runs(store, {}, notify=["nosuchservice://user:pw@host/x"])
        assert "pw" not in str(caught.value)
        with pytest.raises(NotifyURLError, match="names no host"):
            Runs(store, {}, notify=["json:///path"])
        with pytest.raises(ValueError, match="base_url"):
            Runs(store, {}, base_url="pp.example")
        with pytest.raises(ValueError, match="notify_attempts"):
            Runs(store, {}, notify_attempts=0)
    finally:
        await store.aclose()


def test_signatures_verify_and_forgeries_do_not() -> None:
    """A receiver's check: the right secret and body pass; a changed body, secret or old time fail."""
    from pausepoint.notify import sign

    body = b'{"event":"paused"}'
    stamp = int(time.time())
    good = sign(SECRET, body, stamp)
    assert good.startswith("sha256=")
    assert len(good) == 7 + 64
    verify_signature(SECRET, body, timestamp=str(stamp), signature=good)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature(SECRET, body + b" ", timestamp=stamp, signature=good)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature("other", body, timestamp=stamp, signature=good)
    with pytest.raises(WebhookSignatureError, match="does not match"):  # timestamp is signed
        verify_signature(SECRET, body, timestamp=stamp + 1, signature=good)
    old = stamp - 3600
    with pytest.raises(WebhookSignatureError, match="away from this clock"):
        verify_signature(SECRET, body, timestamp=old, signature=sign(SECRET, body, old))
    with pytest.raises(WebhookSignatureError, match="lacks"):
        verify_signature(SECRET, body, timestamp=None, signature=good)
    with pytest.raises(WebhookSignatureError, match="whole UNIX seconds"):
        verify_signature(SECRET, body, timestamp="soon", signature=good)


class socket_port:
    """A local port nothing listens on (bound, never listening, while in use)."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


async def test_every_way_a_pause_is_written_brings_its_notification(
    opened: list[Runs], store_url: str, receiver: Receiver
) -> None:
    """durability="pause" (the run is first written paused) and a fork waiting at a pause."""
    charts = {"a": approval([receiver.url()])}
    runs = make(opened, store_url, charts, durability="pause")
    run = await runs.start("a", {"amount": 2})
    assert [e.tag for e in await runs.store.list_outbox(run.run_id)] == ["paused"]
    history = await runs.history(run.run_id)
    at = next(step.index for step in history if step.kind == "paused")
    child = await runs.fork(run.run_id, at=at)
    assert child.status == "paused"
    assert [e.tag for e in await runs.store.list_outbox(child.run_id)] == ["paused"]
    assert (await runs.sweep()).notified == 2
    assert {r.json["run_id"] for r in receiver.requests} == {run.run_id, child.run_id}
