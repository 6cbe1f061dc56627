from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HephaestusConfig(AppConfig):
    name = "hephaestus_django"
    label = "hephaestus_django"
    verbose_name = _("Workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.functional import Promise

        from hephaestus_django import (
            checks,  # noqa: F401 - registers the system checks
            observability,
            services,
        )
        from hephaestus_django.core.values import allow_types
        from hephaestus_django.discovery import autodiscover

        allow_types(Promise)  # lazy translation strings: Django's JSON encoder stores them as text

        observability.install()  # signals, logging and OpenTelemetry listen to the engine's events
        services.install()
        autodiscover()
