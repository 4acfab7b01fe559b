"""The durable floor: the plain-Python refund logic, its JSON in one row per run.

A pause is the plain logic up to the pause (:mod:`bench.plain`), then one
``INSERT`` of ``json.dumps({"stage", "state", "pause_data"})``, committed. A
resume is one ``SELECT`` of that JSON, ``json.loads``, the rest of the logic,
then one ``UPDATE ... WHERE run_id = ? AND status = 'paused'`` (the least that
stops a second resume), committed. Every statement is its own transaction
(autocommit); the JSON is a text column. No audit, no progress, no lease.

SQLite: the stdlib ``sqlite3`` on a file in WAL mode with the default
``synchronous`` (FULL), as pausepoint's store and LangGraph's SqliteSaver run it.
PostgreSQL: psycopg 3, one connection, default settings.

The inbox of the floor is one partial index on the paused rows, newest first,
paged by ``(created_at, run_id)`` like pausepoint's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from . import plain
from .harness import Case
from .scenarios import REFUND_FINAL_STATUS, REFUND_QUESTION, expect

_TABLE = (
    "CREATE TABLE floor_runs (run_id TEXT PRIMARY KEY, chart TEXT NOT NULL, "
    "status TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL)",
    "CREATE INDEX floor_inbox ON floor_runs (created_at, run_id) WHERE status = 'paused'",
    "CREATE INDEX floor_inbox_chart ON floor_runs (chart, created_at, run_id) "
    "WHERE status = 'paused'",
)
_INSERT = (
    "INSERT INTO floor_runs (run_id, chart, status, created_at, state) "
    "VALUES (%s, %s, 'paused', %s, %s)"
)
_SELECT = "SELECT state FROM floor_runs WHERE run_id = %s"
_UPDATE = (
    "UPDATE floor_runs SET status = 'completed', state = %s WHERE run_id = %s AND status = 'paused'"
)
_PAGE = "SELECT run_id, chart, created_at, state FROM floor_runs WHERE status = 'paused'"
_ORDER = " ORDER BY created_at DESC, run_id DESC LIMIT %s"


class Floor:
    """One connection and the floor's statements in its driver's placeholder style."""

    def __init__(self, conn: Any, placeholder: str, label: str) -> None:
        self.conn = conn
        self.label = label
        self._mark = placeholder
        for statement in _TABLE:
            conn.execute(statement)

    @classmethod
    def sqlite(cls, path: Path, synchronous: str = "FULL") -> Floor:
        conn = sqlite3.connect(path, isolation_level=None)  # autocommit
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        return cls(conn, "?", "sqlite3")

    @classmethod
    def postgres(cls, conn: Any) -> Floor:
        return cls(conn, "%s", "psycopg")

    def close(self) -> None:
        self.conn.close()

    def _sql(self, template: str) -> str:
        return template.replace("%s", self._mark)

    # -- one run --------------------------------------------------------------

    def pause(self, chart: str = "refund") -> str:
        """Run to the pause and insert the run; return its id."""
        run_id = os.urandom(16).hex()
        saved = plain._run_to_pause()
        self.conn.execute(self._sql(_INSERT), (run_id, chart, time.time(), saved))
        return run_id

    def resume(self, run_id: str) -> dict[str, Any]:
        """Read the run, finish it, mark it completed; return the final state."""
        (saved,) = self.conn.execute(self._sql(_SELECT), (run_id,)).fetchone()
        state = plain._resume(saved)
        done = self.conn.execute(
            self._sql(_UPDATE), (json.dumps({"stage": None, "state": state}), run_id)
        )
        if done.rowcount != 1:
            raise RuntimeError(f"floor run {run_id} was not paused")
        return state

    def pause_case(self) -> Case:
        expect(self.resume(self.pause())["status"] == REFUND_FINAL_STATUS, "the floor completes")
        return Case(self.pause)

    def resume_case(self) -> Case:
        return Case(self.resume, prepare=lambda k: [self.pause() for _ in range(k)])

    # -- the inbox --------------------------------------------------------------

    def page(
        self, limit: int = 50, chart: str | None = None, cursor: tuple[float, str] | None = None
    ) -> tuple[list[dict[str, Any]], tuple[float, str] | None]:
        """One inbox page (run, chart, created, pause data) and the cursor of the next one."""
        sql, params = _PAGE, list[Any]()
        if chart is not None:
            sql += " AND chart = %s"
            params.append(chart)
        if cursor is not None:
            sql += " AND (created_at, run_id) < (%s, %s)"
            params.extend(cursor)
        rows = self.conn.execute(self._sql(sql + _ORDER), (*params, limit + 1)).fetchall()
        items = [
            {
                "run_id": run_id,
                "chart": chart_name,
                "created_at": created_at,
                "data": json.loads(state)["pause_data"],
            }
            for run_id, chart_name, created_at, state in rows[:limit]
        ]
        more = len(rows) > limit
        return items, ((items[-1]["created_at"], items[-1]["run_id"]) if more else None)

    def first_page_case(self) -> Case:
        items, _ = self.page()
        expect(items[0]["data"]["question"] == REFUND_QUESTION, "the floor's inbox shows pauses")
        return Case(self.page)

    def all_of(self, chart: str) -> int:
        """Page through every paused run of ``chart``; return how many there are."""
        count, cursor = 0, None
        while True:
            items, cursor = self.page(chart=chart, cursor=cursor)
            count += len(items)
            if cursor is None:
                return count
