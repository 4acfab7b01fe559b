"""py-spy on another process: sample it while a block runs, then list its hottest functions.

Used by ``bench.wrk_load --profile`` and ``bench.celery_bench --profile``. Needs
``pip install py-spy`` (and permission to trace the process). The sampler takes
CPU too: a profiled run shows where the time goes, not how fast things are.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def sampled(pid: int, out: Path | None, *, subprocesses: bool = False) -> Iterator[None]:
    """Sample process ``pid`` with py-spy while the block runs, into ``out`` (collapsed stacks).

    Nothing is sampled when ``out`` is ``None``. With ``subprocesses``, the
    process's children are sampled too (a Celery worker's pool).
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if out is None:
        yield
        return
    if not Path(spy).exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    command = [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    sampler = subprocess.Popen(
        [*command, "--rate", "250", "--nonblocking", *(["--subprocesses"] if subprocesses else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # let it attach
    try:
        yield
    finally:
        sampler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            sampler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sampler.kill()
            sampler.wait()


def hot_functions(collapsed: Path, top: int = 15) -> list[str]:
    """The functions with most samples in a py-spy collapsed-stacks file.

    First by inclusive share, counting only pausepoint's and installed packages'
    functions (the standard library's event loop and threads hold every stack)
    and leaving out those in 90 % of the samples or more (the main loop), then
    by self share, counting every function.
    """
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in {_short(f) for f in frames if " (" in f and _is_package(f)}:
            inclusive[frame] += count
        own[_short(frames[-1])] += count
    if not total:
        return ["no samples"]
    lines = [f"{total:,} samples; inclusive share (pausepoint and packages), then self share"]
    # The trunk every stack shares (the worker's or server's main loop) says nothing.
    branches = [(frame, n) for frame, n in inclusive.most_common() if n < 0.9 * total]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in branches[:top]]
    lines.append("  --")
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    return lines


def _is_package(frame: str) -> bool:
    """Whether a frame is pausepoint's or an installed package's (py-spy names files from
    their import root: ``asyncio/events.py``, ``pausepoint/runs.py``)."""
    top = frame.partition(" (")[2].split("/")[0].split(":")[0].removesuffix(".py")
    return not (top in sys.stdlib_module_names or top.startswith("<") or top == "bench")


def _short(frame: str) -> str:
    """``fn (path/to/module.py:12)`` as ``fn (module.py)``: lines vary, functions add up."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')').rpartition(':')[0]).name})"
