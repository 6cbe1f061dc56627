"""The Django admin for workflow instances (SPEC §5): an observer that changes state only
through :mod:`hephaestus_django.services`.

Importing this package registers :class:`~hephaestus_django.admin.instances.WorkflowInstanceAdmin`
on the default admin site (Django's admin autodiscovery imports it).
"""

from __future__ import annotations

from django.contrib import admin

from hephaestus_django.admin.instances import WorkflowInstanceAdmin
from hephaestus_django.storage.models import WorkflowInstance

__all__ = ["WorkflowInstanceAdmin"]

admin.site.register(WorkflowInstance, WorkflowInstanceAdmin)
