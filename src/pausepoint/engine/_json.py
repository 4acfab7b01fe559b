"""JSON values: the only thing a checkpoint may hold.

``json_copy`` validates and copies in one pass so the executor never shares a
mutable container with its caller (a failed resume must leave the caller's
checkpoint untouched) and never lets a non-JSON value reach a checkpoint.
"""

from __future__ import annotations

import json
import math
from typing import Any


class NotJSONError(ValueError):
    """A value that does not survive ``json.dumps`` → ``json.loads`` unchanged.

    Attributes:
        path: Where inside the value the problem is (``items[2].when``).
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or 'value'}: {problem}")
        self.path = path
        self.problem = problem


_SCALARS = frozenset({str, int, bool, type(None)})


class _NotJSON(Exception):
    """Raised deep inside the fast copy; json_copy then finds where, on the slow path."""


def json_copy(value: Any, path: str = "") -> Any:
    """Return a deep copy of ``value``, refusing anything JSON would change.

    Exact types only: a tuple would come back a list, an ``IntEnum`` an int, a
    ``datetime`` not at all, so each is refused with the path where it sits.

    Raises:
        NotJSONError: Some part of ``value`` is not a JSON value.
    """
    try:
        return _copy(value)
    except _NotJSON:
        _explain(value, path)
        raise NotJSONError(path, "not a JSON value") from None  # _explain always raises first
    except RecursionError:
        raise NotJSONError(path, "nested too deep to be copied") from None


def _copy(value: Any) -> Any:
    # The hot path of every checkpoint: scalars are handled in the loops, and no
    # path is built; when something is wrong, _explain walks again to say where.
    kind = type(value)
    if kind is dict:
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJSON
            item_kind = type(item)
            if item_kind in _SCALARS or (item_kind is float and item - item == 0.0):
                copied[key] = item
            else:
                copied[key] = _copy(item)
        return copied
    if kind is list:
        out: list[Any] = []
        for item in value:
            item_kind = type(item)
            if item_kind in _SCALARS or (item_kind is float and item - item == 0.0):
                out.append(item)
            else:
                out.append(_copy(item))
        return out
    if kind in _SCALARS or (kind is float and value - value == 0.0):
        return value
    raise _NotJSON


def _explain(value: Any, path: str) -> None:
    """Raise ``NotJSONError`` for the first part of ``value`` that is not JSON."""
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is float:
        if math.isfinite(value):
            return
        raise NotJSONError(path, f"{value!r} is not a finite number; JSON has no NaN or Infinity")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise NotJSONError(path, f"key {key!r} is a {type(key).__name__}, not a str")
            _explain(item, f"{path}.{key}" if path else key)
        return
    if kind is list:
        for index, item in enumerate(value):
            _explain(item, f"{path}[{index}]")
        return
    hint = " (use a list)" if kind is tuple else ""
    raise NotJSONError(path, f"a {kind.__name__} is not a JSON value{hint}")


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` the same way on every machine and Python version.

    Sorted keys, no whitespace, ASCII only: the form that fingerprints and
    signatures are computed over.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")
