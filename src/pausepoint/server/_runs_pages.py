"""Every run (``/runs``), and what a signed-in person may do on a run's page.

``/runs`` without a status shows one section per status, in the order people
look at them: failed, running, paused, completed, cancelled, expired. Each
section is the first page of :meth:`Runs.list <pausepoint.Runs.list>` for that
status (one indexed read each) and links to the status's own view, which pages
on with cursors. Filters (chart, stage, age) apply to every section.

A search is a run id (an exact look-up, which opens the run) or words of a
question: the questions of the newest :data:`SEARCH_SCAN` waiting pauses are
matched, not older ones, nor the questions of runs that no longer wait.

The run page's actions, cancel (with a reason), retry, fork from a step of its
history (with a state patch), go through the same ``Runs`` calls as the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from pausepoint.durable.records import RunSummary
from pausepoint.durable.runs import RunRecord, Runs, Step
from pausepoint.engine.chart import FlowChart, chart_path
from pausepoint.errors import (
    ChartChangedError,
    PausepointError,
    RunAlreadyClaimedError,
    RunNotFoundError,
    RunNotPausedError,
    RunStateError,
    StateError,
    StepNotFoundError,
)

from ._diagram import chart_svg
from ._page_tools import PageHost, Posted, read_post
from ._templates import render
from ._views import question_of, run_view

__all__ = ["SEARCH_SCAN", "STATUS_ORDER", "run_extras", "runs_pages_router"]

STATUS_ORDER: tuple[str, ...] = ("failed", "running", "paused", "completed", "cancelled", "expired")
"""The order of the sections of ``/runs``: what needs a person first."""

SEARCH_SCAN = 2000
"""How many of the newest waiting pauses a question search reads, at most."""

SECTION_SIZE = 10
PAGE_SIZE = 50
AGES: dict[str, tuple[str, timedelta | None]] = {
    "": ("any time", None),
    "1h": ("over an hour ago", timedelta(hours=1)),
    "1d": ("over a day ago", timedelta(days=1)),
    "7d": ("over a week ago", timedelta(days=7)),
    "30d": ("over 30 days ago", timedelta(days=30)),
}
_DID = {
    "cancelled": "The run was cancelled.",
    "cancel_requested": "A cancel was requested: the run stops before its next stage.",
    "retried": "The run was retried from the stage that failed.",
    "forked": "This run was forked; the original is untouched.",
    "started": "The run was started.",
}


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run as a row of ``/runs``."""

    run: RunSummary
    stage_name: str | None
    question: str | None


@dataclass(frozen=True, slots=True)
class Section:
    """The runs of one status (or of a search)."""

    status: str
    rows: Sequence[RunRow]
    next_cursor: str | None


def _stage_name(runs: Runs, chart: str, stage_id: str | None) -> str | None:
    if stage_id is None:
        return None
    flow = runs.charts.get(chart)
    node = flow.find_stage(stage_id) if flow is not None else None
    return node.name if node is not None else stage_id


def _row(runs: Runs, run: RunSummary) -> RunRow:
    question = question_of(run.pauses[0].data) if run.pauses else None
    return RunRow(run, _stage_name(runs, run.chart, run.stage), question)


async def search_questions(
    runs: Runs,
    text: str,
    *,
    chart: str | None,
    stage: str | None,
    older_than: timedelta | None,
) -> tuple[list[RunRow], bool]:
    """Find waiting runs whose question holds ``text`` (any case).

    Reads the newest :data:`SEARCH_SCAN` pauses at most. Returns the rows and
    whether the scan stopped at that bound (older pauses were not searched).
    """
    wanted = text.casefold()
    rows: list[RunRow] = []
    seen: set[str] = set()
    read = 0
    cursor = None
    while read < SEARCH_SCAN:
        page = await runs.pending(
            chart=chart,
            stage=stage,
            older_than=older_than,
            limit=min(500, SEARCH_SCAN - read),
            cursor=cursor,
        )
        read += len(page.items)
        for item in page.items:
            question = question_of(item.pause.data) or ""
            if wanted in question.casefold() and item.run_id not in seen:
                seen.add(item.run_id)
                summary = RunSummary(
                    run_id=item.run_id,
                    chart=item.chart,
                    status="paused",
                    stage=item.pause.stage_id,
                    pauses=(item.pause,),
                    error=None,
                    created_at=item.run_created_at,
                    updated_at=item.pause.created_at,
                )
                rows.append(
                    RunRow(summary, _stage_name(runs, item.chart, item.pause.stage_id), question)
                )
        cursor = page.next_cursor
        if cursor is None:
            return rows, False
    return rows, True


class _RunsPages:
    def __init__(self, host: PageHost) -> None:
        self.host = host
        self.runs = host.runs

    async def list_runs(self, request: Request) -> Response:
        if (redirect := self.host.sign_in_first(request)) is not None:
            return redirect
        query = request.query_params
        chart = query.get("chart") or None
        stage = query.get("stage") or None
        status = query.get("status") or None
        age = query.get("age") or ""
        text = (query.get("q") or "").strip()
        cursor = query.get("cursor") or None
        problem = None
        if age not in AGES:
            problem, age = f"Unknown age {age!r}: showing runs of any age.", ""
        if status is not None and status not in STATUS_ORDER:
            problem, status = f"Unknown status {status!r}: showing every status.", None
        older_than = AGES[age][1]
        sections: list[Section] = []
        truncated = False
        searched = bool(text)
        if text:
            try:
                await self.runs.get(text)
            except RunNotFoundError:
                rows, truncated = await search_questions(
                    self.runs, text, chart=chart, stage=stage, older_than=older_than
                )
                sections.append(Section("found", rows, None))
            else:
                return RedirectResponse(f"/runs/{quote(text, safe='')}", status_code=303)
        elif status is not None:
            try:
                page = await self.runs.list(
                    status=status,
                    chart=chart,
                    stage=stage,
                    older_than=older_than,
                    limit=PAGE_SIZE,
                    cursor=cursor,
                )
            except ValueError:  # a cursor from another store or release: start over
                page = await self.runs.list(
                    status=status, chart=chart, stage=stage, older_than=older_than, limit=PAGE_SIZE
                )
                cursor = None
            rows = [_row(self.runs, run) for run in page.items]
            sections.append(Section(status, rows, page.next_cursor))
        else:
            for each in STATUS_ORDER:
                page = await self.runs.list(
                    status=each, chart=chart, stage=stage, older_than=older_than, limit=SECTION_SIZE
                )
                rows = [_row(self.runs, run) for run in page.items]
                sections.append(Section(each, rows, page.next_cursor))
        filters = {"chart": chart or "", "stage": stage or "", "age": age, "q": text}
        context = {
            **self.host.base(request),
            "sections": sections,
            "status": status,
            "filters": filters,
            "statuses": STATUS_ORDER,
            "ages": AGES,
            "charts": sorted(self.runs.charts),
            "stage_ids": _stage_ids(self.runs.charts, chart),
            "searched": searched,
            "truncated": truncated,
            "search_scan": SEARCH_SCAN,
            "first_page": cursor is None,
            "problem": problem,
            "link": lambda **changes: _link(filters, status, **changes),
        }
        return render("runs.html", context, status=400 if problem else 200)

    # -- actions on a run ---------------------------------------------------------

    async def _posted(self, request: Request) -> tuple[str, Posted | Response]:
        run_id = request.path_params["run_id"]
        return run_id, await read_post(self.host, request, f"/runs/{quote(run_id, safe='')}")

    async def cancel(self, request: Request) -> Response:
        run_id, posted = await self._posted(request)
        if not isinstance(posted, Posted):
            return posted
        reason = posted.values.get("reason", "").strip() or None
        try:
            record = await self.runs.cancel(run_id, posted.actor, reason, wait=2.0)
        except RunNotPausedError as exc:
            return await self.page_with(request, run_id, 409, problem=str(exc))
        did = "cancelled" if record.status == "cancelled" else "cancel_requested"
        return _to_run(run_id, did)

    async def retry(self, request: Request) -> Response:
        run_id, posted = await self._posted(request)
        if not isinstance(posted, Posted):
            return posted
        try:
            await self.runs.retry(run_id, actor=posted.actor)
        except (RunStateError, RunAlreadyClaimedError) as exc:
            return await self.page_with(request, run_id, 409, problem=str(exc))
        return _to_run(run_id, "retried")

    async def fork(self, request: Request) -> Response:
        run_id, posted = await self._posted(request)
        if not isinstance(posted, Posted):
            return posted
        text = posted.values.get("state_patch", "").strip()
        kept = {"state_patch": text}
        try:
            at = int(posted.values.get("at", ""))
        except ValueError:
            return await self.page_with(
                request, run_id, 422, fork=kept, fork_problem="Choose a step to fork from."
            )
        patch: Any = None
        if text:
            try:
                patch = json.loads(text)
            except ValueError as exc:
                problem = f"The state patch is not valid JSON: {exc}"
                return await self.page_with(request, run_id, 422, fork=kept, fork_problem=problem)
            if not isinstance(patch, Mapping):
                problem = "The state patch must be a JSON object of state keys and their values."
                return await self.page_with(request, run_id, 422, fork=kept, fork_problem=problem)
        try:
            child = await self.runs.fork(run_id, at=at, state_patch=patch, actor=posted.actor)
        except StateError as exc:
            problem = f"The state patch does not fit the chart's state: {exc}"
            return await self.page_with(request, run_id, 422, fork=kept, fork_problem=problem)
        except (StepNotFoundError, RunStateError, ChartChangedError) as exc:
            return await self.page_with(request, run_id, 409, fork=kept, fork_problem=str(exc))
        return _to_run(child.run_id, "forked")

    async def page_with(
        self,
        request: Request,
        run_id: str,
        status: int,
        *,
        problem: str | None = None,
        fork: Mapping[str, str] | None = None,
        fork_problem: str | None = None,
    ) -> Response:
        """The run page again, with what went wrong (and what was typed)."""
        record = await self.runs.get(run_id)
        context = {
            **self.host.base(request),
            **run_view(self.runs, record),
            **await run_extras(self.runs, record, fork=fork, fork_problem=fork_problem),
            "notice": None,
            "problem": problem,
        }
        return render("run.html", self.host.with_rights(request, context), status=status)


def _to_run(run_id: str, did: str) -> Response:
    return RedirectResponse(f"/runs/{quote(run_id, safe='')}?did={did}", status_code=303)


def _link(filters: Mapping[str, str], current: str | None, **changes: str | None) -> str:
    params = {**filters, "status": current or "", **changes}
    kept = {key: value for key, value in params.items() if value}
    return "/runs" + (f"?{urlencode(kept)}" if kept else "")


def _stage_ids(charts: Mapping[str, FlowChart], chart: str | None) -> list[str]:
    flows = list(charts.values()) if chart is None else [charts[c] for c in (chart,) if c in charts]
    found: set[str] = set()
    for flow in flows:
        found.update(path for path, node in flow.stages() if node.kind != "foreach")
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a run failed, from its record and its ``failed`` audit event."""

    error: str
    stage_id: str | None
    stage_name: str | None
    traceback: Sequence[str]


def failure_of(runs: Runs, record: RunRecord) -> Failure | None:
    """Return why a failed run failed (``None`` unless it did)."""
    if record.status != "failed":
        return None
    event = next((e for e in reversed(record.audit) if e.kind == "failed"), None)
    data = event.data if event is not None else {}
    stage_id = data.get("stage_id")
    trace = data.get("traceback")
    lines = [str(line) for line in trace] if isinstance(trace, list) else []
    return Failure(
        error=record.error or str(data.get("error") or "unknown error"),
        stage_id=stage_id if isinstance(stage_id, str) else None,
        stage_name=_stage_name(runs, record.chart, stage_id) if isinstance(stage_id, str) else None,
        traceback=lines,
    )


async def run_extras(
    runs: Runs,
    record: RunRecord,
    *,
    did: str | None = None,
    fork: Mapping[str, str] | None = None,
    fork_problem: str | None = None,
) -> dict[str, Any]:
    """The run page's context beyond :func:`~._views.run_view`: history, diagram, failure, actions."""
    failure = failure_of(runs, record)
    history: list[Step] = []
    if record.status != "running":
        try:
            history = await runs.history(record.run_id)
        except PausepointError:
            history = []
    flow = runs.charts.get(record.chart)
    diagram = None
    if flow is not None:
        tree = (record.snapshot or {}).get("execution_tree") or []
        taken = set(_taken(tree))
        paused = {chart_path(p.stage_id) for p in record.pauses}
        failed = {chart_path(failure.stage_id)} if failure and failure.stage_id else set()
        diagram = chart_svg(
            flow,
            ident="run-diagram",
            title=f"The chart {record.chart}, with the path this run took",
            taken=taken - paused - failed,
            paused=paused,
            failed=failed,
        )
    return {
        "history": history,
        "stage_names": {
            s: _stage_name(runs, record.chart, s) for s in {h.stage_id for h in history}
        },
        "diagram": diagram,
        "failure": failure,
        "did": _DID.get(did or ""),
        "can_cancel": record.status in ("paused", "running"),
        "can_retry": record.status == "failed",
        "can_fork": record.status != "running" and bool(history),
        "fork": fork or {},
        "fork_problem": fork_problem,
    }


def _taken(tree: Sequence[Mapping[str, Any]]) -> list[str]:
    found: list[str] = []
    for node in tree:
        if node.get("kind") != "loop" and node.get("status") in ("done", "resumed", "paused"):
            found.append(chart_path(str(node.get("id"))))
        found.extend(_taken(node.get("children") or []))
    return found


def runs_pages_router(host: PageHost) -> APIRouter:
    """Return ``/runs`` and the run page's action routes (left out of the OpenAPI document)."""
    pages = _RunsPages(host)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/runs", pages.list_runs, methods=["GET"])
    router.add_api_route("/runs/{run_id}/cancel", pages.cancel, methods=["POST"])
    router.add_api_route("/runs/{run_id}/retry", pages.retry, methods=["POST"])
    router.add_api_route("/runs/{run_id}/fork", pages.fork, methods=["POST"])
    return router
