"""The charts and the playground: every chart with its diagram, and a start form per chart.

``/charts`` lists each registered chart with its description and its diagram
(an inline SVG drawn on the server, see :mod:`._diagram`). ``/charts/{name}``
adds a form to start a run: one field per property of the chart's input model
(as the answer forms are built, see :mod:`._forms`), or one JSON box when the
chart declares none. Starting a run opens its page; if it paused, the answer
form is right there, so the run, pause, edit answer, resume loop happens in
the browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from pausepoint.engine.chart import FlowChart, LoopBack
from pausepoint.errors import RunInputError

from ._diagram import chart_svg
from ._forms import RAW_FIELD, Form, form_for, parse_form
from ._page_tools import PageHost, Posted, problems_of, read_post
from ._templates import render

__all__ = ["charts_pages_router"]


@dataclass(frozen=True, slots=True)
class ChartCard:
    """A chart as the charts page shows it."""

    name: str
    title: str
    description: str | None
    stages: int
    waits: int
    diagram: str


def _description(flow: FlowChart) -> str | None:
    first = next((s for s in flow.steps if not isinstance(s, LoopBack)), None)
    return getattr(first, "description", None)


def _card(name: str, flow: FlowChart, ident: str) -> ChartCard:
    nodes = [node for _, node in flow.stages()]
    return ChartCard(
        name=name,
        title=flow.name,
        description=_description(flow),
        stages=len(nodes),
        waits=sum(node.kind == "pausable" for node in nodes),
        diagram=chart_svg(flow, ident=ident, title=f"Diagram of the chart {name}"),
    )


def _start_form(flow: FlowChart) -> Form:
    try:
        schema = flow.input_schema()
    except Exception:  # a model pydantic validates but cannot describe: a JSON box
        schema = None
    return form_for(schema)


class _ChartsPages:
    def __init__(self, host: PageHost) -> None:
        self.host = host
        self.runs = host.runs

    async def list_charts(self, request: Request) -> Response:
        if (redirect := self.host.sign_in_first(request)) is not None:
            return redirect
        cards = [
            _card(name, flow, f"chart-{i}")
            for i, (name, flow) in enumerate(sorted(self.runs.charts.items()))
        ]
        return render("charts.html", {**self.host.base(request), "cards": cards})

    def _flow(self, name: str) -> FlowChart:
        flow = self.runs.charts.get(name)
        if flow is None:
            registered = ", ".join(sorted(self.runs.charts)) or "none"
            raise HTTPException(
                404, f"No chart is registered as {name!r}. Registered charts: {registered}."
            )
        return flow

    async def chart_page(self, request: Request) -> Response:
        if (redirect := self.host.sign_in_first(request)) is not None:
            return redirect
        name = request.path_params["name"]
        return self._page(request, name, self._flow(name), {}, {}, 200)

    def _page(
        self,
        request: Request,
        name: str,
        flow: FlowChart,
        values: Mapping[str, str],
        problems: Mapping[str, str],
        status: int,
    ) -> Response:
        context = {
            **self.host.base(request),
            "card": _card(name, flow, "chart"),
            "form": _start_form(flow),
            "values": values,
            "problems": problems,
        }
        return render("chart.html", context, status=status)

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        flow = self._flow(name)
        posted = await read_post(self.host, request, f"/charts/{quote(name, safe='')}")
        if not isinstance(posted, Posted):
            return posted
        form = _start_form(flow)
        values = posted.values
        if form.fields is None and not values.get(RAW_FIELD, "").strip():
            run_input: Any = {}  # an empty box starts the run with no input
            problems: dict[str, str] = {}
        else:
            run_input, problems = parse_form(form, values)
        if not problems and not isinstance(run_input, Mapping):
            problems = {RAW_FIELD: "The input must be a JSON object (or left empty)."}
        if problems:
            return self._page(request, name, flow, values, problems, 422)
        try:
            record = await self.runs.start(name, run_input, actor=posted.actor)
        except RunInputError as exc:
            found = problems_of(
                getattr(exc, "errors", []), has_fields=form.fields is not None, raw=RAW_FIELD
            )
            return self._page(request, name, flow, values, found or {RAW_FIELD: str(exc)}, 422)
        return RedirectResponse(
            f"/runs/{quote(record.run_id, safe='')}?did=started", status_code=303
        )


def charts_pages_router(host: PageHost) -> APIRouter:
    """Return ``/charts`` and ``/charts/{name}`` (left out of the OpenAPI document)."""
    pages = _ChartsPages(host)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/charts", pages.list_charts, methods=["GET"])
    router.add_api_route("/charts/{name}", pages.chart_page, methods=["GET"])
    router.add_api_route("/charts/{name}", pages.start, methods=["POST"])
    return router
