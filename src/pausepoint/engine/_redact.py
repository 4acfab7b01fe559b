"""Redaction: the one place that hides a chart's ``redact`` keys.

A chart built with ``build(redact=["card_number"])`` never shows the values
of those keys: the snapshot, the audit, a pause's data in the inbox, the API,
the pages, the CLI and notifications all get ``"***"`` instead. A key is
redacted at any depth: ``{"customer": {"card_number": ...}}`` hides the inner
value too, and so does a list of such objects. Only the stored checkpoint (and
the journal) keeps the real values, because the run needs them to go on; with
``Runs(encryption_key=...)`` those are encrypted (see :mod:`pausepoint.durable._seal`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["REDACTED", "redacted"]

REDACTED = "***"
"""What a redacted value shows as."""


def redacted(value: Any, keys: Collection[str]) -> Any:
    """Return ``value`` with the values of ``keys`` replaced by ``"***"``, at any depth.

    ``value`` is JSON-like (dicts, lists, scalars). Containers holding a
    redacted key are copied; ``value`` itself is never changed. Without keys,
    ``value`` is returned as it is.
    """
    if not keys:
        return value
    return _walk(value, keys)


def _walk(value: Any, keys: Collection[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: REDACTED if k in keys else _walk(v, keys) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, keys) for item in value]
    return value
