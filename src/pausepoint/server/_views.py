"""What the run page shows, gathered from a run record and its chart."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pausepoint.durable.runs import RunRecord, Runs
from pausepoint.engine.chart import FlowChart, chart_path
from pausepoint.stores.base import PauseEntry

from ._charts import describe_chart, stage_input_schema
from ._forms import Form, form_for

__all__ = ["ChartStep", "PathStep", "PauseView", "question_of", "run_view"]

_QUESTION_KEYS = ("question", "message", "prompt", "title", "reason")


def question_of(data: Any) -> str | None:
    """Return the question a stage paused with, if its data has one."""
    if isinstance(data, str):
        return data
    if isinstance(data, Mapping):
        for key in _QUESTION_KEYS:
            if isinstance(data.get(key), str):
                return str(data[key])
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseView:
    """One pending pause with its answer form.

    Attributes:
        pause: The pause.
        stage_name: The paused stage's display name.
        question: Its question, if the data has one.
        facts: The rest of the pause data (a mapping), or ``None`` to show it whole.
        form: The answer form.
        nonce: Idempotency key of this rendering of the form (a double submit is one answer).
        values: Values to refill the form with (after a refused answer).
        problems: Problems by field name (or ``"answer_json"``), shown beside the fields.
        message: A message about this pause (refusal, "already answered by ...").
    """

    pause: PauseEntry
    stage_name: str
    question: str | None
    facts: Mapping[str, Any] | None
    form: Form
    nonce: str
    values: Mapping[str, str] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True, slots=True)
class PathStep:
    """A stage on the path a run took, in the order it ran."""

    id: str
    name: str
    status: str
    depth: int
    is_loop: bool = False


@dataclass(frozen=True, slots=True)
class ChartStep:
    """A stage of the chart, marked when the run went through it."""

    id: str
    name: str
    kind: str
    mark: str  # "taken", "paused" or ""
    depth: int


def _flatten(tree: Sequence[Mapping[str, Any]], depth: int = 0) -> list[PathStep]:
    steps: list[PathStep] = []
    for node in tree:
        is_loop = node.get("kind") == "loop"
        name = f"back to {node.get('target', node.get('id'))}" if is_loop else node.get("name")
        steps.append(
            PathStep(str(node.get("id")), str(name), str(node.get("status", "")), depth, is_loop)
        )
        steps.extend(_flatten(node.get("children") or [], depth + 1))
    return steps


def run_view(
    runs: Runs,
    record: RunRecord,
    *,
    values: Mapping[str, Mapping[str, str]] | None = None,
    problems: Mapping[str, Mapping[str, str]] | None = None,
    messages: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the run page's template context.

    ``values``, ``problems`` and ``messages`` are keyed by pause id.
    """
    snapshot = record.snapshot or {}
    path = _flatten(snapshot.get("execution_tree") or [])
    taken = {chart_path(step.id) for step in path if not step.is_loop}  # items: body stages
    paused = {chart_path(p.stage_id) for p in record.pauses}
    flow = runs.charts.get(record.chart)
    chart = describe_chart(record.chart, flow) if flow is not None else None
    chart_steps = [
        ChartStep(
            s.id,
            s.name,
            s.kind,
            "paused" if s.id in paused else "taken" if s.id in taken else "",
            s.id.count("/"),
        )
        for s in (chart.stages if chart else [])
    ]
    names = {s.id: s.name for s in chart.stages} if chart else {}
    pauses = []
    for pause in record.pauses:
        schema = stage_input_schema(record.chart, flow, pause.stage_id) if flow else None
        question = question_of(pause.data)
        facts = pause.data if isinstance(pause.data, Mapping) else None
        if facts is not None and question is not None:
            facts = {k: v for k, v in facts.items() if v != question}
        pauses.append(
            PauseView(
                pause=pause,
                stage_name=_stage_name(flow, names, pause.stage_id),
                question=question,
                facts=facts,
                form=form_for(schema),
                nonce=os.urandom(12).hex(),
                values=(values or {}).get(pause.pause_id, {}),
                problems=(problems or {}).get(pause.pause_id, {}),
                message=(messages or {}).get(pause.pause_id),
            )
        )
    return {
        "record": record,
        "pauses": pauses,
        "state": snapshot.get("shared_state"),
        "narrative": snapshot.get("narrative") or [],
        "steps_taken": path,
        "chart": chart,
        "chart_steps": chart_steps,
        "mermaid": flow.to_mermaid(highlight=taken) if flow is not None else None,
    }


def _stage_name(flow: FlowChart | None, names: Mapping[str, str], stage_id: str) -> str:
    """The display name of a paused stage; for-each items name their body's stage."""
    if stage_id in names:
        return names[stage_id]
    stage = flow.find_stage(stage_id) if flow is not None else None
    return stage.name if stage is not None else stage_id
