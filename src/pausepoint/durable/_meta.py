"""What ``Runs`` keeps on a run's record beside its checkpoint: one typed record.

The store keeps it as JSON (``StoredRun.meta``) and does not interpret it;
``Runs`` reads and writes it only through :class:`RunMeta`, so a misspelt key
is a type error, not a silent miss. ``v`` is its version: 1 (no ``v``) was
written by release 0.1, 2 adds ``segment`` and the answer's ``actor``, and
moves the cancel request to its own field of the record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["META_VERSION", "RecordedAnswer", "RunMeta"]

META_VERSION = 2


_OWN = frozenset(
    {"v", "input", "structure", "redact", "answer", "idempotency", "segment", "whole", "cancel"}
)
"""The keys :class:`RunMeta` reads itself (``cancel``: a request as release 0.1 kept it)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedAnswer:
    """The answer a claimed run was resumed with: applied again by whoever recovers it.

    Attributes:
        stage_id: The stage answered.
        pause_id: The pause answered.
        input: The answer as JSON, as given (not yet validated into a model).
        actor: Who answered.
    """

    stage_id: str
    pause_id: str
    input: Any
    actor: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunMeta:
    """A run's bookkeeping (see the module docstring).

    Attributes:
        input: The input the run started with (JSON).
        structure: The chart's structure when the run started, for compatibility rules.
        redact: The chart's redact keys, for readers without the chart.
        answer: The last answer given, once the run was resumed.
        idempotency: Idempotency keys used, each with the pause it answered.
        segment: The journal index where the current claim's steps begin.
        whole: The journal holds every step since the start (runs started by
            release 0.1 have steps only since their first resume after it).
        extra: Keys others keep there (an observer's trace context, say),
            written back as they were read.
    """

    input: Mapping[str, Any] = field(default_factory=dict)
    structure: Any = None
    redact: tuple[str, ...] | None = None
    answer: RecordedAnswer | None = None
    idempotency: Mapping[str, str] = field(default_factory=dict)
    segment: int = 0
    whole: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> RunMeta:
        """Read a record's ``meta`` (any version)."""
        answer = doc.get("answer")
        redact = doc.get("redact")
        return cls(
            input=doc.get("input", {}),
            structure=doc.get("structure"),
            redact=None if redact is None else tuple(redact),
            answer=None if not answer else RecordedAnswer(**answer),
            idempotency=doc.get("idempotency", {}),
            segment=int(doc.get("segment", 0)),
            whole=bool(doc.get("whole", False)),
            extra={k: v for k, v in doc.items() if k not in _OWN},
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON the store keeps."""
        doc: dict[str, Any] = {**self.extra, "v": META_VERSION, "input": self.input}
        if self.structure is not None:
            doc["structure"] = self.structure
        if self.redact is not None:
            doc["redact"] = list(self.redact)
        if self.answer is not None:
            doc["answer"] = dataclasses.asdict(self.answer)
        if self.idempotency:
            doc["idempotency"] = dict(self.idempotency)
        if self.segment:
            doc["segment"] = self.segment
        if self.whole:
            doc["whole"] = True
        return doc

    def replace(self, **changes: Any) -> RunMeta:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)
