"""Running a run again from a point of its history: fork and retry.

:meth:`Runs.fork <pausepoint.durable.runs.Runs.fork>` starts a new run from a
step of a run's journal; :meth:`Runs.retry <pausepoint.durable.runs.Runs.retry>`
goes on with the same run from the stage that failed. Both rebuild where a run
stood from what the journal kept (``RunDriver.continuation``,
``RunDriver.paused_checkpoint``) and drive it on; neither answers a pause, so
neither goes through the answer path of ``Runs``.

:class:`Reruns` is a collaborator of ``Runs``, not a base: it receives the
store, the driver, the chart lookup and the settings it needs explicitly.
``Runs.fork`` and ``Runs.retry`` are its public entry points and carry the
documentation.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from pausepoint.engine.chart import FlowChart
from pausepoint.errors import RunAlreadyClaimedError, RunStateError, StepNotFoundError
from pausepoint.stores.base import JournalEntry, Store, StoredRun, Update

from ._checks import check_fingerprint
from ._claim import event
from ._driver import RunDriver
from ._meta import RunMeta
from ._notify import NotifySettings, pause_outbox
from .compat import CompatibilityRule
from .records import RunRecord

__all__ = ["Reruns"]


def _failed_waiting(record: StoredRun) -> list[Any] | None:
    """The pauses a failed run waited on when its deadline failed it; ``None`` if it was running.

    A run that failed while running keeps the checkpoint its claim started
    from: none (it started), or the paused one its answer (``meta.answer``) was
    for. One failed by a deadline keeps the checkpoint of a pause nobody answered.
    """
    checkpoint = record.checkpoint
    if checkpoint is None or checkpoint.get("status") != "paused":
        return None
    pauses: list[Any] = checkpoint["pauses"]
    answer = RunMeta.of(record.meta).answer
    answered = answer is not None and any(p["pause_id"] == answer.pause_id for p in pauses)
    return None if answered else pauses


def _patched(entry: JournalEntry, patch: Mapping[str, Any]) -> JournalEntry:
    """``entry`` with ``patch`` set over what it changed (a fork's state patch)."""
    data = dict(entry.data)
    data["set"] = {**data.get("set", {}), **patch}
    if "ext" in data:
        data["ext"] = {k: v for k, v in data["ext"].items() if k not in patch}
    if "del" in data:
        data["del"] = [k for k in data["del"] if k not in patch]
    return dataclasses.replace(entry, data=data)


class Reruns:
    """Forks and retries of the runs in one store.

    Args:
        store: The store (as ``Runs`` wraps it).
        driver: Rebuilds a run from its journal, makes claim tokens and drives runs on.
        chart: The registered chart of a name (``Runs._chart``: refuses an unknown one).
        compatibility: The rule under which a run may go on with a changed chart.
        notify: The notifications a fork's new pause writes to the outbox.
        lease_seconds: The lease a forked or retried run is claimed for.
    """

    def __init__(
        self,
        store: Store,
        driver: RunDriver,
        chart: Callable[[str], FlowChart],
        *,
        compatibility: CompatibilityRule | None,
        notify: NotifySettings,
        lease_seconds: float,
    ) -> None:
        self.store = store
        self.driver = driver
        self.chart = chart
        self.compatibility = compatibility
        self.notify = notify
        self.lease_seconds = lease_seconds

    async def fork(
        self,
        run_id: str,
        *,
        at: int,
        state_patch: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> RunRecord:
        """See :meth:`Runs.fork <pausepoint.durable.runs.Runs.fork>`."""
        parent = await self.store.get(run_id)
        flow = self.chart(parent.chart)
        meta = RunMeta.of(parent.meta)
        if parent.status == "running":
            raise RunStateError(
                f"run {run_id!r} is running: fork a run once it is paused or has ended",
                run_id=run_id,
                status=parent.status,
            )
        if not meta.whole:
            raise RunStateError(
                f"run {run_id!r} was started by an earlier release, before runs kept their "
                "whole history: it cannot be forked",
                run_id=run_id,
                status=parent.status,
            )
        check_fingerprint(parent, flow, self.compatibility)
        entries = list(await self.store.journal(run_id))
        if not 0 <= at < len(entries):
            raise StepNotFoundError(
                f"run {run_id!r} has no step {at}; its steps are 0 to {len(entries) - 1} "
                "(see its history)",
                run_id=run_id,
                at=at,
            )
        if entries[at].kind == "resumed":
            at -= 1  # the pause it answered
        paused = entries[at].kind == "paused"
        kept = entries[: at + 1] if paused else entries[:at]
        child_id = os.urandom(16).hex()
        patch = self._patch(flow, state_patch)
        seed = dict(meta.input)
        if patch and not kept:
            seed.update(patch)  # forked at the first step: the new run starts from a patched input
        elif patch:
            kept[-1] = _patched(kept[-1], patch)
        child_meta = meta.replace(input=seed, answer=None, idempotency={}, segment=0, whole=True)
        linked = event("forked", actor, {"parent_run_id": run_id, "at": at})
        now = time.time()
        child = StoredRun(
            run_id=child_id,
            chart=parent.chart,
            fingerprint=flow.fingerprint,
            status="running",
            created_at=now,
            updated_at=now,
            meta=child_meta.to_json(),
        )
        if paused:
            checkpoint = self.driver.paused_checkpoint(child, kept, flow)
            pauses = tuple(
                dataclasses.replace(self.driver.pause_entry(flow, p), created_at=now)
                for p in checkpoint["pauses"]
            )
            waiting = dataclasses.replace(
                child, status="paused", checkpoint=checkpoint, pauses=pauses
            )
            outbox = pause_outbox(self.notify, flow, waiting, (), now)
            record = await self.store.create(waiting, [linked], kept, outbox)
            await self._link(run_id, child_id, at, actor)
            return self.driver.record(record, await self.store.audit(child_id))
        record = await self.store.create(
            dataclasses.replace(
                child,
                lease_owner=self.driver.token(),
                lease_until=now + self.lease_seconds,
            ),
            [linked],
            kept,
        )
        await self._link(run_id, child_id, at, actor)
        step, tracker = await self.driver.continuation(record, flow)
        return await self.driver.drive(record, flow, step, tracker, kind="start")

    async def _link(self, parent: str, child: str, at: int, actor: str | None) -> None:
        await self.store.append_audit(
            parent, [event("forked_to", actor, {"run_id": child, "at": at})]
        )

    @staticmethod
    def _patch(flow: FlowChart, patch: Mapping[str, Any] | None) -> dict[str, Any]:
        """The state patch as JSON, each value checked as a stage's write would be."""
        if not patch:
            return {}
        checked = {key: flow.codec.check(key, value, "fork") for key, value in patch.items()}
        return flow.codec.encode(checked)

    async def retry(self, run_id: str, *, actor: str | None = None) -> RunRecord:
        """See :meth:`Runs.retry <pausepoint.durable.runs.Runs.retry>`."""

        def claim(current: StoredRun) -> Update:
            if current.status == "running":
                raise RunAlreadyClaimedError(
                    f"run {run_id!r} is running: another retry or resume got there first",
                    run_id=run_id,
                )
            if current.status != "failed":
                raise RunStateError(
                    f"run {run_id!r} is {current.status}; only a failed run can be retried",
                    run_id=run_id,
                    status=current.status,
                )
            now = time.time()
            retried = event("retried", actor, {"error": current.error})
            waiting = _failed_waiting(current)
            if waiting is not None:  # it failed at a pause's deadline: it waits again
                flow = self.chart(current.chart)
                pauses = tuple(
                    dataclasses.replace(self.driver.pause_entry(flow, p), created_at=now)
                    for p in waiting
                )
                return Update(
                    run=dataclasses.replace(
                        current, status="paused", pauses=pauses, error=None, updated_at=now
                    ),
                    events=[retried],
                )
            return Update(
                run=dataclasses.replace(
                    current,
                    status="running",
                    error=None,
                    snapshot=None,
                    lease_owner=self.driver.token(),
                    lease_until=now + self.lease_seconds,
                    updated_at=now,
                ),
                events=[retried],
            )

        claimed, audit = await self.store.update(run_id, claim, audit=True)
        if claimed.status != "running":
            return self.driver.record(claimed, audit)
        flow = self.chart(claimed.chart)
        step, tracker = await self.driver.continuation(claimed, flow)
        return await self.driver.drive(claimed, flow, step, tracker, kind="recover")
