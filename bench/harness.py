"""Timing: warm up, calibrate a batch size, time several batches, keep the median.

A :class:`Case` is one thing to time: a call (sync, or a coroutine function,
which is then awaited inside one event loop so the loop's start-up is never
timed), and optionally ``prepare``, which makes one argument per call before
the clock starts (a fresh LangGraph thread to resume, say), and ``reset``,
which runs after each batch, off the clock (clearing a saver).

Each repeat times one batch of ``loops`` calls with ``time.perf_counter_ns``;
the figure is the median over the repeats of the time per call. The garbage
collector stays on (pausepoint and LangGraph allocate, and real runs pay for
collecting), but a full collection runs before every batch so one batch does
not pay for the garbage of another.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_now = time.perf_counter_ns


@dataclass(frozen=True)
class Settings:
    """How hard to measure.

    Attributes:
        name: ``quick`` or ``full``.
        repeats: Timed batches per case; the median is reported.
        min_repeats: Fewer for a case whose batches would overrun ``case_ns``.
        case_ns: Time the timed batches of one case should stay under.
        batch_ns: What one batch should take; sets the number of calls in it.
        max_loops: Upper bound on calls per batch.
        probes: Single calls timed to size the batches (the fastest counts).
        warmup_batch: Run a warm-up call and an untimed full-size batch before the
            timed ones; without, the first probe is also the warm-up.
        import_runs: Subprocess runs per import-time figure (the best is kept).
        skip_slow_langgraph: Leave out LangGraph's N=1000 chain and import time
            (seconds each, and the same code paths as the figures that stay).
    """

    name: str
    repeats: int
    min_repeats: int
    case_ns: int
    batch_ns: int
    max_loops: int
    probes: int
    warmup_batch: bool
    import_runs: int
    skip_slow_langgraph: bool


QUICK = Settings(
    name="quick",
    repeats=3,
    min_repeats=1,
    case_ns=20_000_000,
    batch_ns=2_000_000,
    max_loops=200,
    probes=1,
    warmup_batch=False,
    import_runs=2,
    skip_slow_langgraph=True,
)
FULL = Settings(
    name="full",
    repeats=9,
    min_repeats=9,
    case_ns=10_000_000_000,
    batch_ns=60_000_000,
    max_loops=100_000,
    probes=3,
    warmup_batch=True,
    import_runs=20,
    skip_slow_langgraph=False,
)


@dataclass
class Case:
    """One timed operation.

    Attributes:
        call: Called once per iteration, with the prepared argument if ``prepare`` is set.
        prepare: ``prepare(k)`` returns ``k`` arguments, made before the clock starts.
        reset: Called after each batch, off the clock.
    """

    call: Callable[..., Any]
    prepare: Callable[[int], list[Any]] | None = None
    reset: Callable[[], None] | None = None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.call)


@dataclass(frozen=True)
class Sample:
    """Nanoseconds per call: the median and the spread over the repeats."""

    median_ns: float
    min_ns: float
    max_ns: float
    loops: int
    repeats: int

    def scaled(self, divisor: float) -> Sample:
        """The same sample per ``divisor`` units (per stage, say)."""
        return Sample(
            self.median_ns / divisor,
            self.min_ns / divisor,
            self.max_ns / divisor,
            self.loops,
            self.repeats,
        )


def _batch_sync(call: Callable[..., Any], args: list[Any] | None, loops: int) -> int:
    if args is None:
        started = _now()
        for _ in range(loops):
            call()
        return _now() - started
    started = _now()
    for arg in args:
        call(arg)
    return _now() - started


async def _batch_async(call: Callable[..., Any], args: list[Any] | None, loops: int) -> int:
    if args is None:
        started = _now()
        for _ in range(loops):
            await call()
        return _now() - started
    started = _now()
    for arg in args:
        await call(arg)
    return _now() - started


def measure(case: Case, settings: Settings) -> Sample:
    """Time ``case``: (a warm-up call,) a probe call, (a warm-up batch,) the timed batches."""
    with asyncio.Runner() as runner:

        def batch(loops: int) -> int:
            args = case.prepare(loops) if case.prepare is not None else None
            gc.collect()
            if case.is_async:
                elapsed = runner.run(_batch_async(case.call, args, loops))
            else:
                elapsed = _batch_sync(case.call, args, loops)
            if case.reset is not None:
                case.reset()
            return elapsed

        if settings.warmup_batch:
            batch(1)  # first call: caches, lazy imports
        probe = max(min(batch(1) for _ in range(settings.probes)), 1)
        loops = max(1, min(settings.max_loops, settings.batch_ns // probe))
        affordable = settings.case_ns // (probe * loops)
        repeats = max(settings.min_repeats, min(settings.repeats, affordable))
        if settings.warmup_batch:
            batch(loops)
        per_call = [batch(loops) / loops for _ in range(repeats)]
    return Sample(
        median_ns=statistics.median(per_call),
        min_ns=min(per_call),
        max_ns=max(per_call),
        loops=loops,
        repeats=repeats,
    )
