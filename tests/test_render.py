"""Issue 7: graph rendering (``hephaestus_django.core.render``): golden files, DOT through Graphviz,
the SVG picture, step states, escaping and very large graphs.

Regenerate the golden files after an intended change with ``HEPHAESTUS_UPDATE_GOLDEN=1 pytest
tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hephaestus_django import services
from hephaestus_django.core import Done, Ok, Step, Unique, Workflow, registry, render
from hephaestus_django.core.graph import Graph
from hephaestus_django.storage.models import WorkflowInstance
from tests.workflows_commands import CmdApprove, CmdBranchA, CmdBranchB, CmdFanFlow, CmdMerge, CmdPrepare

GOLDEN = Path(__file__).parent / "golden"
RENDERERS: dict[str, tuple[Callable[..., str], str]] = {
    "mermaid": (render.mermaid, "mmd"),
    "dot": (render.dot, "dot"),
    "ascii": (render.ascii, "txt"),
}
SVG_NS = "{http://www.w3.org/2000/svg}"


def fan_states() -> dict[type[Step], str]:
    return render.step_states(graph=CmdFanFlow.graph, completed=[CmdPrepare], active=[CmdBranchA],
                              waiting=[CmdBranchB])


def parse_xml(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own output, not untrusted input


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("HEPHAESTUS_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"golden file {path} is missing (HEPHAESTUS_UPDATE_GOLDEN=1 writes it)"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def require_dot() -> str:
    """Path of Graphviz's ``dot``: skipped when missing, except under CI where that fails."""
    found = shutil.which("dot")
    if found is None:
        reason = "Graphviz 'dot' is not installed (apt-get install graphviz)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set", pytrace=False)
        pytest.skip(reason)
    return found


def dot_to_svg(text: str) -> str:
    result = subprocess.run([require_dot(), "-Tsvg"], input=text, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return result.stdout


@pytest.fixture
def temporary_workflows() -> Iterator[list[type[Any]]]:
    """Workflows a test defines with ``type()``; unregistered afterwards."""
    made: list[type[Any]] = []
    yield made
    for workflow in made:
        registry.unregister(workflow.name)


# ---- golden files --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_golden_plain(fmt: str) -> None:
    func, ext = RENDERERS[fmt]
    check_golden(f"cmd_fan_flow.{ext}", func(CmdFanFlow.graph))


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_golden_with_states(fmt: str) -> None:
    func, ext = RENDERERS[fmt]
    check_golden(f"cmd_fan_flow_states.{ext}", func(CmdFanFlow.graph, fan_states()))


def test_renderings_are_deterministic() -> None:
    for func, _ in RENDERERS.values():
        assert func(CmdFanFlow.graph, fan_states()) == func(CmdFanFlow.graph, fan_states())
    assert render.svg(CmdFanFlow.graph) == render.svg(CmdFanFlow.graph)


# ---- Mermaid -------------------------------------------------------------------------------------
def test_mermaid_is_a_flowchart_with_safe_ids_and_class_name_labels() -> None:
    text = render.mermaid(CmdFanFlow.graph)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = [re.fullmatch(r"    (\w+)\[?\(?\[\"(.+)\"\]\)?\]?", line) for line in lines[1:7]]
    assert all(nodes), lines[1:7]
    assert [m.group(2) for m in nodes if m] == ["CmdPrepare", "CmdBranchA", "CmdBranchB", "CmdMerge",
                                                "CmdApprove", "Done"]
    assert all(re.fullmatch(r"n\d+_[A-Za-z0-9_]+", m.group(1)) for m in nodes if m)
    assert '-->|"ready"|' in text and '-->|"approved"|' in text and '-->|"rejected"|' in text
    assert "classDef" not in text


def test_mermaid_states_use_class_defs() -> None:
    text = render.mermaid(CmdFanFlow.graph, fan_states())
    for state in render.STATES:
        if state != render.COMPENSATED:  # only when a step is
            assert f"classDef {state} " in text
    assert "compensated" not in text
    assert "class n0_CmdPrepare completed" in text
    assert "class n1_CmdBranchA active" in text
    assert "class n2_CmdBranchB waiting" in text
    assert "class n3_CmdMerge,n4_CmdApprove,n5_Done pending" in text


# ---- DOT -----------------------------------------------------------------------------------------
def test_dot_parses_with_graphviz() -> None:
    for states in (None, fan_states()):
        output = dot_to_svg(render.dot(CmdFanFlow.graph, states))
        root = parse_xml(output)
        titles = {t.text for t in root.iter(f"{SVG_NS}title")}
        assert {"n0_CmdPrepare", "n3_CmdMerge", "n5_Done", "n0_CmdPrepare->n1_CmdBranchA"} <= titles


def test_dot_colours_nodes_by_state() -> None:
    text = render.dot(CmdFanFlow.graph, fan_states())
    fill = {state: colours[0] for state, colours in render.COLOURS.items()}
    assert re.search(rf'n0_CmdPrepare \[[^\]]*fillcolor="{fill["completed"]}"', text)
    assert re.search(rf'n1_CmdBranchA \[[^\]]*fillcolor="{fill["active"]}"', text)
    assert re.search(rf'n2_CmdBranchB \[[^\]]*fillcolor="{fill["waiting"]}"', text)
    assert re.search(rf'n5_Done \[[^\]]*fillcolor="{fill["pending"]}"', text)


# ---- escaping of awkward event names -------------------------------------------------------------
def _awkward_flow(temporary_workflows: list[type[Any]]) -> type[Any]:
    event = 'say "hi" | <b>&\\'
    suffix = uuid.uuid4().hex[:8]
    first = type(f"Awkward{suffix}", (Step,), {"events": (event,), "__module__": "tests.render_dynamic",
                                               "execute": lambda self, i, c, x: Ok(event)})
    flow = type(f"AwkwardFlow{suffix}", (Workflow,), {
        "__module__": "tests.render_dynamic", "unique": Unique(key="awkward"), "start_step": first,
        "transitions": {(first, event): Done},
    })
    temporary_workflows.append(flow)
    return flow


def test_event_names_are_escaped(temporary_workflows: list[type[Any]]) -> None:
    graph = _awkward_flow(temporary_workflows).graph
    mermaid = render.mermaid(graph)
    assert '-->|"say #quot;hi#quot; #124; #lt;b#gt;#amp;\\"|' in mermaid
    dot_text = render.dot(graph)
    assert r'[label="say \"hi\" | <b>&\\"]' in dot_text
    dot_to_svg(dot_text)
    root = parse_xml(render.svg(graph))  # well-formed XML despite < > & "
    assert 'say "hi" | <b>&\\' in {t.text for t in root.iter(f"{SVG_NS}text")}
    assert "--say \"hi\" | <b>&\\--> Done" in render.ascii(graph)


# ---- ASCII ---------------------------------------------------------------------------------------
def test_ascii_lists_layers_in_topological_order_with_markers() -> None:
    text = render.ascii(CmdFanFlow.graph, fan_states())
    layers = re.findall(r"^layer (\d+)$", text, flags=re.M)
    assert layers == ["1", "2", "3", "4", "5"]
    assert "  [x] CmdPrepare  (start)" in text
    assert "      --ready--> CmdBranchA, CmdBranchB  (fan-out)" in text
    assert "  [>] CmdBranchA" in text and "  [~] CmdBranchB" in text
    assert "  [ ] CmdMerge  (join of CmdBranchA, CmdBranchB)" in text
    assert text.rstrip().endswith("legend: [x] completed  [>] active  [~] waiting  [!] failed  [-] cancelled  "
                                  "[/] skipped  [ ] pending")
    assert "[x]" not in render.ascii(CmdFanFlow.graph)


# ---- SVG -----------------------------------------------------------------------------------------
def test_svg_is_self_contained_and_draws_every_step_and_edge() -> None:
    text = render.svg(CmdFanFlow.graph, fan_states())
    root = parse_xml(text)
    assert root.tag == f"{SVG_NS}svg"
    assert float(root.get("width", 0)) > 0 and float(root.get("height", 0)) > 0
    lowered = text.lower()
    assert "<script" not in lowered and "href" not in lowered and "@import" not in lowered
    assert "http://" not in lowered.replace('xmlns="http://www.w3.org/2000/svg"', "")
    nodes = {g.get("data-step"): g for g in root.iter(f"{SVG_NS}g") if g.get("data-step")}
    assert set(nodes) == {s.registry_name() for s in CmdFanFlow.graph.nodes}
    assert "hx-completed" in nodes[CmdPrepare.registry_name()].get("class", "")
    assert "hx-active" in nodes[CmdBranchA.registry_name()].get("class", "")
    assert "hx-waiting" in nodes[CmdBranchB.registry_name()].get("class", "")
    assert "hx-pending" in nodes[CmdMerge.registry_name()].get("class", "")
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    for name in ("CmdPrepare", "CmdBranchA", "CmdBranchB", "CmdMerge", "CmdApprove", "Done"):
        assert name in texts
    # one line per pair of steps; events between the same two steps share it
    edges = [p for p in root.iter(f"{SVG_NS}path") if p.get("class") == "hx-edge"]
    assert len(edges) == 7
    assert "approved, rejected" in texts
    assert all(p.get("marker-end", "").startswith("url(#hx-arrow-") for p in edges)


def test_svg_boxes_do_not_overlap_and_layers_go_down() -> None:
    root = parse_xml(render.svg(CmdFanFlow.graph))
    boxes = {}
    for g in root.iter(f"{SVG_NS}g"):
        if g.get("data-step"):
            rect = g.find(f"{SVG_NS}rect")
            assert rect is not None
            x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
            width, height = float(rect.get("width", 0)), float(rect.get("height", 0))
            boxes[g.get("data-step")] = (x, y, x + width, y + height)
    items = list(boxes.values())
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    for edge in CmdFanFlow.graph.edges:
        assert boxes[edge.source.registry_name()][3] < boxes[edge.target.registry_name()][1]


# ---- states --------------------------------------------------------------------------------------
def test_step_states_from_lists_of_names_or_classes() -> None:
    graph = CmdFanFlow.graph
    by_name = render.step_states(graph=graph, completed=[CmdPrepare.registry_name()],
                                 active=[CmdBranchA.registry_name(), CmdBranchB.registry_name()],
                                 waiting=[CmdBranchB.registry_name()])
    by_class = render.step_states(graph=graph, completed=[CmdPrepare], active=[CmdBranchA, CmdBranchB],
                                  waiting={CmdBranchB: None})
    assert by_name == by_class
    assert by_name == {CmdPrepare: "completed", CmdBranchA: "active", CmdBranchB: "waiting",
                       CmdMerge: "pending", CmdApprove: "pending", Done: "pending"}
    with pytest.raises(TypeError, match="instance or a graph"):
        render.step_states()


def test_states_may_be_keyed_by_registry_name_and_are_checked() -> None:
    graph = CmdFanFlow.graph
    named = {CmdPrepare.registry_name(): "completed", "not.a.Step": "active"}
    assert render.mermaid(graph, named) == render.mermaid(graph, {CmdPrepare: "completed"})
    with pytest.raises(ValueError, match="unknown step state 'done'"):
        render.dot(graph, {CmdPrepare: "done"})


@pytest.mark.django_db
def test_step_states_of_a_stored_instance_and_of_its_row() -> None:
    instance = services.start_instance(CmdFanFlow, {"items": 1}, id=f"cmd::render-{uuid.uuid4().hex[:8]}")
    expected = {CmdPrepare: "completed", CmdBranchA: "completed", CmdBranchB: "completed",
                CmdMerge: "completed", CmdApprove: "waiting", Done: "pending"}
    assert render.step_states(instance) == expected
    row = WorkflowInstance.objects.get(pk=instance.pk)
    assert render.step_states(row) == expected  # names and a registry name for the workflow
    text = render.ascii(CmdFanFlow.graph, render.step_states(row))
    assert "  [~] CmdApprove" in text and "  [ ] Done" in text


# ---- large graphs --------------------------------------------------------------------------------
def _chain_flow(temporary_workflows: list[type[Any]], length: int) -> Graph:
    suffix = uuid.uuid4().hex[:8]
    namespace = {"events": ("next", "stop"), "__module__": "tests.render_dynamic"}
    steps = [type(f"R{suffix}N{i}", (Step,), dict(namespace)) for i in range(length)]
    transitions: dict[Any, Any] = {}
    for a, b in zip(steps, steps[1:], strict=False):
        transitions[(a, "next")] = b
        transitions[(a, "stop")] = Done
    transitions[(steps[-1], "next")] = Done
    transitions[(steps[-1], "stop")] = Done
    flow = type(f"RenderChain{suffix}", (Workflow,), {
        "__module__": "tests.render_dynamic", "unique": Unique(key="chain"), "start_step": steps[0],
        "transitions": transitions,
    })
    temporary_workflows.append(flow)
    return flow.graph


def test_two_thousand_steps_render_in_every_format(temporary_workflows: list[type[Any]]) -> None:
    graph = _chain_flow(temporary_workflows, 2000)
    states = render.step_states(graph=graph, completed=graph.nodes[:1000], active=[graph.nodes[1000]])
    text = render.ascii(graph, states)
    assert text.count("\nlayer ") == 2000  # 2000 steps + Done = 2001 layers; the first has no newline before
    assert render.mermaid(graph, states).count(" -->|") == 4000
    assert render.dot(graph).count(" -> ") == 4000
    root = parse_xml(render.svg(graph, states))
    assert len([g for g in root.iter(f"{SVG_NS}g") if g.get("data-step")]) == 2001


def test_compensated_steps_are_drawn_as_such() -> None:
    """SPEC §10: a completed step whose compensation ran, from a row's JSON or a core instance."""
    row = SimpleNamespace(workflow=CmdFanFlow.name, workflow_version=1, completed_steps=[CmdPrepare.registry_name()],
                          active_steps=[], waiting_steps={},
                          compensation={"done": [CmdPrepare.registry_name()], "pending": []})
    states = render.step_states(row)
    assert states[CmdPrepare] == render.COMPENSATED
    assert "[<] CmdPrepare" in render.ascii(CmdFanFlow.graph, states)
    assert "[<] compensated" in render.ascii(CmdFanFlow.graph, states)
    assert "class n0_CmdPrepare compensated" in render.mermaid(CmdFanFlow.graph, states)
    assert 'class="hx-node hx-compensated"' in render.svg(CmdFanFlow.graph, states)
