"""``manage.py hephaestus_cancel ID [--compensate]``: cancel a pending, running, waiting or paused instance."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from hephaestus_django import services
from hephaestus_django.management.base import InstanceActionCommand


class Command(InstanceActionCommand):
    help = "Cancel instance ID (pending, running, waiting or paused): no further step runs."
    done = "Cancelled"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--compensate", action="store_true",
                            help="Run the compensations of its completed steps first (last completed first).")

    def act(self, **options: Any) -> Any:
        return services.cancel(options["id"], compensate=options["compensate"])
