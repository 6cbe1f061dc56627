"""The REST API (``docs/api.md``): the only package that imports DRF and django-filter.

Mount it under any prefix::

    urlpatterns = [path("api/workflows/", include("hephaestus_django.api.urls"))]

Routes (relative to the prefix): ``instances/``, ``instances/{id}/``, ``instances/{id}/resume/``,
``instances/{id}/cancel/``, ``instances/{id}/retry/``, ``instances/{id}/history/``, ``workflows/``,
``workflows/{name}/`` and, when drf-spectacular is installed, ``schema/`` (OpenAPI 3).

Requests need an authenticated user. By default reading needs the
``hephaestus_django.view_workflowinstance`` permission, starting needs ``add_workflowinstance`` and
resume/cancel/retry need ``change_workflowinstance``; ``HEPHAESTUS["API_PERMISSION_CLASSES"]``
replaces those rules with your own DRF permission classes (dotted paths).
"""
