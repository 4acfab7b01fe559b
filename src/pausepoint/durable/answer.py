"""One answer to a pause: what is answered, by whom, to which pause.

Every way in builds one :class:`Answer` and hands it on unchanged: the Python
API (:meth:`Runs.resume <pausepoint.Runs.resume>` is its keyword form,
:meth:`Runs.answer <pausepoint.Runs.answer>` takes it whole), the HTTP API, the
Celery dispatcher and its workers (:meth:`Answer.to_json` / :meth:`Answer.from_json`
are the message) and the command line.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """A person's (or a system's) answer to a pause.

    Attributes:
        input: The answer itself; validated against the stage's ``input_schema``.
        actor: Who answers (recorded in the audit).
        groups: The groups ``actor`` belongs to, kept as a frozenset. With an actor or groups, the
            pause's assignees are checked; an answer naming neither comes from
            trusted code and is not.
        pause_id: The pause answered; refused as stale if no longer pending.
        stage_id: Alternatively, the paused stage answered.
        idempotency_key: Answering again with the same key returns the first outcome.
    """

    input: Any
    actor: str | None = None
    groups: Collection[str] | None = None
    pause_id: str | None = None
    stage_id: str | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        groups = self.groups
        if groups is not None and not isinstance(groups, frozenset):
            if isinstance(groups, str):
                raise TypeError(f"groups must be a list of names, e.g. groups=[{groups!r}]")
            object.__setattr__(self, "groups", frozenset(groups))

    def to_json(self) -> dict[str, Any]:
        """The answer as JSON (a worker's message): ``input`` as JSON, ``groups`` sorted."""
        value = self.input
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        doc: dict[str, Any] = {
            "input": value,
            "actor": self.actor,
            "pause_id": self.pause_id,
            "idempotency_key": self.idempotency_key,
            "stage_id": self.stage_id,
        }
        if self.groups is not None:  # only then: workers of an older release take no groups
            doc["groups"] = sorted(self.groups)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Answer:
        """The answer :meth:`to_json` wrote."""
        groups = doc.get("groups")
        return cls(
            input=doc.get("input"),
            actor=doc.get("actor"),
            groups=groups,
            pause_id=doc.get("pause_id"),
            stage_id=doc.get("stage_id"),
            idempotency_key=doc.get("idempotency_key"),
        )
