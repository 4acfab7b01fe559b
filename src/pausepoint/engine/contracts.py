"""Contracts: the checks an input or output must pass, with pydantic's details.

A pausable stage's ``input_schema`` checks resume answers; a chart's
``input``/``output`` models check what a run starts with and ends with.
pydantic is imported only when one of them is declared.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pausepoint.errors import (
    ResumeInputError,
    RunInputError,
    RunOutputError,
)

from ._json import json_copy
from .chart import (
    FlowChart,
    PausableStage,
)

__all__ = ["validate_resume_input", "validate_run_input", "validate_run_output"]


def schema_adapter(schema: Any) -> Any:
    """Return the pydantic ``TypeAdapter`` of a stage's ``input_schema``, made once per schema.

    Making one costs ten times the validation it serves (more for a generic
    like ``list[int]``), and every resume of a stage with a schema needs one.
    Adapters are kept per schema type, across charts (a chart built anew per
    run declares the same types); an unhashable schema gets a fresh one.
    """
    try:
        hash(schema)
    except TypeError:
        from pydantic import TypeAdapter

        return TypeAdapter(schema)
    return _kept_adapter(schema)


@functools.lru_cache(maxsize=256)
def _kept_adapter(schema: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(schema)


def validate_resume_input(node: PausableStage, path: str, answer: Any) -> Any:
    """Validate a resume input against the stage's ``input_schema``; return what ``resume`` gets.

    Raises:
        ResumeInputError: The input does not fit, with pydantic's error details.
    """
    if node.input_schema is None:
        return answer
    from pydantic import ValidationError

    adapter = schema_adapter(node.input_schema)
    try:
        return adapter.validate_python(answer)
    except ValidationError as exc:
        summary, errors = _validation_details(exc)
        raise ResumeInputError(
            f"resume input for stage {path!r} does not fit {_model_name(node.input_schema)}: {summary}",
            stage_id=path,
            errors=errors,
        ) from None


def validate_run_input(chart: FlowChart, input: Any) -> dict[str, Any]:
    """Check a run's input: a mapping, that fits the chart's input model if it declares one.

    Returns:
        What to seed the state with: the validated model's fields as JSON,
        defaults included; without a model, the mapping as given.

    Raises:
        RunInputError: Not a mapping, or not fitting the model (with pydantic's
            details, each naming its field).
    """
    contract = chart.input_contract
    if contract is None:
        if input is not None and not isinstance(input, Mapping):
            raise RunInputError(
                f"run input must be a mapping of state keys, not a {type(input).__name__}"
            )
        return dict(input or {})
    from pydantic import ValidationError

    name = _model_name(contract.model)
    try:
        value = contract.adapter.validate_python({} if input is None else input)
    except ValidationError as exc:
        summary, errors = _validation_details(exc)
        raise RunInputError(
            f"run input of chart {chart.name!r} does not fit {name}: {summary}", errors=errors
        ) from None
    seed = contract.adapter.dump_python(value, mode="json")
    if not isinstance(seed, dict):
        raise RunInputError(f"input model {name} of chart {chart.name!r} is not a mapping of keys")
    return seed


def validate_run_output(chart: FlowChart, state: Mapping[str, Any]) -> Any:
    """Check a completed run's state against the chart's output model; return the output.

    Raises:
        RunOutputError: The state does not fit, with pydantic's details naming each field.
    """
    contract = chart.output_contract
    assert contract is not None
    from pydantic import ValidationError

    try:
        return contract.adapter.validate_python(dict(state))
    except ValidationError as exc:
        summary, errors = _validation_details(exc)
        raise RunOutputError(
            f"run of chart {chart.name!r} completed, but its state does not fit the output "
            f"model {_model_name(contract.model)}: {summary}",
            errors=errors,
        ) from None


def _model_name(model: Any) -> str:
    return str(getattr(model, "__name__", "its schema"))


def _validation_details(exc: Any) -> tuple[str, list[dict[str, Any]]]:
    """Return a one-line summary naming each bad field, and the details as JSON."""
    details = exc.errors(include_url=False, include_context=False)
    summary = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}"
        for error in details
    )
    errors: list[dict[str, Any]] = json_copy(
        [
            {
                "loc": [
                    part if isinstance(part, int | str) else str(part) for part in error["loc"]
                ],
                "msg": error["msg"],
                "type": error["type"],
            }
            for error in details
        ]
    )
    return summary, errors
