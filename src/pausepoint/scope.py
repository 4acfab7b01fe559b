"""Scope: a stage's view of the shared state, with a log of what it read and wrote.

``scope.amount`` reads the state, ``scope.amount = 5`` writes it (checked by the
chart's codec, so a value that cannot live in a checkpoint is refused at once,
naming key and stage). ``scope["amount"]`` does the same for keys that are not
identifiers or that clash with the scope's own names.

Containers read from the state are the live values: change one in place and
the change is kept, but it is neither logged as a write nor checked until the
next checkpoint. Assign a new value to get both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import StateError

if TYPE_CHECKING:
    from .state import StateCodec

__all__ = ["RESERVED_NAMES", "LoopControl", "Scope"]


class LoopControl:
    """Carries a ``break_loop()`` request from a stage to the sequence that owns the loop."""

    __slots__ = ("requested",)

    def __init__(self) -> None:
        self.requested = False


class Scope:
    """Attribute access over the shared state, one instance per stage invocation.

    Reserved names (``break_loop``, ``get``, ``to_dict``, ``run_id``,
    ``stage_id``, ``run_input``) are the scope's own; use ``scope["get"]`` for a
    state key of that name. Keys starting with ``_`` are not allowed.
    """

    __slots__ = (
        "_codec",
        "_control",
        "_reads",
        "_run_id",
        "_run_input",
        "_stage",
        "_state",
        "_writes",
    )

    _state: dict[str, Any]
    _codec: StateCodec
    _stage: str
    _reads: list[str]
    _writes: list[str]
    _control: LoopControl
    _run_id: str
    _run_input: dict[str, Any]

    def __init__(
        self,
        state: dict[str, Any],
        codec: StateCodec,
        stage_id: str,
        control: LoopControl,
        run_id: str,
        run_input: dict[str, Any],
    ) -> None:
        setter = object.__setattr__
        setter(self, "_state", state)
        setter(self, "_codec", codec)
        setter(self, "_stage", stage_id)
        setter(self, "_reads", [])
        setter(self, "_writes", [])
        setter(self, "_control", control)
        setter(self, "_run_id", run_id)
        setter(self, "_run_input", run_input)

    def __getattr__(self, key: str) -> Any:
        if key[:1] == "_":
            raise AttributeError(key)
        return self[key]

    def __setattr__(self, key: str, value: Any) -> None:
        if key in RESERVED_NAMES:
            raise StateError(
                f"stage {self._stage!r} assigned scope.{key}, a name the scope reserves; "
                f"write scope[{key!r}] instead",
                key=key,
                stage_id=self._stage,
            )
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __getitem__(self, key: str) -> Any:
        state = self._state
        if key in state:
            value = state[key]
        else:
            value = self._codec.default(key, self._stage)
            state[key] = value
        self._reads.append(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if key[:1] == "_":
            raise StateError(
                f"stage {self._stage!r} wrote {key!r}: keys starting with '_' are reserved",
                key=key,
                stage_id=self._stage,
            )
        self._state[key] = self._codec.check(key, value, self._stage)
        self._writes.append(key)

    def __delitem__(self, key: str) -> None:
        self._state.pop(key, None)
        self._writes.append(key)

    def __contains__(self, key: object) -> bool:
        return key in self._state

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._state))

    def __dir__(self) -> list[str]:
        return sorted({*RESERVED_NAMES, *self._state})

    def __repr__(self) -> str:
        return f"<Scope stage={self._stage!r} keys={sorted(self._state)}>"

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` if it was never written."""
        if key in self._state:
            self._reads.append(key)
            return self._state[key]
        return default

    def to_dict(self) -> dict[str, Any]:
        """Return a shallow copy of the whole state (not logged as reads)."""
        return dict(self._state)

    def break_loop(self) -> None:
        """Leave the enclosing loop once this stage has finished; its writes are kept."""
        self._control.requested = True

    @property
    def run_id(self) -> str:
        """The run's id, the same across every resume."""
        return self._run_id

    @property
    def stage_id(self) -> str:
        """The running stage's path (``payment/approve`` inside a subflow)."""
        return self._stage

    @property
    def run_input(self) -> dict[str, Any]:
        """A copy of the input the run was started with (kept across resumes)."""
        return dict(self._run_input)


RESERVED_NAMES = frozenset({"break_loop", "get", "to_dict", "run_id", "stage_id", "run_input"})
