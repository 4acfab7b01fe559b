"""Deadlines and crash recovery: what sweeps do for runs nobody is driving.

Two kinds of run wait on the clock rather than on a person: a paused run whose
pause passed its deadline, and a running run whose lease lapsed because its
process died. :class:`Recovery` acts on both; :meth:`Runs.expire_due
<pausepoint.durable.runs.Runs.expire_due>` and :meth:`Runs.recover
<pausepoint.durable.runs.Runs.recover>` (and through them :meth:`Runs.sweep
<pausepoint.durable.runs.Runs.sweep>`) are its public entry points and carry
the documentation.

It is a collaborator of ``Runs``, not a base: it receives the store, the
charts, the driver and ``Runs``'s own answer path explicitly, so what it can
touch is what it is given. Every change it makes is a compare-and-set on the
run's record, so any number of sweepers may run it at once: one wins each run,
the others skip it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from pausepoint.engine.chart import FlowChart, PausableStage
from pausepoint.errors import (
    PausepointError,
    RunAlreadyClaimedError,
    RunNotPausedError,
    StalePauseError,
    StoreError,
    VersionConflictError,
)
from pausepoint.stores.base import AuditEvent, PauseEntry, Store, StoredRun, Update

from ._claim import cancel_of, cancelled_event, event
from ._driver import RunDriver
from .answer import Answer

__all__ = ["SYSTEM_ACTOR", "Answering", "Recovery"]

log = logging.getLogger("pausepoint.runs")

SYSTEM_ACTOR = "pausepoint"
"""The actor recorded for what the system does by itself (deadlines, recovery)."""


class Answering(Protocol):
    """``Runs._answer``: answer a pause, with a deadline's ``expired`` event put into the claim."""

    def __call__(
        self, run_id: str, answer: Answer, *, expired: AuditEvent | None = None
    ) -> Awaitable[Any]: ...


class _NotStale(Exception):
    """The run was renewed, finished or taken over since it was listed as stale."""


class Recovery:
    """Applies overdue pauses' ``on_timeout`` policies and takes over runs whose lease lapsed.

    Args:
        store: The store (as ``Runs`` wraps it).
        charts: The charts by name: the same mapping ``Runs`` holds, so a chart
            registered later is seen here too.
        driver: Makes claim tokens and drives a taken-over run on.
        answer: Answers a pause whose policy is ``resume`` with its default
            answer, through the same claim as a person's answer.
        lease_seconds: The lease a taken-over run is claimed for.

    The runs this ends (expired, failed, cancelled) are told to the driver's observer.
    """

    def __init__(
        self,
        store: Store,
        charts: Mapping[str, FlowChart],
        driver: RunDriver,
        answer: Answering,
        *,
        lease_seconds: float,
    ) -> None:
        self.store = store
        self.charts = charts
        self.driver = driver
        self._answer = answer
        self.lease_seconds = lease_seconds

    # -- deadlines -----------------------------------------------------------

    async def expire_due(self, *, now: float | None = None) -> list[str]:
        """See :meth:`Runs.expire_due <pausepoint.durable.runs.Runs.expire_due>`."""
        now = time.time() if now is None else now
        acted: list[str] = []
        for record in await self.store.list_due(now):
            flow = self.charts.get(record.chart)
            if flow is None:
                continue
            for pause in record.pauses:
                if pause.deadline is None or pause.deadline > now:
                    continue
                node = flow.find_stage(pause.stage_id)
                if not isinstance(node, PausableStage):
                    continue
                try:
                    await self._expire(record, pause, node)
                    acted.append(record.run_id)
                except (
                    RunAlreadyClaimedError,
                    RunNotPausedError,
                    StalePauseError,
                    VersionConflictError,
                ):
                    pass  # another sweeper or a person got there first
                except StoreError:
                    raise  # the store is down: nothing else can be expired either
                except PausepointError as exc:
                    # e.g. the default answer fails the stage's schema: the refusal is
                    # audited; the other overdue runs are still handled
                    log.warning("could not expire run %s: %s", record.run_id, exc)
                break
        return acted

    async def _expire(self, record: StoredRun, pause: PauseEntry, node: PausableStage) -> None:
        policy = node.on_timeout
        detail = {
            "stage_id": pause.stage_id,
            "pause_id": pause.pause_id,
            "deadline": pause.deadline,
        }
        if policy is not None and policy.action == "resume":
            await self._answer(
                record.run_id,
                Answer(input=policy.input, actor=SYSTEM_ACTOR, pause_id=pause.pause_id),
                expired=event("expired", SYSTEM_ACTOR, {**detail, "policy": "resume"}),
            )
            return
        failing = policy is not None and policy.action == "fail"
        expired = await self.store.replace(
            dataclasses.replace(
                record,
                status="failed" if failing else "expired",
                error=f"pause at {pause.stage_id!r} passed its deadline" if failing else None,
                pauses=(),
                updated_at=time.time(),
            ),
            expected_version=record.version,
            events=[
                event(
                    "expired", SYSTEM_ACTOR, {**detail, "policy": "fail" if failing else "cancel"}
                )
            ],
        )
        self.driver.observer.run_ended(expired)

    # -- recovery -----------------------------------------------------------

    async def recover(self, *, now: float | None = None, concurrency: int = 8) -> list[str]:
        """See :meth:`Runs.recover <pausepoint.durable.runs.Runs.recover>`."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        now = time.time() if now is None else now
        slots = asyncio.Semaphore(concurrency)

        async def take_over(record: StoredRun) -> str | None:
            async with slots:
                return await self._recover_one(record, now)

        stale = await self.store.list_stale(now)
        outcomes = await asyncio.gather(
            *(take_over(record) for record in stale), return_exceptions=True
        )
        for outcome in outcomes:  # after every run had its turn: the first real failure
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, RunAlreadyClaimedError
            ):
                raise outcome
        return [outcome for outcome in outcomes if isinstance(outcome, str)]

    async def _recover_one(self, record: StoredRun, now: float) -> str | None:
        """Take over one stale run and drive it; ``None`` if it is not ours to recover."""
        flow = self.charts.get(record.chart)
        if flow is None:
            return None
        token = self.driver.token()

        def take_over(current: StoredRun) -> Update:
            lease = current.lease_until
            if (
                current.status != "running"
                or current.lease_owner != record.lease_owner
                or lease is None
                or lease > now
            ):
                raise _NotStale
            request = cancel_of(current)
            if request is not None:  # its process died before honouring the request
                return Update(
                    run=dataclasses.replace(
                        current,
                        status="cancelled",
                        pauses=(),
                        lease_owner=None,
                        lease_until=None,
                        cancel=None,
                        updated_at=time.time(),
                    ),
                    events=[cancelled_event(request, current.lease_owner)],
                )
            return Update(
                run=dataclasses.replace(
                    current, lease_owner=token, lease_until=time.time() + self.lease_seconds
                ),
                events=[event("recovered", SYSTEM_ACTOR, {"from": current.lease_owner})],
            )

        try:
            claimed, _ = await self.store.update(record.run_id, take_over)
        except _NotStale:
            return None
        if claimed.status == "running":
            step, tracker = await self.driver.continuation(claimed, flow)
            await self.driver.drive(claimed, flow, step, tracker, kind="recover")
        else:  # cancelled: its process died with a cancel request pending
            self.driver.observer.run_ended(claimed)
        return record.run_id
