"""Old module paths of moved modules, kept importable for a deprecation period.

After release 0.1 the flat modules were grouped into ``pausepoint.engine`` (build, run,
pause, resume; no I/O) and ``pausepoint.durable`` (runs over a store). The
public API did not move: ``from pausepoint import ...`` is unchanged, as are
``pausepoint.compat``, ``pausepoint.stores``, ``pausepoint.server``,
``pausepoint.celery`` and ``pausepoint.agent``. Code that imported a module by
its old path (``from pausepoint.runs import Retention``) still works: the old
path names the very module at the new path (same classes, same state), and the
import warns with a ``DeprecationWarning`` naming the new path.
"""

from __future__ import annotations

import sys
import warnings
from importlib import import_module
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = ["MOVED", "install_moved_modules"]

MOVED: dict[str, str] = {
    **{
        f"pausepoint.{name}": f"pausepoint.engine.{name}"
        for name in (
            "builder",
            "chart",
            "checkpoint",
            "contracts",
            "executor",
            "rules",
            "scope",
            "state",
            "trace",
        )
    },
    **{f"pausepoint.{name}": f"pausepoint.durable.{name}" for name in ("answer", "people", "runs")},
}
"""Old public module path → where the module lives now."""


class _MovedModuleFinder:
    """Finds an old module path and hands back the module at its new path."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(fullname, cast("Loader", _MovedModuleLoader(new)))


class _MovedModuleLoader:
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new}; import from there, or its public names "
            "from pausepoint itself",
            DeprecationWarning,
            stacklevel=2,  # the importing code: warnings skips importlib's own frames
        )
        return import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module at the new path is already loaded."""


def install_moved_modules() -> None:
    """Let the old paths of moved modules be imported (once per process)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
