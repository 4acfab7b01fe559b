"""One racer of the cross-process compare-and-set test.

Usage: python _race_child.py URL RUN_ID NAME. Opens the store (its first use, so
racers also race the migrations), prints "ready", waits for a line on stdin, then
replaces RUN_ID expecting version 1 and prints "won" or "lost".
"""

import asyncio
import sys

from pausepoint.errors import VersionConflictError
from pausepoint.stores import AuditEvent, StoredRun, open_store


async def main(url: str, run_id: str, name: str) -> None:
    store = open_store(url)
    try:
        await store.list_pending(limit=1)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        run = StoredRun(
            run_id=run_id,
            chart="race",
            fingerprint="f",
            status="running",
            created_at=1.0,
            updated_at=2.0,
            meta={"winner": name},
        )
        event = AuditEvent(kind="progress", at=2.0, actor=name)
        try:
            await store.replace(run, expected_version=1, events=[event])
        except VersionConflictError:
            print("lost", flush=True)
        else:
            print("won", flush=True)
    finally:
        await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
