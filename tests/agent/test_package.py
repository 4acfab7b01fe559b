"""The agent package stays out of the way of ``import pausepoint``."""

from __future__ import annotations

import subprocess
import sys


def test_import_pausepoint_does_not_load_the_agent() -> None:
    """``import pausepoint`` loads neither pausepoint.agent nor httpx."""
    code = (
        "import sys, pausepoint; pausepoint.FlowChartExecutor; "
        "print(sorted(m for m in ('pausepoint.agent', 'httpx') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_agent_loads_httpx_only_to_call_a_model() -> None:
    """``import pausepoint.agent`` needs pydantic only; httpx is imported by the OpenAI adapter."""
    code = "import sys, pausepoint.agent; print('httpx' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
