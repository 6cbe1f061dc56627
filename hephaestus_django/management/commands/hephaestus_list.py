"""``manage.py hephaestus_list``: instances, newest first."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from hephaestus_django.core.registry import get_workflow, short_name
from hephaestus_django.management.base import (
    HephaestusCommand,
    positive_int,
    status_value,
    table,
    when,
)
from hephaestus_django.shapes import instance_shape
from hephaestus_django.storage.models import WorkflowInstance


class Command(HephaestusCommand):
    help = "List instances, newest first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workflow", metavar="NAME",
                            help="Only instances of this workflow (registry name).")
        parser.add_argument("--status", metavar="S", nargs="+", action="extend", type=status_value(),
                            help="Only these statuses (repeatable): pending, running, waiting, completed, "
                                 "failed, cancelled.")
        parser.add_argument("--version", metavar="N", type=positive_int, dest="workflow_version",
                            help="Only this workflow version.")
        parser.add_argument("--limit", metavar="N", type=positive_int, default=50,
                            help="At most N instances (default: %(default)r).")
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        rows = WorkflowInstance.objects.all()
        if options["workflow"] is not None:
            rows = rows.filter(workflow=get_workflow(options["workflow"]).name)
        if options["status"]:
            rows = rows.filter(status__in=options["status"])
        if options["workflow_version"] is not None:
            rows = rows.filter(workflow_version=options["workflow_version"])
        found = list(rows.order_by("-created_at", "-pk")[: options["limit"]])
        if options["json"]:
            self.print_json([instance_shape(r) for r in found])
            return
        if not found:
            self.stdout.write("No instances.")
            return
        self.stdout.write(table(
            ["id", "workflow", "version", "status", "current step", "created", "updated"],
            [(r.instance_id, r.workflow, r.workflow_version, r.status, short_name(r.current_step),
              when(r.created_at), when(r.updated_at)) for r in found],
        ))
