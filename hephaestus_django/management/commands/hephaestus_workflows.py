"""``manage.py hephaestus_workflows``: the registered workflows."""

from __future__ import annotations

from typing import Any

from hephaestus_django.core.registry import all_workflows
from hephaestus_django.management.base import HephaestusCommand, table
from hephaestus_django.shapes import workflow_shape


class Command(HephaestusCommand):
    help = "List the registered workflows."

    def run(self, **options: Any) -> None:
        workflows = sorted(all_workflows(), key=lambda w: w.name)
        if options["json"]:
            self.print_json([workflow_shape(w) for w in workflows])
            return
        if not workflows:
            self.stdout.write("No workflows are registered.")
            return
        rows = []
        for workflow in workflows:
            current = workflow.definition(None)
            rows.append((workflow.name, ", ".join(map(str, workflow.all_versions())), current.version,
                         f"{workflow.unique.key} ({workflow.unique.scope})", len(current.graph.nodes),
                         ", ".join(workflow.tags)))
        self.stdout.write(table(["name", "versions", "current", "unique", "steps", "tags"], rows))
