"""Changelist filters whose choices come from the workflow registry, not from scanning the table."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from hephaestus_django.core import registry


def short_name(name: str) -> str:
    """``orders.workflows.OrderFlow`` -> ``OrderFlow`` (registry names are dotted paths)."""
    return name.rsplit(".", 1)[-1] if name else name


class WorkflowFilter(admin.SimpleListFilter):
    """Registered workflows (no query); a selected name that is no longer registered stays listed."""

    title = _("workflow")
    parameter_name = "workflow"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = sorted(w.name for w in registry.all_workflows())
        current = self.value()
        if current and current not in names:
            names.append(current)
        shorts = [short_name(n) for n in names]
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
        if current and current.isdigit() and int(current) not in versions:
            versions = sorted([*versions, int(current)])
        return [(str(v), f"v{v}") for v in versions]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters(f"version must be a positive integer, not {value!r}")
        return queryset.filter(workflow_version=int(value))
