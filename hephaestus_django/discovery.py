"""Autodiscovery of every installed app's ``workflows`` module.

A module whose workflows are invalid does not stop Django from starting: the module is imported
with definition errors collected (:func:`hephaestus_django.core.registry.collect_definition_errors`),
so every broken workflow of it is kept, the valid ones are registered, and ``manage.py check``
reports each broken one (``hephaestus.E101``), which every management command that runs checks
(``runserver``, ``migrate``) refuses to pass.
"""

from __future__ import annotations

from importlib import import_module

from django.apps import apps

from hephaestus_django.core import registry
from hephaestus_django.core.exceptions import WorkflowDefinitionError

_errors: dict[str, list[str]] = {}


def autodiscover(module_name: str = "workflows") -> None:
    """Import ``<app>.<module_name>`` for every installed app that has one."""
    for app_config in apps.get_app_configs():
        name = f"{app_config.name}.{module_name}"
        with registry.collect_definition_errors() as collected:
            try:
                import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
            except WorkflowDefinitionError as exc:  # raised by hand, or by using a broken workflow
                if exc not in collected:
                    collected.append(exc)
            except Exception as exc:
                if not collected:
                    raise
                # Most likely a consequence of a broken workflow (module code using it): report both.
                collected.append(WorkflowDefinitionError(f"then the import stopped: {type(exc).__name__}: {exc}"))
        if collected:
            _errors[name] = [str(error) for error in collected]


def discovery_errors() -> dict[str, list[str]]:
    """Module name -> the definition errors its import recorded, in definition order."""
    return {module: list(errors) for module, errors in _errors.items()}
