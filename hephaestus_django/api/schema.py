"""OpenAPI support through drf-spectacular, which is optional (the ``schema`` extra).

Without it the decorators below do nothing, ``AutoSchema`` is DRF's own and there is no
``schema/`` route. With it, the schema works whatever the project's ``REST_FRAMEWORK`` says: the
views use drf-spectacular's ``AutoSchema`` themselves, and so does :func:`extend_schema` (whose
drf-spectacular original builds on ``DEFAULT_SCHEMA_CLASS``, which is DRF's own unless a
project names drf-spectacular's). Asked by a browser, ``schema/`` shows the document in the
browsable API instead of making the browser download it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from rest_framework.request import Request
from rest_framework.response import Response

_T = TypeVar("_T")

try:
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
    from drf_spectacular.utils import extend_schema as _extend_schema
    from drf_spectacular.utils import extend_schema_field as _extend_schema_field
    from drf_spectacular.views import SpectacularAPIView
except ImportError:  # pragma: no cover - exercised only without the extra
    HAS_SPECTACULAR = False
    from rest_framework.schemas.openapi import AutoSchema  # type: ignore[assignment]

    OpenApiTypes = SpectacularAPIView = None  # type: ignore[assignment,misc]

    def OpenApiParameter(*args: Any, **kwargs: Any) -> None:  # type: ignore[no-redef]
        return None

    def OpenApiResponse(*args: Any, **kwargs: Any) -> None:  # type: ignore[no-redef]
        return None

    def extend_schema(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        return lambda target: target

    def extend_schema_field(field: Any, component_name: str | None = None) -> Callable[[_T], _T]:
        return lambda target: target
else:
    HAS_SPECTACULAR = True
    from drf_spectacular.extensions import OpenApiSerializerExtension

    class InputSerializerExtension(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
        """Request bodies refuse unknown fields (``InputSerializer``): say so in the schema."""

        target_class = "hephaestus_django.api.serializers.InputSerializer"
        match_subclasses = True

        def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
            schema = auto_schema._map_basic_serializer(self.target, direction)
            schema["additionalProperties"] = False
            return schema

    def extend_schema_field(field: Any, component_name: str | None = None) -> Callable[[_T], _T]:
        """drf-spectacular's ``extend_schema_field``, typed for all it decorates: django-filter filters
        too (its annotations take only callables)."""
        return _extend_schema_field(field, component_name)  # type: ignore[return-value]

    def extend_schema(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        """drf-spectacular's ``extend_schema``, built on drf-spectacular's ``AutoSchema`` even when
        ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`` is DRF's."""
        decorate = _extend_schema(*args, **kwargs)

        def decorator(target: Any) -> Any:
            if callable(target) and not isinstance(target, type) and getattr(target, "schema", None) is None \
                    and "schema" not in getattr(target, "kwargs", {}):
                target.schema = AutoSchema  # what drf-spectacular extends, in place of the setting's class
            return decorate(target)

        return decorator

__all__ = ["HAS_SPECTACULAR", "AutoSchema", "OpenApiParameter", "OpenApiResponse", "OpenApiTypes",
           "extend_schema", "extend_schema_field", "schema_view"]


#: Response fields present only on request (component -> fields), e.g. the list's context.
OPTIONAL_FIELDS = {"InstanceList": ("context",)}


def mark_optional_fields(result: dict[str, Any], generator: Any = None, request: Any = None,
                         public: Any = None) -> dict[str, Any]:
    """drf-spectacular post-processing hook: :data:`OPTIONAL_FIELDS` are not ``required``."""
    schemas = result.get("components", {}).get("schemas", {})
    for component, fields in OPTIONAL_FIELDS.items():
        schema = schemas.get(component)
        if schema and "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in fields]
    return result


def schema_view() -> Callable[..., Any] | None:
    """The ``schema/`` view: this API only (not the project's other DRF views), or ``None``."""
    if not HAS_SPECTACULAR:
        return None
    from drf_spectacular.settings import spectacular_settings

    import hephaestus_django
    from hephaestus_django.api.permissions import get_permission_classes
    from hephaestus_django.api.renderers import BrowsableAPIRenderer

    class SchemaView(SpectacularAPIView):
        urlconf = "hephaestus_django.api.urls"
        # a browser (Accept: text/html) gets the document shown in the browsable API
        renderer_classes = [*SpectacularAPIView.renderer_classes, BrowsableAPIRenderer]
        custom_settings = {
            "TITLE": "hephaestus_django API",
            "DESCRIPTION": "Durable DAG workflows: instances, their history, and workflow definitions.",
            "VERSION": hephaestus_django.__version__,
            "COMPONENT_SPLIT_REQUEST": True,
            "SCHEMA_PATH_PREFIX": "/",
            "POSTPROCESSING_HOOKS": [*(f"{hook.__module__}.{hook.__qualname__}" if callable(hook) else hook
                                       for hook in spectacular_settings.POSTPROCESSING_HOOKS),
                                     f"{__name__}.mark_optional_fields"],
        }

        def get_permissions(self) -> list[Any]:
            return [permission() for permission in get_permission_classes()]

        def get_view_name(self) -> str:
            return "OpenAPI schema"

        @extend_schema(exclude=True)
        def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
            response: Response = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
            # Paths are relative to where the project mounted the API: say where that is.
            prefix = request.path[: -len("schema/")] if request.path.endswith("schema/") else "/"
            response.data = {**response.data, "servers": [{"url": prefix.rstrip("/") or "/"}]}
            if isinstance(getattr(request, "accepted_renderer", None), BrowsableAPIRenderer):
                response.headers.pop("Content-Disposition", None)  # a page to read, not a file to save
            return response

    return SchemaView.as_view()
