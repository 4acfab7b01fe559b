"""What a pause writes into the outbox, and what its notifications say.

When a run pauses, :func:`pause_outbox` turns each new pause into outbox entries,
written in the same store transaction as the pause (see ``Update.outbox``):

* one ``deliver`` entry per notification URL (the stage's ``notify=``, then the
  ``Runs(notify=...)`` ones), tagged ``paused``;
* a ``remind`` timer when the stage has ``remind_every=`` (and URLs to remind through);
* an ``escalate`` timer when the stage has ``escalate_after=`` and ``escalate_to=``.

Entries carry everything their delivery needs (the message's facts, the URLs
of a timer), so a sweeper delivers them without the chart. The run page's link
is made at delivery, from the sweeper's ``base_url``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pausepoint.engine.chart import FlowChart, PausableStage
from pausepoint.errors import NotifyURLError
from pausepoint.stores.base import OutboxEntry, OutboxKind, PauseEntry, StoredRun

__all__ = [
    "WEBHOOK_SCHEMES",
    "NotifySettings",
    "check_url",
    "message_facts",
    "message_text",
    "pause_outbox",
    "run_link",
    "shown_url",
]

WEBHOOK_SCHEMES = {"json": "http", "jsons": "https"}
"""URL schemes pausepoint delivers itself, as signed JSON webhooks (and the HTTP scheme used)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NotifySettings:
    """How a ``Runs`` notifies.

    Attributes:
        urls: Notified of every pause of every chart, after the stage's own.
        secret: Signs webhook requests (HMAC-SHA256), if set.
        base_url: Makes the run page's link absolute (``https://pp.example``).
        attempts: Tries per notification before it is given up (``notify_failed``).
        timeout: Seconds one try may take.
    """

    urls: tuple[str, ...] = ()
    secret: bytes | None = None
    base_url: str | None = None
    attempts: int = 10
    timeout: float = 10.0

    @classmethod
    def of(
        cls,
        urls: Sequence[str] | None,
        secret: str | bytes | None,
        base_url: str | None,
        attempts: int,
        timeout: float,
    ) -> NotifySettings:
        """Check ``Runs``'s notification arguments and return them as settings.

        Raises:
            NotifyURLError: A URL no sender understands.
            ImportError: An apprise URL is given and apprise is not installed.
            ValueError: ``attempts`` or ``timeout`` is not positive, or
                ``base_url`` is not an http(s) URL.
        """
        if isinstance(urls, str):
            urls = [urls]
        for url in urls or ():
            check_url(url)
        if attempts < 1:
            raise ValueError(f"notify_attempts must be at least 1, got {attempts}")
        if timeout <= 0:
            raise ValueError(f"notify_timeout must be positive, got {timeout}")
        if base_url is not None and urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(
                f"base_url must be an http:// or https:// URL, like https://pausepoint.example, "
                f"got {base_url!r}"
            )
        return cls(
            urls=tuple(dict.fromkeys(urls or ())),
            secret=secret.encode() if isinstance(secret, str) else secret,
            base_url=None if base_url is None else base_url.rstrip("/"),
            attempts=attempts,
            timeout=timeout,
        )


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def check_url(url: str) -> None:
    """Refuse a notification URL no sender understands.

    ``json://`` and ``jsons://`` are pausepoint's signed webhooks; any other URL
    must be one apprise knows (``mailto://``, ``slack://``, ...).

    Raises:
        NotifyURLError: The URL has no scheme, or apprise does not know it.
        ImportError: It is an apprise URL and apprise is not installed.
    """
    scheme = _scheme(url)
    if scheme in WEBHOOK_SCHEMES:
        if not urlsplit(url).hostname:
            raise NotifyURLError(
                f"webhook URL {shown_url(url)!r} names no host; use json://host[:port]/path "
                "(HTTP) or jsons://host/path (HTTPS)",
                url=shown_url(url),
            )
        return
    if not scheme:
        raise NotifyURLError(
            f"notification URL {shown_url(url)!r} has no scheme; use json(s)://host/path for a "
            "webhook, or an apprise URL such as mailto://... or slack://...",
            url=shown_url(url),
        )
    apprise = _apprise()
    if apprise.Apprise.instantiate(url) is None:
        raise NotifyURLError(
            f"apprise does not understand the notification URL {shown_url(url)!r}: check its "
            "scheme and parts against apprise's documentation",
            url=shown_url(url),
        )


def _apprise() -> Any:
    try:
        import apprise
    except ImportError as error:
        raise ImportError(
            "notification URLs other than json(s):// need apprise: pip install 'pausepoint[notify]'"
        ) from error
    return apprise


def shown_url(url: str) -> str:
    """The URL as audits and logs show it: without credentials, tokens or query.

    A webhook keeps its host and path; an apprise URL is shown by apprise's
    privacy mode when apprise is installed, else by its scheme alone.
    """
    scheme = _scheme(url)
    parts = urlsplit(url)
    if scheme in WEBHOOK_SCHEMES:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    try:
        import apprise
    except ImportError:
        return f"{scheme}://…" if scheme else "…"
    plugin: Any = apprise.Apprise.instantiate(url)
    if plugin is None:
        return f"{scheme}://…" if scheme else "…"
    return str(plugin.url(privacy=True)).partition("?")[0]


def message_facts(run: StoredRun, pause: PauseEntry, event: str, **extra: Any) -> dict[str, Any]:
    """The facts a notification states about ``pause`` (JSON): the webhook body's core."""
    facts = {
        "event": event,
        "run_id": run.run_id,
        "pause_id": pause.pause_id,
        "chart": run.chart,
        "stage_id": pause.stage_id,
        "question": pause.data,
        "assignees": list(pause.assignees),
        "paused_at": pause.created_at,
        "deadline": pause.deadline,
    }
    facts.update(extra)
    return facts


def _unique(*groups: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(url for group in groups for url in group))


def pause_outbox(
    settings: NotifySettings,
    flow: FlowChart,
    run: StoredRun,
    known: Iterable[str],
    now: float,
) -> list[OutboxEntry]:
    """The outbox entries of the pauses ``run`` is written with, except those in ``known``.

    Nothing unless the run is written ``paused``.
    """
    if run.status != "paused":
        return []
    seen = set(known)
    entries: list[OutboxEntry] = []
    for pause in run.pauses:
        if pause.pause_id in seen:
            continue
        node = flow.find_stage(pause.stage_id)
        if not isinstance(node, PausableStage):
            continue
        urls = _unique(node.notify, settings.urls)

        entry = functools.partial(_entry, run.run_id, pause.pause_id, now)
        link = run_link(settings.base_url, run.run_id) if settings.base_url else None
        if urls:  # nobody to tell: no message to make
            facts = message_facts(run, pause, "paused", link=link)
            entries.extend(entry("deliver", "paused", facts, now, url) for url in urls)
        every = node.remind_every
        if every is not None and urls:
            timer = {"every": every, "count": 0, "urls": urls, "link": link}
            entries.append(entry("remind", "remind", timer, pause.created_at + every))
        after, to = node.escalate_after, list(node.escalate_to)
        if after is not None and to:
            timer = {"after": after, "to": to, "urls": urls, "link": link}
            entries.append(entry("escalate", "escalate", timer, pause.created_at + after))
    return entries


def _entry(
    run_id: str,
    pause_id: str,
    now: float,
    kind: OutboxKind,
    tag: str,
    payload: dict[str, Any],
    at: float,
    url: str = "",
) -> OutboxEntry:
    return OutboxEntry(
        run_id=run_id,
        pause_id=pause_id,
        kind=kind,
        url=url,
        tag=tag,
        payload=payload,
        next_at=at,
        created_at=now,
    )


def run_link(base_url: str | None, run_id: str) -> str:
    """The run page's link: absolute with ``base_url``, else a path on the server."""
    path = f"/runs/{quote(run_id, safe='')}"
    return f"{base_url}{path}" if base_url else path


def message_text(facts: Mapping[str, Any], link: str) -> tuple[str, str]:
    """The title and body of a notification sent through apprise (e-mail, chat)."""
    chart, stage = facts["chart"], facts["stage_id"]
    event = facts["event"]
    assignees = facts.get("assignees") or []
    if event == "reminder":
        title = f"Reminder: {chart} still waits at {stage}"
    elif event == "escalated":
        title = f"Escalated: {chart} waits at {stage}"
    else:
        title = f"{chart} waits for an answer at {stage}"
    lines = [f"Run {facts['run_id']} of chart {chart!r} waits at stage {stage!r}."]
    if event == "reminder":
        lines.append(f"Reminder {facts.get('count', 1)}: nobody has answered yet.")
    if event == "escalated":
        previous = ", ".join(facts.get("previous") or []) or "anyone"
        lines.append(f"Nobody answered in time: it moved from {previous} to the people below.")
    question = json.dumps(facts.get("question"), indent=2, ensure_ascii=False, default=str)
    lines += ["", "Question:", question, ""]
    lines.append("Told (assignees): " + (", ".join(assignees) if assignees else "anyone signed in"))
    if facts.get("deadline") is not None:
        lines.append(f"Deadline (UNIX time): {facts['deadline']:.0f}")
    lines.append(f"Answer it here: {link}")
    return title, "\n".join(lines)
