"""Changelist filters whose choices come from the workflow registry, not from scanning the table."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from hephaestus_django.core import registry
from hephaestus_django.core.registry import short_name
from hephaestus_django.core.workflow import VersionedWorkflow


def version_members() -> dict[str, tuple[str, int]]:
    """Registry names of the workflows that are versions of a registered ``VersionedWorkflow``,
    with that umbrella's name and the version number."""
    members = {}
    for workflow in registry.all_workflows():
        if issubclass(workflow, VersionedWorkflow) and not workflow.abstract:
            for number, version in workflow.versions.items():
                members[version.name] = (workflow.name, number)
    return members


def listed_workflows() -> list[Any]:
    """The workflows people start and look for: every registered one but the versions of a
    versioned workflow (shown under it), by name."""
    members = version_members()
    return sorted((w for w in registry.all_workflows() if w.name not in members and not w.abstract),
                  key=lambda w: w.name)


def display_name(name: str, members: dict[str, tuple[str, int]] | None = None) -> str:
    """A short label: the class name; for a version of a versioned workflow, ``Umbrella v2``."""
    members = version_members() if members is None else members
    if name in members:
        umbrella, number = members[name]
        return f"{short_name(umbrella)} v{number}"
    return short_name(name)


class WorkflowFilter(admin.SimpleListFilter):
    """Registered workflows (no query); a selected name that is no longer registered stays listed."""

    title = _("workflow")
    parameter_name = "workflow"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        members = version_members()
        names = [w.name for w in listed_workflows()]
        current = self.value()
        if current and current not in names:
            names.append(current)
        shorts = [display_name(n, members) for n in names]
        # Short names only where they are unambiguous.
        choices = [(n, s if shorts.count(s) == 1 else n) for n, s in zip(names, shorts, strict=True)]
        return sorted(choices, key=lambda choice: (choice[1].casefold(), choice[0]))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(workflow=value) if value else queryset


class VersionFilter(admin.SimpleListFilter):
    """Versions of the selected workflow, or of every registered workflow (no query)."""

    title = _("version")
    parameter_name = "workflow_version"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        selected = request.GET.get(WorkflowFilter.parameter_name)
        workflows = registry.all_workflows()
        if selected and registry.is_registered(selected):
            workflows = [registry.get_workflow(selected)]
        versions = sorted({v for w in workflows for v in w.all_versions()})
        current = self.value()
        if current and _version(current) is not None and int(current) not in versions:
            versions = sorted([*versions, int(current)])
        return [(str(v), f"v{v}") for v in versions]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        number = _version(value)
        if number is None:
            raise IncorrectLookupParameters(f"version must be a positive integer, not {value!r}")
        return queryset.filter(workflow_version=number)


#: The largest version a row can hold (a PositiveIntegerField on every database).
MAX_VERSION = 2**31 - 1


def _version(value: str) -> int | None:
    """``value`` as a version a row could have, else ``None``."""
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    return number if 1 <= number <= MAX_VERSION else None
