"""Charts as the API and the pages describe them: stages, input schemas, Mermaid."""

from __future__ import annotations

import functools
from typing import Any

from pydantic.errors import PydanticUserError

from pausepoint.engine.chart import FlowChart, PausableStage

from ._models import Chart, Stage

__all__ = ["describe_chart", "stage_input_schema"]


@functools.cache
def describe_chart(name: str, flow: FlowChart) -> Chart:
    """Return the chart registered as ``name``, with each pausable stage's input schema.

    Charts are immutable, so the description is made once per chart object.
    """
    stages = [
        Stage(
            id=path,
            name=node.name,
            kind=node.kind,
            description=node.description,
            input_schema=_schema_of(node) if isinstance(node, PausableStage) else None,
            timeout=node.timeout if isinstance(node, PausableStage) else None,
        )
        for path, node in flow.stages()
    ]
    return Chart(
        name=name,
        title=flow.name,
        fingerprint=flow.fingerprint,
        stages=stages,
        mermaid=flow.to_mermaid(),
    )


def stage_input_schema(name: str, flow: FlowChart, stage_id: str) -> dict[str, Any] | None:
    """Return the input JSON Schema of a stage of a chart, if it declares one.

    ``stage_id`` may be a for-each item's path (``tools[0]/approve``): it names
    the body's stage.
    """
    stage = flow.find_stage(stage_id)
    return _schema_of(stage) if isinstance(stage, PausableStage) else None


def _schema_of(stage: PausableStage) -> dict[str, Any] | None:
    try:
        return stage.input_json_schema()
    except PydanticUserError:
        # A type pydantic validates but cannot describe: the answer is still
        # validated on resume; people get a JSON text area instead of fields.
        return None
