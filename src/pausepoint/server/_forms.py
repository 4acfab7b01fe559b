"""HTML forms from a stage's input JSON Schema, and form posts back to JSON answers.

An object schema with simple properties becomes one field per property:
booleans a yes/no choice, numbers a number input, strings a text input (date
and e-mail formats their own inputs), enums a select; anything nested
(objects, arrays, unions) a small JSON text area. Any other schema, or none,
becomes one JSON text area for the whole answer. Field values are converted to
JSON types here; whether they fit the schema is left to the stage's model, so
its error messages are the ones people see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FIELD_PREFIX", "RAW_FIELD", "Form", "FormField", "form_for", "parse_form"]

FIELD_PREFIX = "field:"
"""Form field names are prefixed so they never clash with ``csrf`` or ``pause_id``."""

RAW_FIELD = "answer_json"
"""The text area holding the whole answer when there are no per-property fields."""

Widget = Literal[
    "boolean", "integer", "number", "text", "date", "datetime", "email", "select", "json"
]

_STRING_FORMATS: dict[str, Widget] = {"date": "date", "date-time": "datetime", "email": "email"}


@dataclass(frozen=True, slots=True, kw_only=True)
class FormField:
    """One input of a generated form.

    Attributes:
        name: The property name (the answer's key).
        label: What the person reads.
        widget: Which input to show.
        required: The schema requires the property.
        description: Help text, from the schema's ``description``.
        default: The schema's default, as the input's initial value (JSON text for ``json``).
        options: For ``select``: ``(value as JSON text, label)`` pairs.
        attrs: Extra HTML attributes (``min``, ``maxlength`` ...).
    """

    name: str
    label: str
    widget: Widget
    required: bool
    description: str | None = None
    default: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    attrs: Mapping[str, str] = field(default_factory=dict)

    @property
    def input_name(self) -> str:
        """The name of the HTML input."""
        return FIELD_PREFIX + self.name


@dataclass(frozen=True, slots=True)
class Form:
    """A generated form: its fields, or ``None`` for one JSON text area."""

    fields: tuple[FormField, ...] | None


def form_for(schema: Mapping[str, Any] | None) -> Form:
    """Return the form for answers fitting ``schema`` (JSON Schema as pydantic writes it)."""
    if schema is None:
        return Form(None)
    root = _resolve(schema, schema)
    properties = root.get("properties")
    if root.get("type") != "object" or not isinstance(properties, Mapping) or not properties:
        return Form(None)
    required = set(root.get("required") or ())
    return Form(
        tuple(
            _field(name, _resolve(prop, schema), name in required, prop.get("title"))
            for name, prop in properties.items()
        )
    )


def parse_form(form: Form, values: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """Turn posted form values into the answer.

    Returns:
        The answer (JSON), and problems found while reading it, by field name
        (``RAW_FIELD`` for the whole-answer text area). Values of the wrong
        kind are passed on as text for the schema to reject with its message.
    """
    if form.fields is None:
        text = values.get(RAW_FIELD, "").strip()
        if not text:
            return None, {RAW_FIELD: "Enter the answer as JSON."}
        try:
            return _loads(text), {}
        except ValueError as exc:
            return None, {RAW_FIELD: f"Not valid JSON: {exc}"}
    answer: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for item in form.fields:
        raw = values.get(item.input_name, "")
        if raw.strip() == "" and not (item.widget == "text" and item.required):
            continue  # left empty: the schema's default applies, or it reports the field missing
        try:
            answer[item.name] = _convert(item.widget, raw)
        except ValueError as exc:
            problems[item.name] = str(exc)
    return answer, problems


def _convert(widget: Widget, raw: str) -> Any:
    if widget == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    if widget in ("integer", "number"):
        try:
            number = float(raw)
        except ValueError:
            return raw
        if not math.isfinite(number):
            raise ValueError("Enter a finite number.")
        try:
            return int(raw)
        except ValueError:
            return number
    if widget in ("select", "json"):
        try:
            return _loads(raw)
        except ValueError as exc:
            raise ValueError(f"Not valid JSON: {exc}") from None
    return raw


def _loads(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON number")

    return json.loads(text, parse_constant=refuse)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` and drop a ``null`` alternative of ``anyOf``.

    Keys beside the reference (description, default) win over the target's.
    """
    resolved = dict(schema)
    for _ in range(32):  # a bound, in case of a reference cycle
        ref = resolved.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        siblings = {k: v for k, v in resolved.items() if k != "$ref"}
        resolved = {**(target if isinstance(target, Mapping) else {}), **siblings}
    options = resolved.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
        if len(kept) == 1 and isinstance(kept[0], Mapping):
            rest = {k: v for k, v in resolved.items() if k != "anyOf"}
            resolved = {**_resolve(kept[0], root), **rest}
    return resolved


def _field(name: str, prop: Mapping[str, Any], required: bool, title: Any) -> FormField:
    # The property's own title; a referenced type's title names the type, not the field.
    label = str(title or name.replace("_", " ").capitalize())
    description = prop.get("description")
    common: dict[str, Any] = {
        "name": name,
        "label": label,
        "required": required,
        "description": str(description) if description else None,
    }
    has_default = "default" in prop and prop["default"] is not None
    default = prop.get("default")
    choices = prop.get("enum") if isinstance(prop.get("enum"), list) else None
    if choices is None and "const" in prop:
        choices = [prop["const"]]
    if choices:
        options = tuple((json.dumps(c), str(c)) for c in choices)
        selected = json.dumps(default) if has_default else None
        return FormField(widget="select", options=options, default=selected, **common)
    kind = prop.get("type")
    if kind == "boolean":
        value = ("true" if default else "false") if has_default else None
        return FormField(widget="boolean", default=value, **common)
    if kind in ("integer", "number"):
        attrs = {"step": "1" if kind == "integer" else "any"}
        for key, html in (("minimum", "min"), ("maximum", "max")):
            if isinstance(prop.get(key), int | float):
                attrs[html] = str(prop[key])
        value = str(default) if has_default else None
        return FormField(widget=kind, default=value, attrs=attrs, **common)
    if kind == "string":
        attrs = {}
        for key, html in (("minLength", "minlength"), ("maxLength", "maxlength")):
            if isinstance(prop.get(key), int):
                attrs[html] = str(prop[key])
        # No HTML `pattern`: browsers read it as a JavaScript regex, the schema's is Python's.
        widget = _STRING_FORMATS.get(str(prop.get("format")), "text")
        value = str(default) if has_default else None
        return FormField(widget=widget, default=value, attrs=attrs, **common)
    value = json.dumps(default) if has_default else None
    return FormField(widget="json", default=value, **common)
