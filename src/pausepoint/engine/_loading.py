"""Find charts named on a command line or in settings.

A *charts module* is an importable module with a ``charts`` dict mapping names
to built charts (``pausepoint.demo`` is one); without that dict, every
``FlowChart`` at its top level counts, under its attribute name. A single
chart is named ``module:attribute``.
"""

from __future__ import annotations

import importlib
import os
import sys

from .chart import FlowChart

__all__ = ["CHARTS_ENV", "STORE_ENV", "default_store_url", "load_chart", "load_charts"]

CHARTS_ENV = "PAUSEPOINT_CHARTS"
STORE_ENV = "PAUSEPOINT_STORE"
DEFAULT_STORE = "sqlite:///pausepoint.db"


def default_store_url() -> str:
    """The store URL from ``PAUSEPOINT_STORE``, else a SQLite file in the working directory."""
    return os.environ.get(STORE_ENV) or DEFAULT_STORE


def _import(module_name: str) -> object:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules beside the caller are found
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise LookupError(
                f"cannot import charts module {module_name!r}: no such module"
            ) from exc
        raise


def load_charts(spec: str) -> dict[str, FlowChart]:
    """Return the charts of a charts module (or of one ``module:attribute``).

    Raises:
        LookupError: The module or attribute does not exist, or holds no chart.
    """
    if ":" in spec:
        name, chart = load_chart(spec)
        return {name: chart}
    module = _import(spec)
    declared = getattr(module, "charts", None)
    if isinstance(declared, dict):
        found = {str(k): v for k, v in declared.items() if isinstance(v, FlowChart)}
    else:
        found = {k: v for k, v in vars(module).items() if isinstance(v, FlowChart)}
    if not found:
        raise LookupError(
            f"charts module {spec!r} has no charts: define `charts = {{'name': chart}}` in it"
        )
    return found


def load_chart(spec: str) -> tuple[str, FlowChart]:
    """Return ``(name, chart)`` for ``module:attribute``.

    Raises:
        LookupError: The module or attribute does not exist, or is not a chart.
    """
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise LookupError(f"{spec!r} names no chart: use module:attribute")
    chart = getattr(_import(module_name), attribute, None)
    if not isinstance(chart, FlowChart):
        raise LookupError(f"{spec!r} is not a built chart (call .build() on the builder)")
    return attribute, chart
