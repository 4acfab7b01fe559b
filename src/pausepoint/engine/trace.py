"""The trace of a run: execution tree, narrative and metrics.

The execution tree is the only record kept: a list of JSON nodes in the order
stages started, with composite stages (subflows, deciders, selectors, forks)
holding their children. It travels in the checkpoint, so a fresh executor in
another process continues the same tree. The narrative and the metrics are
derived from it on demand, which keeps the per-stage cost of tracing to one
small dict and makes them identical in every process.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "Attempt",
    "Check",
    "Evidence",
    "Metrics",
    "RuleMatch",
    "StageMetrics",
    "TreeNode",
    "last_seq",
    "metrics_of",
    "narrative_of",
    "summarize_pause",
]

NodeStatus = Literal["running", "done", "paused", "resumed", "failed", "cancelled"]


class PauseInfo(TypedDict):
    """When and why a pausable stage paused."""

    pause_id: str
    at: float
    summary: str
    seq: NotRequired[int]


class ResumeInfo(TypedDict):
    """What the resume phase of a pausable stage did."""

    at: float
    input_keys: list[str]
    reads: list[str]
    writes: list[str]
    ms: float
    seq: NotRequired[int]
    notes: NotRequired[list[str]]


class Attempt(TypedDict):
    """A failed attempt of a stage with a retry policy.

    Attributes:
        phase: ``run``, ``execute`` or ``resume``.
        attempt: Which attempt failed (1-based).
        of: How many attempts the policy allows.
        error: ``Type: message`` of the failure.
        ms: How long the attempt ran.
        seq: When it failed, in the run's event order.
        retry_in: Seconds waited before the next attempt; absent on the last failure.
    """

    phase: str
    attempt: int
    of: int
    error: str
    ms: float
    seq: int
    retry_in: NotRequired[float]


class Check(TypedDict):
    """One condition a decision rule looked at: ``key op expected``, and the value found.

    ``value`` is absent when the key was never written (the check then fails).
    """

    key: str
    op: str
    expected: Any
    value: NotRequired[Any]
    ok: bool


class RuleMatch(TypedDict):
    """A rule that matched: its position, its label, the branch it names, its checks."""

    rule: int
    then: str
    label: NotRequired[str]
    checks: list[Check]


class Evidence(TypedDict):
    """Why a decider or selector chose, as :func:`pausepoint.decide` recorded it.

    Attributes:
        chose: The branch keys chosen.
        matched: The rules that matched (the first one for ``decide``).
        default: Whether no rule matched and the default was taken.
        checked: With ``default``: the checks that failed, one per rule.
    """

    chose: list[str]
    matched: list[RuleMatch]
    default: bool
    checked: NotRequired[list[Check]]


class TreeNode(TypedDict):
    """One stage in the execution tree (JSON).

    ``reads`` and ``writes`` list the state keys the stage read and wrote (absent
    when it touched none); ``ms`` is how long it ran, to the microsecond.
    ``attempts`` lists the failed attempts of a stage with a retry policy;
    ``evidence`` says why a decider or selector chose; a ``cancel`` node
    (``actor``, ``reason``) marks where a cancelled run stopped.
    """

    id: str
    name: str
    kind: str
    status: NodeStatus
    reads: NotRequired[list[str]]
    writes: NotRequired[list[str]]
    ms: NotRequired[float]
    error: NotRequired[str]
    pause: NotRequired[PauseInfo]
    resume: NotRequired[ResumeInfo]
    chose: NotRequired[list[str]]
    children: NotRequired[list[TreeNode]]
    round: NotRequired[int]
    target: NotRequired[str]
    breaks_loop: NotRequired[bool]
    seq: NotRequired[int]
    notes: NotRequired[list[str]]
    attempts: NotRequired[list[Attempt]]
    evidence: NotRequired[Evidence]
    actor: NotRequired[str]
    reason: NotRequired[str]


class StageMetrics(TypedDict):
    """How often a stage ran and for how long."""

    count: int
    total_ms: float
    max_ms: float


class Metrics(TypedDict):
    """Figures over the whole run, every resume included."""

    stages: dict[str, StageMetrics]
    stage_runs: int
    active_ms: float
    pause_count: int
    resume_count: int
    paused_seconds: float
    loop_rounds: int
    retries: int


_QUESTION_KEYS = ("question", "message", "prompt", "reason", "title")


def summarize_pause(data: Any, redact: frozenset[str]) -> str:
    """Say in a few words what a stage paused with: its question, or the keys it sent."""
    if isinstance(data, str):
        return _quote(data)
    if isinstance(data, Mapping):
        for key in _QUESTION_KEYS:
            value = data.get(key)
            if isinstance(value, str) and key not in redact:
                return _quote(value)
        return "with {" + ", ".join(str(k) for k in data) + "}"
    return (
        f"with {type(data).__name__} {data!r}"
        if not isinstance(data, list)
        else f"with a list of {len(data)}"
    )


def _quote(text: str, limit: int = 200) -> str:
    return '"' + (text if len(text) <= limit else text[: limit - 1] + "…") + '"'


def _count(number: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{number} {noun if number == 1 else plural}"


def _keys(keys: Iterable[str]) -> str:
    return ", ".join(keys)


def narrative_of(tree: Iterable[TreeNode]) -> list[str]:
    """Return one plain sentence per event, in the order the events happened.

    Every stage, pause and resume carries a ``seq`` number from a counter that
    continues across resumes, so the narrative of a fork whose branches were
    answered one by one reads in the order things happened, and the narrative
    before a pause is always the start of the narrative after it.
    """
    events: list[tuple[int, int, str]] = []
    for node in tree:
        _narrate(node, events)
    events.sort(key=lambda event: (event[0], event[1]))
    return [sentence for _, _, sentence in events]


def last_seq(tree: Iterable[TreeNode]) -> int:
    """Return the highest event number in a tree (0 for an empty one)."""
    # every resume asks this of the whole tree: no max() call, no call for a node without children
    highest = 0
    for node in tree:
        seq = node.get("seq", 0)
        if seq > highest:
            highest = seq
        pause, resume = node.get("pause"), node.get("resume")
        if pause and pause.get("seq", 0) > highest:
            highest = pause["seq"]
        if resume and resume.get("seq", 0) > highest:
            highest = resume["seq"]
        attempts = node.get("attempts")
        if attempts and attempts[-1]["seq"] > highest:
            highest = attempts[-1]["seq"]
        children = node.get("children")
        if children:
            seq = last_seq(children)
            if seq > highest:
                highest = seq
    return highest


def _narrate(node: TreeNode, out: list[tuple[int, int, str]]) -> None:
    """Append ``(seq, order within the event, sentence)`` for a node and its children."""
    name, kind = node["name"], node["kind"]
    at = node.get("seq", 0)
    writes = node.get("writes") or []

    def say(sentence: str, seq: int = at) -> None:
        out.append((seq, len(out), sentence))

    if kind == "loop":
        say(f"Looped back to {name} (round {node.get('round', 0)}).")
        return
    if kind == "cancel":
        by = f" by {node['actor']}" if "actor" in node else ""
        why = f": {node['reason']}" if "reason" in node else ""
        say(f"Cancelled{by} before {name}{why}.")
        return
    if kind == "item":  # a for-each item: its stages tell its story
        for child in node.get("children") or []:
            _narrate(child, out)
        return
    if kind == "foreach":
        items = node.get("children") or []
        say(f"{name} ran for {_count(len(items), 'item')}.")
        for child in items:
            _narrate(child, out)
        if node["status"] == "done":
            say(
                f"{name} collected {_count(len(items), 'result')} into {_keys(writes)}.",
                last_seq([node]),
            )
        elif node["status"] == "failed" and "error" in node:
            say(f"{name} failed: {node['error']}.", last_seq([node]))
        return
    attempts = node.get("attempts") or []
    ran_at = at  # a stage that was retried tells its outcome after its failed attempts
    for attempt in attempts:
        if "retry_in" in attempt:
            phase = f" in {attempt['phase']}" if attempt["phase"] == "resume" else ""
            say(
                f"{name} failed (attempt {attempt['attempt']} of {attempt['of']}){phase}: "
                f"{attempt['error']}; retrying.",
                attempt["seq"],
            )
            if attempt["phase"] != "resume":
                ran_at = attempt["seq"]
    if kind == "subflow":
        say(f"{name} started (subflow).")
    elif writes:
        say(f"{name} wrote {_keys(writes)}.", ran_at)
    elif kind == "stage" and node["status"] == "done":
        say(f"{name} ran.", ran_at)
    for note in node.get("notes") or ():
        say(f"{name}: {note}", ran_at)
    if kind in ("decider", "selector"):
        chose = node.get("chose")
        evidence = node.get("evidence")
        if evidence is not None:
            say(_explain(name, evidence), ran_at)
        elif chose is not None:
            if kind == "decider":
                say(
                    f'{name} chose branch "{chose[0]}".' if chose else f"{name} chose no branch.",
                    ran_at,
                )
            else:
                picked = ", ".join(f'"{key}"' for key in chose)
                say(
                    f"{name} chose branches {picked}." if chose else f"{name} chose no branch.",
                    ran_at,
                )
    elif kind == "parallel":
        say(f"{name} ran {_count(len(node.get('children') or []), 'branch')} in parallel.")
    pause = node.get("pause")
    if pause is not None:
        summary = pause["summary"]
        ending = "" if summary.endswith('"') else "."
        say(f"{name} paused: {summary}{ending}", pause.get("seq", at))
    resume = node.get("resume")
    if resume is not None:
        resumed = resume.get("seq", at)
        say(f"{name} resumed by input {{{_keys(resume['input_keys'])}}}.", resumed)
        if resume["writes"]:
            say(f"{name} wrote {_keys(resume['writes'])}.", resumed)
        for note in resume.get("notes") or ():
            say(f"{name}: {note}", resumed)
    if kind == "pausable" and pause is None and node["status"] == "done" and not writes:
        say(f"{name} continued without pausing.", ran_at)
    for child in node.get("children") or []:
        _narrate(child, out)
    last = last_seq([node])  # endings come after everything the node did
    if kind == "subflow" and node["status"] == "done":
        say(f"{name} finished (subflow).", last)
    if node["status"] == "failed" and "error" in node:
        final = attempts[-1] if attempts and "retry_in" not in attempts[-1] else None
        counted = f" (attempt {final['attempt']} of {final['of']})" if final else ""
        say(f"{name} failed{counted}: {node['error']}.", last)
    if node.get("breaks_loop"):
        say(f"{name} ended the loop.", last)


_SYMBOLS = {
    "gt": ">",
    "ge": ">=",
    "lt": "<",
    "le": "<=",
    "eq": "==",
    "ne": "!=",
    "in": "in",
    "contains": "contains",
}


def _explain(name: str, evidence: Evidence) -> str:
    """Say why a decision chose, e.g. ``Route chose "high": Large amount — amount 900 > 500.``."""
    chose = ", ".join(f'"{key}"' for key in evidence["chose"]) or "no branch"
    if evidence["default"]:
        failed = "; ".join(_check(check) for check in evidence.get("checked", []))
        return f"{name} chose {chose} by default: no rule matched" + (
            f" ({failed})." if failed else "."
        )
    reasons = []
    for match in evidence["matched"]:
        checks = " and ".join(_check(check) for check in match["checks"])
        label = match.get("label")
        reasons.append(f"{label} — {checks}" if label and checks else label or checks)
    because = "; ".join(reason for reason in reasons if reason)
    return f"{name} chose {chose}" + (f": {because}." if because else ".")


def _check(check: Check) -> str:
    symbol = _SYMBOLS.get(check["op"], check["op"])
    expected = _show(check["expected"])
    if "value" not in check:
        return f"{check['key']} is not set"
    shown = f"{check['key']} {_show(check['value'])}"
    return f"{shown} {symbol} {expected}" if check["ok"] else f"{shown} is not {symbol} {expected}"


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def metrics_of(tree: Iterable[TreeNode]) -> Metrics:
    """Aggregate per-stage durations and counts, pauses and time spent paused."""
    metrics: Metrics = {
        "stages": {},
        "stage_runs": 0,
        "active_ms": 0.0,
        "pause_count": 0,
        "resume_count": 0,
        "paused_seconds": 0.0,
        "loop_rounds": 0,
        "retries": 0,
    }
    _measure(tree, metrics)
    return metrics


def _measure(tree: Iterable[TreeNode], metrics: Metrics) -> None:
    for node in tree:
        if node["kind"] == "loop":
            metrics["loop_rounds"] += 1
            continue
        if node["kind"] == "cancel":
            continue
        metrics["retries"] += sum(1 for a in node.get("attempts") or () if "retry_in" in a)
        ms = node.get("ms", 0.0)
        resume = node.get("resume")
        if resume is not None:
            ms += resume["ms"]
            metrics["resume_count"] += 1
        pause = node.get("pause")
        if pause is not None:
            metrics["pause_count"] += 1
            if resume is not None:
                metrics["paused_seconds"] += max(0.0, resume["at"] - pause["at"])
        children = node.get("children")
        if children:
            _measure(children, metrics)
        else:
            metrics["active_ms"] += ms
        entry = metrics["stages"].setdefault(
            node["id"], {"count": 0, "total_ms": 0.0, "max_ms": 0.0}
        )
        entry["count"] += 1
        entry["total_ms"] += ms
        entry["max_ms"] = max(entry["max_ms"], ms)
        metrics["stage_runs"] += 1
