"""Child processes: examples run as a user runs them, and racers released together."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, cwd: Path, *args: str) -> str:
    """Run ``examples/<name>`` in a fresh interpreter from ``cwd``; return what it printed."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def read_line(stream: asyncio.StreamReader, seconds: float = 60.0) -> str:
    """Read one line of a child's output, failing after ``seconds``."""
    async with asyncio.timeout(seconds):
        return (await stream.readline()).decode().strip()


async def release_together(
    children: Sequence[asyncio.subprocess.Process], *, seconds: float = 60.0
) -> list[Any]:
    """Wait until every child prints ``ready``, send them all ``go``, collect their JSON reports.

    Children are started with stdin and stdout pipes; each prints ``ready``
    once connected, waits for a line on stdin, works, then prints one JSON
    line. The children are waited for (stdin closed) whatever happens.
    """
    try:
        for child in children:
            assert child.stdout is not None
            assert await read_line(child.stdout) == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        reports = []
        for child in children:
            assert child.stdout is not None
            reports.append(json.loads(await read_line(child.stdout, seconds=seconds)))
        return reports
    finally:
        for child in children:
            if child.returncode is None and child.stdin is not None:
                child.stdin.close()
            await child.wait()
