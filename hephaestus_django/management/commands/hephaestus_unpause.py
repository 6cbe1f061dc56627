"""``manage.py hephaestus_unpause ID``: let a paused instance go on."""

from __future__ import annotations

from typing import Any

from hephaestus_django import services
from hephaestus_django.management.base import InstanceActionCommand


class Command(InstanceActionCommand):
    help = ("Unpause instance ID: it goes back to the status it had, its runnable steps are dispatched and "
            "the timers that fell due meanwhile fire.")
    done = "Unpaused"

    def act(self, **options: Any) -> Any:
        return services.unpause(options["id"])
