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

from ._moved import install_moved_modules

if TYPE_CHECKING:  # the same names, for type checkers (a test keeps the two in step)
    from .durable.answer import (
        Answer as Answer,
    )
    from .durable.people import (
        Actor as Actor,
    )
    from .durable.records import (
        BatchItem as BatchItem,
    )
    from .durable.records import (
        BatchResult as BatchResult,
    )
    from .durable.records import (
        Durability as Durability,
    )
    from .durable.records import (
        RunList as RunList,
    )
    from .durable.records import (
        RunRecord as RunRecord,
    )
    from .durable.records import (
        RunSummary as RunSummary,
    )
    from .durable.records import (
        Step as Step,
    )
    from .durable.records import (
        SweepReport as SweepReport,
    )
    from .durable.runs import Runs as Runs
    from .engine.builder import (
        FlowChartBuilder as FlowChartBuilder,
    )
    from .engine.builder import (
        flow_chart as flow_chart,
    )
    from .engine.chart import (
        FlowChart as FlowChart,
    )
    from .engine.chart import (
        OnTimeout as OnTimeout,
    )
    from .engine.chart import (
        PausableHandler as PausableHandler,
    )
    from .engine.chart import (
        Retry as Retry,
    )
    from .engine.checkpoint import (
        Checkpoint as Checkpoint,
    )
    from .engine.executor import (
        FlowChartExecutor as FlowChartExecutor,
    )
    from .engine.executor import (
        Snapshot as Snapshot,
    )
    from .engine.rules import (
        When as When,
    )
    from .engine.rules import (
        decide as decide,
    )
    from .engine.rules import (
        select as select,
    )
    from .engine.scope import (
        Scope as Scope,
    )
    from .errors import (
        ChartChangedError as ChartChangedError,
    )
    from .errors import (
        ChartError as ChartError,
    )
    from .errors import (
        ChartMismatchError as ChartMismatchError,
    )
    from .errors import (
        ChartNotFoundError as ChartNotFoundError,
    )
    from .errors import (
        CheckpointError as CheckpointError,
    )
    from .errors import (
        CheckpointFinishedError as CheckpointFinishedError,
    )
    from .errors import (
        CheckpointFormatError as CheckpointFormatError,
    )
    from .errors import (
        CheckpointSignatureError as CheckpointSignatureError,
    )
    from .errors import (
        CheckpointVersionError as CheckpointVersionError,
    )
    from .errors import (
        ClaimLostError as ClaimLostError,
    )
    from .errors import (
        EncryptionKeyError as EncryptionKeyError,
    )
    from .errors import (
        ExecutorUsageError as ExecutorUsageError,
    )
    from .errors import (
        LoopLimitError as LoopLimitError,
    )
    from .errors import (
        MixedBatchError as MixedBatchError,
    )
    from .errors import (
        NotifyURLError as NotifyURLError,
    )
    from .errors import (
        NoWaiterError as NoWaiterError,
    )
    from .errors import (
        PausepointError as PausepointError,
    )
    from .errors import (
        PermissionDeniedError as PermissionDeniedError,
    )
    from .errors import (
        PurgeRefusedError as PurgeRefusedError,
    )
    from .errors import (
        ResumeInputError as ResumeInputError,
    )
    from .errors import (
        ResumeTargetError as ResumeTargetError,
    )
    from .errors import (
        RunAlreadyClaimedError as RunAlreadyClaimedError,
    )
    from .errors import (
        RunError as RunError,
    )
    from .errors import (
        RunExistsError as RunExistsError,
    )
    from .errors import (
        RunInputError as RunInputError,
    )
    from .errors import (
        RunIsRunningError as RunIsRunningError,
    )
    from .errors import (
        RunNotFoundError as RunNotFoundError,
    )
    from .errors import (
        RunNotPausedError as RunNotPausedError,
    )
    from .errors import (
        RunOutputError as RunOutputError,
    )
    from .errors import (
        RunStateError as RunStateError,
    )
    from .errors import (
        RunTimeoutError as RunTimeoutError,
    )
    from .errors import (
        SignalBufferFullError as SignalBufferFullError,
    )
    from .errors import (
        StageError as StageError,
    )
    from .errors import (
        StageTimeoutError as StageTimeoutError,
    )
    from .errors import (
        StalePauseError as StalePauseError,
    )
    from .errors import (
        StateError as StateError,
    )
    from .errors import (
        StateKeyError as StateKeyError,
    )
    from .errors import (
        StateValueError as StateValueError,
    )
    from .errors import (
        StepNotFoundError as StepNotFoundError,
    )
    from .errors import (
        StoreError as StoreError,
    )
    from .errors import (
        StoreUnavailableError as StoreUnavailableError,
    )
    from .errors import (
        TokenFormatError as TokenFormatError,
    )
    from .errors import (
        UnknownAssigneeError as UnknownAssigneeError,
    )
    from .errors import (
        VersionConflictError as VersionConflictError,
    )
    from .errors import (
        WebhookSignatureError as WebhookSignatureError,
    )
    from .stores import (
        open_store as open_store,
    )

__version__ = "0.1.0.dev0"

_EXPORTS: dict[str, tuple[str, ...]] = {
    # building
    "engine.builder": (
        "FlowChartBuilder",
        "flow_chart",
    ),
    "engine.chart": (
        "FlowChart",
        "OnTimeout",
        "PausableHandler",
        "Retry",
    ),
    "engine.scope": ("Scope",),
    # decisions
    "engine.rules": (
        "When",
        "decide",
        "select",
    ),
    # running
    "engine.executor": (
        "FlowChartExecutor",
        "Snapshot",
    ),
    "engine.checkpoint": ("Checkpoint",),
    # durable runs
    "durable.runs": ("Runs",),
    "durable.records": (
        "BatchItem",
        "BatchResult",
        "Durability",
        "RunList",
        "RunRecord",
        "RunSummary",
        "Step",
        "SweepReport",
    ),
    "stores": ("open_store",),
    # people and their answers
    "durable.people": ("Actor",),
    "durable.answer": ("Answer",),
    # errors (the tree is drawn in pausepoint.errors)
    "errors": (
        "ChartChangedError",
        "ChartError",
        "ChartMismatchError",
        "ChartNotFoundError",
        "CheckpointError",
        "CheckpointFinishedError",
        "CheckpointFormatError",
        "CheckpointSignatureError",
        "CheckpointVersionError",
        "ClaimLostError",
        "EncryptionKeyError",
        "ExecutorUsageError",
        "LoopLimitError",
        "MixedBatchError",
        "NotifyURLError",
        "NoWaiterError",
        "PausepointError",
        "PermissionDeniedError",
        "PurgeRefusedError",
        "ResumeInputError",
        "ResumeTargetError",
        "RunAlreadyClaimedError",
        "RunError",
        "RunExistsError",
        "RunInputError",
        "RunIsRunningError",
        "RunNotFoundError",
        "RunNotPausedError",
        "RunOutputError",
        "RunStateError",
        "RunTimeoutError",
        "SignalBufferFullError",
        "StageError",
        "StageTimeoutError",
        "StalePauseError",
        "StateError",
        "StateKeyError",
        "StateValueError",
        "StepNotFoundError",
        "StoreError",
        "StoreUnavailableError",
        "TokenFormatError",
        "UnknownAssigneeError",
        "VersionConflictError",
        "WebhookSignatureError",
    ),
}
"""Every public name, by the module that defines it: the one list of the public API."""

_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'pausepoint' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


install_moved_modules()
