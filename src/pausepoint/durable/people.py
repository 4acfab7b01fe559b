"""People: who asks, which groups they are in, and who may answer a pause.

A pausable stage names who answers it with ``assignees=`` (people or groups,
or a function of the scope returning them). :func:`may_answer` is the one
rule every edge applies: the Python API (``Runs.resume(..., actor=, groups=)``),
the HTTP API and the CLI.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pausepoint.errors import PermissionDeniedError

if TYPE_CHECKING:
    from pausepoint.stores.base import PauseEntry

__all__ = ["ADMIN_GROUP", "Actor", "may_answer"]

ADMIN_GROUP = "admin"
"""Members of this group may answer every pause, whoever it is assigned to."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone who answers pauses: a name, and the groups they belong to.

    Attributes:
        name: Who they are; recorded in the audit (``"kim"``).
        groups: The groups they belong to (``{"managers", "finance"}``).
    """

    name: str
    groups: frozenset[str] = frozenset()

    def __init__(self, name: str, groups: Iterable[str] = ()) -> None:
        if not isinstance(name, str) or not name or ":" in name or "," in name:
            raise ValueError(
                f"an actor's name must be a non-empty str without ':' or ','; got {name!r}"
            )
        if isinstance(groups, str):
            raise ValueError(f"groups must be a list of names, e.g. groups=[{groups!r}]")
        names = frozenset(groups)
        if not all(isinstance(g, str) and g and ":" not in g and "," not in g for g in names):
            raise ValueError(
                f"group names must be non-empty strs without ':' or ','; got {sorted(names)!r}"
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "groups", names)

    @classmethod
    def parse(cls, text: str) -> Actor:
        """Read ``"kim"`` or ``"kim:managers,finance"``.

        Raises:
            ValueError: The text names no actor, or an empty group.
        """
        name, _, groups = text.strip().partition(":")
        return cls(name.strip(), [g.strip() for g in groups.split(",")] if groups else ())

    @property
    def principals(self) -> frozenset[str]:
        """The names a pause may be assigned to that mean this actor: theirs and their groups'."""
        return self.groups | {self.name}

    def __str__(self) -> str:
        return f"{self.name}:{','.join(sorted(self.groups))}" if self.groups else self.name


def may_answer(assignees: Collection[str], actor: str | None, groups: Collection[str] = ()) -> bool:
    """Tell whether ``actor`` (in ``groups``) may answer a pause assigned to ``assignees``.

    Anyone may answer an unassigned pause; otherwise the actor or one of their
    groups must be assigned, or they must be in the ``admin`` group.
    """
    if not assignees or ADMIN_GROUP in groups:
        return True
    return (actor is not None and actor in assignees) or any(g in assignees for g in groups)


def check_assignment(
    run_id: str, pause: PauseEntry, actor: str | None, groups: Collection[str]
) -> None:
    """Refuse an answer to ``pause`` by someone it is not assigned to.

    Raises:
        PermissionDeniedError: ``actor`` and ``groups`` are not among the pause's
            assignees, nor is ``admin`` among the groups.
    """
    if may_answer(pause.assignees, actor, groups):
        return
    who = actor or "an unnamed caller"
    if groups:
        who += f" (groups: {', '.join(sorted(groups))})"
    raise PermissionDeniedError(
        f"not assigned: stage {pause.stage_id!r} of run {run_id!r} is assigned to "
        f"{', '.join(pause.assignees)}; {who} may not answer it (the admin group may)",
        run_id=run_id,
        stage_id=pause.stage_id,
        actor=actor,
        assignees=pause.assignees,
    )
