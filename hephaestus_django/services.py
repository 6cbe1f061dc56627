"""The Python API (SPEC §2): what the facade, the admin, the API and the commands call.

::

    from hephaestus_django import start_instance, resume, cancel, retry, get_instance, list_instances
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core import facade
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.workflow import LIST_LIMIT
from hephaestus_django.runtime.dispatch import get_runner

__all__ = ["cancel", "get_instance", "install", "list_instances", "resume", "retry", "start_instance"]


def install() -> None:
    """Make the workflow facade (``OrderFlow.start(...)``) use the database."""
    facade.set_backend(get_runner())


def start_instance(workflow: Any, context: dict[str, Any], *, id: str, version: int | None = None,
                   telemetry_metadata: dict[str, Any] | None = None) -> Instance:
    """Start ``workflow`` (class or registry name) with the full instance ``id``."""
    return get_runner().start_instance(workflow, context, id=id, version=version,
                                        telemetry_metadata=telemetry_metadata)


def resume(id: str, event: str, *, step: Any = None, workflow: Any = None) -> Instance:
    """Complete the waiting step of the newest instance ``id`` (of ``workflow``, if given) with ``event``."""
    return get_runner().resume(id, event, step=step, workflow=workflow)


def cancel(id: str, *, workflow: Any = None) -> Instance:
    """Cancel the newest instance ``id`` (of ``workflow``, if given)."""
    return get_runner().cancel(id, workflow=workflow)


def retry(id: str, *, workflow: Any = None) -> Instance:
    """Re-run the failed step of the failed instance ``id`` (of ``workflow``, if given)."""
    return get_runner().retry(id, workflow=workflow)


def get_instance(id: str) -> Instance:
    """The newest instance with ``id`` (across workflows), with its history."""
    return get_runner().get(id)


def list_instances(*, limit: int | None = LIST_LIMIT, **filters: Any) -> list[Instance]:
    """The newest instances, at most ``limit`` (``None``: all); filters: ``workflow``, ``status``,
    ``status__in``, ``workflow_version``. No history is read unless an instance's is looked at."""
    workflow = filters.pop("workflow", None)
    return get_runner().list(workflow, limit=limit, **filters)
