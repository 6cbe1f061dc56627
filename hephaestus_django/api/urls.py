"""URLs of the REST API: ``path("api/", include("hephaestus_django.api.urls"))``.

Names (namespace ``hephaestus``): ``api-root`` (the mount point: links to the routes),
``instance-list``, ``instance-detail``, ``instance-resume``, ``instance-cancel``, ``instance-retry``,
``instance-pause``, ``instance-unpause``, ``instance-migrate``, ``instance-history``, ``instance-children``,
``workflow-list``, ``workflow-detail``
and ``schema`` (when drf-spectacular is installed).
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.routers import SimpleRouter

from hephaestus_django.api.schema import schema_view
from hephaestus_django.api.views import APIRootView, InstanceViewSet, WorkflowViewSet

app_name = "hephaestus"

router = SimpleRouter()
router.register("instances", InstanceViewSet, basename="instance")
router.register("workflows", WorkflowViewSet, basename="workflow")

urlpatterns: list[Any] = [path("", APIRootView.as_view(), name="api-root"), *router.urls]

_schema = schema_view()
if _schema is not None:
    urlpatterns.append(path("schema/", _schema, name="schema"))
