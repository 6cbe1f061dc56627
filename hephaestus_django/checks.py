"""System checks: settings (``hephaestus.E00x``), workflows (``E1xx``) and the task backend (``E2xx``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core import checks

from hephaestus_django.conf import DEFAULTS


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    value = getattr(django_settings, "HEPHAESTUS", {})
    if not isinstance(value, dict):
        return [checks.Error("HEPHAESTUS must be a dict.", id="hephaestus.E001")]
    for key in sorted(set(value) - set(DEFAULTS)):
        errors.append(checks.Error(f"Unknown HEPHAESTUS setting {key!r}.",
                                   hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.", id="hephaestus.E001"))
    lease = value.get("LEASE_SECONDS", DEFAULTS["LEASE_SECONDS"])
    if isinstance(lease, bool) or not isinstance(lease, int | float) or lease <= 0:
        errors.append(checks.Error(f"HEPHAESTUS['LEASE_SECONDS'] must be a positive number, not {lease!r}.",
                                   id="hephaestus.E002"))
    interval = value.get("WORKER_INTERVAL", DEFAULTS["WORKER_INTERVAL"])
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        errors.append(checks.Error(f"HEPHAESTUS['WORKER_INTERVAL'] must be a positive number, not {interval!r}.",
                                   id="hephaestus.E003"))
    return errors


@checks.register()
def check_task_backend(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from hephaestus_django.compat import task_backends
    from hephaestus_django.conf import settings

    alias = settings.TASK_BACKEND
    try:
        task_backends[alias]
    except Exception as exc:
        return [checks.Error(f"HEPHAESTUS['TASK_BACKEND'] names task backend {alias!r}, which cannot be loaded: "
                             f"{exc}", hint="Add it to the TASKS setting.", id="hephaestus.E201")]
    return []


@checks.register()
def check_workflows(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every workflow that failed to define, one error each, named with the module that defines it.

    Autodiscovery records the ``WorkflowDefinitionError`` of each broken workflow of a ``workflows``
    module (and goes on with the next class), so ``manage.py check`` lists them all instead of a
    bare traceback for the first one.
    """
    from hephaestus_django.discovery import discovery_errors

    return [checks.Error(f"{module}: {error}", id="hephaestus.E101", obj=module)
            for module, errors in discovery_errors().items() for error in errors]
