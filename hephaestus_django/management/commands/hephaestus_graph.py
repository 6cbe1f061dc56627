"""``manage.py hephaestus_graph WORKFLOW``: draw a workflow's graph as Mermaid, DOT or text."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandParser

from hephaestus_django.core import render
from hephaestus_django.core.registry import get_workflow
from hephaestus_django.management.base import HephaestusCommand, instance_row, text_argument

FORMATS = {"mermaid": render.mermaid, "dot": render.dot, "ascii": render.ascii}


def graph_format(text: str) -> str:
    if text not in FORMATS:
        raise argparse.ArgumentTypeError(f"invalid format {text!r} (choose from {', '.join(FORMATS)})")
    return text


class Command(HephaestusCommand):
    help = ("Print the graph of WORKFLOW (its current version) as Mermaid, Graphviz DOT or text; with "
            "--instance, the graph of that instance's version with its steps marked.")
    json_option = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", metavar="WORKFLOW", help="Registry name of the workflow.")
        parser.add_argument("--format", type=graph_format, default="mermaid",
                            help="mermaid, dot or ascii (default: %(default)r).")
        parser.add_argument("--instance", metavar="ID", type=text_argument("ID"),
                            help="Mark the completed, active, waiting and pending steps of instance ID.")

    def run(self, **options: Any) -> None:
        workflow = get_workflow(options["workflow"])
        states = None
        version = None
        if options["instance"] is not None:
            row = instance_row(options["instance"], workflow.name)
            version = row.workflow_version
            history = row.history.order_by("seq").values_list("step", "kind")
            states = render.step_states(row, history=list(history))
        graph = workflow.definition(version).graph
        self.stdout.write(FORMATS[options["format"]](graph, states), ending="")
