"""State codecs: what may be written to the shared state and how it goes to JSON.

Without a state type every value must be a JSON value, checked when written.
With a state type (a dataclass or a pydantic model) its fields give defaults
and exact types: datetime, date, Decimal, UUID, Enum and nested models are
validated when written and round-trip exactly through a checkpoint; keys it
does not declare must still be JSON values. pydantic is imported only when a
state type is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pausepoint.errors import StateKeyError, StateValueError

from ._json import NotJSONError, json_copy

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = ["JsonCodec", "StateCodec", "TypedCodec", "codec_for"]

_MISSING: Any = object()


class StateCodec:
    """Checks values written to the state and converts the state to and from JSON."""

    state_type: type[Any] | None = None
    plain = True
    """Every key holds plain JSON: the scope may store str/int/bool/None unchecked."""

    def check(self, key: str, value: Any, stage_id: str) -> Any:
        """Return the value to store for ``key``, or raise ``StateValueError``."""
        try:
            return json_copy(value, key)
        except NotJSONError as exc:
            raise StateValueError(
                f"stage {stage_id!r} wrote {exc.path}: {exc.problem}; state values must be "
                "JSON values unless the chart declares a state type with this field",
                key=key,
                stage_id=stage_id,
            ) from None

    def default(self, key: str, stage_id: str) -> Any:
        """Return the default for an unwritten key, or raise ``StateKeyError``."""
        raise StateKeyError(
            f"stage {stage_id!r} read state key {key!r}, which no stage or input has written",
            key=key,
            stage_id=stage_id,
        )

    def encode(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """Return a JSON copy of the state.

        Raises:
            StateValueError: A value was mutated in place into something not JSON.
        """
        return {key: self._encode_value(key, value) for key, value in state.items()}

    def _encode_value(self, key: str, value: Any) -> Any:
        try:
            return json_copy(value, key)
        except NotJSONError as exc:
            raise StateValueError(
                f"state key {exc.path} holds a value that is not JSON ({exc.problem}); "
                "was a container changed in place? assign a new value instead",
                key=key,
            ) from None

    def decode(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return the live state for a JSON state from a checkpoint.

        The state takes over ``data``'s values: pass a copy (the executor
        passes the copies ``validate_checkpoint`` made).
        """
        return dict(data)


class JsonCodec(StateCodec):
    """The codec of charts without a state type: JSON values only."""


class TypedCodec(StateCodec):
    """The codec of charts with a dataclass or pydantic state type."""

    def __init__(self, state_type: type[Any]) -> None:
        from pydantic import TypeAdapter

        self.state_type = state_type
        self.plain = False
        self._fields: dict[str, tuple[TypeAdapter[Any], Callable[[], Any] | None]] = {}
        for name, annotation, factory in _fields_of(state_type):
            self._fields[name] = (TypeAdapter(annotation), factory)

    def check(self, key: str, value: Any, stage_id: str) -> Any:
        """Validate a declared field with pydantic; other keys must be JSON values."""
        declared = self._fields.get(key)
        if declared is None:
            return super().check(key, value, stage_id)
        from pydantic import ValidationError

        try:
            return declared[0].validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise StateValueError(
                f"stage {stage_id!r} wrote {key!r}: {first['msg']} "
                f"(declared {self.state_type.__name__ if self.state_type else 'state'}.{key})",
                key=key,
                stage_id=stage_id,
            ) from exc

    def default(self, key: str, stage_id: str) -> Any:
        """Return the declared field's default, or raise ``StateKeyError``."""
        declared = self._fields.get(key)
        if declared is None or declared[1] is None:
            return super().default(key, stage_id)
        return declared[1]()

    def _encode_value(self, key: str, value: Any) -> Any:
        declared = self._fields.get(key)
        if declared is None:
            return super()._encode_value(key, value)
        return declared[0].dump_python(value, mode="json")

    def decode(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Revive declared fields from JSON (datetimes, Decimals, models ...)."""
        state: dict[str, Any] = {}
        for key, value in data.items():
            declared = self._fields.get(key)
            state[key] = value if declared is None else declared[0].validate_python(value)
        return state


def codec_for(state_type: type[Any] | None) -> StateCodec:
    """Return the codec for a chart's ``state=`` option."""
    return JsonCodec() if state_type is None else TypedCodec(state_type)


def _fields_of(state_type: type[Any]) -> list[tuple[str, Any, Callable[[], Any] | None]]:
    """Return ``(name, annotation, default factory or None)`` for each declared field."""
    import dataclasses
    import typing

    if dataclasses.is_dataclass(state_type):
        hints = typing.get_type_hints(state_type)
        found: list[tuple[str, Any, Callable[[], Any] | None]] = []
        for f in dataclasses.fields(state_type):
            factory: Callable[[], Any] | None = None
            if f.default is not dataclasses.MISSING:
                factory = _constant(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                factory = f.default_factory
            found.append((f.name, hints.get(f.name, Any), factory))
        return found
    model_fields = getattr(state_type, "model_fields", None)
    if isinstance(model_fields, dict):
        from pydantic.fields import FieldInfo

        found = []
        for name, info in model_fields.items():
            assert isinstance(info, FieldInfo)
            factory = None
            if not info.is_required():
                factory = _pydantic_default(info)
            found.append((name, info.annotation, factory))
        return found
    raise TypeError(f"state type {state_type!r} is neither a dataclass nor a pydantic model")


def _constant(value: Any) -> Callable[[], Any]:
    def make() -> Any:
        return value

    return make


def _pydantic_default(info: Any) -> Callable[[], Any]:
    def make() -> Any:
        return info.get_default(call_default_factory=True)

    return make
