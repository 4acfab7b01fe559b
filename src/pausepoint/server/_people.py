"""Assignees and the people the tokens name: the startup check and the ``mine`` filter."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from pausepoint._tokens import Tokens
from pausepoint.durable.runs import Runs
from pausepoint.engine.chart import PausableStage
from pausepoint.errors import UnknownAssigneeError

__all__ = ["check_assignees", "check_known", "uses_assignees"]


def _known_text(known: Iterable[str]) -> str:
    return ", ".join(sorted(known)) or "none"


def check_assignees(runs: Runs, tokens: Tokens) -> None:
    """Refuse a chart whose stage names an assignee no token's actor or group is.

    Only fixed lists are checked; an ``assignees`` function is evaluated when
    its stage pauses. Without tokens nothing is checked (nobody may answer).

    Raises:
        UnknownAssigneeError: Naming the chart, the stage, the unknown name and
            the names the tokens know.
    """
    if not len(tokens):
        return
    known = tokens.principals()
    for chart, flow in runs.charts.items():
        for path, node in flow.stages():
            if not isinstance(node, PausableStage):
                continue
            # a function of the scope is evaluated when the stage pauses
            fixed = () if callable(node.assignees) else node.assignees
            named = [("assignee", n) for n in fixed]
            named += [("escalate_to name", n) for n in node.escalate_to]
            for what, name in named:
                if name not in known:
                    raise UnknownAssigneeError(
                        f"chart {chart!r}, stage {path!r}: {what} {name!r} is no actor or "
                        f"group any token names, so nobody could answer it (known: "
                        f"{_known_text(known)}); fix the chart or give a token with that group",
                        assignee=name,
                        known=sorted(known),
                        chart=chart,
                        stage_id=path,
                    )


def check_known(tokens: Tokens, names: Collection[str], where: str) -> None:
    """Refuse a filter naming an actor or group no token has.

    Raises:
        UnknownAssigneeError: Naming the filter (``where``), the unknown name and the known ones.
    """
    known = tokens.principals()
    for name in names:
        if name not in known:
            raise UnknownAssigneeError(
                f"{where}: {name!r} is no actor or group any token names "
                f"(known: {_known_text(known)})",
                assignee=name,
                known=sorted(known),
            )


def uses_assignees(runs: Runs) -> bool:
    """Tell whether any stage of the charts assigns its pauses (assignees or escalation)."""
    return any(
        isinstance(node, PausableStage) and bool(node.assignees or node.escalate_to)
        for flow in runs.charts.values()
        for _, node in flow.stages()
    )
