"""``manage.py hephaestus_resume ID EVENT [--step NAME] [--data JSON] [--idempotency-key KEY]``:
complete a waiting step of an instance with EVENT."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from hephaestus_django import services
from hephaestus_django.core.exceptions import InvalidEvent
from hephaestus_django.management.base import InstanceActionCommand, parse_json_object
from hephaestus_django.storage.models import WorkflowInstance


class Command(InstanceActionCommand):
    help = ("Resume the waiting step of instance ID with EVENT (an event the step declares), optionally "
            "with data for the step and an idempotency key.")
    done = "Resumed"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("event", metavar="EVENT", help="Event declared by the waiting step.")
        parser.add_argument("--step", metavar="NAME",
                            help="Registry name of the waiting step (needed when several steps wait).")
        parser.add_argument("--data", metavar="JSON",
                            help="A JSON object merged into the step's context entry (and recorded in its history).")
        parser.add_argument("--idempotency-key", metavar="KEY", dest="idempotency_key",
                            help="At most 255 characters; a resume with a key this instance has seen already "
                                 "changes nothing.")

    def headline(self, row: WorkflowInstance, **options: Any) -> str:
        return f"Resumed {row.instance_id} with {options['event']!r}."

    def act(self, **options: Any) -> Any:
        data = parse_json_object(options["data"], "--data") if options["data"] is not None else None
        try:
            return services.resume(options["id"], options["event"], step=options["step"], data=data,
                                   idempotency_key=options["idempotency_key"])
        except InvalidEvent as exc:  # say what would work, in this command's terms
            offered = offered_text(options["id"])
            raise CommandError(f"{exc}; {offered}" if offered else str(exc)) from None


def offered_text(instance_id: str) -> str:
    """``resume with: EVENT [--step NAME], ...`` from the instance's resume options ("" if none)."""
    row = WorkflowInstance.objects.newest(instance_id)
    options = services.resume_options(row) if row is not None else []
    several = len({option.step for option in options}) > 1
    offered = [f"{option.alias or option.event}" + (f" --step {option.step.registry_name()}" if several else "")
               for option in options]
    return f"resume with: {', '.join(offered)}" if offered else ""
