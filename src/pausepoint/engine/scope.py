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

from pausepoint.errors import StateError

if TYPE_CHECKING:
    from .state import StateCodec
    from .trace import Evidence

__all__ = [
    "RESERVED_NAMES",
    "LoopControl",
    "Scope",
    "access_log",
    "detach",
    "evidence_of",
    "set_evidence",
]


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

    # Everything the scope knows sits in one list, read with one lookup: with
    # __getattribute__ and __setattr__ both taken by the state, each separate
    # internal attribute would cost a Python-level call (see bench/).
    __slots__ = ("_ctx",)

    def __init__(
        self,
        state: dict[str, Any],
        codec: StateCodec,
        stage_id: str,
        control: LoopControl,
        run_id: str,
        run_input: dict[str, Any],
    ) -> None:
        _set_ctx(self, [state, codec, stage_id, [], [], control, run_id, run_input, None, None])

    def __getattribute__(self, key: str) -> Any:
        # State keys are looked up first-hand rather than through __getattr__:
        # on a slotted class the failed normal lookup before __getattr__ costs
        # more than a typical stage (see bench/).
        if key[0] == "_" or key in RESERVED_NAMES:
            return _own(self, key)
        ctx = _own(self, "_ctx")
        state = ctx[_STATE]
        try:
            value = state[key]
        except KeyError:
            value = ctx[_CODEC].default(key, ctx[_STAGE])
            state[key] = value
        ctx[_READS].append(key)
        return value

    def __setattr__(self, key: str, value: Any) -> None:
        ctx = _own(self, "_ctx")
        if key in RESERVED_NAMES or key[0] == "_":
            self._refuse(key, ctx[_STAGE])
        codec = ctx[_CODEC]
        if codec.plain and type(value) in _PLAIN:
            ctx[_STATE][key] = value
        else:
            ctx[_STATE][key] = codec.check(key, value, ctx[_STAGE])
        ctx[_WRITES].append(key)

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __getitem__(self, key: str) -> Any:
        ctx = _own(self, "_ctx")
        state = ctx[_STATE]
        if key in state:
            value = state[key]
        else:
            value = ctx[_CODEC].default(key, ctx[_STAGE])
            state[key] = value
        ctx[_READS].append(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        ctx = _own(self, "_ctx")
        if key[:1] == "_":
            self._refuse(key, ctx[_STAGE])
        ctx[_STATE][key] = ctx[_CODEC].check(key, value, ctx[_STAGE])
        ctx[_WRITES].append(key)

    def __delitem__(self, key: str) -> None:
        ctx = _own(self, "_ctx")
        ctx[_STATE].pop(key, None)
        ctx[_WRITES].append(key)

    def __contains__(self, key: object) -> bool:
        return key in _own(self, "_ctx")[_STATE]

    def __iter__(self) -> Iterator[str]:
        return iter(list(_own(self, "_ctx")[_STATE]))

    def __dir__(self) -> list[str]:
        return sorted({*RESERVED_NAMES, *_own(self, "_ctx")[_STATE]})

    def __repr__(self) -> str:
        ctx = _own(self, "_ctx")
        return f"<Scope stage={ctx[_STAGE]!r} keys={sorted(ctx[_STATE])}>"

    @staticmethod
    def _refuse(key: str, stage_id: str) -> None:
        if key in RESERVED_NAMES:
            raise StateError(
                f"stage {stage_id!r} assigned scope.{key}, a name the scope reserves; "
                f"write scope[{key!r}] instead",
                key=key,
                stage_id=stage_id,
            )
        raise StateError(
            f"stage {stage_id!r} wrote {key!r}: keys starting with '_' are reserved",
            key=key,
            stage_id=stage_id,
        )

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` if it was never written."""
        ctx = _own(self, "_ctx")
        state = ctx[_STATE]
        if key in state:
            ctx[_READS].append(key)
            return state[key]
        return default

    def to_dict(self) -> dict[str, Any]:
        """Return a shallow copy of the whole state (not logged as reads)."""
        return dict(_own(self, "_ctx")[_STATE])

    def narrate(self, text: str) -> None:
        """Add a sentence of your own to the narrative, as ``Stage: text``.

        For what the reads and writes cannot say: what a model answered, which
        tool was called with what. Shown as given: keep secrets out of it.
        """
        ctx = _own(self, "_ctx")
        if ctx[_NOTES] is None:
            ctx[_NOTES] = []
        ctx[_NOTES].append(str(text))

    def break_loop(self) -> None:
        """Leave the enclosing loop once this stage has finished; its writes are kept."""
        _own(self, "_ctx")[_CONTROL].requested = True

    @property
    def run_id(self) -> str:
        """The run's id, the same across every resume."""
        run_id: str = _own(self, "_ctx")[_RUN_ID]
        return run_id

    @property
    def stage_id(self) -> str:
        """The running stage's path (``payment/approve`` inside a subflow)."""
        stage_id: str = _own(self, "_ctx")[_STAGE]
        return stage_id

    @property
    def run_input(self) -> dict[str, Any]:
        """A copy of the input the run was started with (kept across resumes)."""
        return dict(_own(self, "_ctx")[_RUN_INPUT])


RESERVED_NAMES = frozenset(
    {"break_loop", "get", "narrate", "to_dict", "run_id", "stage_id", "run_input"}
)

_STATE, _CODEC, _STAGE, _READS, _WRITES, _CONTROL, _RUN_ID, _RUN_INPUT, _EVIDENCE, _NOTES = range(
    10
)
_PLAIN = frozenset({str, int, bool, type(None)})  # JSON as they are; floats go through the check
_own = object.__getattribute__
_set_ctx = Scope._ctx.__set__  # type: ignore[attr-defined]  # the slot's own setter


def access_log(scope: Scope) -> tuple[list[str], list[str], list[str] | None]:
    """Return the keys a scope read and wrote so far (with repeats), and its notes."""
    ctx = _own(scope, "_ctx")
    return ctx[_READS], ctx[_WRITES], ctx[_NOTES]


def set_evidence(scope: Scope, evidence: Evidence) -> None:
    """Keep why a decider or selector chose, for the executor to put in the tree."""
    _own(scope, "_ctx")[_EVIDENCE] = evidence


def evidence_of(scope: Scope) -> Evidence | None:
    """Return what :func:`set_evidence` kept on this scope, if anything."""
    evidence: Evidence | None = _own(scope, "_ctx")[_EVIDENCE]
    return evidence


def detach(scope: Scope) -> None:
    """Cut an abandoned stage's scope off the state: its later writes go nowhere.

    Used when a sync stage outlives its time limit in a worker thread that
    cannot be stopped. Containers it already read stay shared.
    """
    ctx = _own(scope, "_ctx")
    ctx[_STATE] = {}
    ctx[_READS] = []
    ctx[_WRITES] = []
