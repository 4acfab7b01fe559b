"""The HTTP service and the review page: ``create_app(runs, tokens=...)``.

Needs the ``server`` extra (``pip install 'pausepoint[server]'``)::

    from pausepoint import Runs, open_store
    from pausepoint.server import create_app

    runs = Runs(open_store("sqlite:///pausepoint.db"), charts={"refund": chart})
    app = create_app(
        runs,
        tokens={"s3cret": "kim", "t0ken": Actor("lee", groups=["managers"])},
        session_secret=["old key", "new key"],  # the last signs, all verify
    )
    # uvicorn module:app

Reads need a token or a signed-in session unless ``public_read=True``.

The JSON API lives under ``/api`` (its OpenAPI document at ``/openapi.json``);
the review pages at ``/`` (the inbox) and ``/runs/{run_id}``; the interactive
API docs at ``/docs`` and ``/redoc`` (packaged assets, no CDN); probes at
``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

from importlib.util import find_spec

try:
    import fastapi  # noqa: F401
    import fastapi_offline  # noqa: F401
    import jinja2  # noqa: F401

    # The forms need python-multipart (module `python_multipart`, `multipart` before 0.0.13).
    if find_spec("python_multipart") is None and find_spec("multipart") is None:
        raise ImportError("No module named 'python_multipart'", name="python_multipart")
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "pausepoint.server needs the server extra: pip install 'pausepoint[server]'"
    ) from exc

from pausepoint._tokens import Tokens, TokensFile
from pausepoint.durable.people import Actor

from ._api import ResumeDispatcher, ResumeQueued
from ._app import create_app

__all__ = ["Actor", "ResumeDispatcher", "ResumeQueued", "Tokens", "TokensFile", "create_app"]
