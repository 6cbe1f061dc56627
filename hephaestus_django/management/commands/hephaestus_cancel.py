"""``manage.py hephaestus_cancel ID``: cancel a pending, running or waiting instance."""

from __future__ import annotations

from typing import Any

from hephaestus_django import services
from hephaestus_django.management.base import InstanceActionCommand


class Command(InstanceActionCommand):
    help = "Cancel instance ID (pending, running or waiting): no further step runs."
    done = "Cancelled"

    def act(self, **options: Any) -> Any:
        return services.cancel(options["id"])
