"""What the command line imports before it knows which command runs."""

from __future__ import annotations

import subprocess
import sys


def test_loading_the_commands_imports_no_renderer_chart_or_framework() -> None:
    """``import pausepoint.cli`` loads neither rich, pydantic, the server nor a driver.

    A scripted ``pausepoint resume --json`` from a fresh process pays only for
    what that command uses; rich is loaded when a command prints for a person.
    """
    code = (
        "import sys, pausepoint.cli\n"
        "heavy = {'rich', 'pydantic', 'fastapi', 'uvicorn', 'celery', 'psycopg', 'redis'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
