"""The review pages: sign-in, the inbox, and a run's page with its answer forms.

Reading needs a sign-in, as the JSON API's reads need a token, unless the
service allows public reads; answering always does. Every
form carries the session's CSRF token, checked before anything is read from
it. An answer is applied by the same ``Runs.resume`` the API uses, so a pause
answered elsewhere meanwhile is refused, and the page says who answered it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from pausepoint.durable.people import Actor, may_answer
from pausepoint.durable.runs import Runs
from pausepoint.errors import (
    ChartMismatchError,
    PausepointError,
    PermissionDeniedError,
    ResumeInputError,
    ResumeTargetError,
    RunAlreadyClaimedError,
    StalePauseError,
)

from ._auth import SESSION_COOKIE, Access, Session, actor_of_session, token_digest
from ._charts import stage_input_schema
from ._charts_pages import charts_pages_router
from ._forms import RAW_FIELD, form_for, parse_form
from ._live import live_router
from ._outcome import closing_event, describe_closing
from ._people import uses_assignees
from ._runs_pages import run_extras, runs_pages_router
from ._templates import render
from ._views import question_of, run_view

__all__ = ["pages_router"]


class _Pages:
    """The page handlers, sharing the runs and who may read and answer."""

    def __init__(self, runs: Runs, access: Access) -> None:
        self.runs = runs
        self.access = access
        self.tokens = access.tokens
        self.signer = access.signer
        self.assigns = uses_assignees(runs)

    # -- who is asking ------------------------------------------------------------

    def session_of(self, request: Request) -> Session | None:
        return self.access.session_of(request)

    def actor_of(self, session: Session | None) -> Actor | None:
        return actor_of_session(self.tokens, session)

    def base(self, request: Request) -> dict[str, Any]:
        session = self.session_of(request)
        actor = self.actor_of(session)
        return {
            "actor": actor.name if actor else None,
            "csrf": self.signer.csrf_token(session) if session and actor else None,
            "here": request.url.path,
        }

    def sign_in_first(self, request: Request) -> Response | None:
        """A redirect to sign-in when reads need it and nobody is signed in, else ``None``."""
        if self.access.public_read or self.access.signed_in(request) is not None:
            return None
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': here})}", status_code=303)

    def with_session(self, request: Request, response: Response, session: Session) -> Response:
        response.set_cookie(
            SESSION_COOKIE,
            self.signer.dump(session),
            max_age=int(self.signer.max_age),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    # -- sign-in ----------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        session = self.session_of(request) or Session.new()
        context = {
            **self.base(request),
            "login_csrf": self.signer.csrf_token(session),
            "next": _local(request.query_params.get("next")),
            "problem": None,
        }
        return self.with_session(request, render("login.html", context), session)

    async def login(self, request: Request) -> Response:
        values = await _form(request)
        session = self.session_of(request)
        if not self.signer.check_csrf(session, values.get("csrf")):
            return _refused(request, "The sign-in form expired. Open the sign-in page again.")
        assert session is not None
        token = values.get("token", "").strip()
        if not token or self.tokens.actor_for(token) is None:
            context = {
                **self.base(request),
                "login_csrf": self.signer.csrf_token(session),
                "next": _local(values.get("next")),
                "problem": "That token is not known here.",
            }
            return render("login.html", context, status=401)
        fresh = Session.new(token_digest(token))  # a new id at sign-in: no session fixation
        redirect = RedirectResponse(_local(values.get("next")), status_code=303)
        return self.with_session(request, redirect, fresh)

    async def logout(self, request: Request) -> Response:
        values = await _form(request)
        if not self.signer.check_csrf(self.session_of(request), values.get("csrf")):
            return _refused(request, "The sign-out form expired. Reload the page.")
        return self.with_session(request, RedirectResponse("/", status_code=303), Session.new())

    # -- reading ----------------------------------------------------------------

    async def inbox(self, request: Request) -> Response:
        if (redirect := self.sign_in_first(request)) is not None:
            return redirect
        chart = request.query_params.get("chart") or None
        cursor = request.query_params.get("cursor") or None
        viewer = self.access.signed_in(request)
        # Signed in, the inbox opens on what is assigned to the viewer when the charts
        # assign pauses at all (else that view would always be empty); ?view= picks.
        asked = request.query_params.get("view")
        mine = asked == "mine" or (asked != "all" and self.assigns)
        view = "mine" if viewer is not None and mine else "all"
        assigned_to = viewer.principals if view == "mine" and viewer is not None else None
        try:
            page = await self.runs.pending(
                chart=chart, limit=50, cursor=cursor, assigned_to=assigned_to
            )
        except ValueError:  # a stale link: start over
            page = await self.runs.pending(chart=chart, limit=50, assigned_to=assigned_to)
        items = [
            {
                "item": item,
                "question": question_of(item.pause.data),
                "stage": self._stage_name(item.chart, item.pause.stage_id),
            }
            for item in page.items
        ]
        context = {
            **self.base(request),
            "items": items,
            "next_cursor": page.next_cursor,
            "chart": chart,
            "first_page": cursor is None,
            "view": view,
            "can_filter": viewer is not None,
        }
        return render("inbox.html", context)

    def _stage_name(self, chart: str, stage_id: str) -> str:
        flow = self.runs.charts.get(chart)
        node = flow.find_stage(stage_id) if flow is not None else None
        return node.name if node is not None else stage_id

    async def run_page(self, request: Request) -> Response:
        if (redirect := self.sign_in_first(request)) is not None:
            return redirect
        run_id = request.path_params["run_id"]
        record = await self.runs.get(run_id)
        notice = None
        answered = request.query_params.get("answered")
        if answered:
            event = closing_event(record, answered)
            if event is not None and event.kind == "resumed":
                base = self.base(request)
                who = "Your answer" if event.actor == base["actor"] else f"{event.actor}'s answer"
                notice = f"{who} was recorded. The run is now {record.status}."
        context = {
            **self.base(request),
            **run_view(self.runs, record),
            **await run_extras(self.runs, record, did=request.query_params.get("did")),
            "notice": notice,
            "problem": None,
        }
        return render("run.html", self.with_rights(request, context))

    def with_rights(self, request: Request, context: dict[str, Any]) -> dict[str, Any]:
        """Add which of the page's pauses the signed-in person may answer."""
        viewer = self.access.signed_in(request)
        rights = {
            pv.pause.pause_id: viewer is not None
            and may_answer(pv.pause.assignees, viewer.name, viewer.groups)
            for pv in context.get("pauses", ())
        }
        return {**context, "may_answer": rights}

    # -- answering ----------------------------------------------------------------

    async def answer(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        values = await _form(request)
        session = self.session_of(request)
        actor = self.actor_of(session)
        if actor is None:
            here = f"/runs/{quote(run_id, safe='')}"
            return RedirectResponse(f"/login?{urlencode({'next': here})}", status_code=303)
        if not self.signer.check_csrf(session, values.get("csrf")):
            return _refused(
                request,
                "This form expired or did not come from this site. Reload the page and answer again.",
            )
        pause_id = values.get("pause_id", "")
        record = await self.runs.get(run_id)
        flow = self.runs.charts.get(record.chart)
        pending = next((p for p in record.pauses if p.pause_id == pause_id), None)
        schema = None
        if pending is not None and flow is not None:
            schema = stage_input_schema(record.chart, flow, pending.stage_id)
        # A pause no longer pending is left to Runs.resume to refuse (and audit).
        answer, problems = parse_form(form_for(schema), values) if pending else (None, {})
        refill = {pause_id: values}
        if problems:
            context = run_view(self.runs, record, values=refill, problems={pause_id: problems})
            return await self._run_page(request, context, 422)
        nonce = values.get("nonce")
        try:
            await self.runs.resume(
                run_id,
                answer,
                actor=actor.name,
                groups=actor.groups,
                pause_id=pause_id or None,
                idempotency_key=f"form:{pause_id}:{nonce}" if nonce else None,
            )
        except ResumeInputError as exc:
            found = _problems_of(exc, has_fields=form_for(schema).fields is not None)
            record = await self.runs.get(run_id)
            context = run_view(self.runs, record, values=refill, problems={pause_id: found})
            return await self._run_page(request, context, 422)
        except (RunAlreadyClaimedError, StalePauseError):
            record = await self.runs.get(run_id)
            closing = describe_closing(closing_event(record, pause_id or None))
            return await self._run_page(request, run_view(self.runs, record), 409, closing)
        except PermissionDeniedError as exc:
            record = await self.runs.get(run_id)
            return await self._run_page(request, run_view(self.runs, record), 403, str(exc))
        except (ResumeTargetError, ChartMismatchError) as exc:
            record = await self.runs.get(run_id)
            return await self._run_page(request, run_view(self.runs, record), 409, str(exc))
        target = f"/runs/{quote(run_id, safe='')}?answered={quote(pause_id, safe='')}"
        return RedirectResponse(target, status_code=303)

    async def _run_page(
        self, request: Request, view: dict[str, Any], status: int, problem: str | None = None
    ) -> Response:
        extras = await run_extras(self.runs, view["record"])
        context = {**self.base(request), **view, **extras, "notice": None, "problem": problem}
        return render("run.html", self.with_rights(request, context), status=status)


def pages_router(runs: Runs, access: Access) -> APIRouter:
    """Return the review pages' routes (left out of the OpenAPI document)."""
    pages = _Pages(runs, access)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/", pages.inbox, methods=["GET"])
    router.add_api_route("/login", pages.login_form, methods=["GET"])
    router.add_api_route("/login", pages.login, methods=["POST"])
    router.add_api_route("/logout", pages.logout, methods=["POST"])
    router.add_api_route("/runs/{run_id}", pages.run_page, methods=["GET"])
    router.add_api_route("/runs/{run_id}", pages.answer, methods=["POST"])
    # every run, the charts and the playground, batch answers and the live inbox
    router.include_router(runs_pages_router(pages))
    router.include_router(charts_pages_router(pages))
    router.include_router(live_router(pages))
    return router


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _local(target: str | None) -> str:
    """Return ``target`` if it is a path on this site, else ``/`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _refused(request: Request, message: str) -> Response:
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


def _problems_of(exc: PausepointError, *, has_fields: bool) -> dict[str, str]:
    errors = getattr(exc, "errors", [])
    found: dict[str, str] = {}
    for error in errors:
        loc = error.get("loc") or []
        key = str(loc[0]) if has_fields and loc else RAW_FIELD
        where = ".".join(str(part) for part in loc)
        message = str(error.get("msg", "invalid"))
        text = (
            message if has_fields and len(loc) == 1 else f"{where}: {message}" if where else message
        )
        found[key] = f"{found[key]}; {text}" if key in found else text
    return found or {RAW_FIELD: str(exc)}
