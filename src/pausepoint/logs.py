"""Log lines that say which run, chart and stage they are about, through stdlib ``logging``.

While ``Runs`` drives a run, the run's id and chart, and the stage running, sit
in context variables (:data:`LOG_CONTEXT` follows every segment). Any log
record made meanwhile, by pausepoint or by a stage's own code, can carry them:

* :class:`RunContextFilter` copies them onto each record as ``run_id``,
  ``chart`` and ``stage`` (``None`` outside a run) — add it to a handler of
  your own setup and use ``%(run_id)s`` in your format;
* :class:`JSONFormatter` writes one JSON object per line with those fields;
* :func:`configure_logging` installs both (or a text formatter) on the root
  logger, for ``pausepoint serve``, ``worker`` and ``sweep --log-format``.

A library never configures logging by itself: nothing here runs unless the
application, or a ``pausepoint`` command, asks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Literal

from .durable._observe import RunObserver, Segment, SegmentKind
from .engine.trace import TreeNode
from .stores.base import StoredRun

__all__ = [
    "LOG_CONTEXT",
    "JSONFormatter",
    "LogFormat",
    "RunContextFilter",
    "TextFormatter",
    "configure_logging",
    "run_context",
]

LogFormat = Literal["json", "text"]

_RUN: ContextVar[tuple[str, str] | None] = ContextVar("pausepoint_run", default=None)
_STAGE: ContextVar[str | None] = ContextVar("pausepoint_stage", default=None)

CONTEXT_FIELDS = ("run_id", "chart", "stage")
"""The attributes :class:`RunContextFilter` sets on every record."""


@contextlib.contextmanager
def run_context(run_id: str, chart: str | None = None) -> Iterator[None]:
    """Mark the log lines made inside the block as about ``run_id`` (and ``chart``)."""
    token = _RUN.set((run_id, chart or ""))
    try:
        yield
    finally:
        _RUN.reset(token)


class RunContextFilter(logging.Filter):
    """Set ``run_id``, ``chart`` and ``stage`` on every record that has not set them itself.

    Values passed with ``extra={"run_id": ...}`` win; outside a run they are ``None``.
    """

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        global _stages_wanted
        _stages_wanted = True  # from now on, runs put their stage in context too

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the three attributes; never drop a record."""
        run = _RUN.get()
        if getattr(record, "run_id", None) is None:
            record.run_id = run[0] if run is not None else None
        if getattr(record, "chart", None) is None:
            record.chart = run[1] or None if run is not None else None
        if getattr(record, "stage", None) is None:
            record.stage = _STAGE.get()
        return True


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, run_id, chart, stage, extras.

    Values given with ``extra=`` are kept (as strings when not JSON); an
    exception's traceback goes under ``exc_info``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            entry[field] = getattr(record, field, None)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message`` followed by ``run_id=… chart=… stage=…`` when set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Return the usual line with the run context appended."""
        line = super().format(record)
        context = " ".join(
            f"{field}={value}"
            for field in CONTEXT_FIELDS
            if (value := getattr(record, field, None)) is not None
        )
        if not context:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the first line
        return f"{head} [{context}]{newline}{rest}"


def configure_logging(
    log_format: LogFormat | str = "text", level: int | str = logging.INFO
) -> None:
    """Send every log record to stderr as ``log_format`` lines, with run context.

    Replaces the root logger's handlers (what a command line wants; an
    application with its own setup adds :class:`RunContextFilter` to its
    handlers instead).

    Args:
        log_format: ``"json"`` (one object per line) or ``"text"``.
        level: The root logger's level.

    Raises:
        ValueError: Another format was asked for.
    """
    if log_format not in ("json", "text"):
        raise ValueError(f"log format must be 'json' or 'text', not {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RunContextFilter())
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class _LogSegment(Segment):
    """Puts the run in context for the segment."""

    def __enter__(self) -> Segment:
        self._token = _RUN.set((self.record.run_id, self.record.chart))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _RUN.reset(self._token)


class _LogStageSegment(_LogSegment):
    """Also puts each stage in context while it runs."""

    watches_stages = True

    def stage_started(self, stage_id: str) -> Token[str | None]:
        return _STAGE.set(stage_id)

    def stage_ended(self, handle: Any, node: TreeNode, error: BaseException | None) -> None:
        _STAGE.reset(handle)


_stages_wanted = False
"""Whether a :class:`RunContextFilter` exists; until one does, no stage pays for its context."""


class _LogContext(RunObserver):
    def segment(self, record: StoredRun, kind: SegmentKind) -> Segment:
        return (_LogStageSegment if _stages_wanted else _LogSegment)(record, kind)


LOG_CONTEXT: RunObserver = _LogContext()
"""Follows every segment of every ``Runs``, so log lines made during a run name it."""
