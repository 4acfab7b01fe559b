"""A process that pauses runs with notifications, and is then killed (kill -9) by the test.

Usage: ``python notify_child.py MODE STORE_URL WEBHOOK_URL COUNT``

Starts COUNT runs that pause (their notifications go to the outbox with the
pause), prints one JSON line with the pause ids, then:

``pause``
    waits forever without sweeping: killed between the pause and the delivery.
``deliver``
    sweeps, sending the notifications: killed while the receiver holds them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from notifications.charts import approval
from pausepoint import Runs, open_store


async def main(mode: str, store_url: str, webhook: str, count: int) -> None:
    runs = Runs(open_store(store_url), {"a": approval([webhook])}, notify_timeout=30)
    started = [await runs.start("a", {"amount": i}) for i in range(count)]
    print(json.dumps([r.pause.pause_id for r in started if r.pause is not None]), flush=True)
    if mode == "deliver":
        await runs.sweep()
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
