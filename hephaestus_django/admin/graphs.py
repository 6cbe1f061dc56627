"""Workflow graphs for the admin pages: inline SVG (drawn on the server, no JavaScript) plus the
text rendering as a fallback, both from :mod:`hephaestus_django.core.render`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from hephaestus_django.core import registry, render
from hephaestus_django.core.exceptions import HephaestusError
from hephaestus_django.core.graph import Graph

logger = logging.getLogger("hephaestus")


@dataclass(frozen=True, slots=True)
class Picture:
    """A drawn graph: ``svg`` (safe markup) and ``text``; or ``error`` when it cannot be drawn."""

    svg: SafeString | None = None
    text: str = ""
    error: str | None = None


def draw(graph: Graph, states: Any = None) -> Picture:
    try:
        svg = render.svg(graph, states)
        text = render.ascii(graph, states)
    except Exception:  # a drawing bug must not take the page down
        logger.exception("drawing a workflow graph failed")
        return Picture(error=_("The graph could not be drawn (see the server log)."))
    # render.svg escapes every name it writes: the markup is ours.
    return Picture(svg=mark_safe(svg), text=text)  # noqa: S308


def instance_picture(row: Any) -> Picture:
    """The graph of the row's workflow version with completed/active/waiting/pending steps marked."""
    try:
        workflow = registry.get_workflow(row.workflow)
        graph = workflow.definition(row.workflow_version).graph
        states = render.step_states(row, graph=graph)
    except (HephaestusError, ValueError):
        return Picture(error=_("Workflow %(name)s version %(version)s is not registered: its graph cannot "
                               "be drawn.") % {"name": row.workflow, "version": row.workflow_version})
    return draw(graph, states)
