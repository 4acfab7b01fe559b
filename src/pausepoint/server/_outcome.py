"""What became of a pause: who answered it, or why it no longer waits."""

from __future__ import annotations

from pausepoint.durable.runs import RunRecord
from pausepoint.stores.base import AuditEvent

__all__ = ["closing_event", "describe_closing"]


def closing_event(record: RunRecord, pause_id: str | None) -> AuditEvent | None:
    """Return the audit event that ended a pause: its answer, a cancel or an expiry.

    Without a ``pause_id``, the latest answer to any pause of the run.
    """
    for event in reversed(record.audit):
        if event.kind in ("resumed", "expired") and pause_id in (None, event.data.get("pause_id")):
            return event
    return next((e for e in reversed(record.audit) if e.kind == "cancelled"), None)


def describe_closing(event: AuditEvent | None) -> str:
    """Say in one sentence why a pause no longer waits for an answer."""
    if event is None:
        return "This pause is no longer waiting for an answer."
    who = event.actor or "someone"
    if event.kind == "resumed":
        return f"This pause was already answered by {who}."
    if event.kind == "cancelled":
        return f"This run was cancelled by {who}."
    return "This pause passed its deadline and is no longer waiting for an answer."
