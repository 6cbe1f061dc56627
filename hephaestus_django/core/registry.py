"""Workflows by registry name. Names from requests and rows are looked up here, never imported."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from hephaestus_django.core.exceptions import UnknownWorkflow, WorkflowDefinitionError

if TYPE_CHECKING:
    from hephaestus_django.core.workflow import BaseWorkflow

_workflows: dict[str, type[BaseWorkflow]] = {}
_VERSION_SUFFIX = re.compile(r"^v\d+$")


def short_name(name: str | None) -> str:
    """A registry name without its module path, for people: ``orders.workflows.OrderFlow`` ->
    ``OrderFlow``; a name whose last part is a version (``orders.Onboarding.v2``) keeps the part
    before it too (``Onboarding v2``). ``None`` or ``""`` -> ``""``."""
    if not name:
        return ""
    parts = name.rsplit(".", 2)
    if len(parts) > 1 and _VERSION_SUFFIX.match(parts[-1]):
        return f"{parts[-2]} {parts[-1]}"
    return parts[-1]
_collected: ContextVar[list[WorkflowDefinitionError] | None] = ContextVar("hephaestus_collected", default=None)


@contextmanager
def collect_definition_errors() -> Iterator[list[WorkflowDefinitionError]]:
    """Record definition errors instead of raising them, so one import reports every broken workflow.

    While the block runs, a workflow class that fails validation is appended to the yielded list,
    left unregistered and marked broken (using it raises its error), and the module's import goes
    on to the next class. Autodiscovery imports each app's ``workflows`` module this way.
    """
    errors: list[WorkflowDefinitionError] = []
    token = _collected.set(errors)
    try:
        yield errors
    finally:
        _collected.reset(token)


def report(error: WorkflowDefinitionError) -> None:
    """Raise ``error``, or record it when :func:`collect_definition_errors` is active."""
    errors = _collected.get()
    if errors is None:
        raise error
    errors.append(error)


def register(workflow: type[BaseWorkflow]) -> None:
    """Add ``workflow`` under ``workflow.name``.

    Defining the same class again (a module reloaded) replaces it; another class with the
    same name is a definition error.
    """
    name = workflow.name
    existing = _workflows.get(name)
    if existing is not None and existing is not workflow:
        same_origin = (existing.__module__, existing.__qualname__) == (workflow.__module__, workflow.__qualname__)
        if not same_origin:
            raise WorkflowDefinitionError(
                f"workflow name {name!r} is already used by {existing.__module__}.{existing.__qualname__}; "
                f"give {workflow.__module__}.{workflow.__qualname__} another 'name'"
            )
    _workflows[name] = workflow


def unregister(name: str) -> None:
    _workflows.pop(name, None)


def get_workflow(name: Any) -> type[BaseWorkflow]:
    """The registered workflow called ``name``; ``UnknownWorkflow`` otherwise."""
    if isinstance(name, str):
        workflow = _workflows.get(name)
        if workflow is not None:
            return workflow
    raise UnknownWorkflow(f"no workflow named {name!r} is registered", field="workflow")


def all_workflows() -> list[type[BaseWorkflow]]:
    """Registered workflows in registration order."""
    return list(_workflows.values())


def is_registered(name: str) -> bool:
    return name in _workflows
