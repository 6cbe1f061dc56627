"""Pictures of a workflow graph: Mermaid, Graphviz DOT, plain text and a self-contained SVG.

Pure Python (no Django); the admin, the API and ``hephaestus_graph`` call it::

    from hephaestus_django.core import render

    graph = OrderFlow.definition().graph
    render.mermaid(graph)                       # flowchart TD text
    render.dot(graph, render.step_states(instance))
    render.ascii(graph)                         # layers in topological order, edges listed
    render.svg(graph, states)                   # inline <svg>, no JS, no external files

``states`` maps steps (classes or registry names) to ``completed``, ``active``, ``waiting``,
``failed``, ``cancelled``, ``skipped`` (a branch not taken), ``pending`` or ``compensated``
(completed, then undone by its compensation); :func:`step_states` builds it from an instance.
Children steps (``ChildrenStep``: they start child workflows) are marked in every format: a
subroutine box in Mermaid, a double border in DOT, a note in the text, a stacked box in SVG. Every
function is iterative, so graphs of thousands of steps render without touching the recursion limit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from html import escape as _xml_escape
from typing import Any

from hephaestus_django.core.base import Step
from hephaestus_django.core.children import is_children_step
from hephaestus_django.core.graph import Edge, Graph
from hephaestus_django.core.status import EntryKind, Status

__all__ = ["DESCRIPTIONS", "MARKERS", "STATES", "ascii", "dot", "layers", "legend_states", "mermaid", "step_states",
           "svg"]

COMPLETED, ACTIVE, WAITING, PENDING = "completed", "active", "waiting", "pending"
FAILED, CANCELLED, SKIPPED = "failed", "cancelled", "skipped"
#: A completed step whose compensation ran.
COMPENSATED = "compensated"
#: Every state a step can be drawn in.
STATES = (COMPLETED, ACTIVE, WAITING, FAILED, CANCELLED, SKIPPED, PENDING, COMPENSATED)
#: What each state means (the legends say it).
DESCRIPTIONS = {
    COMPLETED: "ran and finished",
    ACTIVE: "running, queued or due to retry",
    WAITING: "paused for an event or a timer",
    FAILED: "failed the instance",
    CANCELLED: "stopped before it finished",
    SKIPPED: "a branch not taken",
    PENDING: "not reached yet",
    COMPENSATED: "undone by its compensation",
}
#: Markers of the text rendering.
MARKERS = {COMPLETED: "[x]", ACTIVE: "[>]", WAITING: "[~]", FAILED: "[!]", CANCELLED: "[-]", SKIPPED: "[/]",
           PENDING: "[ ]", COMPENSATED: "[<]"}
#: (fill, stroke, text) colours of each state, shared by DOT, Mermaid and SVG (text on its fill:
#: contrast at least 7:1).
COLOURS = {
    COMPLETED: ("#d3f0da", "#2e7d32", "#1b4d20"),
    ACTIVE: ("#d6e8ff", "#1565c0", "#0d3c75"),
    WAITING: ("#fff0c2", "#b26a00", "#5f3a00"),
    FAILED: ("#fde0dc", "#c62828", "#7f1d1d"),
    CANCELLED: ("#e4e4e7", "#3f3f46", "#27272a"),
    SKIPPED: ("#fafafa", "#a1a1aa", "#52525b"),
    PENDING: ("#f4f4f5", "#9e9ea7", "#3f3f46"),
    COMPENSATED: ("#efe3f7", "#6a1b9a", "#3d0f59"),
}
#: Dashed outlines: steps that will not run.
DASHES = {CANCELLED: "2 3", SKIPPED: "5 4"}
_PLAIN = ("#ffffff", "#52525b", "#18181b")

StatesArg = Mapping[Any, str] | None


# ---- states ------------------------------------------------------------------------------------
def _graph_for(instance: Any) -> Graph:
    from hephaestus_django.core import registry

    workflow = instance.workflow
    if isinstance(workflow, str):
        workflow = registry.get_workflow(workflow)
    graph: Graph = workflow.definition(getattr(instance, "workflow_version", None)).graph
    return graph


def step_states(instance: Any = None, *, graph: Graph | None = None, completed: Iterable[Any] = (),
                active: Iterable[Any] = (), waiting: Iterable[Any] = (), failed: Iterable[Any] = (),
                cancelled: Iterable[Any] = (), compensated: Iterable[Any] = (),
                history: Iterable[tuple[Any, str]] | None = None) -> dict[type[Step], str]:
    """The state of every step of the graph (one of :data:`STATES`).

    ``instance`` is a core ``Instance`` or anything with the same attributes holding registry
    names (a ``WorkflowInstance`` row: ``workflow`` may then be the registry name). From an
    instance: the step that failed a ``failed`` instance is ``failed`` (and steps still in flight
    then are ``cancelled``); what was active or waiting when an instance was cancelled is
    ``cancelled``; a step that can no longer run (not reachable from anything active, waiting,
    failed or cancelled) is ``skipped``; the rest is ``pending``. ``history`` -- ``(step, kind)``
    pairs of its entries, in order -- pins down which steps failed or were stopped.

    Without an instance, pass ``graph`` and the ``completed``/``active``/``waiting``/``failed``/
    ``cancelled`` steps (classes or names); every other step is ``pending``.
    """
    infer = instance is not None
    if instance is not None:
        graph = graph if graph is not None else _graph_for(instance)
        completed = instance.completed_steps
        active = instance.active_steps
        waiting = instance.waiting_steps
        failed, cancelled = _stopped(graph, instance, history)
        compensated = _compensated(getattr(instance, "compensation", None))
    if graph is None:
        raise TypeError("step_states() needs an instance or a graph")
    done, running, paused, broken, stopped, undone = (
        _resolve(graph, steps) for steps in (completed, active, waiting, failed, cancelled, compensated))
    states: dict[type[Step], str] = {}
    for node in graph.nodes:
        if node in undone:
            states[node] = COMPENSATED
        elif node in done:
            states[node] = COMPLETED
        elif node in broken:
            states[node] = FAILED
        elif node in stopped:
            states[node] = CANCELLED
        elif node in paused:
            states[node] = WAITING
        elif node in running:
            states[node] = ACTIVE
        else:
            states[node] = PENDING
    if infer:
        _mark_skipped(graph, instance, states)
    return states


def legend_states(marked: Mapping[Any, str]) -> list[str]:
    """The states a legend lists: every one, but ``compensated`` only where a step is."""
    return [s for s in STATES if s != COMPENSATED or COMPENSATED in marked.values()]


def _compensated(saga: Any) -> list[Any]:
    """The steps whose compensation ran: from a core ``Compensation`` or a row's JSON."""
    if saga is None:
        return []
    if isinstance(saga, dict):
        return list(saga.get("done", []))
    return list(saga.done)


def _stopped(graph: Graph, instance: Any, history: Iterable[tuple[Any, str]] | None,
             ) -> tuple[set[type[Step]], set[type[Step]]]:
    """(failed, cancelled) steps of a finished instance."""
    status = str(getattr(instance, "status", ""))
    if status not in (Status.FAILED, Status.CANCELLED):
        return set(), set()
    done = _resolve(graph, instance.completed_steps)
    last: dict[type[Step], str] = {}
    for name, kind in history or ():
        step = graph.step(name) if name else None
        if step is not None:
            last[step] = str(kind)
    current = graph.step(instance.current_step) if instance.current_step else None
    in_flight = _resolve(graph, instance.active_steps) - done
    if status == Status.FAILED:
        failed = {s for s, kind in last.items() if kind == EntryKind.FAILED and s in in_flight | {current}} - done
        if not failed and current is not None and current not in done:
            failed = {current}
        return failed, in_flight - failed
    unfinished = {s for s, kind in last.items() if kind in (EntryKind.PAUSED, EntryKind.RETRYING)}
    cancelled = in_flight | unfinished
    if current is not None:
        cancelled.add(current)
    return set(), cancelled - done


def _mark_skipped(graph: Graph, instance: Any, states: dict[type[Step], str]) -> None:
    """Pending steps that nothing still open can reach are branches not taken."""
    if str(getattr(instance, "status", "")) == Status.PENDING:
        return
    frontier = {s for s, state in states.items() if state in (ACTIVE, WAITING, FAILED, CANCELLED)}
    frontier |= _resolve(graph, getattr(instance, "pending_joins", ()))
    mask = graph.can_run_mask(frontier)
    index = graph.index
    for node, state in states.items():
        if state == PENDING and node not in frontier and not (mask >> index[node]) & 1:
            states[node] = SKIPPED


def _resolve(graph: Graph, steps: Iterable[Any]) -> set[type[Step]]:
    found = set()
    for item in steps:  # iterating a mapping (waiting_steps) yields its keys
        step = graph.step(item)
        if step is not None:
            found.add(step)
    return found


def _normalise(graph: Graph, states: StatesArg) -> dict[type[Step], str] | None:
    if states is None:
        return None
    result: dict[type[Step], str] = {}
    for key, state in states.items():
        if state not in STATES:
            raise ValueError(f"unknown step state {state!r} (expected one of {', '.join(STATES)})")
        step = graph.step(key)
        if step is not None:
            result[step] = state
    return {node: result.get(node, PENDING) for node in graph.nodes}


# ---- shared helpers --------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _ids(graph: Graph) -> dict[type[Step], str]:
    """Node ids safe in Mermaid and DOT: ``n<topological index>_<ascii class name>``."""
    return {node: f"n{i}_{_UNSAFE.sub('_', node.__name__)}" for i, node in enumerate(graph.nodes)}


def _labels(graph: Graph) -> dict[type[Step], str]:
    """Class names; the dotted registry name where two steps share a class name."""
    counts: dict[str, int] = {}
    for node in graph.nodes:
        counts[node.__name__] = counts.get(node.__name__, 0) + 1
    return {node: node.__name__ if counts[node.__name__] == 1 else node.registry_name()
            for node in graph.nodes}


def layers(graph: Graph) -> list[list[type[Step]]]:
    """Nodes by layer: a node's layer is the length of the longest path reaching it."""
    depth: dict[type[Step], int] = {}
    for node in graph.nodes:  # topological order: predecessors come first
        depth[node] = max((depth[p] + 1 for p in graph.preds.get(node, ())), default=0)
    result: list[list[type[Step]]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in graph.nodes:
        result[depth[node]].append(node)
    return result


def _grouped_edges(graph: Graph) -> dict[type[Step], list[tuple[str, list[Edge]]]]:
    """Per source, its events in declaration order with the edges each one leads along."""
    grouped: dict[type[Step], dict[str, list[Edge]]] = {}
    for edge in graph.edges:
        grouped.setdefault(edge.source, {}).setdefault(edge.event, []).append(edge)
    return {source: list(events.items()) for source, events in grouped.items()}


# ---- Mermaid ---------------------------------------------------------------------------------------
def _mermaid_text(text: str) -> str:
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("|", "#124;"))


def mermaid(graph: Graph, states: StatesArg = None) -> str:
    """A Mermaid ``flowchart TD``: nodes labelled with step class names, edges with events.

    ``Done`` steps are drawn as stadiums; routed edges are dotted. With ``states``, each node
    gets the ``classDef`` of its state.
    """
    ids, labels, marked = _ids(graph), _labels(graph), _normalise(graph, states)
    lines = ["flowchart TD"]
    for node in graph.nodes:
        label = _mermaid_text(labels[node])
        shape = f'(["{label}"])' if node.is_terminal else f'[["{label}"]]' if is_children_step(node) \
            else f'["{label}"]'
        lines.append(f"    {ids[node]}{shape}")
    for edge in graph.edges:
        arrow = "-.->" if edge.routed else "-->"
        lines.append(f'    {ids[edge.source]} {arrow}|"{_mermaid_text(edge.event)}"| {ids[edge.target]}')
    if marked is not None:
        for state in legend_states(marked):
            fill, stroke, colour = COLOURS[state]
            dash = f",stroke-dasharray:{DASHES[state]}" if state in DASHES else ""
            lines.append(f"    classDef {state} fill:{fill},stroke:{stroke},color:{colour}{dash}")
        for state in legend_states(marked):
            members = [ids[n] for n in graph.nodes if marked[n] == state]
            if members:
                lines.append(f"    class {','.join(members)} {state}")
    return "\n".join(lines) + "\n"


# ---- Graphviz DOT -----------------------------------------------------------------------------------
def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(graph: Graph, states: StatesArg = None) -> str:
    """A Graphviz ``digraph`` (``dot -Tsvg`` draws it); ``states`` set each node's fill colour."""
    ids, labels, marked = _ids(graph), _labels(graph), _normalise(graph, states)
    fill, stroke, colour = _PLAIN
    lines = [
        "digraph workflow {",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=12, '
        f'fillcolor="{fill}", color="{stroke}", fontcolor="{colour}"];',
        '    edge [fontname="Helvetica", fontsize=10, color="#52525b"];',
    ]
    for node in graph.nodes:
        attrs = [f"label={_dot_text(labels[node])}", f"tooltip={_dot_text(node.registry_name())}"]
        if node.is_terminal:
            attrs.append('shape=box, style="rounded,filled,bold"')
        if is_children_step(node):
            attrs.append("peripheries=2")
        if marked is not None:
            fill, stroke, colour = COLOURS[marked[node]]
            style = ', style="rounded,filled,dashed"' if marked[node] in DASHES else ""
            attrs.append(f'fillcolor="{fill}", color="{stroke}", fontcolor="{colour}", '
                         f"class={_dot_text(marked[node])}{style}")
        lines.append(f"    {ids[node]} [{', '.join(attrs)}];")
    for edge in graph.edges:
        style = ", style=dashed" if edge.routed else ""
        lines.append(f"    {ids[edge.source]} -> {ids[edge.target]} [label={_dot_text(edge.event)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- plain text -------------------------------------------------------------------------------------
def ascii(graph: Graph, states: StatesArg = None) -> str:  # noqa: A001 - the format's name
    """The DAG as text: layers in topological order, each step with its outgoing edges.

    With ``states`` every step is prefixed by its marker (``[x]`` completed, ``[>]`` active, ``[~]``
    waiting, ``[!]`` failed, ``[-]`` cancelled, ``[/]`` skipped, ``[ ]`` pending), and a legend
    ends the text.
    """
    labels, marked = _labels(graph), _normalise(graph, states)
    grouped = _grouped_edges(graph)
    lines: list[str] = []
    for number, layer in enumerate(layers(graph), start=1):
        lines.append(f"layer {number}")
        for node in layer:
            marker = f"{MARKERS[marked[node]]} " if marked is not None else ""
            notes = []
            if node is graph.start:
                notes.append("start")
            if is_children_step(node):
                notes.append("starts child workflows")
            preds = graph.preds.get(node, [])
            if len(preds) > 1:
                notes.append("join of " + ", ".join(labels[p] for p in preds))
            suffix = f"  ({'; '.join(notes)})" if notes else ""
            lines.append(f"  {marker}{labels[node]}{suffix}")
            for event, edges in grouped.get(node, []):
                targets = ", ".join(labels[e.target] for e in edges)
                kind = "  (fan-out)" if len(edges) > 1 else ""
                if any(e.routed for e in edges):
                    kind = "  (route)"
                lines.append(f"      --{event}--> {targets}{kind}")
    if marked is not None:
        lines.append("")
        lines.append("legend: " + "  ".join(f"{MARKERS[s]} {s}" for s in legend_states(marked)))
    return "\n".join(lines) + "\n"


# ---- SVG ----------------------------------------------------------------------------------------------
_CHAR_WIDTH = 7.4
_NODE_HEIGHT = 36
_H_GAP = 36
_DUMMY_GAP = 14
_V_GAP = 64
_MARGIN = 20
_LEGEND_HEIGHT = 28
_LEGEND_ITEM = 110.0
_LEGEND_PER_ROW = 4
#: Above this many bend points, long edges are drawn straight (huge graphs stay cheap to lay out).
_MAX_BENDS = 20_000


class _Layout:
    """A layered (Sugiyama-style) layout: long edges get bend points in the layers they cross,
    layers are ordered by barycentre sweeps, and each vertex sits near its predecessors.

    Vertices are ints: ``0..n-1`` are the graph's nodes (topological index), the rest bends.
    """

    def __init__(self, graph: Graph, widths: dict[type[Step], float]) -> None:
        nodes = graph.nodes
        depth = {node: i for i, layer in enumerate(layers(graph)) for node in layer}
        self.layer = [depth[n] for n in nodes]
        self.width = [widths[n] for n in nodes]
        self.preds: list[list[int]] = [[] for _ in nodes]
        self.succs: list[list[int]] = [[] for _ in nodes]
        #: (source, target) pairs of the graph and the vertices their line runs through.
        self.routes: dict[tuple[type[Step], type[Step]], list[int]] = {}
        index = graph.index
        pairs = list(dict.fromkeys((e.source, e.target) for e in graph.edges))
        bends = sum(max(0, depth[t] - depth[s] - 1) for s, t in pairs)
        for source, target in pairs:
            chain = [index[source]]
            if bends <= _MAX_BENDS:
                for level in range(depth[source] + 1, depth[target]):
                    chain.append(self._add_bend(level))
            chain.append(index[target])
            for a, b in zip(chain, chain[1:], strict=False):
                self.succs[a].append(b)
                self.preds[b].append(a)
            self.routes[(source, target)] = chain
        self.rows: list[list[int]] = [[] for _ in range(max(self.layer, default=-1) + 1)]
        for v in range(len(self.layer)):
            self.rows[self.layer[v]].append(v)
        self._ports: dict[tuple[int, bool], dict[int, int]] = {}
        self._order()
        self.x = self._place()

    def _add_bend(self, level: int) -> int:
        self.layer.append(level)
        self.width.append(0.0)
        self.preds.append([])
        self.succs.append([])
        return len(self.layer) - 1

    def _order(self) -> None:
        position = [0.0] * len(self.layer)

        def number(row: list[int]) -> None:
            middle = (len(row) - 1) / 2
            for i, v in enumerate(row):
                position[v] = i - middle

        if self.rows:
            number(self.rows[0])
        for sweep in range(3):
            down = sweep % 2 == 0
            levels = range(1, len(self.rows)) if down else range(len(self.rows) - 2, -1, -1)
            for level in levels:
                row = self.rows[level]
                for v in row:
                    near = self.preds[v] if down else self.succs[v]
                    if near:
                        position[v] = sum(position[u] for u in near) / len(near)
                row.sort(key=lambda v: (position[v], v))
                number(row)

    def _place(self) -> list[float]:
        """x of every vertex: rows packed, then pulled towards their neighbours, sweeping down and up."""
        x = [0.0] * len(self.layer)
        for row in self.rows:
            self._pack(row, {}, x)
        for sweep in range(8):
            down = sweep % 2 == 0
            rows = self.rows[1:] if down else self.rows[-2::-1]
            for row in rows:
                desired = {}
                for v in row:
                    near = self.preds[v] if down else self.succs[v]
                    if near:
                        desired[v] = sum(x[u] for u in near) / len(near)
                self._pack(row, desired, x)
        return x

    def port(self, v: int, other: int, x: list[float], *, down: bool) -> float:
        """Where the line between ``v`` and its neighbour ``other`` meets ``v``'s bottom (``down``)
        or top: lines spread over the middle half of the box, in the order of their far ends."""
        key = (v, down)
        if key not in self._ports:
            near = sorted(self.succs[v] if down else self.preds[v], key=lambda u: (x[u], u))
            self._ports[key] = {u: i for i, u in enumerate(near)}
        ports = self._ports[key]
        if len(ports) < 2:
            return x[v]
        span = self.width[v] / 2
        return x[v] - span / 2 + span * ports[other] / (len(ports) - 1)

    def _pack(self, row: list[int], desired: dict[int, float], x: list[float]) -> None:
        """Put the row's vertices at their desired x (else where they are), keeping them apart."""
        previous: int | None = None
        wanted = {v: desired.get(v, x[v]) for v in row}
        for v in row:
            x[v] = wanted[v]
            if previous is not None:
                gap = _H_GAP if self.width[v] and self.width[previous] else _DUMMY_GAP
                x[v] = max(x[v], x[previous] + (self.width[previous] + self.width[v]) / 2 + gap)
            previous = v
        if row:  # pushing right only drifts: move the row back onto where it wanted to be
            shift = sum(wanted[v] - x[v] for v in row) / len(row)
            for v in row:
                x[v] += shift


def _text_width(text: str) -> float:
    return len(text) * _CHAR_WIDTH


def svg(graph: Graph, states: StatesArg = None, *, legend: bool = True) -> str:
    """A self-contained ``<svg>`` of the graph (layered, top-down): rounded boxes named after
    their steps, arrows labelled with events, boxes filled by ``states`` when given (each node's
    state also in its ``data-state``), with a legend of the states unless ``legend=False`` (a page
    that draws its own)."""
    labels, marked = _labels(graph), _normalise(graph, states)
    widths = {node: max(84.0, _text_width(labels[node]) + 28) for node in graph.nodes}
    layout = _Layout(graph, widths)
    xs = layout.x
    left = min((xs[v] - layout.width[v] / 2 for v in range(len(xs))), default=0.0)
    right = max((xs[v] + layout.width[v] / 2 for v in range(len(xs))), default=0.0)
    legend_rows = -(-len(legend_states(marked)) // _LEGEND_PER_ROW) if marked is not None and legend else 0
    legend_width = _LEGEND_PER_ROW * _LEGEND_ITEM if legend_rows else 0.0
    width = max(right - left, legend_width, 120.0) + 2 * _MARGIN
    rows = len(layout.rows)
    height = 2 * _MARGIN + rows * _NODE_HEIGHT + max(0, rows - 1) * _V_GAP
    height += legend_rows * _LEGEND_HEIGHT + (8 if legend_rows else 0)

    def point(v: int) -> tuple[float, float]:
        return xs[v] - left + _MARGIN, _MARGIN + layout.layer[v] * (_NODE_HEIGHT + _V_GAP) + _NODE_HEIGHT / 2

    digest = hashlib.sha1("|".join(n.registry_name() for n in graph.nodes).encode(), usedforsecurity=False)
    arrow_id = f"hx-arrow-{digest.hexdigest()[:10]}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="hx-graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="workflow graph" '
        'font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="13">',
        f'<defs><marker id="{arrow_id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#52525b"/>'
        "</marker></defs>",
    ]

    # edges first, so that boxes cover line ends; events between the same two steps share a line
    events: dict[tuple[type[Step], type[Step]], list[Edge]] = {}
    for edge in graph.edges:
        events.setdefault((edge.source, edge.target), []).append(edge)
    event_labels: list[str] = []
    for pair, edges in events.items():
        route = layout.routes[pair]
        points = [point(v) for v in route]
        points[0] = (layout.port(route[0], route[1], xs, down=True) - left + _MARGIN,
                     points[0][1] + _NODE_HEIGHT / 2)
        points[-1] = (layout.port(route[-1], route[-2], xs, down=False) - left + _MARGIN,
                      points[-1][1] - _NODE_HEIGHT / 2)
        path = " L ".join(f"{px:.1f} {py:.1f}" for px, py in points)
        dash = ' stroke-dasharray="5 4"' if all(e.routed for e in edges) else ""
        out.append(f'<path class="hx-edge" d="M {path}" fill="none" stroke="#52525b" '
                   f'stroke-width="1.4"{dash} marker-end="url(#{arrow_id})"/>')
        text = ", ".join(dict.fromkeys(e.event for e in edges))
        # on the first segment, a third of the way down, where fan-out lines are already apart
        (ax, ay), (bx, by) = points[0], points[1]
        lx, ly = ax + (bx - ax) / 3, ay + (by - ay) / 3
        box = _text_width(text) * 0.85 + 8
        event_labels.append(
            f'<g class="hx-event"><rect x="{lx - box / 2:.1f}" y="{ly - 9:.1f}" width="{box:.1f}" '
            f'height="16" rx="3" fill="#ffffff" fill-opacity="0.9"/><text x="{lx:.1f}" y="{ly + 3.5:.1f}" '
            f'text-anchor="middle" font-size="11" fill="#3f3f46">{_xml_escape(text)}</text></g>')
    out.extend(event_labels)

    for i, node in enumerate(graph.nodes):
        cx, cy = point(i)
        w = widths[node]
        state = marked[node] if marked is not None else None
        fill, stroke, colour = COLOURS[state] if state is not None else _PLAIN
        css, data = ("hx-node", "") if state is None else (f"hx-node hx-{state}", f' data-state="{state}"')
        width_attr = ' stroke-width="2.2"' if node.is_terminal or state == FAILED else ' stroke-width="1.4"'
        dash = f' stroke-dasharray="{DASHES[state]}"' if state in DASHES else ""
        title = node.registry_name() + (f" ({state})" if state else "")
        children, stack = "", ""
        if is_children_step(node):  # a second box behind: this step starts child workflows
            css += " hx-children-step"
            children = ' data-children="true"'
            title += " - starts child workflows"
            stack = (f'<rect class="hx-children-stack" x="{cx - w / 2 + 4:.1f}" y="{cy - _NODE_HEIGHT / 2 - 4:.1f}" '
                     f'width="{w:.1f}" height="{_NODE_HEIGHT}" rx="10" ry="10" fill="{fill}" stroke="{stroke}" '
                     'stroke-width="1.2"/>')
        out.append(
            f'<g class="{css}" data-step="{_xml_escape(node.registry_name())}"{data}{children}>'
            f"<title>{_xml_escape(title)}</title>{stack}"
            f'<rect x="{cx - w / 2:.1f}" y="{cy - _NODE_HEIGHT / 2:.1f}" width="{w:.1f}" '
            f'height="{_NODE_HEIGHT}" rx="10" ry="10" fill="{fill}" stroke="{stroke}"{width_attr}{dash}/>'
            f'<text x="{cx:.1f}" y="{cy + 4.5:.1f}" text-anchor="middle" fill="{colour}">'
            f"{_xml_escape(labels[node])}</text></g>")

    for number, state in enumerate(legend_states(marked) if marked is not None and legend_rows else ()):
        row, column = divmod(number, _LEGEND_PER_ROW)
        y = height - _MARGIN - (legend_rows - row - 0.5) * _LEGEND_HEIGHT
        x = _MARGIN + column * _LEGEND_ITEM
        fill, stroke, _ = COLOURS[state]
        dash = f' stroke-dasharray="{DASHES[state]}"' if state in DASHES else ""
        out.append(f'<g class="hx-legend" data-state="{state}"><rect x="{x:.1f}" y="{y - 8:.1f}" width="16" '
                   f'height="16" rx="4" fill="{fill}" stroke="{stroke}"{dash}/><text x="{x + 22:.1f}" '
                   f'y="{y + 4.5:.1f}" fill="#3f3f46">{state}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
