"""What the CLI prints without rich: ``--json`` output and one-line texts.

Kept apart from :mod:`._render` so that ``--json`` and scripted use never
import rich.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pausepoint.durable.runs import RunList, RunRecord
from pausepoint.stores import PauseEntry, PendingPage

_QUESTION_KEYS = ("question", "message", "prompt", "reason", "title")


# -- JSON ----------------------------------------------------------------------


def pause_json(pause: PauseEntry) -> dict[str, Any]:
    """A pause as the HTTP API shows it: ``id``, ``stage_id``, ``data``, ``created_at``, ``deadline``, ``key``, ``assignees``."""
    return {
        "id": pause.pause_id,
        "stage_id": pause.stage_id,
        "data": pause.data,
        "created_at": pause.created_at,
        "deadline": pause.deadline,
        "key": pause.key,
        "assignees": list(pause.assignees),
    }


def record_json(record: RunRecord) -> dict[str, Any]:
    """The run record as plain JSON, shaped like the HTTP API's ``Run``."""
    return {
        "run_id": record.run_id,
        "chart": record.chart,
        "status": record.status,
        "pause": None if record.pause is None else pause_json(record.pause),
        "pauses": [pause_json(pause) for pause in record.pauses],
        "snapshot": record.snapshot,
        "audit": [dataclasses.asdict(event) for event in record.audit],
        "error": record.error,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "version": record.version,
    }


def page_json(page: PendingPage) -> dict[str, Any]:
    """An inbox page as ``{"items": [...], "next_cursor": ...}``, as the HTTP API returns it."""
    return {
        "items": [
            {
                "run_id": item.run_id,
                "chart": item.chart,
                "pause": pause_json(item.pause),
                "run_created_at": item.run_created_at,
            }
            for item in page.items
        ],
        "next_cursor": page.next_cursor,
    }


def run_list_json(page: RunList) -> dict[str, Any]:
    """A page of runs as ``{"items": [...], "next_cursor": ...}``, as the HTTP API returns it."""
    return {
        "items": [
            {
                "run_id": item.run_id,
                "chart": item.chart,
                "status": item.status,
                "stage": item.stage,
                "pauses": [pause_json(p) for p in item.pauses],
                "error": item.error,
                "created_at": item.created_at,
                "updated_at": item.updated_at,
            }
            for item in page.items
        ],
        "next_cursor": page.next_cursor,
    }


# -- small formatters ------------------------------------------------------------


def first_line(text: str, limit: int) -> str:
    """The first line of ``text``, cut to ``limit`` characters with an ellipsis."""
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def question_of(data: Any) -> str:
    """What a pause asks, in one line: its question, else its data as compact JSON."""
    if isinstance(data, str):
        return data
    if isinstance(data, Mapping):
        for key in _QUESTION_KEYS:
            if isinstance(data.get(key), str):
                return str(data[key])
    return compact(data, 80)


def duration(seconds: float) -> str:
    """``42s``, ``5m``, ``3h 20m``, ``2d 4h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def timestamp(at: float) -> str:
    """Local date and time to the second."""
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def compact(value: Any, limit: int | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def example_answer(schema: Mapping[str, Any] | None) -> str:
    """A JSON object to paste into ``--input``: the schema's required fields with placeholders."""
    if not schema or not isinstance(schema.get("properties"), Mapping):
        return "{...}"
    placeholders = {"boolean": True, "integer": 0, "number": 0, "string": "...", "array": []}
    required = schema.get("required") or list(schema["properties"])
    example = {
        name: placeholders.get(type_of(schema["properties"].get(name, {})).split("|")[0])
        for name in required
    }
    return compact(example)


def schema_fields(schema: Mapping[str, Any] | None) -> str | None:
    """``approved: boolean, approver: string, note?: string|null`` from a JSON Schema."""
    if not schema or not isinstance(schema.get("properties"), Mapping):
        return None
    required = set(schema.get("required") or ())
    return ", ".join(
        f"{name}{'' if name in required else '?'}: {type_of(prop)}"
        for name, prop in schema["properties"].items()
    )


def type_of(prop: Mapping[str, Any]) -> str:
    if "type" in prop:
        kind = prop["type"]
        return "|".join(kind) if isinstance(kind, list) else str(kind)
    if "enum" in prop:
        return "|".join(compact(v) for v in prop["enum"])
    options = prop.get("anyOf") or prop.get("oneOf")
    if options:
        return "|".join(type_of(option) for option in options)
    return "any"
