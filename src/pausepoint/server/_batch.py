"""``POST /api/runs/resume-batch``: one answer for many pauses of one stage.

No ``from __future__ import annotations`` here: FastAPI reads the route
signatures at runtime.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from pausepoint.durable.people import Actor
from pausepoint.durable.runs import BatchItem, BatchStatus, Runs
from pausepoint.errors import MixedBatchError

from ._auth import Access
from ._errors import ApiError, responses
from ._models import Error

__all__ = ["BatchRequest", "BatchResponse", "batch_router"]

_CONCURRENCY = 8
"""How many runs of one batch are resumed at once."""


class BatchTarget(BaseModel):
    """One pause to answer."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=200)
    pause_id: str = Field(min_length=1, max_length=200)


class BatchRequest(BaseModel):
    """Answer many pauses of one stage with the same input."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchTarget] = Field(
        min_length=1,
        max_length=5000,
        description="The pauses answered; all must wait at the same stage of the same chart "
        "(400 otherwise, nothing resumed).",
    )
    input: Any = Field(description="The answer, checked once against the stage's input schema.")


class BatchItemResult(BaseModel):
    """What became of one item."""

    run_id: str
    pause_id: str
    status: BatchStatus = Field(
        description="`done` (resumed), `stale` (no longer pending, or another resume holds "
        "the run), `refused` (see `error`), `not_assigned` (assigned to others)."
    )
    run_status: str | None = Field(
        default=None, description="With `done`: the run's status after the resume."
    )
    error: str | None = Field(default=None, description="Why, unless `done`.")


class BatchResponse(BaseModel):
    """One result per item, in the order given."""

    results: list[BatchItemResult]


def batch_router(runs: Runs, access: Access) -> APIRouter:
    """Return the batch answer route, serving ``runs``; it needs a token ``access`` knows."""
    router = APIRouter(prefix="/api")
    bearer = HTTPBearer(  # described as the API's own, so the document declares one scheme
        auto_error=False, description="A token the service maps to an actor (who answers)."
    )

    async def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Actor:
        found = None if credentials is None else access.tokens.actor_for(credentials.credentials)
        if found is None:
            raise ApiError(
                401,
                "Unauthorized",
                "answers need an Authorization: Bearer <token> header with a known token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    @router.post(
        "/runs/resume-batch",
        tags=["runs"],
        summary="Answer many pauses of one stage",
        response_model=BatchResponse,
        responses={
            **responses(401, 422, 503),
            400: {"model": Error, "description": "The pauses wait at several stages."},
        },
    )
    async def resume_batch(
        body: BatchRequest,
        who: Annotated[Actor, Depends(caller)],
    ) -> BatchResponse:
        """Answer every listed pause with `input`, each run exactly once.

        All pauses must wait at the same stage of the same chart (400 and nothing
        resumed otherwise); the input must fit that stage's schema (422). Each
        item then gets its own result: `done` with the run's new status,
        `stale`, `refused` or `not_assigned`. Concurrent batches over the same
        runs answer each run once.
        """
        items = [BatchItem(run_id=i.run_id, pause_id=i.pause_id) for i in body.items]
        try:
            results = await runs.resume_many(
                items, body.input, actor=who.name, groups=who.groups, concurrency=_CONCURRENCY
            )
        except MixedBatchError as exc:
            raise ApiError(
                400,
                "MixedBatchError",
                str(exc),
                details={"stages": [{"chart": c, "stage_id": s} for c, s in exc.stages]},
            ) from None
        return BatchResponse(
            results=[
                BatchItemResult(
                    run_id=r.run_id,
                    pause_id=r.pause_id,
                    status=r.status,
                    run_status=r.run_status,
                    error=r.error,
                )
                for r in results
            ]
        )

    return router
