"""Prometheus metrics of the runs this process drives, and of the inbox (extra ``metrics``).

Needs ``pip install 'pausepoint[metrics]'`` (prometheus-client). Switch them on
once per process with :func:`enable_metrics`; ``pausepoint serve`` then answers
``GET /metrics``, and ``pausepoint worker --metrics-port N`` serves the
worker's on port N. The metrics, and their labels:

=========================================  ===========  =====================================
``pausepoint_runs_total``                  counter      ``chart``, ``status``: ``started``,
                                                        ``completed``, ``failed``,
                                                        ``cancelled``, ``expired``
``pausepoint_pauses_waiting``              gauge        ``chart``, ``stage``
``pausepoint_oldest_pause_age_seconds``    gauge        ``chart``
``pausepoint_stage_duration_seconds``      histogram    ``chart``, ``stage``
``pausepoint_resume_duration_seconds``     histogram    ``chart``
``pausepoint_claims_lost_total``           counter
``pausepoint_recoveries_total``            counter
=========================================  ===========  =====================================

Counters and histograms count what this process did; with Celery's prefork
pool each worker process writes them to ``PROMETHEUS_MULTIPROC_DIR``, and the
exporter adds them up (prometheus-client's multiprocess mode). The two gauges
describe the store, not a process: they are read from the inbox index when
``/metrics`` is scraped (no store writes, no new index), so only ``serve``
reports them. Stage labels blank for-each item keys (``invoices[]/approve``) so
that their number stays bounded.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.core import GaugeMetricFamily, Metric
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "pausepoint.metrics needs prometheus-client: pip install 'pausepoint[metrics]'"
    ) from error

from .durable._observe import RunObserver, Segment, SegmentKind, add_observer, metric_stage
from .stores.base import Store, StoredRun

if TYPE_CHECKING:
    from .durable.records import RunRecord
    from .engine.trace import TreeNode

__all__ = [
    "CONTENT_TYPE",
    "MetricsObserver",
    "enable_metrics",
    "inbox_metrics",
    "render_metrics",
    "start_exporter",
]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
"""The media type of :func:`render_metrics`' text."""

PENDING_SCANNED = 10_000
"""At most this many waiting pauses are read per scrape for the two inbox gauges."""

_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

RUNS = Counter("pausepoint_runs_total", "Runs by chart and how they ended", ["chart", "status"])
STAGE_DURATION = Histogram(
    "pausepoint_stage_duration_seconds",
    "How long stages ran (each pausable phase counts once)",
    ["chart", "stage"],
    buckets=_SECONDS,
)
RESUME_DURATION = Histogram(
    "pausepoint_resume_duration_seconds",
    "From a claimed resume to the run's next pause or end",
    ["chart"],
    buckets=_SECONDS,
)
CLAIMS_LOST = Counter(
    "pausepoint_claims_lost_total", "Runs this process stopped because another took them over"
)
RECOVERIES = Counter(
    "pausepoint_recoveries_total", "Runs taken over after their process died (lease lapsed)"
)

_ENDED = frozenset({"completed", "failed", "cancelled", "expired"})


class _MetricsSegment(Segment):
    watches_stages = True

    def __enter__(self) -> Segment:
        self._began = time.perf_counter()
        chart = self.record.chart
        if self.kind == "start":
            RUNS.labels(chart, "started").inc()
        elif self.kind == "recover":
            RECOVERIES.inc()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: Any) -> None:
        from .errors import RunAlreadyClaimedError

        if exc_type is not None and issubclass(exc_type, RunAlreadyClaimedError):
            CLAIMS_LOST.inc()

    def stage_started(self, stage_id: str) -> float:
        return time.perf_counter()

    def stage_ended(self, handle: Any, node: TreeNode, error: BaseException | None) -> None:
        stage = metric_stage(node.get("id") or "")
        STAGE_DURATION.labels(self.record.chart, stage).observe(time.perf_counter() - handle)

    def ended(self, record: RunRecord) -> RunRecord:
        if record.status in _ENDED:
            RUNS.labels(record.chart, record.status).inc()
        if self.kind == "resume":
            RESUME_DURATION.labels(record.chart).observe(time.perf_counter() - self._began)
        return record


class MetricsObserver(RunObserver):
    """Counts runs, stage and resume durations, lost claims and recoveries."""

    def segment(self, record: StoredRun, kind: SegmentKind) -> Segment:
        """Follow every segment."""
        return _MetricsSegment(record, kind)

    def run_ended(self, record: StoredRun) -> None:
        """Count a run cancelled while paused, or expired."""
        if record.status in _ENDED:
            RUNS.labels(record.chart, record.status).inc()


OBSERVER = MetricsObserver()


def enable_metrics() -> None:
    """Count the runs of every ``Runs`` of this process (idempotent)."""
    add_observer(OBSERVER)


async def inbox_metrics(store: Store, *, now: float | None = None) -> list[Metric]:
    """Read the inbox index; return the waiting-pauses and oldest-pause-age gauges."""
    now = time.time() if now is None else now
    waiting: dict[tuple[str, str], int] = defaultdict(int)
    oldest: dict[str, float] = {}
    cursor: str | None = None
    scanned = 0
    while scanned < PENDING_SCANNED:
        page = await store.list_pending(limit=min(1000, PENDING_SCANNED - scanned), cursor=cursor)
        for item in page.items:
            waiting[item.chart, metric_stage(item.pause.stage_id)] += 1
            created = item.pause.created_at
            oldest[item.chart] = min(oldest.get(item.chart, created), created)
        scanned += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    pauses = GaugeMetricFamily(
        "pausepoint_pauses_waiting", "Pauses waiting for a person", labels=["chart", "stage"]
    )
    for (chart, stage), count in sorted(waiting.items()):
        pauses.add_metric([chart, stage], count)
    age = GaugeMetricFamily(
        "pausepoint_oldest_pause_age_seconds",
        "Age of the oldest pause waiting for a person",
        labels=["chart"],
    )
    for chart, created in sorted(oldest.items()):
        age.add_metric([chart], max(0.0, now - created))
    return [pauses, age]


class _Fixed:
    """A collector yielding metrics computed beforehand (the inbox gauges, read asynchronously)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def process_registry() -> CollectorRegistry:
    """The registry of this process's counters, or of every process's in multiprocess mode."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return prometheus_client.REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped __init__
    return registry


async def render_metrics(store: Store | None = None) -> bytes:
    """Return the Prometheus text of the counters and histograms, and of the inbox gauges.

    Args:
        store: Whose inbox the gauges describe; without it, no gauges.
    """
    text = prometheus_client.generate_latest(process_registry())
    if store is None:
        return text
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(_Fixed(await inbox_metrics(store)))
    return text + prometheus_client.generate_latest(gauges)


def start_exporter(port: int, addr: str = "0.0.0.0") -> None:  # an exporter listens for Prometheus
    """Serve this process's metrics (all processes' in multiprocess mode) on ``port``."""
    prometheus_client.start_http_server(port, addr=addr, registry=process_registry())
