"""The public surface is a decision: this test pins it."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import pausepoint
from pausepoint._moved import MOVED

EXPECTED = {
    # people (who answers, and their answer)
    "Actor",
    "Answer",
    # building and running
    "flow_chart",
    "FlowChartBuilder",
    "FlowChart",
    "PausableHandler",
    "OnTimeout",
    "Retry",
    "Scope",
    # decisions
    "When",
    "decide",
    "select",
    "FlowChartExecutor",
    "Checkpoint",
    "Snapshot",
    # durable runs
    "Runs",
    "RunRecord",
    "Step",
    "Durability",
    "RunList",
    "RunSummary",
    "BatchItem",
    "BatchResult",
    "SweepReport",
    "open_store",
    # errors
    "PausepointError",
    "PermissionDeniedError",
    "ChartError",
    "StageError",
    "StageTimeoutError",
    "LoopLimitError",
    "StateError",
    "StateKeyError",
    "StateValueError",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointVersionError",
    "CheckpointSignatureError",
    "CheckpointFinishedError",
    "ClaimLostError",
    "RunStateError",
    "StepNotFoundError",
    "ChartMismatchError",
    "ChartChangedError",
    "ChartNotFoundError",
    "ResumeTargetError",
    "RunInputError",
    "RunOutputError",
    "RunTimeoutError",
    "ResumeInputError",
    "ExecutorUsageError",
    "RunError",
    "RunNotFoundError",
    "RunExistsError",
    "RunAlreadyClaimedError",
    "RunNotPausedError",
    "StalePauseError",
    "RunIsRunningError",
    "PurgeRefusedError",
    "EncryptionKeyError",
    "MixedBatchError",
    "NoWaiterError",
    "SignalBufferFullError",
    "StoreError",
    "StoreUnavailableError",
    "TokenFormatError",
    "UnknownAssigneeError",
    "VersionConflictError",
    "NotifyURLError",
    "WebhookSignatureError",
}


def test_all_is_pinned() -> None:
    """__all__ lists exactly the agreed names, and each resolves."""
    assert set(pausepoint.__all__) == EXPECTED
    for name in pausepoint.__all__:
        assert getattr(pausepoint, name) is not None


def test_every_error_derives_from_pausepoint_error() -> None:
    """One `except PausepointError` catches every error the library raises."""
    for name in pausepoint.__all__:
        value = getattr(pausepoint, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, pausepoint.PausepointError), name


def test_import_stays_light() -> None:
    """`import pausepoint` and the core names load no driver, web framework or pydantic."""
    code = (
        "import sys, pausepoint\n"
        "from pausepoint import flow_chart, FlowChartExecutor, PausableHandler\n"
        "heavy = {'redis', 'psycopg', 'fastapi', 'celery', 'pydantic', 'asyncio', 'sqlite3'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runs_load_no_observability_extra() -> None:
    """Driving a run through Runs imports neither OpenTelemetry nor prometheus-client."""
    code = (
        "import asyncio, sys\n"
        "from pausepoint import Runs, open_store\n"
        "from pausepoint.demo import charts\n"
        "async def main():\n"
        "    async with Runs(open_store('memory://'), charts) as runs:\n"
        "        record = await runs.start('refund', {'amount': 900})\n"
        "        await runs.resume(record.run_id, {'approved': True, 'approver': 'kim'})\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'prometheus'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A typo gives the usual AttributeError."""
    with pytest.raises(AttributeError, match="flowchart"):
        pausepoint.flowchart  # noqa: B018


def _type_checking_imports() -> dict[str, set[str]]:
    """The names ``pausepoint/__init__.py`` imports for type checkers, by module."""
    tree = ast.parse(Path(pausepoint.__file__).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    found: dict[str, set[str]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.unparse(node)
        assert node.level == 1
        assert node.module is not None
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name} must be re-exported as itself"
            found.setdefault(node.module, set()).add(alias.name)
    return found


def test_type_checkers_see_the_same_names() -> None:
    """The import block type checkers read names exactly the exports, from the same modules."""
    exports = {module: set(names) for module, names in pausepoint._EXPORTS.items()}
    assert _type_checking_imports() == exports


def test_each_export_is_defined_where_the_list_says() -> None:
    """A name is listed under the module that defines it, not one that re-exports it."""
    for module, names in pausepoint._EXPORTS.items():
        for name in names:
            value = getattr(pausepoint, name)
            if isinstance(value, type) or inspect.isfunction(value):  # aliases have no home
                assert value.__module__ == f"pausepoint.{module}", name


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_is_the_moved_module_with_a_warning(old: str) -> None:
    """``import pausepoint.runs`` (say) still works, warns, and is the module at its new path."""
    new = MOVED[old]
    code = (
        "import sys, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    import {old} as old\n"
        f"assert old is sys.modules[{new!r}], old\n"
        "assert [w.category.__name__ for w in caught] == ['DeprecationWarning'], caught\n"
        f"assert {new!r} in str(caught[0].message), caught[0].message\n"
        "assert caught[0].filename == '<string>', caught[0].filename  # the importing code\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_OUTER = ("pausepoint.durable", "pausepoint.stores", "pausepoint.server", "pausepoint.cli")
_OUTER += ("pausepoint.celery", "pausepoint.agent", "pausepoint.otel", "pausepoint.metrics")


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports (type-checking imports included), made absolute."""
    package = "pausepoint." + ".".join(path.relative_to(SRC).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                found.add(node.module or "")
    return found


SRC = Path(pausepoint.__file__).parent


@pytest.mark.parametrize("path", sorted((SRC / "engine").glob("*.py")), ids=lambda path: path.name)
def test_the_engine_imports_no_outer_layer(path: Path) -> None:
    """engine/ builds, runs, pauses and resumes without stores, durable runs or the edges."""
    outer = {name for name in _imported(path) if name.startswith(_OUTER)}
    assert not outer, f"{path.name} imports {sorted(outer)}"


@pytest.mark.parametrize("path", sorted((SRC / "durable").glob("*.py")), ids=lambda path: path.name)
def test_durable_runs_import_no_edge(path: Path) -> None:
    """durable/ builds on the engine and the stores, never on the server, CLI or workers."""
    edges = ("pausepoint.server", "pausepoint.cli", "pausepoint.celery", "pausepoint.agent")
    outer = {name for name in _imported(path) if name.startswith(edges)}
    assert not outer, f"{path.name} imports {sorted(outer)}"
