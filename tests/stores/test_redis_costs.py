"""What a durable step costs Redis: commands and round trips per start and per resume.

Seen by the server itself (``MONITOR``), so redis-py's internals do not matter:
a command a client sent is a round trip, a command a script ran is not. Only
the test's own key prefix is looked at, so other users of the server do not
count. The Redis twin of :mod:`.test_write_costs`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pausepoint import Runs, open_store
from pausepoint.demo import chart  # receive → approve (pausable) → process → notify

from .support import REDIS_URL, fresh_store_url

pytestmark = pytest.mark.redis

RUNS = 5


@dataclass
class Seen:
    """The commands that named the prefix, as the server ran them."""

    sent: list[str] = field(default_factory=list)
    """Sent by a client, by name: one round trip each."""
    scripted: list[str] = field(default_factory=list)
    """Run by a script, whole (name and arguments)."""


@contextmanager
def monitor(prefix: str) -> Iterator[Seen]:
    """Collect what the server runs for ``prefix`` while inside."""
    import redis

    seen, ready = Seen(), threading.Event()
    done = f"{prefix}-monitor-done"

    def watch() -> None:
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        with client, client.monitor() as feed:
            ready.set()
            for item in feed.listen():
                command: str = item["command"]
                if done in command:
                    return
                if prefix not in command:
                    continue
                if item.get("client_type") == "lua":
                    seen.scripted.append(command)
                else:
                    seen.sent.append(command.split(" ", 1)[0].upper())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield seen
    finally:
        with redis.Redis.from_url(REDIS_URL) as client:
            client.echo(done)
        thread.join(10)
        assert not thread.is_alive(), "the monitor never saw the end of the test"


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    with fresh_store_url("redis", tmp_path) as url:
        yield url


async def test_a_start_is_one_round_trip_and_a_resume_four(store_url: str) -> None:
    """A start writes its pause in one script; a resume reads and writes twice (claim, outcome).

    Neither loads a script again, reads back what it wrote (the audit log comes
    with the outcome's write), nor touches the assignee index or the outbox of a
    pause that has no assignee and nothing to notify.
    """
    prefix = urlsplit(store_url).query.rpartition("prefix=")[2]
    async with Runs(open_store(store_url), {"refund": chart}, durability="pause") as runs:
        warm = await runs.start("refund", {"order_id": "warm-up", "amount": 900})
        await runs.resume(warm.run_id, {"approved": True, "approver": "kim"})
        with monitor(prefix) as starts:
            started = [
                await runs.start("refund", {"order_id": f"ORD-{i}", "amount": 900})
                for i in range(RUNS)
            ]
        assert {rec.status for rec in started} == {"paused"}
        with monitor(prefix) as resumes:
            for rec in started:
                done = await runs.resume(rec.run_id, {"approved": True, "approver": "kim"})
                assert done.status == "completed"
                assert [e.kind for e in done.audit][-2:] == ["resumed", "completed"]

    assert Counter(starts.sent) == {"EVALSHA": RUNS}
    assert Counter(resumes.sent) == {"EVALSHA": 4 * RUNS}
    for seen in (starts, resumes):
        assert seen.scripted  # the scripts' own commands are seen
        untouched = [c for c in seen.scripted if f"{prefix}:assigned:" in c or ":outbox" in c]
        assert untouched == []
