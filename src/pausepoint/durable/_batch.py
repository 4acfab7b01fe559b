"""Answering many pauses at once: :meth:`Batches.resume_many`, a base of ``Runs``.

One answer for many runs waiting at the same stage ("approve these 40
refunds"). Each run is resumed as :meth:`Runs.resume` would, exactly once: two
batches (or a batch and a person) answering the same run race on its claim,
and the loser is told ``stale``. Up to ``concurrency`` runs are driven at once.

Before anything is resumed the batch is checked whole: every pause still
pending must wait at the same stage of the same chart (else
:class:`~pausepoint.errors.MixedBatchError`), and the answer must fit that
stage's input schema (else :class:`~pausepoint.errors.ResumeInputError`).
Then each item gets its own result; one refusal does not stop the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pausepoint.engine.chart import PausableStage
from pausepoint.engine.contracts import validate_resume_input
from pausepoint.errors import (
    MixedBatchError,
    PausepointError,
    PermissionDeniedError,
    RunAlreadyClaimedError,
    RunNotFoundError,
    RunNotPausedError,
    StalePauseError,
)

from .answer import Answer
from .records import BatchItem, BatchResult, BatchStatus

if TYPE_CHECKING:
    from pausepoint.engine.chart import FlowChart
    from pausepoint.stores.base import Store, StoredRun

    from .records import RunRecord

__all__ = ["Batches"]

_MAX_ITEMS = 5000
"""The most items one batch may name."""


class Batches:
    """Answering many pauses with one answer: a base of ``Runs``."""

    store: Store
    charts: dict[str, FlowChart]

    if TYPE_CHECKING:

        async def answer(self, run_id: str, answer: Answer) -> RunRecord: ...

    async def resume_many(
        self,
        items: Iterable[BatchItem | tuple[str, str] | Mapping[str, str]],
        input: Any,
        *,
        actor: str | None = None,
        groups: Collection[str] | None = None,
        concurrency: int = 8,
    ) -> list[BatchResult]:
        """Answer many pauses of one stage with the same ``input``, each run exactly once.

        Args:
            items: The pauses: :class:`BatchItem`, ``(run_id, pause_id)`` pairs
                or ``{"run_id", "pause_id"}`` mappings. A run named twice is
                answered once; its second item is ``stale``.
            input: The answer, validated once against the stage's input schema.
            actor: Who answers (recorded in each run's audit).
            groups: The groups ``actor`` belongs to, checked against each
                pause's assignees as :meth:`Runs.resume` does.
            concurrency: How many runs are resumed at once.

        Returns:
            One result per item, in the order given (see :class:`BatchResult`).

        Raises:
            MixedBatchError: The pending pauses named wait at different stages
                (or charts); nothing was resumed.
            ResumeInputError: ``input`` fails the stage's input schema; nothing
                was resumed.
            ValueError: ``concurrency`` is below 1, or more than 5,000 items.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        wanted = [_item(item) for item in items]
        if len(wanted) > _MAX_ITEMS:
            raise ValueError(f"a batch names at most {_MAX_ITEMS} pauses, not {len(wanted)}")
        slots = asyncio.Semaphore(concurrency)
        records = await self._read_all(wanted, slots)
        self._check_one_stage(wanted, records, input)

        seen: set[str] = set()

        async def answer(item: BatchItem) -> BatchResult:
            if item.run_id in seen:
                return BatchResult(
                    run_id=item.run_id,
                    pause_id=item.pause_id,
                    status="stale",
                    error="StalePauseError: the run is named more than once in this batch; "
                    "it was answered once",
                )
            seen.add(item.run_id)
            async with slots:
                return await self._answer_one(item, input, actor, groups)

        return list(await asyncio.gather(*(answer(item) for item in wanted)))

    async def _read_all(
        self, items: list[BatchItem], slots: asyncio.Semaphore
    ) -> dict[str, StoredRun]:
        """The current record of every run named (those found)."""

        async def read(run_id: str) -> StoredRun | None:
            async with slots:
                try:
                    return await self.store.get(run_id)
                except RunNotFoundError:
                    return None  # its item is refused when answered

        ids = list(dict.fromkeys(item.run_id for item in items))
        found = await asyncio.gather(*(read(run_id) for run_id in ids))
        return {run_id: record for run_id, record in zip(ids, found, strict=True) if record}

    def _check_one_stage(
        self, items: list[BatchItem], records: Mapping[str, StoredRun], input: Any
    ) -> None:
        """Refuse a batch whose pending pauses wait at several stages, or an unfit answer."""
        stages: set[tuple[str, str]] = set()
        for item in items:
            record = records.get(item.run_id)
            if record is None:
                continue
            for pause in record.pauses:
                if pause.pause_id == item.pause_id:
                    stages.add((record.chart, pause.stage_id))
        if len(stages) > 1:
            named = ", ".join(f"{stage!r} of chart {chart!r}" for chart, stage in sorted(stages))
            raise MixedBatchError(
                f"a batch answers pauses of one stage with one answer, but these pauses wait "
                f"at {len(stages)} stages: {named}; send one batch per stage (nothing was resumed)",
                stages=sorted(stages),
            )
        if stages:
            ((chart, stage_id),) = stages
            flow = self.charts.get(chart)
            node = None if flow is None else flow.find_stage(stage_id)
            if isinstance(node, PausableStage):
                validate_resume_input(node, stage_id, input)

    async def _answer_one(
        self, item: BatchItem, input: Any, actor: str | None, groups: Collection[str] | None
    ) -> BatchResult:
        status: BatchStatus
        error: PausepointError
        try:
            record = await self.answer(
                item.run_id,
                Answer(
                    input=input,
                    actor=actor,
                    groups=groups,
                    pause_id=item.pause_id,
                ),
            )
        except PermissionDeniedError as exc:
            status, error = "not_assigned", exc
        except (StalePauseError, RunAlreadyClaimedError, RunNotPausedError) as exc:
            status, error = "stale", exc
        except PausepointError as exc:
            status, error = "refused", exc
        else:
            return BatchResult(
                run_id=item.run_id,
                pause_id=item.pause_id,
                status="done",
                run_status=record.status,
                record=record,
            )
        return BatchResult(
            run_id=item.run_id,
            pause_id=item.pause_id,
            status=status,
            error=f"{type(error).__name__}: {error}",
        )


def _item(item: BatchItem | tuple[str, str] | Mapping[str, str]) -> BatchItem:
    if isinstance(item, BatchItem):
        return item
    if isinstance(item, tuple):
        run_id, pause_id = item
        return BatchItem(run_id=run_id, pause_id=pause_id)
    return BatchItem(run_id=item["run_id"], pause_id=item["pause_id"])
