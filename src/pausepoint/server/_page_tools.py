"""What the pages beyond the inbox share: who is asking, form posts, CSRF, refusals.

The sign-in and session code lives in :mod:`._pages` and :mod:`._auth`; the
runs, charts and batch pages reach it only through :class:`PageHost` (the
review pages' handler object), so a change of how sessions work touches one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from pausepoint.durable.people import Actor
from pausepoint.durable.runs import Runs

from ._auth import Access, Session, SessionSigner
from ._templates import render

__all__ = ["PageHost", "Posted", "problems_of", "read_post", "refused"]


class PageHost(Protocol):
    """The review pages' handler object, as the other pages use it."""

    runs: Runs
    signer: SessionSigner
    access: Access

    def session_of(self, request: Request) -> Session | None: ...

    def actor_of(self, session: Session | None) -> Actor | None: ...

    def sign_in_first(self, request: Request) -> Response | None: ...

    def with_rights(self, request: Request, context: dict[str, Any]) -> dict[str, Any]: ...

    def base(self, request: Request) -> dict[str, Any]: ...


class Posted:
    """A form post from a signed-in person whose CSRF token checked out.

    Attributes:
        actor: Who posted.
        groups: The groups they are in (who may answer what follows from them).
        values: The form's text fields (the last value of a repeated name).
        form: The whole form, for repeated names (``getlist``).
    """

    def __init__(self, actor: Actor, form: FormData) -> None:
        self.actor = actor.name
        self.groups = actor.groups
        self.form = form
        self.values = {key: value for key, value in form.items() if isinstance(value, str)}

    def getlist(self, name: str) -> list[str]:
        """Every text value posted under ``name``."""
        return [value for value in self.form.getlist(name) if isinstance(value, str)]


async def read_post(host: PageHost, request: Request, back: str) -> Posted | Response:
    """Read a form post; a person not signed in is sent to sign in, a bad CSRF token refused.

    Args:
        host: The review pages.
        request: The post.
        back: Where to come back to after signing in.
    """
    form = await request.form()
    session = host.session_of(request)
    actor = host.actor_of(session)
    if actor is None:
        return RedirectResponse(f"/login?{urlencode({'next': back})}", status_code=303)
    token = form.get("csrf")
    if not host.signer.check_csrf(session, token if isinstance(token, str) else None):
        return refused(
            request,
            "This form expired or did not come from this site. Reload the page and try again.",
        )
    return Posted(actor, form)


def refused(request: Request, message: str) -> Response:
    """The 403 page."""
    return render(
        "message.html",
        {
            "actor": None,
            "csrf": None,
            "here": request.url.path,
            "title": "Refused",
            "message": message,
        },
        status=403,
    )


def problems_of(
    errors: Sequence[Mapping[str, Any]], *, has_fields: bool, raw: str
) -> dict[str, str]:
    """Name each field's problem from pydantic's error details (``raw``: the JSON box's name)."""
    found: dict[str, str] = {}
    for error in errors:
        loc = list(error.get("loc") or [])
        key = str(loc[0]) if has_fields and loc else raw
        where = ".".join(str(part) for part in loc)
        message = str(error.get("msg", "invalid"))
        text = (
            message if has_fields and len(loc) == 1 else f"{where}: {message}" if where else message
        )
        found[key] = f"{found[key]}; {text}" if key in found else text
    return found
