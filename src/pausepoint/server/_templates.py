"""The review pages' Jinja2 environment: autoescaping on, a few filters, security headers."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from starlette.responses import HTMLResponse

__all__ = ["HERE", "render", "render_text"]

HERE = Path(__file__).parent

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # everything from state, pause data and audit is escaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# No script or style from anywhere but this site; no framing (clickjacking).
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _pretty(value: Any) -> str:
    """JSON for people: indented, non-ASCII kept. Plain text, so autoescaping applies."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def _age(at: float) -> str:
    return _span(time.time() - at) + " ago"


def _until(at: float | None) -> str:
    if at is None:
        return "none"
    left = at - time.time()
    return f"in {_span(left)}" if left >= 0 else f"overdue by {_span(left)}"


def _iso(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when(at: float | None, relative: str = "age") -> markupsafe.Markup:
    """A ``<time>`` element: the time relative to now, the absolute time on hover.

    ``relative`` is ``"age"`` ("3 min ago") or ``"until"`` ("in 2 h", for deadlines).
    """
    if at is None:
        return markupsafe.Markup("none")
    moment = datetime.fromtimestamp(at, UTC)
    text = _until(at) if relative == "until" else _age(at)
    return markupsafe.Markup('<time datetime="{}" title="{}">{}</time>').format(
        moment.isoformat(timespec="seconds").replace("+00:00", "Z"), _iso(at), text
    )


_ENV.filters.update(pretty=_pretty, compact=_compact, age=_age, until=_until, iso=_iso, when=_when)


def render(
    name: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render template ``name`` into a response with the pages' security headers."""
    html = _ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers={**_HEADERS, **(headers or {})})


def render_text(name: str, context: Mapping[str, Any]) -> str:
    """Render template ``name`` to text (a fragment a page's script puts in place)."""
    return _ENV.get_template(name).render(**context)
