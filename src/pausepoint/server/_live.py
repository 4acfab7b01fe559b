"""The live inbox (server-sent events) and answering several pauses with one form.

**Live inbox.** ``GET /inbox/events`` is an event stream (sse-starlette). Every
:data:`POLL_SECONDS` it reads the inbox's first page with the page's filters,
and when the rows changed it sends them, rendered, as one ``inbox`` event; the
page's script puts them in place, keeping what was ticked. Pauses reach the
store from any process, so the stream polls the store rather than listening
inside one process; streams asking for the same page share one read a poll (a
read younger than the poll is reused, and reads in flight are shared by
:class:`~._inbox.SharedReads`). Without JavaScript the page is a plain page:
reloading it shows the same rows.

**Batch answers.** Tick pauses in the inbox waiting at the same chart and
stage, then ``GET /inbox/batch`` shows them with one answer form, and ``POST
/inbox/batch`` answers each, exactly once, with a result per run: to give
each answer an idempotency key of the form, :func:`resume_each` loops over ``Runs.resume``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse
from starlette.responses import PlainTextResponse, Response

from pausepoint.durable.runs import Runs
from pausepoint.engine.chart import chart_path
from pausepoint.errors import (
    ChartChangedError,
    PausepointError,
    PermissionDeniedError,
    ResumeInputError,
    RunAlreadyClaimedError,
    RunNotFoundError,
    RunNotPausedError,
    StalePauseError,
)
from pausepoint.stores.base import PauseEntry, PendingPage

from ._charts import stage_input_schema
from ._forms import RAW_FIELD, Form, form_for, parse_form
from ._inbox import SharedReads
from ._outcome import closing_event, describe_closing
from ._page_tools import PageHost, Posted, problems_of, read_post
from ._templates import render, render_text
from ._views import question_of

__all__ = ["POLL_SECONDS", "BatchResult", "live_router", "resume_each"]

POLL_SECONDS = 1.0
"""How often a live inbox stream reads the store."""

STREAM_SECONDS = 300.0
"""A stream ends after this long; the browser reconnects by itself (and re-reads sign-in)."""

INBOX_PAGE = 50


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of one pause of a batch answer.

    Attributes:
        run_id: The run.
        pause_id: The pause answered.
        status: ``done`` (answered now), ``stale`` (answered, cancelled or
            expired meanwhile), ``not assigned`` or ``refused`` (another reason).
        message: For people: the run's new status, or why it was not answered.
    """

    run_id: str
    pause_id: str
    status: str
    message: str


async def resume_each(
    runs: Runs,
    items: Sequence[tuple[str, str]],
    answer: Any,
    *,
    actor: str,
    groups: Collection[str] = (),
    nonce: str | None,
) -> list[BatchResult]:
    """Answer each ``(run_id, pause_id)`` with ``answer``, each at most once, with a result each.

    Unlike ``Runs.resume_many``, each answer carries an idempotency key made
    of the pause and the form's nonce, so a form posted twice (a double click,
    a reload) answers nothing twice and shows the first outcome. Each pause is
    answered exactly once (a claim each), and one answered meanwhile does not
    stop the others.

    Raises:
        ResumeInputError: The answer does not fit the stage's schema (raised on
            the first pause, before any is answered: they share the stage).
    """
    results: list[BatchResult] = []
    for run_id, pause_id in items:
        key = f"batch:{pause_id}:{nonce}" if nonce else None
        try:
            record = await runs.resume(
                run_id,
                answer,
                actor=actor,
                groups=groups,
                pause_id=pause_id,
                idempotency_key=key,
            )
        except ResumeInputError:
            if not results:
                raise
            results.append(BatchResult(run_id, pause_id, "refused", "The answer does not fit."))
        except PermissionDeniedError as exc:
            results.append(BatchResult(run_id, pause_id, "not assigned", str(exc)))
        except (StalePauseError, RunAlreadyClaimedError, RunNotPausedError, RunNotFoundError):
            results.append(
                BatchResult(run_id, pause_id, "stale", await _why_stale(runs, run_id, pause_id))
            )
        except (ChartChangedError, PausepointError) as exc:
            results.append(BatchResult(run_id, pause_id, "refused", str(exc)))
        else:
            results.append(
                BatchResult(run_id, pause_id, "done", f"Answered: the run is now {record.status}.")
            )
    return results


async def _why_stale(runs: Runs, run_id: str, pause_id: str) -> str:
    try:
        record = await runs.get(run_id)
    except RunNotFoundError:
        return "This run no longer exists."
    return describe_closing(closing_event(record, pause_id))


def _rows(runs: Runs, page: PendingPage) -> list[dict[str, Any]]:
    rows = []
    for item in page.items:
        flow = runs.charts.get(item.chart)
        node = flow.find_stage(item.pause.stage_id) if flow is not None else None
        rows.append(
            {
                "item": item,
                "question": question_of(item.pause.data),
                "stage": node.name if node is not None else item.pause.stage_id,
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class _Picked:
    run_id: str
    pause: PauseEntry
    chart: str
    question: str | None


_Key = tuple[str | None, frozenset[str] | None]
"""What a stream shows: the chart filter, and whose assigned pauses (``None``: everyone's)."""


class _LivePages:
    def __init__(self, host: PageHost) -> None:
        self.host = host
        self.runs = host.runs
        self.reads: SharedReads[_Key, str] = SharedReads(self._read_rows)
        self.fresh: dict[_Key, tuple[float, str]] = {}  # key -> (read at, rows)

    async def _read_rows(self, key: _Key) -> str:
        chart, assigned_to = key
        page = await self.runs.pending(chart=chart, limit=INBOX_PAGE, assigned_to=assigned_to)
        view = "all" if assigned_to is None else "mine"
        return render_text("_inbox_rows.html", {"items": _rows(self.runs, page), "view": view})

    async def rows(self, key: _Key) -> str:
        """The rows of the inbox's first page, read at most about once a poll for all streams."""
        now = asyncio.get_running_loop().time()
        cached = self.fresh.get(key)
        if cached is not None and now - cached[0] < POLL_SECONDS * 0.9:
            return cached[1]
        rows = await self.reads.get(key)
        self.fresh[key] = (asyncio.get_running_loop().time(), rows)
        return rows

    async def events(self, request: Request) -> Response:
        viewer = self.host.access.signed_in(request)
        if viewer is None and not self.host.access.public_read:
            return PlainTextResponse("sign in to follow the inbox", status_code=401)
        chart = request.query_params.get("chart") or None
        mine = request.query_params.get("view") == "mine" and viewer is not None
        key: _Key = (chart, viewer.principals if mine and viewer is not None else None)

        async def stream() -> AsyncIterator[dict[str, str]]:
            sent = None
            loop = asyncio.get_running_loop()
            ends = loop.time() + STREAM_SECONDS
            while loop.time() < ends:
                rows = await self.rows(key)
                if rows != sent:
                    sent = rows
                    yield {"event": "inbox", "data": rows}
                await asyncio.sleep(POLL_SECONDS)

        return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})

    # -- batch answers ------------------------------------------------------------

    async def _picked(self, picks: Sequence[str]) -> tuple[list[_Picked], list[BatchResult]]:
        """The pauses still waiting among ``run_id pause_id`` picks, and those no longer waiting."""
        found: list[_Picked] = []
        gone: list[BatchResult] = []
        for pick in dict.fromkeys(picks):
            run_id, _, pause_id = pick.partition(" ")
            try:
                record = await self.runs.get(run_id)
            except RunNotFoundError:
                gone.append(BatchResult(run_id, pause_id, "stale", "This run no longer exists."))
                continue
            pause = next((p for p in record.pauses if p.pause_id == pause_id), None)
            if pause is None:
                why = describe_closing(closing_event(record, pause_id))
                gone.append(BatchResult(run_id, pause_id, "stale", why))
                continue
            found.append(_Picked(run_id, pause, record.chart, question_of(pause.data)))
        return found, gone

    def _form(self, picked: Sequence[_Picked]) -> Form:
        first = picked[0]
        flow = self.runs.charts.get(first.chart)
        schema = stage_input_schema(first.chart, flow, first.pause.stage_id) if flow else None
        return form_for(schema)

    async def batch_form(self, request: Request) -> Response:
        if (redirect := self.host.sign_in_first(request)) is not None:
            return redirect
        picks = request.query_params.getlist("pick")
        picked, gone = await self._picked(picks)
        return self._batch_page(request, picked, gone, {}, {}, 200)

    def _batch_page(
        self,
        request: Request,
        picked: Sequence[_Picked],
        gone: Sequence[BatchResult],
        values: dict[str, str],
        problems: dict[str, str],
        status: int,
    ) -> Response:
        places = {(p.chart, chart_path(p.pause.stage_id)) for p in picked}
        mixed = len(places) > 1
        form = self._form(picked) if picked and not mixed else None
        stage_name = None
        if picked and not mixed:
            flow = self.runs.charts.get(picked[0].chart)
            node = flow.find_stage(picked[0].pause.stage_id) if flow else None
            stage_name = node.name if node is not None else picked[0].pause.stage_id
        here = "/inbox/batch?" + urlencode(
            [("pick", f"{p.run_id} {p.pause.pause_id}") for p in picked]
        )
        context = {
            **self.host.base(request),
            "picked": picked,
            "gone": gone,
            "mixed": sorted(f"{chart} / {stage}" for chart, stage in places) if mixed else [],
            "form": form,
            "stage_name": stage_name,
            "values": values,
            "problems": problems,
            "nonce": os.urandom(12).hex(),
            "back": here,
        }
        return render("batch.html", context, status=status)

    async def batch_answer(self, request: Request) -> Response:
        posted = await read_post(self.host, request, "/")
        if not isinstance(posted, Posted):
            return posted
        picked, gone = await self._picked(posted.getlist("pick"))
        if not picked or len({(p.chart, chart_path(p.pause.stage_id)) for p in picked}) > 1:
            return self._batch_page(request, picked, gone, posted.values, {}, 409)
        form = self._form(picked)
        answer, problems = parse_form(form, posted.values)
        if problems:
            return self._batch_page(request, picked, gone, posted.values, problems, 422)
        items = [(p.run_id, p.pause.pause_id) for p in picked]
        try:
            results = await resume_each(
                self.runs,
                items,
                answer,
                actor=posted.actor,
                groups=posted.groups,
                nonce=posted.values.get("nonce"),
            )
        except ResumeInputError as exc:
            found = problems_of(
                getattr(exc, "errors", []), has_fields=form.fields is not None, raw=RAW_FIELD
            )
            problems = found or {RAW_FIELD: str(exc)}
            return self._batch_page(request, picked, gone, posted.values, problems, 422)
        return render("batch_done.html", {**self.host.base(request), "results": [*results, *gone]})


def live_router(host: PageHost) -> APIRouter:
    """Return the live inbox's event stream and the batch answer pages."""
    pages = _LivePages(host)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/inbox/events", pages.events, methods=["GET"])
    router.add_api_route("/inbox/batch", pages.batch_form, methods=["GET"])
    router.add_api_route("/inbox/batch", pages.batch_answer, methods=["POST"])
    return router
