"""The chart diagram: an SVG drawn on the server, with every stage, edge and mark."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pausepoint import flow_chart
from pausepoint.demo import chart as refund
from pausepoint.engine.scope import Scope
from pausepoint.server._diagram import chart_svg

from .charts import parallel

SVG = "{http://www.w3.org/2000/svg}"


def _noop(scope: Scope) -> None:
    return None


def _pick(scope: Scope) -> str:
    return "yes"


def test_a_sequence_is_a_column_with_marks() -> None:
    svg = chart_svg(
        refund, ident="d", title="refund <chart>", taken={"receive"}, paused={"approve"}
    )
    root = ET.fromstring(svg)  # well-formed XML, labels escaped
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "refund <chart>"  # type: ignore[union-attr]
    nodes = root.findall(f"{SVG}g")
    assert [n.get("data-stage") for n in nodes] == ["receive", "approve", "process", "notify"]
    assert nodes[0].get("class") == "node stage taken"
    assert nodes[1].get("class") == "node pausable paused"
    assert len(root.findall(f"{SVG}path")) == 3  # three edges
    ys = [float(n.find(f"{SVG}rect").get("y") or 0) for n in (nodes[0], nodes[2], nodes[3])]  # type: ignore[union-attr]
    assert ys == sorted(ys)
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "ReceiveRequest (taken); ManagerApproval (waits here)" in desc


def test_branches_join_loops_and_subflows() -> None:
    inner = flow_chart("Inner", _noop, "inner").build()
    chart = (
        flow_chart("Start", _noop, "start")
        .add_decider_function("Decide", _pick, "decide")
        .add_function_branch("yes", "Yes", _noop)
        .add_function_branch("no", "No", _noop)
        .end()
        .add_subflow("sub", inner, "Sub")
        .add_function("Again", _noop, "again")
        .loop_to("start", max_iterations=3)
        .build()
    )
    root = ET.fromstring(chart_svg(chart, ident="x", title="t", failed={"sub/inner"}))
    stages = [g.get("data-stage") for g in root.iter(f"{SVG}g") if g.get("data-stage")]
    assert stages == ["start", "decide", "yes", "no", "sub/inner", "again"]
    assert len(root.findall(f"{SVG}circle")) == 1  # where the branches meet
    assert len(root.findall(f"{SVG}path[@class='edge loop']")) == 1
    labels = [t.text for t in root.findall(f"{SVG}text[@class='edge-label']")]
    assert labels == ["yes", "no", "loop"]
    group = root.find(f"{SVG}g[@class='group']")
    assert group is not None
    failed = [g for g in root.iter(f"{SVG}g") if "failed" in (g.get("class") or "")]
    assert [g.get("data-stage") for g in failed] == ["sub/inner"]


def test_parallel_branches_sit_side_by_side() -> None:
    root = ET.fromstring(chart_svg(parallel, ident="p", title="t"))
    boxes = {
        g.get("data-stage"): g for g in root.iter(f"{SVG}g") if g.get("data-stage") is not None
    }
    legal = boxes["legal"].find(f"{SVG}polygon")
    finance = boxes["finance"].find(f"{SVG}polygon")
    assert legal is not None
    assert finance is not None
    assert legal.get("points") != finance.get("points")
    assert (legal.get("points") or "").split()[0].split(",")[1] == (
        (finance.get("points") or "").split()[0].split(",")[1]
    )  # the same layer
