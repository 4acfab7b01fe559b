"""Cancelling a run: the request :meth:`Runs.cancel <pausepoint.durable.runs.Runs.cancel>` writes.

A cancel is settled where the run is when it is asked, each time by one
compare-and-set on its record:

* **paused**: the request cancels it at once (:func:`cancel_request`);
* **running**: the request is recorded on the record (:func:`cancel_request`).
  The process holding the claim finds it at its next journal write or lease
  renewal (:func:`~pausepoint.durable._claim.cancel_of`), stops before the
  next stage and records the run cancelled
  (:func:`~pausepoint.durable._claim.cancelled_event`);
* **running, its process dead**: recovery finds the request and records the
  run cancelled instead of driving it on (:mod:`pausepoint.durable._recovery`).

The request is a plain function of the record, the actor and the reason, so
it runs inside the store's one transaction (``Store.update``); ``Runs.cancel``
keeps the waiting and the documentation.
"""

from __future__ import annotations

import dataclasses
import time

from pausepoint.errors import RunNotPausedError
from pausepoint.stores.base import Decider, StoredRun, Update

from ._claim import cancel_of, event

__all__ = ["cancel_request"]


def cancel_request(run_id: str, actor: str | None, reason: str | None) -> Decider:
    """Return the decider that asks run ``run_id`` to stop, for ``actor`` and ``reason``.

    It cancels a paused run, records a request on a running one (nothing if
    one is recorded already), and raises ``RunNotPausedError`` for any other:
    the run is finished.
    """

    def request(current: StoredRun) -> Update | None:
        if current.status == "running":
            if cancel_of(current) is not None:
                return None  # asked already
            asked = {"actor": actor, "reason": reason, "at": time.time()}
            return Update(
                run=dataclasses.replace(current, cancel=asked),
                events=[event("cancel_requested", actor, {"reason": reason})],
            )
        if current.status == "paused":
            return Update(
                run=dataclasses.replace(
                    current, status="cancelled", updated_at=time.time(), pauses=()
                ),
                events=[event("cancelled", actor, {"reason": reason})],
            )
        raise RunNotPausedError(
            f"run {run_id!r} is {current.status}; only a paused run can be cancelled "
            "(or a running one, before its next stage)",
            run_id=run_id,
            status=current.status,
        )

    return request
