"""``python -m bench.callgrind [CASE ...]``: instructions per call of S2, under callgrind.

Wall-clock figures on a shared machine move by half again with the other load;
instruction counts do not. Each case runs in its own ``valgrind
--tool=callgrind`` process (``PYTHONHASHSEED=0``), is warmed up, then called
``--calls`` times, each call inside ``sys.call_tracing(fn, ())``: callgrind
collects only inside that C function (``--collect-atstart=no
--toggle-collect=sys_call_tracing``), so start-up, imports, warm-up and the
``gc.collect()`` before every call are not counted. The figure is the
instructions collected divided by the calls.

Cases, with ``bench/pp.py``'s refund chart:

- ``build``: ``refund_chart()``, the builder up to a ``FlowChart``;
- ``pause``: a fresh executor of a prebuilt chart runs to the pause, and its
  checkpoint goes to a JSON string (``pp._run_to_pause``);
- ``resume``: ``json.loads`` of that string, a fresh executor of the prebuilt
  chart, resume to the end (``pp._resume``);
- ``pause-fresh``, ``resume-fresh``: the same with the chart built inside the
  call, as a process that builds its chart for one run has it (the bench's
  ``pausepoint, chart built per call`` rows);
- ``pause-sync``, ``resume-sync``: ``pause`` and ``resume`` through ``run_sync`` and
  ``resume_sync``, as code without an event loop calls them (the thread's loop);
- ``chain-100``: S1, a fresh executor runs a 100-stage chain;
- ``noop``: an empty call, what the wrapper itself costs.

The coroutines are driven by one ``send(None)``: in memory the executor never
waits, and a case that would is refused rather than measured with a loop.
``--keep DIR`` keeps the ``callgrind.out`` files, for ``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

CASES = (
    "build",
    "pause",
    "resume",
    "pause-sync",
    "resume-sync",
    "pause-fresh",
    "resume-fresh",
    "chain-100",
    "noop",
)
WARMUP = 20


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits to its end, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the measured call waited on something: it needs an event loop")


def _call_of(case: str) -> Callable[[], Any]:
    from pausepoint import FlowChartExecutor

    from . import pp
    from .scenarios import REFUND_ANSWER

    saved = _drive(pp._run_to_pause())

    async def resume_fresh() -> Any:
        executor = FlowChartExecutor(pp.refund_chart())
        await executor.resume(json.loads(saved), REFUND_ANSWER)
        return executor

    chain = pp._chain(100, pp._step)

    async def run_chain() -> Any:
        executor = FlowChartExecutor(chain)
        await executor.run(input={"x": 0})
        return executor

    calls: dict[str, Callable[[], Any]] = {
        "build": pp.refund_chart,
        "pause": lambda: _drive(pp._run_to_pause()),
        "resume": lambda: _drive(pp._resume(saved)),
        # from code without a loop: run_sync/resume_sync on the thread's one event loop
        "pause-sync": pp._run_to_pause_sync,
        "resume-sync": lambda: pp._resume_sync(saved),
        "pause-fresh": lambda: _drive(pp._run_to_pause_fresh()),
        "resume-fresh": lambda: _drive(resume_fresh()),
        "chain-100": lambda: _drive(run_chain()),  # S1: a run of 100 stages
        "noop": lambda: None,
    }
    return calls[case]


def _child(case: str, calls: int) -> None:
    call = _call_of(case)
    for _ in range(WARMUP):
        call()
    for _ in range(calls):
        gc.collect()
        sys.call_tracing(call, ())


_TOTALS = re.compile(r"^(?:totals|summary):\s+(\d+)", re.MULTILINE)


def count(case: str, calls: int, keep: Path | None = None) -> float:
    """Return the instructions per call of ``case``, from one callgrind process."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"callgrind.out.{case}"
        subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=sys_call_tracing",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.callgrind",
                "--child",
                case,
                "--calls",
                str(calls),
            ],
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        text = out.read_text()
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(out, keep / out.name)
    found = _TOTALS.search(text)
    if found is None:
        raise RuntimeError(f"no totals in the callgrind output of {case}")
    return int(found.group(1)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.callgrind")
    parser.add_argument(
        "cases", nargs="*", metavar="CASE", help=f"of {', '.join(CASES)}; default: all"
    )
    parser.add_argument("--calls", type=int, default=10, help="measured calls per case")
    parser.add_argument("--keep", type=Path, help="keep the callgrind.out files here")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.calls)
        return
    unknown = [case for case in args.cases if case not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; cases: {', '.join(CASES)}")
    print(f"Python {sys.version.split()[0]}, PYTHONHASHSEED=0, {args.calls} calls after {WARMUP}")
    for case in args.cases or CASES:
        print(f"{case:>13}: {count(case, args.calls, args.keep):>12,.0f} instructions per call")


if __name__ == "__main__":
    main()
