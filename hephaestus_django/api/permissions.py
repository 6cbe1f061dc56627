"""Who may call the API.

The default is ``[IsAuthenticated, WorkflowInstancePermissions]``: an authenticated user with the
``hephaestus_django`` model permission that the action needs (reading, including the workflow
definitions and the schema: ``view_workflowinstance``; starting: ``add_workflowinstance``; resume,
cancel and retry: ``change_workflowinstance``). Superusers have every permission.

``HEPHAESTUS["API_PERMISSION_CLASSES"]`` replaces that list with DRF permission classes named by
dotted path, e.g. ``["rest_framework.permissions.IsAdminUser"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request

from hephaestus_django.conf import settings

APP_LABEL = "hephaestus_django"
MODEL = "workflowinstance"


class WorkflowInstancePermissions(BasePermission):
    """The ``view``/``add``/``change`` permission on workflow instances that the view's action needs.

    A view names what each action needs in ``required_permissions`` (action -> ``view``, ``add`` or
    ``change``); an action it does not name needs ``view`` for safe methods and ``change`` otherwise.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user  # None when REST_FRAMEWORK["UNAUTHENTICATED_USER"] is None
        if not getattr(user, "is_authenticated", False):
            return False
        return bool(user.has_perm(f"{APP_LABEL}.{self.required(request, view)}_{MODEL}"))

    @staticmethod
    def required(request: Request, view: Any) -> str:
        action = view.effective_action() if hasattr(view, "effective_action") else getattr(view, "action", None)
        needed: dict[str, str] = getattr(view, "required_permissions", {})
        if action in needed:
            return needed[action]
        return "view" if request.method in SAFE_METHODS else "change"


def get_permission_classes() -> list[Callable[[], BasePermission]]:
    """The configured permission classes (dotted paths from settings only, never from requests), or
    compositions of them (``IsAuthenticated & IsAdminUser``)."""
    configured = settings.API_PERMISSION_CLASSES
    if configured is None:
        return [IsAuthenticated, WorkflowInstancePermissions]
    return [import_string(item) if isinstance(item, str) else item for item in configured]
