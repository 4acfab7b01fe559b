"""Reminders and escalation, applied by sweeps beside the deadline (SQLite, Redis, PostgreSQL).

Sweeps are given ``now=`` past each timer instead of sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pausepoint import OnTimeout, PermissionDeniedError, Runs, open_store
from stores.support import DURABLE, fresh_store_url

from .charts import approval
from .receivers import Receiver


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
async def runs(store_url: str, receiver: Receiver) -> AsyncIterator[Runs]:
    charts = {
        "escalating": approval(
            [receiver.url()],
            remind_every=timedelta(minutes=1),
            escalate_after=150,
            escalate_to=["directors"],
        ),
        "deadline": approval(
            [receiver.url()],
            timeout=100,
            on_timeout=OnTimeout.cancel(),
            escalate_after=100,
            escalate_to=["directors"],
            remind_every=50,
        ),
    }
    made = Runs(open_store(store_url), charts)
    yield made
    await made.aclose()


def events(receiver: Receiver) -> list[str]:
    return [r.json["event"] for r in receiver.requests if r.status == 200]


async def test_reminders_repeat_then_escalation_reassigns_and_notifies(
    runs: Runs, receiver: Receiver
) -> None:
    """At 60 s a reminder, at 120 s another, at 150 s the pause moves to directors, who are told."""
    run = await runs.start("escalating", {"amount": 9000})
    assert run.pause is not None
    t0 = run.pause.created_at
    assert (await runs.sweep(now=t0 + 1)).notified == 1
    assert events(receiver) == ["paused"]

    early = await runs.sweep(now=t0 + 30)
    assert (early.reminded, early.escalated, early.notified) == ([], [], 0)

    first = await runs.sweep(now=t0 + 61)
    assert first.reminded == [run.run_id]
    assert first.notified == 1  # the reminder is delivered by the same sweep
    assert events(receiver) == ["paused", "reminder"]
    reminder = receiver.requests[-1].json
    assert (reminder["count"], reminder["assignees"]) == (1, ["managers"])

    assert (await runs.sweep(now=t0 + 100)).reminded == []
    assert (await runs.sweep(now=t0 + 122)).reminded == [run.run_id]

    third = await runs.sweep(now=t0 + 151)
    assert third.escalated == [run.run_id]
    assert third.reminded == []
    escalated = receiver.requests[-1].json
    assert escalated["event"] == "escalated"
    assert escalated["assignees"] == ["directors"]
    assert escalated["previous"] == ["managers"]
    record = await runs.get(run.run_id)
    assert record.pause is not None
    assert record.pause.assignees == ("directors",)
    (moved,) = [e for e in record.audit if e.kind == "escalated"]
    assert moved.data["from"] == ["managers"]
    assert moved.data["to"] == ["directors"]
    assert [e.data["count"] for e in record.audit if e.kind == "reminded"] == [1, 2]

    # escalation happens once; reminders go on, now naming the new assignees
    later = await runs.sweep(now=t0 + 190)
    assert (later.escalated, later.reminded) == ([], [run.run_id])
    assert receiver.requests[-1].json["assignees"] == ["directors"]

    with pytest.raises(PermissionDeniedError):
        await runs.resume(run.run_id, {"approved": True}, actor="kim", groups=["managers"])
    done = await runs.resume(run.run_id, {"approved": True}, actor="lee", groups=["directors"])
    assert done.status == "completed"
    # answered: the timers stop without a word
    after = await runs.sweep(now=t0 + 10_000)
    assert (after.reminded, after.escalated, after.notified) == ([], [], 0)
    timers = [e for e in await runs.store.list_outbox(run.run_id) if e.kind != "deliver"]
    assert {e.state for e in timers} == {"sent"}


async def test_the_deadline_wins_over_a_due_escalation_and_reminder(
    runs: Runs, receiver: Receiver
) -> None:
    """Deadline, escalation and a reminder all due at once: the run expires, nothing else."""
    run = await runs.start("deadline", {"amount": 3})
    assert run.pause is not None
    t0 = run.pause.created_at
    report = await runs.sweep(now=t0 + 101)
    assert report.expired == [run.run_id]
    assert (report.escalated, report.reminded) == ([], [])
    assert events(receiver) == []  # the paused notice too: the pause is gone
    record = await runs.get(run.run_id)
    assert record.status == "expired"
    kinds = [e.kind for e in record.audit]
    assert "escalated" not in kinds
    assert "reminded" not in kinds
