"""A process killed (kill -9) between a pause and its delivery, or during it: late, not lost."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pausepoint import Runs, open_store
from stores.support import DURABLE, fresh_store_url

from .charts import approval
from .receivers import Receiver, wait_for

CHILD = Path(__file__).with_name("notify_child.py")


@pytest.fixture(params=DURABLE)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_store_url(str(request.param), tmp_path) as url:
        yield url


@pytest.mark.parametrize("mode", ["pause", "deliver"])
async def test_a_killed_process_s_notifications_are_delivered_by_another_sweep(
    store_url: str, mode: str, tmp_path: Path
) -> None:
    """The child pauses 5 runs and dies; this process's sweeps deliver each pause, once."""
    receiver = Receiver().start()
    if mode == "deliver":
        receiver.hold.set()
    errors = tmp_path / "child.err"
    with errors.open("wb") as err:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            mode,
            store_url,
            receiver.url(),
            "5",
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60):
            line = await child.stdout.readline()
        assert line, f"the child ended before pausing: {errors.read_text()[-3000:]}"
        pauses = set(json.loads(line))
        assert len(pauses) == 5
        if mode == "deliver":
            await asyncio.to_thread(wait_for, receiver.arrived.is_set, 60)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    receiver.hold.clear()
    await asyncio.to_thread(wait_for, receiver.settled, 60)
    before = len(receiver.requests)  # those in flight when the child died
    assert child.returncode == -signal.SIGKILL
    runs = Runs(open_store(store_url), {"a": approval([receiver.url()])})
    try:
        if mode == "deliver":
            # the dead process's claims hold until their lease lapses: nothing is sent twice
            assert (await runs.sweep()).notified == 0
            lapsed = time.time() + 2 * 30 + 30 + 1
        else:
            lapsed = time.time()
        # every pause is delivered by the sweeps that follow (a try that fails on a
        # busy machine is retried by a later one), and each exactly once
        notified, step = 0, 1.0
        for _ in range(12):
            notified += (await runs.sweep(now=lapsed)).notified
            if notified >= 5:
                break
            lapsed, step = lapsed + step, step * 2
        assert notified == 5
        delivered = receiver.delivered(since=before)
        assert set(delivered) == pauses
        assert set(delivered.values()) == {1}
        # a request in flight at the kill may have arrived too (at least once): it carries
        # the same delivery id as its repeat, so the receiver can drop the repeat
        ids: dict[str, set[str]] = {}
        for got in receiver.requests:
            ids.setdefault(got.json["pause_id"], set()).add(got.headers["X-Pausepoint-Delivery"])
        assert all(len(each) == 1 for each in ids.values())
    finally:
        await runs.aclose()
        receiver.stop()
