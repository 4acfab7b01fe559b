"""Chart changes: when a run paused under one version of a chart may resume on another.

By default ``Runs`` refuses (``ChartChangedError``). A *compatibility rule*
opts in: ``Runs(store, charts, compatibility=unchanged_from_pause)`` lets a run
resume when the paused stage and everything after it are unchanged; the
continuation then follows the stage to its new position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pausepoint.engine.chart import FlowChart, structure_of
from pausepoint.errors import (
    CheckpointSignatureError,
)
from pausepoint.stores.base import StoredRun

__all__ = ["CompatibilityRule", "unchanged_from_pause"]

CompatibilityRule = Callable[[StoredRun, FlowChart], bool]
"""Decides whether a run paused under an older fingerprint may resume on ``chart``."""


def unchanged_from_pause(record: StoredRun, chart: FlowChart) -> bool:
    """A compatibility rule: accept a changed chart if every paused stage and all after it are unchanged.

    Compares, by structure (ids, kinds, edges), the top-level steps from the
    one holding each pause to the end, in the chart the run started with and
    in ``chart``. Stages before the pause may be added, removed or changed.
    Use it as ``Runs(store, charts, compatibility=unchanged_from_pause)``.
    """
    old = record.meta.get("structure")
    if not isinstance(old, list) or not record.pauses:
        return False
    new = structure_of(chart.steps)
    for pause in record.pauses:
        top = pause.stage_id.split("/", 1)[0]
        old_index = _index_of(old, top)
        new_index = _index_of(new, top)
        if old_index is None or new_index is None or old[old_index:] != new[new_index:]:
            return False
    return True


def _index_of(structure: list[Any], stage_id: str) -> int | None:
    for index, entry in enumerate(structure):
        if isinstance(entry, dict) and entry.get("id") == stage_id:
            return index
    return None


def checkpoint_for_chart(
    checkpoint: Mapping[str, Any],
    flow: FlowChart,
    signing_key: str | bytes | None,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Return the checkpoint as the current chart reads it.

    The fingerprint was already checked (or the change accepted by the
    compatibility rule). When stages were added or removed before the pause,
    the top-level position in the continuation is moved to where the same
    stage now stands; the executor still validates everything else against
    the current chart.
    """
    if checkpoint.get("chart_fingerprint") == flow.fingerprint:
        return dict(checkpoint)
    import hmac

    from pausepoint.engine.checkpoint import sign_checkpoint

    if signing_key is not None and not hmac.compare_digest(
        str(checkpoint.get("signature")), sign_checkpoint(checkpoint, signing_key)
    ):
        raise CheckpointSignatureError(
            "stored checkpoint signature does not match its content", field="signature"
        )
    updated = {k: v for k, v in checkpoint.items() if k != "signature"}
    updated["chart_fingerprint"] = flow.fingerprint
    old = meta.get("structure")
    continuation = updated.get("continuation")
    if isinstance(old, list) and isinstance(continuation, dict) and not continuation.get("loops"):
        index = continuation.get("i")
        entry = old[index] if isinstance(index, int) and 0 <= index < len(old) else None
        moved = (
            _index_of(structure_of(flow.steps), entry["id"]) if isinstance(entry, dict) else None
        )
        if moved is not None:
            updated["continuation"] = {**continuation, "i": moved}
    if signing_key is not None:
        updated["signature"] = sign_checkpoint(updated, signing_key)
    return updated
