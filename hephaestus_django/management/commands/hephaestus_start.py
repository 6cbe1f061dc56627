"""``manage.py hephaestus_start WORKFLOW VALUE``: start an instance of a registered workflow."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from hephaestus_django import services
from hephaestus_django.core.keys import build_id, check_id_for
from hephaestus_django.core.registry import get_workflow
from hephaestus_django.management.base import (
    HephaestusCommand,
    instance_row,
    instance_summary,
    parse_json_object,
    positive_int,
    read_json_file,
)
from hephaestus_django.shapes import instance_shape


class Command(HephaestusCommand):
    help = "Start an instance of WORKFLOW (its registry name) for the business value VALUE."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", metavar="WORKFLOW", help="Registry name of the workflow.")
        parser.add_argument("value", metavar="VALUE", help="Business value (the id is KEY::VALUE).")
        parser.add_argument("--id", action="store_true", dest="full_id",
                            help="VALUE is the full instance id (KEY::VALUE or KEY::VALUE::SUFFIX, KEY being "
                                 "the workflow's unique key), checked as the API checks it.")
        context = parser.add_mutually_exclusive_group()
        context.add_argument("--context", metavar="JSON",
                             help="Initial context, a JSON object (default: {}).")
        context.add_argument("--context-file", metavar="PATH",
                             help="File holding the initial context as a JSON object ('-': standard input).")
        parser.add_argument("--version", metavar="N", type=positive_int, dest="workflow_version",
                            help="Workflow version to run (default: the workflow's choice).")
        parser.add_argument("--telemetry-metadata", metavar="JSON",
                            help="JSON object merged into every telemetry event of the instance.")
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        workflow = get_workflow(options["workflow"])
        if options["context_file"] is not None:
            context = read_json_file(options["context_file"], "--context-file")
        elif options["context"] is not None:
            context = parse_json_object(options["context"], "--context")
        else:
            context = {}
        metadata = None
        if options["telemetry_metadata"] is not None:
            metadata = parse_json_object(options["telemetry_metadata"], "--telemetry-metadata")
        value, version = options["value"], options["workflow_version"]
        unique = workflow.unique
        instance_id = check_id_for(unique.key, value) if options["full_id"] else build_id(unique.key, value,
                                                                                           unique.scope)
        if version is not None:
            workflow.definition(version)  # an unknown version is a ValueError, before anything is written
        instance = services.start_instance(workflow, context, id=instance_id, version=version,
                                           telemetry_metadata=metadata)
        row = instance_row(instance.id, workflow.name)
        if options["json"]:
            self.print_json(instance_shape(row))
        else:
            self.stdout.write(f"Started {row.instance_id}.")
            self.stdout.write(instance_summary(row))
