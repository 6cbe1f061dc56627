"""Durable DAG workflows for Django.

The public API is importable from here lazily, so that ``import hephaestus_django``
works in a settings module or a ``workflows.py`` before the app registry is ready::

    from hephaestus_django import Step, Workflow, Unique, Ok, Done
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_CORE_NAMES = {
    "Step", "Workflow", "VersionedWorkflow", "Ok", "Async", "Error", "Retry", "Unique", "route",
    "Done", "Wait", "WaitForEvent", "Debug", "Instance", "Context", "ExecutionEntry", "Status", "Schedule",
    "ChildrenStep", "Child",
}
_SERVICE_NAMES = {"start_instance", "resume", "cancel", "retry", "get_instance", "list_instances", "pause",
                  "unpause", "migrate"}

__all__ = sorted(_CORE_NAMES | _SERVICE_NAMES | {"__version__"})


def __getattr__(name: str) -> Any:
    if name in _CORE_NAMES:
        return getattr(importlib.import_module("hephaestus_django.core"), name)
    if name in _SERVICE_NAMES:
        return getattr(importlib.import_module("hephaestus_django.services"), name)
    raise AttributeError(f"module 'hephaestus_django' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
