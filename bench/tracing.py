"""What observability costs: S1 and S2 with tracing off and on, and ``Runs`` with and without.

``python -m bench.tracing [--quick]`` prints, in one run (the machine is shared
and noisy: compare rows of one run, never across runs):

- S1, the linear chain (N=100, 1000), µs per stage, and S2, the refund chart
  in memory (run→pause, resume→done), µs per call, for:

  - ``off``: ``FlowChartExecutor``, what every run not driven by ``Runs`` uses,
    with or without OpenTelemetry installed: observability adds no code to it;
  - ``log context``: the executor ``Runs`` uses once a ``RunContextFilter``
    exists (``--log-format``, or an application's own handler): the stage
    running sits in a context variable, one set/reset per stage. Without a
    filter, ``Runs`` runs the plain executor, as ``off``;
  - ``tracing on``: the same with an OpenTelemetry SDK tracer provider and a
    batch span processor whose exporter drops the spans (the cost of making
    them, not of shipping them);
  - ``tracing on + metrics``: also counting stage and resume durations.

- ``Runs`` over the memory store (start→pause, resume→done), µs per call:
  tracing off, then on.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pausepoint import FlowChart, FlowChartExecutor, Runs, open_store
from pausepoint.durable._observe import Observers, RunObserver, Segment
from pausepoint.stores.base import StoredRun

from . import pp
from .async_harness import measure_async
from .harness import FULL, QUICK, Case, Settings, measure
from .scenarios import CHAIN_SIZES, REFUND_ANSWER, REFUND_INPUT, expect

RECORD = StoredRun(
    run_id="bench", chart="bench", fingerprint="", status="running", created_at=0.0, updated_at=0.0
)


def _provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    return provider


def _observers(mode: str) -> list[RunObserver]:
    from pausepoint.logs import LOG_CONTEXT

    found: list[RunObserver] = [LOG_CONTEXT]
    if mode in ("tracing", "tracing+metrics"):
        from pausepoint.otel import TracingObserver

        found.append(TracingObserver(_provider()))
    if mode == "tracing+metrics":
        from pausepoint.metrics import MetricsObserver

        found.append(MetricsObserver())
    return found


class _Fixed(Observers):
    """Exactly these observers (none of the process-wide ones, no global provider)."""

    def __init__(self, observers: list[RunObserver]) -> None:
        super().__init__()
        self.observers = observers

    def _all(self) -> list[RunObserver]:
        return self.observers


def _executor_factory(mode: str) -> Callable[[FlowChart], tuple[Segment, FlowChartExecutor]]:
    if mode == "off":
        plain = Segment(RECORD, "start")
        return lambda chart: (plain, FlowChartExecutor(chart))
    observers = _Fixed(_observers(mode))

    def make(chart: FlowChart) -> tuple[Segment, FlowChartExecutor]:
        segment = observers.segment(RECORD, "start")
        return segment, segment.executor(chart)

    return make


def chain_case(n: int, mode: str) -> Case:
    chart = pp._chain(n, pp._step)
    make = _executor_factory(mode)

    async def run() -> FlowChartExecutor:
        segment, executor = make(chart)
        with segment:
            await executor.run(input={"x": 0})
        return executor

    done = asyncio.run(run())
    expect(done.get_state()["x"] == n, f"chain of {n} completes ({mode})")
    return Case(run)


def refund_cases(mode: str) -> tuple[Case, Case]:
    chart = pp._CHART
    make = _executor_factory(mode)

    async def to_pause() -> Any:
        segment, executor = make(chart)
        with segment:
            await executor.run(input=REFUND_INPUT)
        return executor.get_checkpoint()

    saved = asyncio.run(to_pause())

    async def to_done() -> FlowChartExecutor:
        segment, executor = make(chart)
        with segment:
            await executor.resume(saved, REFUND_ANSWER)
        return executor

    expect(asyncio.run(to_done()).status == "completed", f"refund completes ({mode})")
    return Case(to_pause), Case(to_done)


async def runs_figures(mode: str, settings: Settings) -> tuple[float, float]:
    runs = Runs(open_store("memory://"), {"refund": pp.refund_chart()})
    # Runs(observer=) would add the process-wide observers; the driver is what observes a run
    runs._driver.observer = _Fixed(_observers(mode))
    async with runs:

        async def paused(k: int) -> list[str]:
            return [(await runs.start("refund", REFUND_INPUT)).run_id for _ in range(k)]

        start = await measure_async(lambda: runs.start("refund", REFUND_INPUT), settings)
        resume = await measure_async(
            lambda run_id: runs.resume(run_id, REFUND_ANSWER), settings, prepare=paused
        )
    return start.median_ns / 1000, resume.median_ns / 1000


MODES = {
    "off": "off (FlowChartExecutor)",
    "observed": "log context",
    "tracing": "tracing on",
    "tracing+metrics": "tracing on + metrics",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small batches; indicative only")
    settings = QUICK if parser.parse_args(argv).quick else FULL
    from pausepoint.logs import RunContextFilter

    RunContextFilter()  # the log context then follows stages: every row but "off" pays for it
    print(f"# observability overhead ({settings.name}); python {platform.python_version()}")
    print(f"# {platform.machine()} {platform.system()}; medians, µs")
    sizes = [n for n in CHAIN_SIZES if n >= 100]
    header = ["", *(f"S1 N={n} /stage" for n in sizes), "S2 run→pause", "S2 resume→done"]
    print(" | ".join(header))
    for mode, label in MODES.items():
        row = [label]
        for n in sizes:
            row.append(f"{measure(chain_case(n, mode), settings).median_ns / n / 1000:.2f}")
        pause, done = refund_cases(mode)
        row.append(f"{measure(pause, settings).median_ns / 1000:.1f}")
        row.append(f"{measure(done, settings).median_ns / 1000:.1f}")
        print(" | ".join(row))
        sys.stdout.flush()
    print()
    print(" | ".join(["Runs, memory store", "start→pause", "resume→done"]))
    for mode in ("observed", "tracing", "tracing+metrics"):
        start, resume = asyncio.run(runs_figures(mode, settings))
        print(" | ".join([MODES[mode], f"{start:.1f}", f"{resume:.1f}"]))


if __name__ == "__main__":
    main()
