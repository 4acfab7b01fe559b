"""The JSON API under ``/api``: start, list, show, resume, cancel, delete, signals, charts.

No ``from __future__ import annotations`` here: FastAPI reads the route
signatures at runtime, and ``Writer``/``Reader`` are local to :func:`api_router`.
"""

from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, create_model
from pydantic.errors import PydanticUserError

from pausepoint.durable.answer import Answer
from pausepoint.durable.people import Actor
from pausepoint.durable.runs import Runs
from pausepoint.engine.chart import PausableStage
from pausepoint.errors import (
    ChartNotFoundError,
    ResumeTargetError,
    RunAlreadyClaimedError,
    StalePauseError,
)
from pausepoint.stores.base import RunStatus

from ._auth import Access
from ._charts import describe_chart
from ._errors import ApiError, responses
from ._inbox import SharedReads, inbox_body
from ._models import (
    CancelRequest,
    Chart,
    ChartList,
    ForkRequest,
    InboxPage,
    ResumeRequest,
    Run,
    RunPage,
    SignalRequest,
    SignalResult,
    StartRequest,
    Step,
    run_list_out,
    run_out,
)
from ._outcome import closing_event
from ._people import check_known

__all__ = ["ResumeDispatcher", "ResumeQueued", "api_router"]


class ResumeDispatcher(Protocol):
    """Hands a resume to workers and returns at once (``pausepoint.celery.CeleryDispatcher``).

    It must refuse, synchronously, what ``Runs.answer`` would refuse before
    claiming (``Runs.check_answer``), and return an id for the queued work.
    """

    async def answer(self, run_id: str, answer: Answer) -> str:
        """Queue the answer; return the queued task's id.

        ``answer.actor`` and ``answer.groups`` are who answers: a pause assigned
        to others is refused with ``PermissionDeniedError``, as ``Runs.check_answer`` does.
        """
        ...


class ResumeQueued(BaseModel):
    """A resume handed to a worker; read the run later for its outcome."""

    run_id: str
    status: Literal["resuming"] = "resuming"
    task_id: str = Field(description="The queued task, as the workers' broker knows it.")


def api_router(runs: Runs, access: Access, dispatcher: ResumeDispatcher | None = None) -> APIRouter:
    """Return the API's routes, serving ``runs``; writes need a token, reads one or a session.

    Reads are open to anyone when ``access.public_read`` is set.

    With a ``dispatcher``, an answer is checked here and its resume handed to
    the workers: 202 with the run ``resuming``.
    """
    router = APIRouter(prefix="/api")
    bearer = HTTPBearer(
        auto_error=False, description="A token the service maps to an actor (who answers)."
    )

    def bearer_actor(credentials: HTTPAuthorizationCredentials) -> Actor:
        actor = access.tokens.actor_for(credentials.credentials)
        if actor is None:
            raise ApiError(
                401,
                "Unauthorized",
                "the bearer token is not known to this service",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return actor

    async def writer(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Actor:
        if credentials is None:
            raise ApiError(
                401,
                "Unauthorized",
                "writes need an Authorization: Bearer <token> header",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return bearer_actor(credentials)

    async def reader(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Actor | None:
        if credentials is not None:
            return bearer_actor(credentials)
        actor = access.signed_in(request)
        if actor is None and not access.public_read:
            raise ApiError(
                401,
                "Unauthorized",
                "reading runs needs an Authorization: Bearer <token> header or a signed-in "
                "session (this service does not allow public reads)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return actor

    Writer = Annotated[Actor, Depends(writer)]
    Reader = Annotated[Actor | None, Depends(reader)]
    ReadAccess = Depends(reader)

    @router.post(
        "/runs",
        status_code=201,
        tags=["runs"],
        summary="Start a run",
        responses=responses(401, 404, 409, 422, 503),
    )
    async def start_run(body: StartRequest, actor: Writer, response: Response) -> Run:
        """Start a run of a registered chart and drive it to its first pause or its end."""
        if body.chart not in runs.charts:
            raise ChartNotFoundError(
                f"no chart is registered as {body.chart!r}; see GET /api/charts", chart=body.chart
            )
        record = await runs.start(body.chart, body.input, run_id=body.run_id, actor=actor.name)
        response.headers["Location"] = f"/api/runs/{record.run_id}"
        return run_out(record)

    async def read_inbox(
        key: tuple[str | None, str | None, float | None, int, str | None, tuple[str, ...] | None],
    ) -> bytes:
        chart, stage, older_than, limit, cursor, assigned_to = key
        try:
            page = await runs.pending(
                chart=chart,
                stage=stage,
                older_than=older_than,
                limit=limit,
                cursor=cursor,
                assigned_to=assigned_to,
            )
        except ValueError as exc:
            # The cursor is well formed but names no page of this listing.
            raise ApiError(404, "InvalidCursorError", str(exc)) from None
        return inbox_body(page)

    inbox_reads = SharedReads(read_inbox)

    @router.get(
        "/runs",
        tags=["runs"],
        summary="The inbox, or runs of any status",
        response_model=InboxPage | RunPage,
        responses=responses(400, 401, 404, 422, 503),
    )
    async def list_runs(
        viewer: Reader,
        status: Annotated[
            RunStatus | Literal["all"],
            Query(
                description="`paused` (default): the inbox, one item per pause waiting for a "
                "person. Any other status, or `all`: one item per run, last changed first."
            ),
        ] = "paused",
        chart: Annotated[str | None, Query(description="Only runs of this chart.")] = None,
        stage: Annotated[
            str | None, Query(description="Only pauses (runs) at this stage id.")
        ] = None,
        older_than: Annotated[
            float | None,
            Query(
                ge=0,
                le=1e9,
                description="Only pauses waiting (runs unchanged) at least this many seconds.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 50,
        cursor: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=2000,
                pattern=CURSOR_PATTERN,
                description="`next_cursor` of the previous page, unchanged; a cursor no "
                "page has gets 404.",
            ),
        ] = None,
        mine: Annotated[
            bool,
            Query(
                description="Only pauses assigned to the caller: to the token's (or session's) "
                "actor or one of their groups. Inbox only."
            ),
        ] = False,
        assignee: Annotated[
            list[str] | None,
            Query(
                max_length=50,
                description="Only pauses assigned to one of these people or groups (repeat "
                "for several); a name no token has is 400. Inbox only.",
            ),
        ] = None,
    ) -> Response | RunPage:
        """List pauses waiting for a person (the inbox), or runs of any status, a page at a time.

        `mine=true` lists the pauses assigned to the caller ("assigned to me");
        unassigned pauses, which anyone signed in may answer, are listed without it.
        """
        assigned_to = _assigned_filter(access, viewer, mine, assignee)
        if status == "paused":
            # Requests for the same page that arrive while it is being read share the
            # next read (never an older one), encoded once: see SharedReads.
            body = await inbox_reads.get((chart, stage, older_than, limit, cursor, assigned_to))
            return Response(body, media_type="application/json")
        if assigned_to is not None:
            raise ApiError(
                422,
                "RequestValidationError",
                f"mine and assignee filter the inbox only (status=paused), not status={status}",
            )
        try:
            listed = await runs.list(
                status=None if status == "all" else status,
                chart=chart,
                stage=stage,
                older_than=older_than,
                limit=limit,
                cursor=cursor,
            )
        except ValueError as exc:
            # The cursor is well formed but names no page of this listing.
            raise ApiError(404, "InvalidCursorError", str(exc)) from None
        return run_list_out(listed)

    @router.delete(
        "/runs/{run_id}",
        status_code=204,
        tags=["runs"],
        summary="Erase a run",
        responses=responses(401, 404, 409, 422, 503),
    )
    async def delete_run(run_id: str, actor: Writer) -> Response:
        """Erase a run with its audit, journal and inbox entries (409 while it is running)."""
        await runs.delete(run_id, actor=actor.name)
        return Response(status_code=204)

    @router.post(
        "/signals/{key}",
        tags=["runs"],
        summary="Answer by business key",
        responses=responses(401, 403, 404, 409, 422, 503),
    )
    async def signal(
        key: Annotated[
            str,
            Path(
                min_length=1,
                max_length=500,
                description="The business key pauses wait under (a stage's `key=`).",
            ),
        ],
        body: SignalRequest,
        actor: Writer,
    ) -> SignalResult:
        """Answer every pause waiting under `key`, each exactly once.

        No pause waiting: 404, unless `buffer` keeps the answer for the first run
        that pauses under the key within that many seconds (409 when the key's
        buffer is full).
        """
        records = await runs.signal(
            key, body.input, actor=actor.name, groups=actor.groups, buffer=body.buffer
        )
        return SignalResult(items=[run_out(r) for r in records], buffered=not records)

    @router.get(
        "/runs/{run_id}",
        tags=["runs"],
        summary="One run",
        responses=responses(401, 404, 422, 503),
        dependencies=[ReadAccess],
    )
    async def get_run(run_id: str) -> Run:
        """Return a run: status, pauses, state, execution tree, narrative and audit."""
        return run_out(await runs.get(run_id))

    @router.post(
        "/runs/{run_id}/resume",
        tags=["runs"],
        summary="Answer a pause",
        response_model=Run,
        responses={
            **responses(401, 403, 404, 409, 422, 503),
            202: {"model": ResumeQueued, "description": "Handed to a worker (with workers)."},
        },
    )
    async def resume_run(
        run_id: str,
        body: ResumeRequest,
        actor: Writer,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                max_length=200,
                description="Retrying with the same key returns the first outcome.",
            ),
        ] = None,
    ) -> Run | JSONResponse:
        """Answer a pause exactly once and drive the run to its next pause or its end.

        The answer is validated against the stage's input schema first (422,
        the run stays paused). A pause answered already, or a run another
        resume holds, gives 409 with `details.answered_by`. A pause assigned to
        other people or groups gives 403 (the audit records `resume_refused`), and
        the run stays paused. A service with
        workers checks the answer, queues the resume and answers 202 at once:
        read the run for its outcome.
        """
        answer = Answer(
            input=body.input,
            actor=actor.name,
            groups=actor.groups,
            pause_id=body.pause_id,
            stage_id=body.stage_id,
            idempotency_key=idempotency_key,
        )
        try:
            if dispatcher is not None:
                task_id = await dispatcher.answer(run_id, answer)
                queued = ResumeQueued(run_id=run_id, task_id=task_id)
                return JSONResponse(queued.model_dump(), status_code=202)
            record = await runs.answer(run_id, answer)
        except ResumeTargetError as exc:
            if body.stage_id is None:
                raise  # several pauses and none named: the request is incomplete (422)
            raise ApiError(
                409, type(exc).__name__, str(exc), details={"pending": list(exc.pending)}
            ) from None
        except (RunAlreadyClaimedError, StalePauseError) as exc:
            closing = closing_event(await runs.get(run_id), body.pause_id)
            raise ApiError(
                409,
                type(exc).__name__,
                str(exc),
                details={"run_id": run_id, "answered_by": closing.actor if closing else None},
            ) from None
        return run_out(record)

    @router.post(
        "/runs/{run_id}/cancel",
        tags=["runs"],
        summary="Cancel a paused run",
        responses=responses(401, 404, 409, 422, 503),
    )
    async def cancel_run(run_id: str, actor: Writer, body: CancelRequest | None = None) -> Run:
        """Cancel a paused run; its pauses leave the inbox (409 unless it is paused)."""
        reason = body.reason if body is not None else None
        return run_out(await runs.cancel(run_id, actor=actor.name, reason=reason))

    @router.get(
        "/runs/{run_id}/history",
        tags=["runs"],
        summary="A run's steps",
        responses=responses(401, 404, 422, 503),
        dependencies=[ReadAccess],
    )
    async def run_history(run_id: str) -> list[Step]:
        """Each stage that finished, each pause and each answer (with who gave it), in order."""
        return [
            Step(index=s.index, stage_id=s.stage_id, kind=s.kind, at=s.at, actor=s.actor)  # type: ignore[arg-type]  # kinds the journal writes
            for s in await runs.history(run_id)
        ]

    @router.post(
        "/runs/{run_id}/fork",
        status_code=201,
        tags=["runs"],
        summary="Start a new run from a step of a run's history",
        responses=responses(401, 404, 409, 422, 503),
    )
    async def fork_run(run_id: str, body: ForkRequest, actor: Writer, response: Response) -> Run:
        """The stages before the step never run again; at a pause, the new run waits there."""
        record = await runs.fork(run_id, at=body.at, state_patch=body.state_patch, actor=actor.name)
        response.headers["Location"] = f"/api/runs/{record.run_id}"
        return run_out(record)

    @router.post(
        "/runs/{run_id}/retry",
        tags=["runs"],
        summary="Run a failed run again from its failed stage",
        responses=responses(401, 404, 409, 422, 503),
    )
    async def retry_run(run_id: str, actor: Writer) -> Run:
        """The stages that finished before the failure do not run again (409 unless it failed)."""
        return run_out(await runs.retry(run_id, actor=actor.name))

    for chart_name, flow in runs.charts.items():
        for path, node in flow.stages():
            if isinstance(node, PausableStage):
                _stage_route(router, runs, chart_name, path, node, Writer)

    @router.get(
        "/charts",
        tags=["charts"],
        summary="Every chart",
        responses=responses(401),
        dependencies=[ReadAccess],
    )
    async def list_charts() -> ChartList:
        """List the registered charts with their stages, input schemas and diagrams."""
        return ChartList(items=[describe_chart(name, flow) for name, flow in runs.charts.items()])

    @router.get(
        "/charts/{name}",
        tags=["charts"],
        summary="One chart",
        responses=responses(401, 404, 422),
        dependencies=[ReadAccess],
    )
    async def get_chart(name: str) -> Chart:
        """Return a chart with each pausable stage's input JSON Schema and its diagram."""
        flow = runs.charts.get(name)
        if flow is None:
            raise ChartNotFoundError(f"no chart is registered as {name!r}", chart=name)
        return describe_chart(name, flow)

    return router


def _assigned_filter(
    access: Access, viewer: Actor | None, mine: bool, assignee: list[str] | None
) -> tuple[str, ...] | None:
    """The names an inbox read is filtered by (``None``: no filter)."""
    names: set[str] = set()
    if mine:
        if viewer is None:
            raise ApiError(
                401,
                "Unauthorized",
                "mine=true lists the pauses assigned to the caller: it needs an "
                "Authorization: Bearer <token> header or a signed-in session",
                headers={"WWW-Authenticate": "Bearer"},
            )
        names.update(viewer.principals)
    if assignee:
        check_known(access.tokens, assignee, "the assignee filter")
        names.update(assignee)
    return tuple(sorted(names)) if mine or assignee else None


CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
"""What a page's ``next_cursor`` looks like (URL-safe base64 without padding)."""


def _stage_route(
    router: APIRouter, runs: Runs, chart: str, stage_id: str, node: PausableStage, actor: Any
) -> None:
    """``POST /api/charts/{chart}/stages/{stage}/resume``: its body holds that stage's input schema."""
    answer: Any = Any
    if node.input_schema is not None:
        try:
            create_model("Probe", value=(node.input_schema, ...)).model_json_schema()
            answer = node.input_schema
        except PydanticUserError:
            pass  # a type pydantic validates but cannot describe: documented as any JSON
    safe = "".join(c if c.isalnum() else "_" for c in f"{chart}_{stage_id}")
    body_model: type[BaseModel] = create_model(
        f"Resume_{safe}",
        __doc__=f"Answer a pause of stage `{stage_id}` of chart `{chart}`.",
        __config__={"extra": "forbid"},
        run_id=(str, Field(description=f"A run of `{chart}` paused at `{stage_id}`.")),
        input=(answer, Field(description=f"The answer, as stage `{stage_id}` takes it.")),
        pause_id=(
            str | None,
            Field(default=None, description="The pause answered; 409 if no longer pending."),
        ),
    )

    async def resume_stage(body: body_model, who: actor) -> Run:  # type: ignore[valid-type]  # built above
        record = await runs.store.get(body.run_id)  # type: ignore[attr-defined]  # idem
        if record.chart != chart or stage_id not in {p.stage_id for p in record.pauses}:
            raise ApiError(
                409,
                "ResumeTargetError",
                f"run {record.run_id!r} is not paused at stage {stage_id!r} of chart {chart!r} "
                f"(it is a {record.chart!r} run, {record.status}); nothing was answered",
                details={"pending": [p.stage_id for p in record.pauses]},
            )
        value = body.input  # type: ignore[attr-defined]  # idem
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        try:
            answer = Answer(
                input=value,
                actor=who.name,
                groups=who.groups,
                pause_id=body.pause_id,  # type: ignore[attr-defined]  # idem
                stage_id=stage_id,
            )
            resumed = await runs.answer(record.run_id, answer)
        except ResumeTargetError as exc:
            raise ApiError(409, type(exc).__name__, str(exc)) from None
        return run_out(resumed)

    router.add_api_route(
        f"/charts/{chart}/stages/{stage_id}/resume",
        resume_stage,
        methods=["POST"],
        tags=["stages"],
        summary=f"Answer {chart} / {stage_id}",
        description=f"Answer a pause of stage `{stage_id}` ({node.name}) of chart `{chart}`, "
        "exactly once; the body's `input` is that stage's input schema. A run of another "
        "chart or not paused there gets 409.",
        response_model=Run,
        responses=responses(401, 403, 404, 409, 422, 503),
        operation_id=f"resume_{safe}",
    )
