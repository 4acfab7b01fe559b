"""Decision rules: deciders and selectors that say why they chose.

A decider returns :func:`decide`, a selector :func:`select`; both read the
state through the scope (so the reads are logged like any other) and leave
their evidence on it, which the executor puts in the execution tree::

    def route(scope):
        return decide(
            scope,
            rules=[When(amount__gt=500, then="high", label="Large amount")],
            default="low",
        )

The narrative then says ``Route chose "high": Large amount — amount 900 > 500.``
and the tree node holds the same as data (``node["evidence"]``, see
:class:`~pausepoint.engine.trace.Evidence`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pausepoint.errors import ChartError, StateKeyError

from ._json import NotJSONError, json_copy
from .scope import set_evidence

if TYPE_CHECKING:
    from .scope import Scope
    from .trace import Check, Evidence, RuleMatch

__all__ = ["OPERATORS", "When", "decide", "select"]


def _contains(value: Any, expected: Any) -> bool:
    return expected in value


def _is_in(value: Any, expected: Any) -> bool:
    return value in expected


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
    "in": _is_in,
    "contains": _contains,
}
"""The operators a condition may name after ``__``; a bare key means ``eq``."""


class When:
    """A rule: when every condition holds, choose ``then``.

    Conditions are keyword arguments ``<key>__<operator>=<expected>`` over
    state keys, with the operators of :data:`OPERATORS` (``amount__gt=500``,
    ``country__in=["FR", "DE"]``, ``tags__contains="vip"``); a bare key means
    equality (``tier="gold"``). A rule without conditions always matches. A
    key that was never written (and has no default) fails its condition.

    Args:
        then: The branch key this rule chooses.
        label: Why, in a few words, for the narrative ("Large amount").
        **conditions: The conditions, all of which must hold.

    Raises:
        ChartError: ``then`` is not a string, or a condition is malformed.
    """

    __slots__ = ("conditions", "label", "then")

    def __init__(self, *, then: str, label: str | None = None, **conditions: Any) -> None:
        if not isinstance(then, str):
            raise ChartError(f"When(then={then!r}): then must be a branch key (a string)")
        parsed: list[tuple[str, str, Any]] = []
        for spec, expected in conditions.items():
            key, _, op = spec.rpartition("__")
            if not key or op not in OPERATORS:
                key, op = spec, "eq"
            if key.startswith("_"):
                raise ChartError(f"When({spec}=...): state keys never start with '_'")
            parsed.append((key, op, expected))
        self.conditions = tuple(parsed)
        self.then = then
        self.label = label

    def __repr__(self) -> str:
        conditions = ", ".join(f"{key}__{op}={expected!r}" for key, op, expected in self.conditions)
        label = f", label={self.label!r}" if self.label is not None else ""
        return f"When({conditions}{', ' if conditions else ''}then={self.then!r}{label})"

    def _check(self, scope: Scope) -> tuple[bool, list[Check]]:
        """Evaluate the conditions in order, stopping at the first that fails."""
        checks: list[Check] = []
        for key, op, expected in self.conditions:
            try:
                value = scope[key]
            except StateKeyError:
                checks.append({"key": key, "op": op, "expected": _jsonable(expected), "ok": False})
                return False, checks
            ok = bool(OPERATORS[op](value, expected))
            checks.append(
                {
                    "key": key,
                    "op": op,
                    "expected": _jsonable(expected),
                    "value": _jsonable(value),
                    "ok": ok,
                }
            )
            if not ok:
                return False, checks
        return True, checks

    def _match(self, index: int, checks: list[Check]) -> RuleMatch:
        match: RuleMatch = {"rule": index, "then": self.then, "checks": checks}
        if self.label is not None:
            match["label"] = self.label
        return match


def decide(scope: Scope, rules: Sequence[When], default: str | None = None) -> str | None:
    """Return the ``then`` of the first rule that matches, else ``default``; keep the evidence.

    Return its result from a decider function. Which rule matched, and the
    values it compared, go into the execution tree and the narrative.

    Args:
        scope: The decider's scope.
        rules: The rules, tried in order.
        default: The branch key when no rule matches.
    """
    failed: list[Check] = []
    for index, rule in enumerate(_rules(rules)):
        ok, checks = rule._check(scope)
        if ok:
            _keep(scope, [rule.then], [rule._match(index, checks)], [])
            return rule.then
        failed.extend(checks[-1:])
    _keep(scope, [] if default is None else [default], [], failed)
    return default


def select(scope: Scope, rules: Sequence[When], default: Sequence[str] = ()) -> list[str]:
    """Return the ``then`` of every rule that matches (in rule order), else ``default``.

    Return its result from a selector function; the evidence is kept as with
    :func:`decide`.

    Args:
        scope: The selector's scope.
        rules: The rules; each is tried.
        default: The branch keys when no rule matches.
    """
    chosen: list[str] = []
    matched: list[RuleMatch] = []
    failed: list[Check] = []
    for index, rule in enumerate(_rules(rules)):
        ok, checks = rule._check(scope)
        if ok:
            matched.append(rule._match(index, checks))
            if rule.then not in chosen:
                chosen.append(rule.then)
        else:
            failed.extend(checks[-1:])
    if not chosen:
        chosen = list(dict.fromkeys(default))
    _keep(scope, chosen, matched, failed)
    return chosen


def _rules(rules: Sequence[When]) -> Sequence[When]:
    if isinstance(rules, When) or not all(isinstance(rule, When) for rule in rules):
        raise TypeError(f"rules must be a list of When(...), not {rules!r}")
    return rules


def _keep(scope: Scope, chose: list[str], matched: list[RuleMatch], failed: list[Check]) -> None:
    evidence: Evidence = {"chose": chose, "matched": matched, "default": not matched}
    if not matched:
        evidence["checked"] = failed
    set_evidence(scope, evidence)


def _jsonable(value: Any) -> Any:
    """The value as JSON for the tree; what JSON cannot hold (a datetime) as its ``str``."""
    if isinstance(value, tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    try:
        return json_copy(value)
    except NotJSONError:
        return str(value)
