"""``manage.py hephaestus_resume ID EVENT``: complete a waiting step of an instance with EVENT."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from hephaestus_django import services
from hephaestus_django.management.base import InstanceActionCommand
from hephaestus_django.storage.models import WorkflowInstance


class Command(InstanceActionCommand):
    help = "Resume the waiting step of instance ID with EVENT (an event the step declares)."
    done = "Resumed"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("event", metavar="EVENT", help="Event declared by the waiting step.")
        parser.add_argument("--step", metavar="NAME",
                            help="Registry name of the waiting step (needed when several steps wait).")

    def headline(self, row: WorkflowInstance, **options: Any) -> str:
        return f"Resumed {row.instance_id} with {options['event']!r}."

    def act(self, **options: Any) -> Any:
        return services.resume(options["id"], options["event"], step=options["step"])
