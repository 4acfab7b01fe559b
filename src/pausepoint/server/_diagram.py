"""A chart drawn as an inline SVG picture, on the server: no script, nothing loaded.

The chart's nodes and edges are gathered as :meth:`FlowChart.to_mermaid
<pausepoint.engine.chart.FlowChart.to_mermaid>` walks them (a branching stage gets a
small join node where its branches meet; subflows and for-each bodies are drawn
inline inside a dashed frame), then laid out in layers: a node sits one layer
below the lowest node leading to it, loops excepted, and the nodes of a layer
are centred side by side. Edges are straight; a loop back is a dashed curve on
the right. Stages a run went through are marked ``taken``, the ones it waits at
``paused``, the one it failed at ``failed``: the stylesheet colours them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from html import escape

from pausepoint.engine.chart import (
    PATH_SEPARATOR,
    Decider,
    FlowChart,
    ForEach,
    LoopBack,
    Node,
    Parallel,
    Selector,
    Step,
    Subflow,
)

__all__ = ["chart_svg"]

_W, _H = 170, 38  # a stage's box
_GAP_X, _GAP_Y = 26, 34
_PAD = 16
_LABEL_CHARS = 22
_JOIN_R = 5
_MARK_WORDS = {"taken": "taken", "paused": "waits here", "failed": "failed here"}


@dataclass
class _Box:
    key: str
    label: str
    kind: str  # a node kind, or "join"
    path: str | None
    groups: tuple[str, ...]
    layer: int = 0
    x: float = 0.0
    y: float = 0.0


@dataclass
class _Graph:
    boxes: dict[str, _Box] = field(default_factory=dict)
    edges: list[tuple[str, str, str | None, bool]] = field(default_factory=list)
    group_names: dict[str, str] = field(default_factory=dict)

    def add(self, box: _Box) -> str:
        self.boxes[box.key] = box
        return box.key

    def node(self, node: Node, prefix: str, groups: tuple[str, ...]) -> tuple[str, str]:
        """Add a node; return the keys edges enter and leave it by."""
        path = prefix + node.id
        if isinstance(node, Subflow | ForEach):
            body = node.chart if isinstance(node, Subflow) else node.body
            name = node.name
            if isinstance(node, ForEach):
                name += f" (for each of {node.items_key})"
            self.group_names[path] = name
            return self.sequence(body.steps, path + PATH_SEPARATOR, (*groups, path))
        key = self.add(_Box(path, node.name, node.kind, path, groups))
        if not isinstance(node, Decider | Selector | Parallel):
            return key, key
        exits = []
        for branch_key, branch in node.branches.items():
            entry, exit_ = self.node(branch, prefix, groups)
            self.edges.append((key, entry, branch_key, False))
            exits.append(exit_)
        join = self.add(_Box(path + "\x00join", "", "join", None, groups))
        self.edges.extend((exit_, join, None, False) for exit_ in exits)
        return key, join

    def sequence(
        self, steps: Iterable[Step], prefix: str, groups: tuple[str, ...]
    ) -> tuple[str, str]:
        entries: dict[str, str] = {}
        first = last = ""
        for step in steps:
            if isinstance(step, LoopBack):
                if last and step.target in entries:
                    self.edges.append((last, entries[step.target], "loop", True))
                continue
            entry, exit_ = self.node(step, prefix, groups)
            entries[step.id] = entry
            if last:
                self.edges.append((last, entry, None, False))
            first = first or entry
            last = exit_
        return first, last


def _layout(graph: _Graph) -> tuple[float, float]:
    """Place every box; return the picture's width and height."""
    order = list(graph.boxes)  # the walk adds a node after every node leading to it
    incoming: dict[str, list[str]] = {key: [] for key in order}
    for src, dst, _, loop in graph.edges:
        if not loop:
            incoming[dst].append(src)
    for key in order:
        box = graph.boxes[key]
        box.layer = max((graph.boxes[s].layer + 1 for s in incoming[key]), default=0)
    layers: dict[int, list[_Box]] = {}
    for key in order:
        layers.setdefault(graph.boxes[key].layer, []).append(graph.boxes[key])
    widest = max((len(row) for row in layers.values()), default=1)
    loops = 70 if any(loop for *_, loop in graph.edges) else 0  # room for loop curves
    width = widest * _W + (widest - 1) * _GAP_X + 2 * _PAD + loops
    for layer, row in layers.items():
        row_width = len(row) * _W + (len(row) - 1) * _GAP_X
        left = (width - loops - row_width) / 2
        for i, box in enumerate(row):
            box.x = left + i * (_W + _GAP_X)
            box.y = _PAD + 14 + layer * (_H + _GAP_Y)
    height = _PAD * 2 + 14 + len(layers) * (_H + _GAP_Y) - _GAP_Y
    return width, height


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _shape(box: _Box) -> str:
    x, y, w, h = box.x, box.y, _W, _H
    if box.kind == "pausable":  # a parallelogram, as Mermaid draws it
        s = 10
        points = f"{x + s},{y} {x + w},{y} {x + w - s},{y + h} {x},{y + h}"
        bars = "".join(  # a pause sign, drawn: not every font has U+23F8
            f'<rect class="pause-bar" x="{x + 14 + dx}" y="{y + 12}" width="3" height="14"/>'
            for dx in (0, 6)
        )
        return f'<polygon points="{points}"/>{bars}'
    if box.kind in ("decider", "selector"):
        s = 14
        points = f"{x + s},{y} {x + w - s},{y} {x + w},{y + h / 2} {x + w - s},{y + h} {x + s},{y + h} {x},{y + h / 2}"
        return f'<polygon points="{points}"/>'
    if box.kind == "parallel":
        return (
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="2"/>'
            f'<rect class="inner" x="{x + 4}" y="{y + 4}" width="{w - 8}" height="{h - 8}" rx="2"/>'
        )
    return f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6"/>'


def _centre(box: _Box) -> tuple[float, float]:
    return box.x + _W / 2, box.y + _H / 2


def _edge(src: _Box, dst: _Box, label: str | None, loop: bool, arrow: str) -> str:
    sx, sy = _centre(src)
    dx, dy = _centre(dst)
    if loop:
        x1, y1 = src.x + _W, sy
        x2, y2 = dst.x + _W, dy
        bend = max(x1, x2) + 60
        d = f"M{x1},{y1} C{bend},{y1} {bend},{y2} {x2 + 6},{y2}"
        text = f'<text class="edge-label" x="{bend - 22}" y="{(y1 + y2) / 2}">loop</text>'
        return f'<path class="edge loop" d="{d}" marker-end="url(#{arrow})"/>{text}'
    start_y = sy + (_JOIN_R if src.kind == "join" else _H / 2)
    end_y = dy - (_JOIN_R if dst.kind == "join" else _H / 2) - 2
    line = f'<path class="edge" d="M{sx},{start_y} L{dx},{end_y}" marker-end="url(#{arrow})"/>'
    if not label:
        return line
    lx, ly = sx + (dx - sx) * 0.45, start_y + (end_y - start_y) * 0.45
    return line + f'<text class="edge-label" x="{lx}" y="{ly}">{escape(_short(label))}</text>'


def chart_svg(
    flow: FlowChart,
    *,
    ident: str,
    title: str,
    taken: Collection[str] = (),
    paused: Collection[str] = (),
    failed: Collection[str] = (),
) -> str:
    """Return the chart as an inline ``<svg>`` element (markup, already escaped).

    Args:
        flow: The chart.
        ident: A prefix for the element ids, unique on the page.
        title: The picture's accessible name.
        taken: Stage paths a run went through.
        paused: Stage paths a run waits at.
        failed: Stage paths a run failed at.
    """
    graph = _Graph()
    graph.sequence(flow.steps, "", ())
    width, height = _layout(graph)
    marks: dict[str, str] = {}
    for mark, paths in (("taken", taken), ("paused", paused), ("failed", failed)):
        marks.update(dict.fromkeys(paths, mark))
    parts: list[str] = []
    for group, name in graph.group_names.items():
        members = [b for b in graph.boxes.values() if group in b.groups]
        if not members:
            continue
        x0 = min(b.x for b in members) - 8
        y0 = min(b.y for b in members) - 18
        x1 = max(b.x for b in members) + _W + 8
        y1 = max(b.y for b in members) + _H + 8
        parts.append(
            f'<g class="group"><rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="8"/>'
            f'<text x="{x0 + 6}" y="{y0 + 12}">{escape(name)}</text></g>'
        )
    for src, dst, label, loop in graph.edges:
        parts.append(_edge(graph.boxes[src], graph.boxes[dst], label, loop, f"{ident}-arrow"))
    described: list[str] = []
    for box in graph.boxes.values():
        if box.kind == "join":
            cx, cy = _centre(box)
            parts.append(f'<circle class="join" cx="{cx}" cy="{cy}" r="{_JOIN_R}"/>')
            continue
        mark = marks.get(box.path or "", "")
        label = box.label
        described.append(f"{box.label}{' (' + _MARK_WORDS[mark] + ')' if mark else ''}")
        cx, cy = _centre(box)
        parts.append(
            f'<g class="node {box.kind} {mark}" data-stage="{escape(box.path or "")}">'
            f"<title>{escape(label)}{' (waits for a person)' if box.kind == 'pausable' else ''}"
            f"{' — ' + _MARK_WORDS[mark] if mark else ''}</title>"
            f"{_shape(box)}"
            f'<text x="{cx + (8 if box.kind == "pausable" else 0)}" y="{cy + 4}" '
            f'text-anchor="middle">{escape(_short(label))}</text></g>'
        )
    desc = "Stages in order: " + "; ".join(described) + "."
    return (
        f'<svg class="diagram" role="img" aria-labelledby="{ident}-title {ident}-desc" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(desc)}</desc>'
        f'<defs><marker id="{ident}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        + "".join(parts)
        + "</svg>"
    )
