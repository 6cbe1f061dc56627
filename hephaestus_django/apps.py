from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HephaestusConfig(AppConfig):
    name = "hephaestus_django"
    label = "hephaestus_django"
    verbose_name = _("Workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Everything the app hooks into Django is connected here, never by importing a module:
        system checks, the settings' reload, the telemetry listeners, the facade's runner, the
        autodiscovery of ``workflows`` modules. Each registration is idempotent."""
        from django.core import checks as django_checks
        from django.core.signals import setting_changed
        from django.utils.functional import Promise

        from hephaestus_django import checks, conf, observability, services
        from hephaestus_django.core.values import allow_types
        from hephaestus_django.discovery import autodiscover

        for check in (checks.check_settings, checks.check_task_backend, checks.check_workflows):
            django_checks.register(check)
        setting_changed.connect(conf.reload_settings, dispatch_uid="hephaestus-settings-reload")

        allow_types(Promise)  # lazy translation strings: Django's JSON encoder stores them as text

        observability.install()  # signals, logging and OpenTelemetry listen to the engine's events
        services.install()
        autodiscover()
