"""Workflow graphs for the admin pages: inline SVG (drawn on the server, no JavaScript) plus the
text rendering as a fallback, both from :mod:`hephaestus_django.core.render`.

An instance's graph marks each step with its state (``data-state`` on its node: completed, active,
waiting, failed, cancelled, skipped or pending) and comes with a legend of those states.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from hephaestus_django.core import registry, render
from hephaestus_django.core.exceptions import HephaestusError
from hephaestus_django.core.graph import Graph

logger = logging.getLogger("hephaestus")


@dataclass(frozen=True, slots=True)
class Picture:
    """A drawn graph: ``svg`` (safe markup) and ``text``; or ``error`` when it cannot be drawn.

    ``states`` lists ``(state, description)`` for the legend (empty: a graph without states);
    ``key`` tells this picture's controls apart from those of the other graphs of a page.
    """

    svg: SafeString | None = None
    text: str = ""
    error: str | None = None
    states: tuple[tuple[str, str], ...] = ()
    key: str = field(default_factory=lambda: secrets.token_hex(4))


def draw(graph: Graph, states: Any = None) -> Picture:
    try:
        svg = render.svg(graph, states, legend=False)  # the page draws the legend (it wraps on small screens)
        text = render.ascii(graph, states)
    except Exception:  # a drawing bug must not take the page down
        logger.exception("drawing a workflow graph failed")
        return Picture(error=_("The graph could not be drawn (see the server log)."))
    legend = tuple((s, _(render.DESCRIPTIONS[s])) for s in render.legend_states(states)) if states is not None else ()
    # render.svg escapes every name it writes: the markup is ours.
    return Picture(svg=mark_safe(svg), text=text, states=legend)  # noqa: S308


def instance_picture(row: Any, history: Iterable[Any] = ()) -> Picture:
    """The graph of the row's workflow version with each step's state marked; ``history`` (rows of
    its history entries, in order) tells which steps failed or were stopped."""
    try:
        workflow = registry.get_workflow(row.workflow)
        graph = workflow.definition(row.workflow_version).graph
        states = render.step_states(row, graph=graph, history=[(e.step, e.kind) for e in history])
    except (HephaestusError, ValueError):
        return Picture(error=_("Workflow %(name)s version %(version)s is not registered: its graph cannot "
                               "be drawn.") % {"name": row.workflow, "version": row.workflow_version})
    return draw(graph, states)
