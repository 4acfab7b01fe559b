"""Probes for load balancers and orchestrators: ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves requests; it touches nothing
else, so a slow store never gets a healthy process restarted. ``/readyz``
answers 200 only when the store answers a read of the inbox index, which also
applies any pending schema migration (stores migrate when first used), and 503
otherwise, so traffic goes elsewhere until the store is back.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import JSONResponse

from pausepoint.errors import PausepointError
from pausepoint.runs import Runs

__all__ = ["READY_TIMEOUT", "health_router", "probe_store"]

READY_TIMEOUT = 5.0
"""Seconds ``/readyz`` waits for the store before answering 503."""


async def probe_store(runs: Runs, timeout: float = READY_TIMEOUT) -> str | None:  # noqa: ASYNC109  # a probe bounds itself
    """Read one inbox entry; return why the store is not ready, or ``None`` when it is."""
    try:
        async with asyncio.timeout(timeout):
            await runs.store.list_pending(limit=1)
    except TimeoutError:
        return f"the store did not answer within {timeout:g} s"
    except Exception as exc:  # whatever the driver raises, the answer is "not ready"
        return f"{type(exc).__name__}: {exc}" if not isinstance(exc, PausepointError) else str(exc)
    return None


def health_router(runs: Runs) -> APIRouter:
    """Return the router serving ``/healthz`` and ``/readyz`` (never behind a token)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        problem = await probe_store(runs)
        if problem is not None:
            return JSONResponse(
                {"status": "unavailable", "store": runs.store.url, "error": problem},
                status_code=503,
            )
        return JSONResponse({"status": "ready", "store": runs.store.url})

    return router
