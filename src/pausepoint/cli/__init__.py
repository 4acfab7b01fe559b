"""The ``pausepoint`` command: run, resume and inspect runs, serve them, scale them out.

Commands: demo, run, ls, show, resume, cancel, history, fork, retry, sweep, purge, delete,
serve, worker, doctor.

Every command takes ``--store URL`` (or ``PAUSEPOINT_STORE``; default the SQLite
file ``pausepoint.db`` in the working directory) and, where charts are needed,
``--charts MODULE`` (or ``PAUSEPOINT_CHARTS``; default the demo's ``refund``
chart). ``--json`` prints machine-readable output. A user mistake prints one
``error: ...`` line on stderr and exits with code 1; a usage error exits with 2.
"""

from __future__ import annotations

from . import _commands, _demo, _doctor, _lifecycle, _retention, _serve, _worker
from ._app import app

__all__ = ["app", "main"]

_REGISTERED = (
    _commands,
    _demo,
    _doctor,
    _lifecycle,
    _retention,
    _serve,
    _worker,
)  # importing them registers their commands on `app`


def main() -> None:
    """Run the command line (the ``pausepoint`` script and ``python -m pausepoint``)."""
    app(prog_name="pausepoint")
