"""Pictures of a workflow graph: Mermaid, Graphviz DOT, plain text and a self-contained SVG.

Pure Python (no Django); the admin, the API and ``hephaestus_graph`` call it::

    from hephaestus_django.core import render

    graph = OrderFlow.definition().graph
    render.mermaid(graph)                       # flowchart TD text
    render.dot(graph, render.step_states(instance))
    render.ascii(graph)                         # layers in topological order, edges listed
    render.svg(graph, states)                   # inline <svg>, no JS, no external files

``states`` maps steps (classes or registry names) to ``completed``, ``active``, ``waiting`` or
``pending``; :func:`step_states` builds it from an instance. Every function is iterative, so
graphs of thousands of steps render without touching the recursion limit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from html import escape as _xml_escape
from typing import Any

from hephaestus_django.core.graph import Edge, Graph
from hephaestus_django.core.step import Step

__all__ = ["MARKERS", "STATES", "ascii", "dot", "layers", "mermaid", "step_states", "svg"]

COMPLETED, ACTIVE, WAITING, PENDING = "completed", "active", "waiting", "pending"
#: Every state a step can be drawn in.
STATES = (COMPLETED, ACTIVE, WAITING, PENDING)
#: Markers of the text rendering.
MARKERS = {COMPLETED: "[x]", ACTIVE: "[>]", WAITING: "[~]", PENDING: "[ ]"}
#: (fill, stroke, text) colours of each state, shared by DOT, Mermaid and SVG.
COLOURS = {
    COMPLETED: ("#d3f0da", "#2e7d32", "#1b4d20"),
    ACTIVE: ("#d6e8ff", "#1565c0", "#0d3c75"),
    WAITING: ("#fff0c2", "#b26a00", "#5f3a00"),
    PENDING: ("#f4f4f5", "#9e9ea7", "#3f3f46"),
}
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
                active: Iterable[Any] = (), waiting: Iterable[Any] = ()) -> dict[type[Step], str]:
    """The state of every step of the graph: ``completed``, ``active``, ``waiting`` or ``pending``.

    ``instance`` is a core ``Instance`` or anything with the same attributes holding registry
    names (a ``WorkflowInstance`` row: ``workflow`` may then be the registry name). Without an
    instance, pass ``graph`` and the ``completed``/``active``/``waiting`` steps (classes or names).
    """
    if instance is not None:
        graph = graph if graph is not None else _graph_for(instance)
        completed = instance.completed_steps
        active = instance.active_steps
        waiting = instance.waiting_steps
    if graph is None:
        raise TypeError("step_states() needs an instance or a graph")
    done, running, paused = (_resolve(graph, steps) for steps in (completed, active, waiting))
    states: dict[type[Step], str] = {}
    for node in graph.nodes:
        if node in done:
            states[node] = COMPLETED
        elif node in paused:
            states[node] = WAITING
        elif node in running:
            states[node] = ACTIVE
        else:
            states[node] = PENDING
    return states


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
    return {node: node.__name__ if counts[node.__name__] == 1 else node.registry_name() for node in graph.nodes}


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
        shape = f'(["{label}"])' if node.is_terminal else f'["{label}"]'
        lines.append(f"    {ids[node]}{shape}")
    for edge in graph.edges:
        arrow = "-.->" if edge.routed else "-->"
        lines.append(f'    {ids[edge.source]} {arrow}|"{_mermaid_text(edge.event)}"| {ids[edge.target]}')
    if marked is not None:
        for state in STATES:
            fill, stroke, colour = COLOURS[state]
            lines.append(f"    classDef {state} fill:{fill},stroke:{stroke},color:{colour}")
        for state in STATES:
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
        if marked is not None:
            fill, stroke, colour = COLOURS[marked[node]]
            attrs.append(f'fillcolor="{fill}", color="{stroke}", fontcolor="{colour}", '
                         f"class={_dot_text(marked[node])}")
        lines.append(f"    {ids[node]} [{', '.join(attrs)}];")
    for edge in graph.edges:
        style = ", style=dashed" if edge.routed else ""
        lines.append(f"    {ids[edge.source]} -> {ids[edge.target]} [label={_dot_text(edge.event)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- plain text -------------------------------------------------------------------------------------
def ascii(graph: Graph, states: StatesArg = None) -> str:  # noqa: A001 - the format's name
    """The DAG as text: layers in topological order, each step with its outgoing edges.

    With ``states`` every step is prefixed by ``[x]`` completed, ``[>]`` active, ``[~]``
    waiting or ``[ ]`` pending, and a legend ends the text.
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
            preds = graph.preds.get(node, [])
            if len(preds) > 1:
                notes.append("join of " + ", ".join(labels[p] for p in preds))
            suffix = f"  ({'; '.join(notes)})" if notes else ""
            lines.append(f"  {marker}{labels[node]}{suffix}")
            for event, edges in grouped.get(node, []):
                targets = ", ".join(labels[e.target] for e in edges)
                kind = "  (route)" if any(e.routed for e in edges) else "  (fan-out)" if len(edges) > 1 else ""
                lines.append(f"      --{event}--> {targets}{kind}")
    if marked is not None:
        lines.append("")
        lines.append("legend: " + "  ".join(f"{MARKERS[s]} {s}" for s in STATES))
    return "\n".join(lines) + "\n"


# ---- SVG ----------------------------------------------------------------------------------------------
_CHAR_WIDTH = 7.4
_NODE_HEIGHT = 36
_H_GAP = 36
_V_GAP = 64
_MARGIN = 20
_LEGEND_HEIGHT = 28


def _order_layers(graph: Graph, by_layer: list[list[type[Step]]]) -> list[list[type[Step]]]:
    """Order each layer by the mean position of its predecessors (one barycentre sweep)."""
    position: dict[type[Step], float] = {}
    ordered: list[list[type[Step]]] = []
    for layer in by_layer:
        def key(node: type[Step]) -> tuple[float, int]:
            preds = graph.preds.get(node, [])
            centre = sum(position[p] for p in preds) / len(preds) if preds else 0.0
            return centre, graph.index[node]

        row = sorted(layer, key=key)
        middle = (len(row) - 1) / 2
        for i, node in enumerate(row):
            position[node] = i - middle
        ordered.append(row)
    return ordered


def _text_width(text: str) -> float:
    return len(text) * _CHAR_WIDTH


def svg(graph: Graph, states: StatesArg = None) -> str:
    """A self-contained ``<svg>`` of the graph (layered, top-down): rounded boxes named after
    their steps, arrows labelled with events, boxes filled by ``states`` when given."""
    labels, marked = _labels(graph), _normalise(graph, states)
    rows = _order_layers(graph, layers(graph))
    widths = {node: max(84.0, _text_width(labels[node]) + 28) for node in graph.nodes}
    row_widths = [sum(widths[n] for n in row) + _H_GAP * (len(row) - 1) for row in rows]
    legend_width = 4 * 110.0 if marked is not None else 0.0
    inner = max(row_widths + [legend_width, 120.0])
    width = inner + 2 * _MARGIN
    height = 2 * _MARGIN + len(rows) * _NODE_HEIGHT + (len(rows) - 1) * _V_GAP
    if marked is not None:
        height += _LEGEND_HEIGHT + 8

    centre: dict[type[Step], tuple[float, float]] = {}
    for r, row in enumerate(rows):
        x = _MARGIN + (inner - row_widths[r]) / 2
        y = _MARGIN + r * (_NODE_HEIGHT + _V_GAP) + _NODE_HEIGHT / 2
        for node in row:
            centre[node] = (x + widths[node] / 2, y)
            x += widths[node] + _H_GAP

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
    pairs: dict[tuple[type[Step], type[Step]], list[Edge]] = {}
    for edge in graph.edges:
        pairs.setdefault((edge.source, edge.target), []).append(edge)
    labels_out: list[str] = []
    for (source, target), edges in pairs.items():
        (x1, y1), (x2, y2) = centre[source], centre[target]
        y1 += _NODE_HEIGHT / 2
        y2 -= _NODE_HEIGHT / 2
        dash = ' stroke-dasharray="5 4"' if all(e.routed for e in edges) else ""
        out.append(f'<line class="hx-edge" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                   f'stroke="#52525b" stroke-width="1.4"{dash} marker-end="url(#{arrow_id})"/>')
        text = ", ".join(dict.fromkeys(e.event for e in edges))
        # the label sits a third of the way down, where fan-out lines are already apart
        lx, ly = x1 + (x2 - x1) / 3, y1 + (y2 - y1) / 3
        box = _text_width(text) * 0.85 + 8
        labels_out.append(
            f'<g class="hx-event"><rect x="{lx - box / 2:.1f}" y="{ly - 9:.1f}" width="{box:.1f}" height="16" '
            f'rx="3" fill="#ffffff" fill-opacity="0.9"/><text x="{lx:.1f}" y="{ly + 3.5:.1f}" '
            f'text-anchor="middle" font-size="11" fill="#3f3f46">{_xml_escape(text)}</text></g>')
    out.extend(labels_out)

    for node in graph.nodes:
        cx, cy = centre[node]
        w = widths[node]
        state = marked[node] if marked is not None else None
        fill, stroke, colour = COLOURS[state] if state is not None else _PLAIN
        css = f"hx-node hx-{state}" if state else "hx-node"
        bold = ' stroke-width="2.2"' if node.is_terminal else ' stroke-width="1.4"'
        title = node.registry_name() + (f" ({state})" if state else "")
        out.append(
            f'<g class="{css}" data-step="{_xml_escape(node.registry_name())}">'
            f"<title>{_xml_escape(title)}</title>"
            f'<rect x="{cx - w / 2:.1f}" y="{cy - _NODE_HEIGHT / 2:.1f}" width="{w:.1f}" height="{_NODE_HEIGHT}" '
            f'rx="10" ry="10" fill="{fill}" stroke="{stroke}"{bold}/>'
            f'<text x="{cx:.1f}" y="{cy + 4.5:.1f}" text-anchor="middle" fill="{colour}">'
            f"{_xml_escape(labels[node])}</text></g>")

    if marked is not None:
        y = height - _MARGIN - _LEGEND_HEIGHT / 2
        x = _MARGIN
        for state in STATES:
            fill, stroke, colour = COLOURS[state]
            out.append(f'<g class="hx-legend"><rect x="{x:.1f}" y="{y - 8:.1f}" width="16" height="16" rx="4" '
                       f'fill="{fill}" stroke="{stroke}"/><text x="{x + 22:.1f}" y="{y + 4.5:.1f}" '
                       f'fill="#3f3f46">{state}</text></g>')
            x += 110
    out.append("</svg>")
    return "\n".join(out) + "\n"
