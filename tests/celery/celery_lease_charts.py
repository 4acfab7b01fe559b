"""The chart of the Celery lease test (``--charts celery_lease_charts``).

Like ``celery_charts.approval``, but ``slow`` is a sync stage that holds its
worker process in ``time.sleep`` (standing in for a slow API or model call)
instead of awaiting ``asyncio.sleep``. Side effects are recorded as in
:mod:`celery_charts`.
"""

from __future__ import annotations

import time

from celery_charts import Decision, answer, ask, record, stage

from pausepoint import PausableHandler, Scope, flow_chart


def slow(scope: Scope) -> None:
    """Sleeps ``slow_seconds`` (input) between two records, in sync code."""
    record(scope, "slow-start")
    time.sleep(scope.slow_seconds)
    record(scope, "slow-end")


blocking = (
    flow_chart("Receive", stage("receive"), "receive")
    .add_pausable_function(
        "Approve", PausableHandler(ask, answer), "approve", input_schema=Decision
    )
    .add_function("Step1", stage("step1"), "step1")
    .add_function("Slow", slow, "slow")
    .add_function("Step3", stage("step3"), "step3")
    .build()
)
"""receive → approve (pausable, Decision) → step1 → slow (sync) → step3."""

charts = {"blocking": blocking}
