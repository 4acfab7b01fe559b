"""Probes for load balancers and orchestrators: ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves requests; it touches nothing
else, so a slow store never gets a healthy process restarted. ``/readyz``
answers 200 only when the store answers a read of the inbox index, which also
applies any pending schema migration (stores migrate when first used), and 503
otherwise, so traffic goes elsewhere until the store is back.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from pausepoint.durable._probe import probe_store
from pausepoint.durable.runs import Runs

__all__ = ["health_router"]


def health_router(runs: Runs) -> APIRouter:
    """Return the router serving ``/healthz`` and ``/readyz`` (never behind a token)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        problem = await probe_store(runs.store)
        if problem is not None:
            return JSONResponse(
                {"status": "unavailable", "store": runs.store.url, "error": problem},
                status_code=503,
            )
        return JSONResponse({"status": "ready", "store": runs.store.url})

    return router
