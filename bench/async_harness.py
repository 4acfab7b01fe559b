"""Timing a coroutine against something opened in the same event loop (a store, a pool).

:func:`bench.harness.measure` opens an event loop of its own for every case, so
a case cannot use a store connected beforehand, nor await anything to prepare
its arguments. :func:`measure_async` is the same policy (warm-up, probe, batch
size, median of the repeats, a full collection before every batch) for a caller
already inside a loop: ``prepare`` is awaited before each batch, off the clock.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

from .harness import Sample, Settings, _batch_async


async def measure_async(
    call: Callable[..., Awaitable[Any]],
    settings: Settings,
    *,
    prepare: Callable[[int], Awaitable[list[Any]]] | None = None,
) -> Sample:
    """Time ``await call()`` (or ``await call(arg)`` for each prepared ``arg``), as ``measure`` does."""

    async def batch(loops: int) -> int:
        args = await prepare(loops) if prepare is not None else None
        gc.collect()
        return await _batch_async(call, args, loops)

    if settings.warmup_batch:
        await batch(1)  # first call: caches, prepared statements, lazy imports
    probe = max(min([await batch(1) for _ in range(settings.probes)]), 1)
    loops = max(1, min(settings.max_loops, settings.batch_ns // probe))
    affordable = settings.case_ns // (probe * loops)
    repeats = max(settings.min_repeats, min(settings.repeats, affordable))
    if settings.warmup_batch:
        await batch(loops)
    per_call = [await batch(loops) / loops for _ in range(repeats)]
    return Sample(
        median_ns=statistics.median(per_call),
        min_ns=min(per_call),
        max_ns=max(per_call),
        loops=loops,
        repeats=repeats,
    )
