"""``manage.py hephaestus_retry ID``: re-run the failed step of a failed instance."""

from __future__ import annotations

from typing import Any

from hephaestus_django import services
from hephaestus_django.management.base import InstanceActionCommand


class Command(InstanceActionCommand):
    help = "Retry failed instance ID: its failed step runs again."
    done = "Retried"

    def act(self, **options: Any) -> Any:
        return services.retry(options["id"])
