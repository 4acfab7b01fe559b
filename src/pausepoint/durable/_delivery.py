"""Delivering the outbox: notifications, reminders and escalations, done by sweeps.

:class:`Notifier` is what :meth:`Runs.sweep <pausepoint.Runs.sweep>` calls after
deadlines and recovery. Each round claims due outbox entries under a lease
(``Store.claim_outbox``: of many sweepers, one gets each entry), acts on them,
and settles each (``Store.settle_outbox``, only while the lease is held):

1. ``escalate`` timers: the pause is re-assigned to ``escalate_to`` (through
   ``Runs.reassign``, which audits ``escalated`` with ``from``, ``to`` and
   ``reason``), and an ``escalated`` notification goes out through the
   stage's URLs.
2. ``remind`` timers: a ``reminder`` notification goes out, and the timer is
   set again ``remind_every`` later; audit ``reminded``.
3. ``deliver`` entries: the message is sent; audit ``notified`` on success.
   A failure is retried after 1 s, 2 s, 4 s ... (at most 5 min) until
   ``notify_attempts`` tries; then audit ``notify_failed``.

Timers and deliveries of a pause that is no longer pending (answered,
cancelled, expired) stop without sending. A sweeper that dies mid-delivery
leaves its entries claimed until the lease lapses; the next sweep sends them
again: delivery is at least once, and a receiver drops repeats by the
``X-Pausepoint-Delivery`` id. Nothing here can block or fail a run: it runs
in sweeps, apart from the runs, and every error ends up on the entry.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import urllib.error
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pausepoint.engine._json import json_copy
from pausepoint.errors import PausepointError, RunError, StoreError
from pausepoint.notify import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from pausepoint.stores._common import dump_json
from pausepoint.stores.base import AuditEvent, OutboxEntry, PauseEntry, Store, StoredRun

from ._notify import (
    WEBHOOK_SCHEMES,
    NotifySettings,
    check_url,
    message_facts,
    message_text,
    run_link,
    shown_url,
)

__all__ = ["MAX_BACKOFF", "Notifier", "NotifyReport", "backoff"]

log = logging.getLogger("pausepoint.notify")

MAX_BACKOFF = 300.0
"""The longest wait between two tries of one notification, in seconds."""

_BATCH = 100
_ROUNDS = 50
_CONCURRENCY = 16
_ACTOR = "pausepoint"

Reassign = Callable[[str, str, Sequence[str], str], Awaitable[Any]]
"""``(run_id, pause_id, assignees, reason)``: re-assign a pending pause."""


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try: 1, 2, 4, ... at most 5 min."""
    return float(min(MAX_BACKOFF, 2 ** min(attempts - 1, 30)))


@dataclass(kw_only=True, slots=True)
class NotifyReport:
    """What one sweep's notification round did (folded into ``SweepReport``)."""

    notified: int = 0
    retrying: int = 0
    failed: int = 0
    reminded: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)


class _Undeliverable(Exception):
    """A notification that no retry can deliver (its URL is not understood)."""


class Notifier:
    """Delivers a store's outbox; see the module docstring.

    Args:
        store: The store.
        settings: URLs, secret, base URL, tries, timeout.
        owner: Makes the claim token of a sweep (unique per call).
        reassign: Re-assigns a pending pause (``Runs.reassign``).
    """

    def __init__(
        self,
        store: Store,
        settings: NotifySettings,
        owner: Callable[[], str],
        reassign: Reassign | None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._owner = owner
        self._reassign = reassign
        self.lease = 2 * settings.timeout + 30.0

    async def sweep(self, now: float) -> NotifyReport:
        """Act on every outbox entry due at ``now``: escalations, reminders, then deliveries.

        Entries written by this call (the notifications of a reminder or an
        escalation) are delivered by it too.
        """
        report = NotifyReport()
        owner = self._owner()
        slots = asyncio.Semaphore(_CONCURRENCY)

        async def deliver(entry: OutboxEntry) -> None:
            async with slots:
                await self._guarded(self._deliver, entry, owner, now, report)

        for _ in range(_ROUNDS):
            batch = await self.store.claim_outbox(
                now, owner=owner, lease_until=now + self.lease, limit=_BATCH
            )
            if not batch:
                break
            timers = sorted(
                (e for e in batch if e.kind != "deliver"),
                key=lambda e: (e.kind != "escalate", e.next_at),
            )
            for timer in timers:
                await self._guarded(self._timer, timer, owner, now, report)
            await asyncio.gather(*(deliver(e) for e in batch if e.kind == "deliver"))
        if report.notified or report.failed or report.reminded or report.escalated:
            log.info(
                "notifications: %d sent, %d to retry, %d given up, %d reminders, %d escalations",
                report.notified,
                report.retrying,
                report.failed,
                len(report.reminded),
                len(report.escalated),
            )
        return report

    async def _guarded(
        self,
        act: Callable[[OutboxEntry, str, float, NotifyReport], Awaitable[None]],
        entry: OutboxEntry,
        owner: str,
        now: float,
        report: NotifyReport,
    ) -> None:
        try:
            await act(entry, owner, now, report)
        except StoreError:
            raise  # the store is down: the entry's lease lapses and a later sweep goes on
        except Exception as exc:  # a bug must not stop the other entries
            log.exception("run %s: outbox entry %s failed: %s", entry.run_id, entry.tag, exc)

    async def _pending(self, entry: OutboxEntry) -> tuple[StoredRun, PauseEntry] | None:
        """The run and the entry's pause, if the pause still waits."""
        try:
            run = await self.store.get(entry.run_id)
        except RunError:
            return None
        if run.status != "paused":
            return None
        pause = next((p for p in run.pauses if p.pause_id == entry.pause_id), None)
        return None if pause is None else (run, pause)

    async def _stop(self, entry: OutboxEntry, owner: str, now: float) -> None:
        """Close an entry whose pause no longer waits: nothing is sent."""
        await self.store.settle_outbox(
            entry,
            owner=owner,
            state="sent" if entry.kind != "deliver" else "failed",
            next_at=now,
            error=None if entry.kind != "deliver" else "not sent: the pause no longer waits",
        )

    # -- timers ------------------------------------------------------------------

    async def _timer(
        self, entry: OutboxEntry, owner: str, now: float, report: NotifyReport
    ) -> None:
        found = await self._pending(entry)
        if found is None:
            await self._stop(entry, owner, now)
            return
        run, pause = found
        if entry.kind == "escalate":
            await self._escalate(entry, owner, now, report, run, pause)
        else:
            await self._remind(entry, owner, now, report, run, pause)

    def _deliveries(
        self, entry: OutboxEntry, urls: Sequence[str], tag: str, facts: dict[str, Any], now: float
    ) -> list[OutboxEntry]:
        return [
            OutboxEntry(
                run_id=entry.run_id,
                pause_id=entry.pause_id,
                kind="deliver",
                url=url,
                tag=tag,
                payload=facts,
                next_at=now,
                created_at=now,
            )
            for url in urls
        ]

    async def _remind(
        self,
        entry: OutboxEntry,
        owner: str,
        now: float,
        report: NotifyReport,
        run: StoredRun,
        pause: PauseEntry,
    ) -> None:
        every = float(entry.payload["every"])
        count = int(entry.payload.get("count", 0)) + 1
        urls = list(entry.payload.get("urls", ()))
        facts = message_facts(
            run,
            pause,
            "reminder",
            count=count,
            waited=now - pause.created_at,
            link=entry.payload.get("link"),
        )
        reminded = AuditEvent(
            kind="reminded",
            at=time.time(),
            actor=_ACTOR,
            data={"pause_id": pause.pause_id, "stage_id": pause.stage_id, "count": count},
        )
        settled = await self.store.settle_outbox(
            entry,
            owner=owner,
            state="pending",
            next_at=now + every,
            payload={**entry.payload, "count": count},
            events=[reminded],
            outbox=self._deliveries(entry, urls, f"reminder:{count}", facts, now),
        )
        if settled:
            report.reminded.append(run.run_id)

    async def _escalate(
        self,
        entry: OutboxEntry,
        owner: str,
        now: float,
        report: NotifyReport,
        run: StoredRun,
        pause: PauseEntry,
    ) -> None:
        to = [str(who) for who in entry.payload["to"]]
        after = float(entry.payload["after"])
        previous = list(pause.assignees)
        # Already moved: a sweeper that died after re-assigning, before settling; not again.
        if self._reassign is not None and sorted(set(to)) != sorted(previous):
            try:
                await self._reassign(
                    run.run_id,
                    pause.pause_id,
                    to,
                    f"escalated: nobody answered within {after:g}s",
                )
            except RunError:  # answered or ended meanwhile
                await self._stop(entry, owner, now)
                return
        facts = message_facts(
            run,
            pause,
            "escalated",
            assignees=to,
            previous=previous,
            link=entry.payload.get("link"),
        )
        urls = list(entry.payload.get("urls", ()))
        settled = await self.store.settle_outbox(
            entry,
            owner=owner,
            state="sent",
            next_at=now,
            outbox=self._deliveries(entry, urls, "escalated", facts, now),
        )
        if settled:
            report.escalated.append(run.run_id)

    # -- deliveries --------------------------------------------------------------

    async def _deliver(
        self, entry: OutboxEntry, owner: str, now: float, report: NotifyReport
    ) -> None:
        if await self._pending(entry) is None:
            await self._stop(entry, owner, now)
            return
        detail = {
            "pause_id": entry.pause_id,
            "url": shown_url(entry.url),
            "event": entry.tag,
            "attempts": entry.attempts,
        }
        try:
            await asyncio.wait_for(self._send(entry), self.settings.timeout + 5.0)
        except Exception as exc:
            error = _describe(exc)
            final = isinstance(exc, _Undeliverable) or entry.attempts >= self.settings.attempts
            if final:
                failed = AuditEvent(
                    kind="notify_failed",
                    at=time.time(),
                    actor=_ACTOR,
                    data={**detail, "error": error},
                )
                if await self.store.settle_outbox(
                    entry, owner=owner, state="failed", next_at=now, error=error, events=[failed]
                ):
                    report.failed += 1
                log.warning(
                    "run %s: notification %s to %s given up after %d tries: %s",
                    entry.run_id,
                    entry.tag,
                    detail["url"],
                    entry.attempts,
                    error,
                )
                return
            if await self.store.settle_outbox(
                entry,
                owner=owner,
                state="pending",
                next_at=now + backoff(entry.attempts),
                error=error,
            ):
                report.retrying += 1
            return
        if entry.error is not None:
            detail["last_error"] = entry.error
        sent = AuditEvent(kind="notified", at=time.time(), actor=_ACTOR, data=detail)
        if await self.store.settle_outbox(
            entry, owner=owner, state="sent", next_at=now, events=[sent]
        ):
            report.notified += 1

    async def _send(self, entry: OutboxEntry) -> None:
        # the sweeper's base URL, else the one of the process that paused, else a path
        link = (
            run_link(self.settings.base_url, entry.run_id)
            if self.settings.base_url
            else entry.payload.get("link") or run_link(None, entry.run_id)
        )
        scheme = entry.url.partition("://")[0].lower()
        if scheme in WEBHOOK_SCHEMES:
            body = dict(entry.payload, link=link, delivery=entry.id, attempt=entry.attempts)
            await asyncio.to_thread(self._post, entry, body)
            return
        try:
            check_url(entry.url)
        except (PausepointError, ImportError) as exc:
            raise _Undeliverable(str(exc)) from exc
        title, text = message_text(entry.payload, link)
        await asyncio.to_thread(_apprise_send, entry.url, title, text, self.settings.timeout)

    def _post(self, entry: OutboxEntry, body: dict[str, Any]) -> None:
        """POST the webhook's JSON body, signed; raise unless the receiver answers 2xx."""
        import urllib.request  # only where webhooks are sent: it imports http, ssl, email

        raw = dump_json(json_copy(body, "notification")).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "pausepoint",
            DELIVERY_HEADER: entry.id,
            TIMESTAMP_HEADER: stamp,
        }
        if self.settings.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.settings.secret, raw, stamp)
        scheme, rest = entry.url.split("://", 1)
        target = f"{WEBHOOK_SCHEMES[scheme.lower()]}://{rest}"
        request = urllib.request.Request(target, data=raw, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            error.close()  # it holds the connection
            raise OSError(f"the receiver answered HTTP {error.code}") from None
        if not 200 <= status < 300:
            raise OSError(f"the receiver answered HTTP {status}")


def _apprise_send(url: str, title: str, body: str, timeout: float) -> None:
    """Send through apprise; raise with what apprise logged when it fails."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        raise _Undeliverable(f"apprise does not understand {shown_url(url)}")
    logs: list[str] = []
    options: dict[str, Any] = {}
    if "log_callback" in inspect.signature(sender.notify).parameters:
        options["log_callback"] = lambda entry, *_: logs.append(
            f"{getattr(entry, 'level', '')}: {getattr(entry, 'message', entry)}"
        )
    if "timeout" in inspect.signature(sender.notify).parameters:
        options["timeout"] = timeout
    if not sender.notify(body=body, title=title, **options):
        failures = [line for line in logs if line.startswith(("WARNING", "ERROR"))]
        raise OSError("; ".join(failures[-3:]) or f"apprise could not notify {shown_url(url)}")


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"the receiver answered HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot reach the receiver: {error.reason}"
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "no answer in time"
    text = " ".join(str(error).split())
    return text[:500] or type(error).__name__
