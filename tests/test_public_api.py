"""The public surface is a decision: this test pins it."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pausepoint

EXPECTED = {
    # people (who answers, and their answer)
    "Actor",
    "Answer",
    # building and running
    "flow_chart",
    "FlowChartBuilder",
    "FlowChart",
    "PausableHandler",
    "OnTimeout",
    "Retry",
    "Scope",
    # decisions
    "When",
    "decide",
    "select",
    "FlowChartExecutor",
    "Checkpoint",
    "Snapshot",
    # durable runs
    "Runs",
    "RunRecord",
    "Step",
    "Durability",
    "RunList",
    "RunSummary",
    "BatchItem",
    "BatchResult",
    "SweepReport",
    "open_store",
    # errors
    "PausepointError",
    "PermissionDeniedError",
    "ChartError",
    "StageError",
    "StageTimeoutError",
    "LoopLimitError",
    "StateError",
    "StateKeyError",
    "StateValueError",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointVersionError",
    "CheckpointSignatureError",
    "CheckpointFinishedError",
    "ClaimLostError",
    "RunStateError",
    "StepNotFoundError",
    "ChartMismatchError",
    "ChartChangedError",
    "ChartNotFoundError",
    "ResumeTargetError",
    "RunInputError",
    "RunOutputError",
    "RunTimeoutError",
    "ResumeInputError",
    "ExecutorUsageError",
    "RunError",
    "RunNotFoundError",
    "RunExistsError",
    "RunAlreadyClaimedError",
    "RunNotPausedError",
    "StalePauseError",
    "RunIsRunningError",
    "PurgeRefusedError",
    "EncryptionKeyError",
    "MixedBatchError",
    "NoWaiterError",
    "SignalBufferFullError",
    "StoreError",
    "StoreUnavailableError",
    "TokenFormatError",
    "UnknownAssigneeError",
    "VersionConflictError",
    "NotifyURLError",
    "WebhookSignatureError",
}


def test_all_is_pinned() -> None:
    """__all__ lists exactly the agreed names, and each resolves."""
    assert set(pausepoint.__all__) == EXPECTED
    for name in pausepoint.__all__:
        assert getattr(pausepoint, name) is not None


def test_every_error_derives_from_pausepoint_error() -> None:
    """One `except PausepointError` catches every error the library raises."""
    for name in pausepoint.__all__:
        value = getattr(pausepoint, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, pausepoint.PausepointError), name


def test_import_stays_light() -> None:
    """`import pausepoint` and the core names load no driver, web framework or pydantic."""
    code = (
        "import sys, pausepoint\n"
        "from pausepoint import flow_chart, FlowChartExecutor, PausableHandler\n"
        "heavy = {'redis', 'psycopg', 'fastapi', 'celery', 'pydantic', 'asyncio', 'sqlite3'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runs_load_no_observability_extra() -> None:
    """Driving a run through Runs imports neither OpenTelemetry nor prometheus-client."""
    code = (
        "import asyncio, sys\n"
        "from pausepoint import Runs, open_store\n"
        "from pausepoint.demo import charts\n"
        "async def main():\n"
        "    async with Runs(open_store('memory://'), charts) as runs:\n"
        "        record = await runs.start('refund', {'amount': 900})\n"
        "        await runs.resume(record.run_id, {'approved': True, 'approver': 'kim'})\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'prometheus'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A typo gives the usual AttributeError."""
    with pytest.raises(AttributeError, match="flowchart"):
        pausepoint.flowchart  # noqa: B018
