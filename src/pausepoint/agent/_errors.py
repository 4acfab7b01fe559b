"""The agent's errors, under :class:`~pausepoint.errors.PausepointError` like every other.

::

    PausepointError
    ├── ChartError
    │   └── AgentSetupError        a tool or an agent is wired wrong (raised when defined)
    └── AgentError                 something went wrong while the agent ran
        ├── ModelError             the model could not be asked, or answered nonsense
        │   └── ScriptExhaustedError   a ScriptedModel ran out of replies
        ├── ToolCallError          the model called a tool wrongly (told to the model)
        └── AgentTurnLimitError    the model still wanted tools after max_turns calls

Inside a run, an error a stage raises reaches the caller as ``StageError`` with
the agent error as its ``__cause__`` (the executor wraps what stages raise).
``ToolCallError`` never fails a run: its message goes back to the model as the
tool's result, so the model can correct the call.
"""

from __future__ import annotations

from pausepoint.errors import ChartError, PausepointError

__all__ = [
    "AgentError",
    "AgentSetupError",
    "AgentTurnLimitError",
    "ModelError",
    "ScriptExhaustedError",
    "ToolCallError",
]


class AgentSetupError(ChartError):
    """A tool or an agent chart is defined wrongly: bad tool name, duplicate tool, bad signature."""


class AgentError(PausepointError):
    """Base of the errors an agent raises while it runs."""


class ModelError(AgentError):
    """The model could not be reached, failed, timed out, or replied in a shape not understood.

    Attributes:
        status_code: The HTTP status of the failed request, when there was one.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ScriptExhaustedError(ModelError):
    """A :class:`~pausepoint.agent.ScriptedModel` was asked for more replies than it holds."""


class ToolCallError(AgentError):
    """The model called a tool that does not exist, or with arguments that do not fit.

    Its message is written for the model: the agent sends it back as the tool's
    result instead of failing the run.

    Attributes:
        tool: The tool name the model used.
    """

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class AgentTurnLimitError(AgentError):
    """The model asked for tools in its ``max_turns``-th reply: the agent gives up.

    Attributes:
        max_turns: The limit that was reached.
    """

    def __init__(self, message: str, *, max_turns: int) -> None:
        super().__init__(message)
        self.max_turns = max_turns
