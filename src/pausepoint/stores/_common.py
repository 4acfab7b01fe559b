"""Helpers every backend shares: the JSON record codec, inbox cursors, URLs and errors.

Records, pauses and audit events travel as JSON documents whose keys are the
dataclass field names (see :func:`run_to_doc`). The inbox orders entries by the
key ``(created_at, run_id, pause_id)``, all three descending; a cursor is that key
of the last entry served, so the next page starts strictly below it whatever was
added or removed meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from pausepoint.errors import (
    ClaimLostError,
    RunExistsError,
    RunNotFoundError,
    StoreError,
    StoreUnavailableError,
    VersionConflictError,
)
from pausepoint.stores.base import (
    AuditEvent,
    InboxEntry,
    JournalEntry,
    OutboxEntry,
    PauseEntry,
    PendingPage,
    RunPage,
    StoredRun,
)

MAX_PAGE = 1000
"""Largest ``limit`` a listing accepts."""

PendingKey = tuple[float, str, str]
"""Where an inbox entry sorts: ``(pause.created_at, run_id, pause_id)``."""

RunKey = tuple[float, str]
"""Where a run sorts in listings: ``(updated_at, run_id)``."""

_CURSOR_TAG = "pp1"
_RUN_CURSOR_TAG = "pr1"

MAX_PURGE = 10_000
"""Largest batch one ``purge`` call erases."""


def dump_json(value: Any) -> str:
    """Serialise a JSON value compactly; NaN and infinities are refused (no JSON for them)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def pause_to_doc(pause: PauseEntry) -> dict[str, Any]:
    """Return the JSON document of a pause."""
    return {
        "pause_id": pause.pause_id,
        "stage_id": pause.stage_id,
        "data": pause.data,
        "created_at": pause.created_at,
        "deadline": pause.deadline,
        "key": pause.key,
        **({"assignees": list(pause.assignees)} if pause.assignees else {}),
    }


def pause_from_doc(doc: Mapping[str, Any]) -> PauseEntry:
    """Rebuild a pause from its JSON document."""
    assignees = doc.get("assignees")
    if assignees:
        return PauseEntry(**{**doc, "assignees": tuple(assignees)})
    return PauseEntry(**{k: v for k, v in doc.items() if k != "assignees"})


def run_to_doc(run: StoredRun, *, version: int) -> dict[str, Any]:
    """Return the JSON document of a run record, stamped with ``version``."""
    doc = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
    doc.update(version=version, pauses=[pause_to_doc(p) for p in run.pauses], meta=dict(run.meta))
    return doc


def run_from_doc(doc: Mapping[str, Any]) -> StoredRun:
    """Rebuild a run record from its JSON document."""
    return StoredRun(**{**doc, "pauses": tuple(pause_from_doc(p) for p in doc["pauses"])})


def event_to_doc(event: AuditEvent) -> dict[str, Any]:
    """Return the JSON document of an audit event; its ``seq`` is the store's to set."""
    return {"kind": event.kind, "at": event.at, "actor": event.actor, "data": dict(event.data)}


def event_from_doc(doc: Mapping[str, Any], seq: int) -> AuditEvent:
    """Rebuild an audit event at position ``seq`` of its run's log."""
    return AuditEvent(**doc, seq=seq)


def step_to_doc(step: JournalEntry) -> dict[str, Any]:
    """Return the JSON document of a journal entry; its ``index`` is the store's to set."""
    return {
        "kind": step.kind,
        "stage_id": step.stage_id,
        "at": step.at,
        "actor": step.actor,
        "data": dict(step.data),
    }


def step_from_doc(doc: Mapping[str, Any], index: int) -> JournalEntry:
    """Rebuild a journal entry at position ``index`` of its run's journal."""
    return JournalEntry(**doc, index=index)


def outbox_to_doc(entry: OutboxEntry) -> dict[str, Any]:
    """Return the JSON document of an outbox entry (its ``id`` included, for readers)."""
    doc = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
    doc["payload"] = dict(entry.payload)
    doc["id"] = entry.id
    return doc


def outbox_from_doc(doc: Mapping[str, Any]) -> OutboxEntry:
    """Rebuild an outbox entry from its JSON document."""
    return OutboxEntry(**{k: v for k, v in doc.items() if k != "id"})


def check_outbox_state(state: str) -> None:
    """Refuse an outbox state that is not ``pending``, ``sent`` or ``failed``.

    Raises:
        ValueError: ``state`` is none of them.
    """
    if state not in ("pending", "sent", "failed"):
        raise ValueError(f"an outbox state is 'pending', 'sent' or 'failed', not {state!r}")


def claim_lost(run_id: str, owner: str) -> ClaimLostError:
    """Return the error for a claim holder's write refused because it no longer holds the run."""
    return ClaimLostError(
        f"run {run_id!r} is no longer held by this process (claim {owner!r}): its lease lapsed "
        "and another process took it over, or it finished; nothing was written",
        run_id=run_id,
    )


def indexed_pauses(run: StoredRun) -> tuple[PauseEntry, ...]:
    """Return the pauses that belong in the inbox: all of them while paused, else none.

    Raises:
        ValueError: Two pauses share a ``pause_id``.
    """
    if len({p.pause_id for p in run.pauses}) != len(run.pauses):
        raise ValueError(f"run {run.run_id!r} lists the same pause_id twice; pause ids are unique")
    return run.pauses if run.status == "paused" else ()


def due_at(run: StoredRun) -> float | None:
    """Return the earliest deadline among the run's indexed pauses, if any has one."""
    deadlines = [p.deadline for p in indexed_pauses(run) if p.deadline is not None]
    return min(deadlines, default=None)


def lease_deadline(run: StoredRun) -> float | None:
    """Return when a running run's lease lapses; other runs hold no lease worth watching."""
    return run.lease_until if run.status == "running" else None


def check_limit(limit: int) -> None:
    """Refuse a page size outside ``1..MAX_PAGE``.

    Raises:
        ValueError: ``limit`` is out of range.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")


def encode_cursor(key: PendingKey) -> str:
    """Return the opaque cursor for the inbox entry sorting at ``key``."""
    raw = dump_json([_CURSOR_TAG, *key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> PendingKey:
    """Return the sort key a cursor of :func:`encode_cursor` stands for.

    Raises:
        ValueError: The cursor was not made by :func:`encode_cursor`.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, created_at, run_id, pause_id = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        tag = None
    else:
        number = isinstance(created_at, int | float) and not isinstance(created_at, bool)
        if tag == _CURSOR_TAG and number and isinstance(run_id, str) and isinstance(pause_id, str):
            return float(created_at), run_id, pause_id
    raise ValueError(
        f"invalid cursor {cursor!r}: pass back the next_cursor of a previous page unchanged"
    )


def pending_key(item: InboxEntry) -> PendingKey:
    """Return where an inbox entry sorts."""
    return item.pause.created_at, item.run_id, item.pause.pause_id


def make_page(items: Sequence[InboxEntry], limit: int) -> PendingPage:
    """Cut a page from up to ``limit + 1`` entries fetched in order; the extra one says "more"."""
    if len(items) <= limit:
        return PendingPage(items=tuple(items), next_cursor=None)
    return PendingPage(
        items=tuple(items[:limit]), next_cursor=encode_cursor(pending_key(items[limit - 1]))
    )


def encode_run_cursor(key: RunKey) -> str:
    """Return the opaque cursor for the run sorting at ``key`` in listings."""
    raw = dump_json([_RUN_CURSOR_TAG, *key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_run_cursor(cursor: str) -> RunKey:
    """Return the sort key a cursor of :func:`encode_run_cursor` stands for.

    Raises:
        ValueError: The cursor was not made by :func:`encode_run_cursor`.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, updated_at, run_id = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        tag = None
    else:
        number = isinstance(updated_at, int | float) and not isinstance(updated_at, bool)
        if tag == _RUN_CURSOR_TAG and number and isinstance(run_id, str):
            return float(updated_at), run_id
    raise ValueError(
        f"invalid cursor {cursor!r}: pass back the next_cursor of a previous page unchanged"
    )


def make_run_page(items: Sequence[StoredRun], limit: int) -> RunPage:
    """Cut a page of runs from up to ``limit + 1`` fetched in order (see :func:`make_page`)."""
    if len(items) <= limit:
        return RunPage(items=tuple(items), next_cursor=None)
    last = items[limit - 1]
    return RunPage(
        items=tuple(items[:limit]), next_cursor=encode_run_cursor((last.updated_at, last.run_id))
    )


def check_purge_limit(limit: int) -> None:
    """Refuse a purge batch size outside ``1..MAX_PURGE``.

    Raises:
        ValueError: ``limit`` is out of range.
    """
    if not 1 <= limit <= MAX_PURGE:
        raise ValueError(f"limit must be between 1 and {MAX_PURGE}, got {limit}")


def light(run: StoredRun) -> StoredRun:
    """The record as listings return it: without checkpoint and snapshot."""
    return dataclasses.replace(run, checkpoint=None, snapshot=None)


def redact_url(url: str) -> str:
    """Return ``url`` with its password, in the user info or a ``password`` parameter, as ``***``."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        start = url.index("://") + 3
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
        url = url[:start] + netloc + url[start + len(parts.netloc) :]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        url = _with_query(url, [(n, "***" if n == "password" else v) for n, v in pairs])
    return url


def pop_query_param(url: str, name: str) -> tuple[str, str | None]:
    """Take pausepoint's own parameter ``name`` out of ``url`` before the driver sees it.

    Returns:
        The URL without the parameter, and the parameter's last value (``None`` if absent).
    """
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    values = [v for n, v in pairs if n == name]
    if not values:
        return url, None
    return _with_query(url, [(n, v) for n, v in pairs if n != name]), values[-1]


def _with_query(url: str, pairs: Sequence[tuple[str, str]]) -> str:
    """Replace the query string of ``url``; the rest stays byte for byte."""
    base = url.partition("?")[0]
    return f"{base}?{urlencode(pairs, safe='*/:')}" if pairs else base


def unavailable(url: str, raw_url: str, error: BaseException) -> StoreUnavailableError:
    """Return the error for a store that cannot be reached (raise it ``from error``).

    Args:
        url: The redacted URL to name.
        raw_url: The URL as given, so its password can be scrubbed from the driver's message.
        error: What the driver raised.
    """
    detail = " ".join(str(error).split()).rstrip(".") or type(error).__name__
    password = urlsplit(raw_url).password
    if password:
        detail = detail.replace(password, "***")
    return StoreUnavailableError(
        f"cannot reach the store at {url}: {detail}. Check that the server is running and "
        "that the URL's host, port, credentials and database are right; nothing was written",
        url=url,
    )


def run_not_found(run_id: str) -> RunNotFoundError:
    """Return the error for a run id the store does not hold."""
    return RunNotFoundError(
        f"no run {run_id!r} in the store; check the id and that this is the store it was "
        "created in",
        run_id=run_id,
    )


def run_exists(run_id: str) -> RunExistsError:
    """Return the error for creating a run whose id is taken."""
    return RunExistsError(
        f"run {run_id!r} already exists; use a new run id, or get() the existing run",
        run_id=run_id,
    )


def version_conflict(run_id: str, expected: int, found: int) -> VersionConflictError:
    """Return the error for a compare-and-set that lost."""
    return VersionConflictError(
        f"run {run_id!r} changed since it was read: expected version {expected}, the store "
        f"has {found}; nothing was written, get() the run again and retry",
        run_id=run_id,
        expected=expected,
    )


def check_schema_version(found: int, known: int, url: str) -> None:
    """Refuse a store whose schema is newer than this pausepoint knows.

    Raises:
        StoreError: ``found`` is above ``known``.
    """
    if found > known:
        raise StoreError(
            f"the store at {url} has schema version {found}, this pausepoint knows up to "
            f"{known}; upgrade pausepoint to use this store"
        )
