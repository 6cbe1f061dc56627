"""The Django admin for workflow instances (``docs/admin.md``): an observer that changes state only
through :mod:`hephaestus_django.services`.

Importing this package registers :class:`~hephaestus_django.admin.instances.WorkflowInstanceAdmin`
on the default admin site (Django's admin autodiscovery imports it).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from hephaestus_django.admin.instances import WorkflowInstanceAdmin
from hephaestus_django.admin.schedules import WorkflowScheduleAdmin
from hephaestus_django.storage.models import RegisteredWorkflow, WorkflowInstance, WorkflowSchedule

__all__ = ["RegisteredWorkflowAdmin", "WorkflowInstanceAdmin", "WorkflowScheduleAdmin"]


class RegisteredWorkflowAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The admin index entry for the workflows page (workflows live in code, not in rows)."""

    def _may_view(self, request: HttpRequest) -> bool:
        opts = WorkflowInstance._meta
        return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or \
            request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may_view(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_view(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self._may_view(request):
            raise PermissionDenied
        opts = WorkflowInstance._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_workflows",
                                            current_app=self.admin_site.name))


admin.site.register(WorkflowInstance, WorkflowInstanceAdmin)
admin.site.register(RegisteredWorkflow, RegisteredWorkflowAdmin)
admin.site.register(WorkflowSchedule, WorkflowScheduleAdmin)
