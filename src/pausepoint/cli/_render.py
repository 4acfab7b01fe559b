"""How runs look on a terminal (rich); ``--json`` output is in :mod:`._plain`.

Commands import this module only when they print for a person, so that
``--json`` and scripted use never import rich. Everything shown comes from user code or user input (stage names, questions,
state), so text is built with :class:`rich.text.Text` and never parsed as markup.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.json import JSON
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from pausepoint.durable.runs import RunList, RunRecord
from pausepoint.stores import AuditEvent, PendingPage

from ._plain import (
    compact,
    duration,
    example_answer,
    first_line,
    question_of,
    schema_fields,
    timestamp,
)

STATUS_STYLES = {
    "paused": "bold yellow",
    "running": "bold cyan",
    "completed": "bold green",
    "failed": "bold red",
    "cancelled": "bold magenta",
    "expired": "bold magenta",
}
NODE_ICONS = {
    "done": ("✓", "green"),
    "paused": ("⏸", "yellow"),
    "resumed": ("▶", "cyan"),
    "failed": ("✗", "red"),
    "running": ("…", "cyan"),
}


def make_console() -> Console:
    """A console on stdout that never interprets markup or highlights numbers."""
    return Console(highlight=False, markup=False, emoji=False)


# -- small rich texts -----------------------------------------------------------------


def deadline_text(deadline: float | None, now: float) -> Text:
    """``in 5m``, ``overdue 2m`` (red) or ``—`` when the pause waits forever."""
    if deadline is None:
        return Text("—", style="dim")
    if deadline <= now:
        return Text(f"overdue {duration(now - deadline)}", style="red")
    return Text(f"in {duration(deadline - now)}")


def status_text(status: str) -> Text:
    """The run's status, coloured."""
    return Text(status, style=STATUS_STYLES.get(status, "bold"))


# -- one run's outcome (run, resume, cancel) ----------------------------------------


def print_outcome(
    console: Console,
    record: RunRecord,
    *,
    schemas: Mapping[str, Mapping[str, Any] | None] | None = None,
    flags: str = "",
) -> None:
    """Say where a run stands after a command moved it, and what to do next."""
    head = Text.assemble("run ", (record.run_id, "bold"), " ", status_text(record.status))
    if record.status == "paused":
        for pause in record.pauses:
            console.print(
                Text.assemble(head, " at ", (pause.stage_id, "bold"), ": ", question_of(pause.data))
            )
            schema = (schemas or {}).get(pause.stage_id)
            fields = schema_fields(schema)
            if fields:
                console.print(Text(f"  answer with {{{fields}}}", style="dim"))
            pause_flag = f" --pause {pause.pause_id}" if len(record.pauses) > 1 else ""
            console.print(
                Text(
                    f"  pausepoint resume {record.run_id} --input '{example_answer(schema)}' "
                    f"--as NAME{pause_flag}{flags}",
                    style="cyan",
                ),
                soft_wrap=True,
            )
        return
    console.print(head)
    if record.error:
        console.print(Text(f"  {record.error}", style="red"))
    if record.status == "completed" and record.snapshot:
        print_narrative(console, record.snapshot.get("narrative") or [], indent="  ")


def print_narrative(console: Console, lines: Iterable[str], *, indent: str = "") -> None:
    """The narrative, one numbered sentence per line."""
    for number, line in enumerate(lines, 1):
        console.print(Text.assemble((f"{indent}{number:>2}. ", "dim"), line))


# -- the inbox ------------------------------------------------------------------------


def _run_table(title: str, run_ids: list[str]) -> Table:
    """A table whose first column is the run id, kept whole: it is copied into the next command."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    widest = max(map(len, run_ids), default=3)
    table.add_column("run", no_wrap=True, min_width=widest, style="bold")
    return table


def inbox_table(page: PendingPage, now: float) -> Table:
    """The inbox as a table: run, chart, stage, question, assignees, age, deadline."""
    table = _run_table("Waiting for a person", [item.run_id for item in page.items])
    table.add_column("chart", overflow="fold")
    table.add_column("stage", overflow="fold")
    table.add_column("question", overflow="fold", min_width=12, ratio=1)
    table.add_column("assigned", overflow="fold")
    table.add_column("age", overflow="fold", justify="right")
    table.add_column("deadline", overflow="fold")
    for item in page.items:
        table.add_row(
            item.run_id,
            item.chart,
            item.pause.stage_id,
            question_of(item.pause.data),
            ", ".join(item.pause.assignees) or "anyone",
            duration(now - item.pause.created_at),
            deadline_text(item.pause.deadline, now),
        )
    return table


def runs_table(page: RunList, now: float, title: str) -> Table:
    """Runs as a table: run, chart, status, stage, last change, error."""
    table = _run_table(title, [item.run_id for item in page.items])
    table.add_column("chart", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column("stage", overflow="fold")
    table.add_column("changed", overflow="fold", justify="right")
    table.add_column("error", overflow="fold", min_width=12, ratio=1)
    for item in page.items:
        table.add_row(
            item.run_id,
            item.chart,
            status_text(item.status),
            item.stage or "",
            f"{duration(now - item.updated_at)} ago",
            first_line(item.error or "", 120),
        )
    return table


# -- one run in full (show) ------------------------------------------------------------


def print_run(console: Console, record: RunRecord) -> None:
    """Status, pauses, state, narrative, execution tree and audit of one run."""
    now = time.time()
    console.print(
        Text.assemble(
            ("run ", "bold"),
            (record.run_id, "bold"),
            "  ",
            status_text(record.status),
            f"  chart {record.chart}",
            (
                f"  started {timestamp(record.created_at)}, updated {duration(now - record.updated_at)} ago",
                "dim",
            ),
        )
    )
    if record.error:
        console.print(Text(f"error: {record.error}", style="red"))
    for pause in record.pauses:
        console.print(
            Text.assemble(
                ("waiting ", "yellow"),
                f"at {pause.stage_id} (pause {pause.pause_id}, {duration(now - pause.created_at)}, deadline ",
                deadline_text(pause.deadline, now),
                "): ",
                (question_of(pause.data), "bold"),
            )
        )
    snapshot = record.snapshot or {}
    _section(console, "State")
    console.print(JSON.from_data(snapshot.get("shared_state") or {}, default=str))
    _section(console, "Narrative")
    print_narrative(console, snapshot.get("narrative") or [])
    _section(console, "Execution tree")
    console.print(execution_tree(snapshot.get("execution_tree") or [], record.chart))
    _section(console, "Audit")
    console.print(audit_table(record.audit))


def _section(console: Console, title: str) -> None:
    console.print()
    console.rule(Text(title, style="bold"), align="left")


def execution_tree(nodes: Sequence[Mapping[str, Any]], title: str) -> Tree:
    """The path the run took as a tree; composite stages hold their children."""
    tree = Tree(Text(title, style="bold"))
    _add_nodes(tree, nodes)
    return tree


def _add_nodes(parent: Tree, nodes: Sequence[Mapping[str, Any]]) -> None:
    for node in nodes:
        icon, colour = NODE_ICONS.get(str(node.get("status")), ("•", "white"))
        label = Text.assemble(
            (f"{icon} ", colour),
            (str(node.get("name", "?")), "bold"),
            (f" ({node.get('id', '?')})", "dim"),
            (f" {node.get('status', '')}", colour),
        )
        details = _node_details(node)
        if details:
            label.append("  " + " · ".join(details), style="dim")
        _add_nodes(parent.add(label), node.get("children") or [])


def _node_details(node: Mapping[str, Any]) -> list[str]:
    details: list[str] = []
    if node.get("kind") == "loop":
        details.append(f"round {node.get('round', 0)} → {node.get('target', '?')}")
    if node.get("chose"):
        details.append("chose " + ", ".join(node["chose"]))
    if node.get("writes"):
        details.append("wrote " + ", ".join(node["writes"]))
    pause = node.get("pause")
    if pause:
        details.append(f"paused {pause.get('summary', '')}")
    resume = node.get("resume")
    if resume:
        details.append("resumed with {" + ", ".join(resume.get("input_keys") or []) + "}")
        if resume.get("writes"):
            details.append("then wrote " + ", ".join(resume["writes"]))
    if node.get("error"):
        details.append(f"error: {node['error']}")
    if isinstance(node.get("ms"), int | float):
        details.append(f"{node['ms']:.2f} ms")
    return details


def audit_table(audit: Sequence[AuditEvent]) -> Table:
    """Every audit event, oldest first."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("when", no_wrap=True)
    table.add_column("event", no_wrap=True, style="bold")
    table.add_column("by", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=1)
    for event in audit:
        table.add_row(
            str(event.seq),
            timestamp(event.at),
            event.kind,
            event.actor or "—",
            _event_details(event),
        )
    return table


def _event_details(event: AuditEvent) -> str:
    data = dict(event.data)
    if event.kind == "paused":
        return f"at {data.get('stage_id')}: {question_of(data.get('data'))}"
    if event.kind == "resumed":
        return f"{data.get('stage_id')} ← {compact(data.get('input'), 120)}"
    if event.kind in ("resume_refused", "cancelled"):
        return str(data.get("reason") or "")
    if event.kind == "expired":
        return f"{data.get('stage_id')} passed its deadline; policy {data.get('policy')}"
    if event.kind == "failed":
        return str(data.get("error") or "")
    if event.kind == "started":
        return f"input {compact(data.get('input', {}), 120)}"
    return compact(data, 120) if data else ""
