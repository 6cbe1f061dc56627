"""Autodiscovery of every installed app's ``workflows`` module.

A module whose workflow is invalid does not stop Django from starting: its
``WorkflowDefinitionError`` is kept and reported by ``manage.py check`` (``hephaestus.E101``),
which every management command that runs checks (``runserver``, ``migrate``) refuses to pass.
"""

from __future__ import annotations

from importlib import import_module

from django.apps import apps

from hephaestus_django.core.exceptions import WorkflowDefinitionError

_errors: dict[str, str] = {}


def autodiscover(module_name: str = "workflows") -> None:
    for app_config in apps.get_app_configs():
        name = f"{app_config.name}.{module_name}"
        try:
            import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
        except WorkflowDefinitionError as exc:
            _errors[name] = str(exc)


def discovery_errors() -> dict[str, str]:
    return dict(_errors)
