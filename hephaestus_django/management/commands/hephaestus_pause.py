"""``manage.py hephaestus_pause ID``: hold a running or waiting instance."""

from __future__ import annotations

from typing import Any

from hephaestus_django import services
from hephaestus_django.management.base import InstanceActionCommand


class Command(InstanceActionCommand):
    help = "Pause instance ID (running or waiting): no step starts and no timer fires until it is unpaused."
    done = "Paused"

    def act(self, **options: Any) -> Any:
        return services.pause(options["id"])
