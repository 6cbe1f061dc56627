"""OpenAPI support through drf-spectacular, which is optional (the ``schema`` extra).

Without it the decorators below do nothing, ``AutoSchema`` is DRF's own and there is no
``schema/`` route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

try:
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
    from drf_spectacular.views import SpectacularAPIView
except ImportError:  # pragma: no cover - exercised only without the extra
    HAS_SPECTACULAR = False
    from rest_framework.schemas.openapi import AutoSchema  # type: ignore[assignment]

    OpenApiTypes = SpectacularAPIView = None  # type: ignore[assignment,misc]

    def OpenApiParameter(*args: Any, **kwargs: Any) -> None:  # type: ignore[no-redef]
        return None

    def OpenApiResponse(*args: Any, **kwargs: Any) -> None:  # type: ignore[no-redef]
        return None

    def extend_schema(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda target: target

    def extend_schema_field(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda target: target
else:
    HAS_SPECTACULAR = True
    from drf_spectacular.extensions import OpenApiSerializerExtension

    class InputSerializerExtension(OpenApiSerializerExtension):  # type: ignore[no-untyped-call,misc]
        """Request bodies refuse unknown fields (``InputSerializer``): say so in the schema."""

        target_class = "hephaestus_django.api.serializers.InputSerializer"
        match_subclasses = True

        def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
            schema = auto_schema._map_basic_serializer(self.target, direction)
            schema["additionalProperties"] = False
            return schema

__all__ = ["HAS_SPECTACULAR", "AutoSchema", "OpenApiParameter", "OpenApiResponse", "OpenApiTypes",
           "extend_schema", "extend_schema_field", "schema_view"]


def schema_view() -> Callable[..., Any] | None:
    """The ``schema/`` view: this API only (not the project's other DRF views), or ``None``."""
    if not HAS_SPECTACULAR:
        return None
    import hephaestus_django
    from hephaestus_django.api.permissions import get_permission_classes

    class SchemaView(SpectacularAPIView):
        urlconf = "hephaestus_django.api.urls"
        custom_settings = {
            "TITLE": "hephaestus_django API",
            "DESCRIPTION": "Durable DAG workflows: instances, their history, and workflow definitions.",
            "VERSION": hephaestus_django.__version__,
            "COMPONENT_SPLIT_REQUEST": True,
            "SCHEMA_PATH_PREFIX": "/",
        }

        def get_permissions(self) -> list[Any]:
            return [permission() for permission in get_permission_classes()]

        @extend_schema(exclude=True)
        def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
            response = super().get(request, *args, **kwargs)
            # Paths are relative to where the project mounted the API: say where that is.
            prefix = request.path[: -len("schema/")] if request.path.endswith("schema/") else "/"
            response.data = {**response.data, "servers": [{"url": prefix.rstrip("/") or "/"}]}
            return response

    return SchemaView.as_view()
