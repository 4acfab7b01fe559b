"""``python -m bench.profiling [s1|pause|resume]``: where pausepoint's time goes, by cProfile.

``s1`` runs the N-stage chain (``--n``, default 1000), ``pause`` the refund
chart to its pause and its checkpoint as JSON, ``resume`` a fresh executor
from that JSON to the end; each many times under cProfile, then prints the
functions with the most own time (``--sort cumulative`` for inclusive time).
cProfile slows small functions down more than big ones: read the ranking,
not the absolute figures, and check a suspect with ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
from collections.abc import Callable, Coroutine
from typing import Any

from . import pp


def _workload(what: str, n: int) -> tuple[Callable[[], Coroutine[Any, Any, Any]], int]:
    if what == "s1":
        return pp.chain_case(n).call, max(1, 20_000 // n)
    if what == "pause":
        return pp.refund_pause_case().call, 5_000
    return pp.refund_resume_case().call, 5_000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling")
    parser.add_argument("what", choices=("s1", "pause", "resume"), nargs="?", default="s1")
    parser.add_argument("--n", type=int, default=1000, help="chain length for s1")
    parser.add_argument("--top", type=int, default=25, help="rows to print")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    args = parser.parse_args()

    call, times = _workload(args.what, args.n)

    async def repeat() -> None:
        for _ in range(times):
            await call()

    asyncio.run(repeat())  # warm up
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(repeat())
    profiler.disable()
    print(f"{args.what}: {times} runs" + (f" of {args.n} stages" if args.what == "s1" else ""))
    pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
