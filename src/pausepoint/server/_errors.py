"""How errors become HTTP statuses and the common error body.

Every :class:`~pausepoint.errors.PausepointError` maps to a 4xx status that
says whose move it is (404 no such thing, 409 the run moved on, 422 the
request itself is wrong, 403 the pause is someone else's, 400 a filter names
nobody), except an unreachable store (503). Nothing a caller sends may end in
a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from pausepoint.engine._json import NotJSONError
from pausepoint.errors import (
    ChartError,
    ChartNotFoundError,
    CheckpointError,
    EncryptionKeyError,
    MixedBatchError,
    NoWaiterError,
    PausepointError,
    PermissionDeniedError,
    PurgeRefusedError,
    ResumeInputError,
    ResumeTargetError,
    RunAlreadyClaimedError,
    RunError,
    RunExistsError,
    RunInputError,
    RunIsRunningError,
    RunNotFoundError,
    RunNotPausedError,
    RunStateError,
    SignalBufferFullError,
    StalePauseError,
    StateError,
    StepNotFoundError,
    StoreError,
    StoreUnavailableError,
    UnknownAssigneeError,
)

from ._models import Error, ErrorDetail

__all__ = ["ERROR_RESPONSES", "ApiError", "ChartNotFoundError", "error_of"]


class ApiError(Exception):
    """An error the service raises itself (authentication, bad cursor).

    Attributes:
        status: The HTTP status.
        error: The type name sent as ``error``.
        headers: Extra response headers (``WWW-Authenticate``).
        details: Facts sent as ``details``.
    """

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.headers = headers
        self.details = details


# Most specific first: the first matching class decides.
_STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (UnknownAssigneeError, 400),
    (PermissionDeniedError, 403),
    (RunNotFoundError, 404),
    (ChartNotFoundError, 404),
    (RunExistsError, 409),
    (RunAlreadyClaimedError, 409),
    (StalePauseError, 409),
    (RunNotPausedError, 409),
    (RunStateError, 409),
    (StepNotFoundError, 404),
    (StateError, 422),
    (RunIsRunningError, 409),
    (SignalBufferFullError, 409),
    (NoWaiterError, 404),
    (PurgeRefusedError, 422),
    (ResumeInputError, 422),
    (RunInputError, 422),
    (NotJSONError, 422),
    (ResumeTargetError, 422),
    (CheckpointError, 409),  # ChartChangedError too: the run no longer fits its chart
    (MixedBatchError, 400),
    (EncryptionKeyError, 500),  # the service lacks the key the run was written with
    (StoreUnavailableError, 503),
    (StoreError, 409),
    (ChartError, 409),
    (RunError, 404),
    (PausepointError, 409),
)


def error_of(exc: Exception) -> tuple[int, Error, Mapping[str, str] | None]:
    """Return the status, body and extra headers answering ``exc``."""
    if isinstance(exc, ApiError):
        body = Error(error=exc.error, message=str(exc), details=exc.details)
        return exc.status, body, exc.headers
    if isinstance(exc, RequestValidationError):
        details = [_detail(e) for e in exc.errors()]
        where = "; ".join(f"{'.'.join(map(str, d.loc))}: {d.msg}" for d in details)
        return 422, Error(error="RequestValidationError", message=where, details=details), None
    if isinstance(exc, HTTPException) and exc.status_code == 400:
        # FastAPI's "error parsing the body" (not UTF-8): malformed like bad JSON, so 422 too.
        return 422, Error(error="RequestValidationError", message=str(exc.detail)), None
    if isinstance(exc, HTTPException):
        name = HTTPStatus(exc.status_code).phrase.replace(" ", "").replace("-", "")
        return exc.status_code, Error(error=name, message=str(exc.detail)), exc.headers
    status = next(code for kind, code in _STATUS_OF if isinstance(exc, kind))
    return status, Error(error=type(exc).__name__, message=str(exc), details=_facts(exc)), None


def _detail(error: Any) -> ErrorDetail:
    loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
    return ErrorDetail(loc=loc, msg=str(error.get("msg", "")), type=str(error.get("type", "")))


def _facts(exc: Exception) -> list[ErrorDetail] | dict[str, Any] | None:
    if isinstance(exc, ResumeInputError | RunInputError):
        return [_detail(e) for e in exc.errors]
    if isinstance(exc, ResumeTargetError):
        return {"pending": list(exc.pending)}
    if isinstance(exc, PermissionDeniedError):
        return {
            "run_id": exc.run_id,
            "stage_id": exc.stage_id,
            "actor": exc.actor,
            "assignees": list(exc.assignees),
        }
    if isinstance(exc, UnknownAssigneeError):
        return {"assignee": exc.assignee, "known": list(exc.known)}
    if isinstance(exc, RunError) and exc.run_id:
        return {"run_id": exc.run_id}
    facts: dict[str, Any] = jsonable_encoder(
        {k: v for k, v in vars(exc).items() if isinstance(v, str | int | float)}
    )
    return facts or None


def _response(description: str) -> dict[str, Any]:
    return {"model": Error, "description": description}


ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: _response("A filter names an actor or group that no token has."),
    401: _response(
        "No bearer token (nor a signed-in session, for reads), or one the service does not know."
    ),
    403: _response(
        "The pause is assigned to other people or groups (the `admin` group may answer "
        "every pause); `details.assignees` says whom. The run is unchanged."
    ),
    404: _response("No such run or chart, no pause waits under the key, or no such page."),
    409: _response(
        "The run moved on: already resumed or claimed, stale pause, exists, chart changed, "
        "still running, or the key's answer buffer is full."
    ),
    422: _response("The request, or the answer, fails validation; `details` says where."),
    503: _response("The store cannot be reached; retry later."),
}
"""Documented error responses; routes pick the ones they can give."""


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Return the documented responses for ``codes``."""
    return {code: ERROR_RESPONSES[code] for code in codes}
