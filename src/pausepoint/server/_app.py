"""The app factory: the JSON API, the review pages, static files and error handling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.staticfiles import StaticFiles

from pausepoint import __version__
from pausepoint._tokens import Tokens
from pausepoint.durable.people import Actor
from pausepoint.durable.runs import Runs
from pausepoint.engine._json import NotJSONError
from pausepoint.errors import PausepointError

from ._api import ResumeDispatcher, api_router
from ._auth import Access, SessionSigner, session_keys
from ._batch import batch_router
from ._errors import ApiError, error_of
from ._health import health_router
from ._pages import pages_router
from ._people import check_assignees
from ._templates import HERE, render

__all__ = ["create_app"]

_DESCRIPTION = """\
Start runs of registered charts, list the pauses waiting for a person (the
inbox), answer a pause exactly once, cancel a run, and read the charts with
each pausable stage's input JSON Schema.

Writes (start, resume, cancel) need `Authorization: Bearer <token>`; the
token's actor is recorded in the run's audit. Reads need a token too (or a
signed-in session of the review pages) unless the service allows public reads. Every error has the body
`{"error": "<type name>", "message": "...", "details": ...}`.
"""


def create_app(
    runs: Runs,
    tokens: Mapping[str, str | Actor] | Tokens | None = None,
    *,
    session_secret: str | bytes | Sequence[str | bytes] | None = None,
    public_read: bool = False,
    dispatcher: ResumeDispatcher | None = None,
    metrics: bool | None = None,
) -> FastAPI:
    """Return the ASGI app serving ``runs``: the JSON API and the review pages.

    Args:
        runs: The runs to serve; the app never closes its store.
        tokens: Bearer tokens and who they stand for: an actor name, a
            ``NAME:GROUP,GROUP`` string or an :class:`~pausepoint.durable.people.Actor`
            (``{"s3cret": "kim", "t0ken": Actor("lee", groups=["managers"])}``).
            A plain mapping is copied as SHA-256 digests here and not kept:
            to add or revoke tokens while serving, pass a
            :class:`~pausepoint.server.Tokens` table and change it, or a
            :class:`~pausepoint.server.TokensFile` and edit the file; either
            takes effect on the next request, in open sessions too. Without
            tokens nobody can start, answer or cancel.
        session_secret: Key signing the review page's session cookies, or
            several, oldest first: the last signs new cookies and every one of
            them verifies, so a new key can be added before an old one is
            dropped. Give every process serving the same site the same keys;
            without any a random key is made, and sessions end when the
            process does.
        public_read: Let anyone read runs and charts (API reads and pages)
            without a token or session. By default reads need one (401, or a
            redirect to sign-in on the pages). Probes, metrics, docs and static
            files are always open.
        dispatcher: Hand API resumes to workers instead of running them here
            (e.g. ``pausepoint.celery.CeleryDispatcher(app, runs=runs)``): the
            answer is checked, queued, and answered 202 with the run ``resuming``.
        metrics: Serve ``GET /metrics`` (Prometheus text) and count this
            process's runs (:func:`pausepoint.metrics.enable_metrics`). By
            default, when the ``metrics`` extra is installed.

    Returns:
        The FastAPI app; serve it with ``uvicorn`` or any ASGI server.

    Raises:
        UnknownAssigneeError: A chart's stage names an assignee that none of
            the tokens' actors or groups is (checked when there are tokens).
    """
    table = tokens if isinstance(tokens, Tokens) else Tokens(tokens)
    check_assignees(runs, table)
    access = Access(table, SessionSigner(session_keys(session_secret)), public_read)
    # /docs and /redoc load their scripts from assets packaged with fastapi-offline, never a CDN
    app = FastAPIOffline(
        title="pausepoint",
        version=__version__,
        description=_DESCRIPTION,
        static_url="/static/docs",
        swagger_ui_parameters={"validatorUrl": None},  # else Swagger UI asks validator.swagger.io
        openapi_tags=[
            {"name": "runs", "description": "Start, list, read, answer and cancel runs."},
            {"name": "charts", "description": "The registered charts."},
        ],
    )
    app.include_router(health_router(runs))
    if metrics is not False:
        _serve_metrics(app, runs, required=metrics is True)
    app.include_router(api_router(runs, access, dispatcher))
    app.include_router(batch_router(runs, access))
    app.include_router(pages_router(runs, access))
    app.state.tokens = table  # digests only; a Tokens table may be changed while serving
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for kind in (PausepointError, NotJSONError, ApiError, RequestValidationError, HTTPException):
        app.add_exception_handler(kind, _handle)
    _name_charts_in_openapi(app, runs)
    _trace_requests(app)
    return app


def _trace_requests(app: FastAPI) -> None:
    """Give every request a span when the otel extra is installed (a no-op without a provider)."""
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        return
    FastAPIInstrumentor.instrument_app(app, excluded_urls="/healthz,/readyz,/metrics,/static/.*")


def _serve_metrics(app: FastAPI, runs: Runs, *, required: bool) -> None:
    try:
        from pausepoint import metrics
    except ImportError:
        if required:
            raise
        return
    metrics.enable_metrics()

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        text = await metrics.render_metrics(runs.store)
        return Response(text, media_type=metrics.CONTENT_TYPE)


def _name_charts_in_openapi(app: FastAPI, runs: Runs) -> None:
    """List the registered chart names as examples where the document asks for one."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            names = sorted(runs.charts)
            schemas = document["components"]["schemas"]
            schemas["StartRequest"]["properties"]["chart"]["examples"] = names
            for parameter in document["paths"]["/api/charts/{name}"]["get"]["parameters"]:
                if parameter["name"] == "name":
                    parameter["schema"]["examples"] = names
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def _allowed(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        found = getattr(route, "methods", None)
        if found and route.matches(request.scope)[0] != Match.NONE:  # PARTIAL: path fits
            methods.update(found)
    return ", ".join(sorted(methods))


async def _handle(request: Request, exc: Exception) -> Response:
    """Answer an error: the common JSON body under /api, a page elsewhere."""
    status, body, headers = error_of(exc)
    if status == 405:
        headers = {**(headers or {}), "Allow": _allowed(request)}
    if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
        return JSONResponse(
            body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
        )
    title = "Not found" if status == 404 else "Something is not right"
    context = {"actor": None, "csrf": None, "here": request.url.path}
    return render(
        "message.html", {**context, "title": title, "message": body.message}, status=status
    )
