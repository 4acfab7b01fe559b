"""The claim a process holds on a running run: progress, lease, outcome, audit events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .chart import FlowChart
from .errors import (
    PausepointError,
    RunAlreadyClaimedError,
    VersionConflictError,
)
from .stores.base import AuditEvent, Store, StoredRun

__all__ = ["Claim", "cancelled_event", "event", "redact"]


class Claim:
    """Holds a claimed run: writes progress, renews the lease, writes the outcome.

    Every write is a compare-and-set on the version this holder last wrote, so
    if another process took the run over (our lease lapsed), our next write
    fails and the run is left to it. The one change another process may make
    to a claimed run is a cancel request (``Runs.cancel``): the holder adopts
    it, hands it to ``on_cancel`` and writes again.
    """

    def __init__(
        self,
        store: Store,
        record: StoredRun,
        lease_seconds: float,
        on_cancel: Callable[[Mapping[str, Any]], object],
    ) -> None:
        self.store = store
        self.record = record
        self.lease_seconds = lease_seconds
        self.lock = asyncio.Lock()
        self.on_cancel = on_cancel
        self.cancel: Mapping[str, Any] | None = None

    async def write(self, *, events: Sequence[AuditEvent], **changes: Any) -> StoredRun:
        return await self._write(lambda: (changes, list(events)))

    async def finish(
        self, outcome: Callable[[], tuple[dict[str, Any], list[AuditEvent]]]
    ) -> StoredRun:
        """Write the run's outcome and release the lease; ``outcome`` is asked again after a cancel."""

        def released() -> tuple[dict[str, Any], list[AuditEvent]]:
            changes, events = outcome()
            return {**changes, "lease_owner": None}, events

        return await self._write(released)

    async def _write(
        self, change: Callable[[], tuple[dict[str, Any], list[AuditEvent]]]
    ) -> StoredRun:
        async with self.lock:
            while True:
                changes, events = change()
                now = time.time()
                try:
                    self.record = await self.store.replace(
                        dataclasses.replace(
                            self.record,
                            updated_at=now,
                            lease_until=now + self.lease_seconds,
                            **changes,
                        ),
                        expected_version=self.record.version,
                        events=events,
                    )
                    return self.record
                except VersionConflictError:
                    latest = await self.store.get(self.record.run_id)
                    if not self._asked_to_cancel(latest):
                        raise RunAlreadyClaimedError(
                            f"run {self.record.run_id!r} was taken over by another process "
                            "(its lease lapsed); this process stops working on it",
                            run_id=self.record.run_id,
                        ) from None
                self.record = latest
                self.cancel = latest.meta["cancel"]
                self.on_cancel(self.cancel)

    def _asked_to_cancel(self, latest: StoredRun) -> bool:
        """Whether the record changed only by a cancel request, still held by us."""
        return (
            self.cancel is None
            and latest.status == "running"
            and latest.lease_owner == self.record.lease_owner
            and isinstance(latest.meta.get("cancel"), Mapping)
        )

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            with contextlib.suppress(PausepointError):
                await self.write(events=[])


def event(kind: Any, actor: str | None, data: Mapping[str, Any]) -> AuditEvent:
    return AuditEvent(kind=kind, at=time.time(), actor=actor, data=dict(data))


def cancelled_event(request: Mapping[str, Any], by: str | None) -> AuditEvent:
    """The audit of a running run stopped by a cancel request: who asked, why, who stopped it."""
    return event(
        "cancelled",
        request.get("actor"),
        {"reason": request.get("reason"), "while": "running", "stopped_by": by},
    )


def redact(value: Any, flow: FlowChart) -> Any:
    if not flow.redact:
        return value
    if isinstance(value, dict):
        return {k: "***" if k in flow.redact else redact(v, flow) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item, flow) for item in value]
    return value
