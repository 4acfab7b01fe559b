"""pausepoint: pause a pipeline for a human, resume it anywhere.

Start with :func:`flow_chart` to build a chart, :class:`FlowChartExecutor` to
run it, and :class:`PausableHandler` for stages that wait for a person. A
paused run hands out a JSON checkpoint (:meth:`FlowChartExecutor.get_checkpoint`)
that any process resumes with a fresh executor.

Names load on first use, so ``import pausepoint`` costs almost nothing and never
imports a database driver or web framework.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .answer import Answer
    from .builder import FlowChartBuilder, flow_chart
    from .chart import FlowChart, OnTimeout, PausableHandler, Retry
    from .checkpoint import Checkpoint
    from .errors import (
        ChartChangedError,
        ChartError,
        ChartMismatchError,
        ChartNotFoundError,
        CheckpointError,
        CheckpointFinishedError,
        CheckpointFormatError,
        CheckpointSignatureError,
        CheckpointVersionError,
        ClaimLostError,
        EncryptionKeyError,
        ExecutorUsageError,
        LoopLimitError,
        MixedBatchError,
        NotifyURLError,
        NoWaiterError,
        PausepointError,
        PermissionDeniedError,
        PurgeRefusedError,
        ResumeInputError,
        ResumeTargetError,
        RunAlreadyClaimedError,
        RunError,
        RunExistsError,
        RunInputError,
        RunIsRunningError,
        RunNotFoundError,
        RunNotPausedError,
        RunOutputError,
        RunStateError,
        RunTimeoutError,
        SignalBufferFullError,
        StageError,
        StageTimeoutError,
        StalePauseError,
        StateError,
        StateKeyError,
        StateValueError,
        StepNotFoundError,
        StoreError,
        StoreUnavailableError,
        TokenFormatError,
        UnknownAssigneeError,
        VersionConflictError,
        WebhookSignatureError,
    )
    from .executor import FlowChartExecutor, Snapshot
    from .people import Actor
    from .rules import When, decide, select
    from .runs import (
        BatchItem,
        BatchResult,
        Durability,
        RunList,
        RunRecord,
        Runs,
        RunSummary,
        Step,
        SweepReport,
    )
    from .scope import Scope
    from .stores import open_store

__version__ = "0.1.0.dev0"

_EXPORTS: dict[str, str] = {
    # building
    "flow_chart": "builder",
    "FlowChartBuilder": "builder",
    "FlowChart": "chart",
    "PausableHandler": "chart",
    "OnTimeout": "chart",
    "Retry": "chart",
    "Scope": "scope",
    # decisions
    "When": "rules",
    "decide": "rules",
    "select": "rules",
    # running
    "FlowChartExecutor": "executor",
    "Checkpoint": "checkpoint",
    "Snapshot": "executor",
    # durable runs
    "Runs": "runs",
    "RunRecord": "runs",
    "Step": "runs",
    "Durability": "runs",
    "RunList": "runs",
    "RunSummary": "runs",
    "SweepReport": "runs",
    "BatchItem": "runs",
    "BatchResult": "runs",
    "open_store": "stores",
    # people
    "Actor": "people",
    "Answer": "answer",
    # errors
    **{
        name: "errors"
        for name in (
            "PausepointError",
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
            "ClaimLostError",
            "RunNotPausedError",
            "RunStateError",
            "StepNotFoundError",
            "StalePauseError",
            "PermissionDeniedError",
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
        )
    },
}

__all__ = [
    "Actor",
    "Answer",
    "BatchItem",
    "BatchResult",
    "ChartChangedError",
    "ChartError",
    "ChartMismatchError",
    "ChartNotFoundError",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFinishedError",
    "CheckpointFormatError",
    "CheckpointSignatureError",
    "CheckpointVersionError",
    "ClaimLostError",
    "Durability",
    "EncryptionKeyError",
    "ExecutorUsageError",
    "FlowChart",
    "FlowChartBuilder",
    "FlowChartExecutor",
    "LoopLimitError",
    "MixedBatchError",
    "NoWaiterError",
    "NotifyURLError",
    "OnTimeout",
    "PausableHandler",
    "PausepointError",
    "PermissionDeniedError",
    "PurgeRefusedError",
    "ResumeInputError",
    "ResumeTargetError",
    "Retry",
    "RunAlreadyClaimedError",
    "RunError",
    "RunExistsError",
    "RunInputError",
    "RunIsRunningError",
    "RunList",
    "RunNotFoundError",
    "RunNotPausedError",
    "RunOutputError",
    "RunRecord",
    "RunStateError",
    "RunSummary",
    "RunTimeoutError",
    "Runs",
    "Scope",
    "SignalBufferFullError",
    "Snapshot",
    "StageError",
    "StageTimeoutError",
    "StalePauseError",
    "StateError",
    "StateKeyError",
    "StateValueError",
    "Step",
    "StepNotFoundError",
    "StoreError",
    "StoreUnavailableError",
    "SweepReport",
    "TokenFormatError",
    "UnknownAssigneeError",
    "VersionConflictError",
    "WebhookSignatureError",
    "When",
    "decide",
    "flow_chart",
    "open_store",
    "select",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pausepoint' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
