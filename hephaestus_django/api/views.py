"""Viewsets: instances (list, start, detail, resume/cancel/retry/pause/unpause/migrate, history,
children) and workflows, plus the API's root (links to its routes).

Every state change goes through :mod:`hephaestus_django.services`; workflow names, steps and
events from requests are looked up in the registry and the waiting step's declared events.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import decorators, mixins, serializers, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hephaestus_django import services
from hephaestus_django.api.exceptions import exception_handler
from hephaestus_django.api.filters import DEFAULT_ORDERING, InstanceFilter
from hephaestus_django.api.pagination import ChildrenPagination, HistoryPagination, KeysetPagination
from hephaestus_django.api.parsers import JSONParser
from hephaestus_django.api.permissions import get_permission_classes
from hephaestus_django.api.renderers import with_our_browsable_api
from hephaestus_django.api.schema import AutoSchema, OpenApiParameter, OpenApiResponse, extend_schema
from hephaestus_django.api.serializers import (
    HISTORY_COLUMNS,
    IDEMPOTENCY_HEADER,
    INSTANCE_COLUMNS,
    CancelSerializer,
    DetailSerializer,
    EmptySerializer,
    HistoryEntrySerializer,
    InputSerializer,
    InstanceListSerializer,
    InstanceSerializer,
    MigrateSerializer,
    ResumeSerializer,
    RetrySerializer,
    StartSerializer,
    WorkflowSerializer,
)
from hephaestus_django.core import registry
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.values import storable_problem
from hephaestus_django.exceptions import UnknownWorkflow
from hephaestus_django.shapes import workflow_shape
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance, WorkflowInstanceQuerySet

#: Ids and registry names contain ``:``, ``.``, ``-`` and ``_``; only ``/`` ends them.
LOOKUP_REGEX = r"[^/]+"

# Documented error answers (drf-spectacular), merged into each operation's responses.
_ERRORS = {
    401: OpenApiResponse(DetailSerializer, description="Not authenticated."),
    403: OpenApiResponse(DetailSerializer, description="Permission denied."),
}
_NOT_FOUND = {404: OpenApiResponse(DetailSerializer, description="No instance has this id.")}
_CONFLICT = {409: OpenApiResponse(DetailSerializer, description="The instance's state does not allow this.")}
_BAD = {400: OpenApiResponse(
    {"type": "object", "additionalProperties": {"oneOf": [{"type": "string"},
                                                          {"type": "array", "items": {"type": "string"}}]}},
    description="Invalid input: {field: [messages]} (or {detail: message} for a malformed body).")}


#: What ``?expand=`` may name on the instance list (each adds that field to every row).
EXPANDABLE = ("context",)


def action(*, name: str | Promise | None = None, **kwargs: Any) -> Callable[[Any], Any]:
    """DRF's ``action``, whose ``name`` (the page title) may be a lazy translation: DRF keeps it as
    given, its stubs take only ``str``."""
    return decorators.action(name=name, **kwargs)  # type: ignore[arg-type]


if TYPE_CHECKING:  # what the mixin is mixed into (at run time, a plain class)
    _ViewSet = viewsets.ViewSet
else:
    _ViewSet = object


class HephaestusAPIMixin(_ViewSet):
    """Configured permissions, engine errors translated, drf-spectacular's schema when installed,
    titles that say what a page shows, and forms of the browsable API that work as given."""

    schema = AutoSchema()
    parser_classes = [JSONParser]
    #: Action -> the request serializer whose fields engine errors may be keyed by.
    inputs: ClassVar[dict[str, type[serializers.Serializer[Any]]]] = {}
    #: Action -> the instance model permission it needs (``view``, ``add`` or ``change``).
    required_permissions: ClassVar[dict[str, str]] = {}
    #: Page titles of the browsable API: (one, several).
    titles: ClassVar[tuple[str | Promise, str | Promise]] = ("", "")

    def get_permissions(self) -> list[BasePermission]:
        return [permission() for permission in get_permission_classes()]

    def get_exception_handler(self) -> Any:
        return exception_handler

    def get_renderers(self) -> list[BaseRenderer]:
        return with_our_browsable_api(super().get_renderers())

    def get_view_name(self) -> str:
        """``Instances``, ``Instance``, ``Resume instance``... (DRF would say "Instance Instance")."""
        name = getattr(self, "name", None)
        if name:
            return str(name)
        one, several = self.titles
        return str(several if getattr(self, "suffix", None) == "List" else one)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # An id or name in the path that no row could hold (a NUL character...) names nothing.
        for name, value in self.kwargs.items():
            problem = storable_problem(value, name)
            if problem is not None:
                raise NotFound(problem)
        super().initial(request, *args, **kwargs)

    def example_body(self, method: str) -> dict[str, Any] | None:
        """The body the browsable API's form is filled with for ``method`` (``None``: DRF's)."""
        return None

    def effective_action(self) -> str | None:
        """The action, or for an ``OPTIONS`` probe of a method, the action that method runs."""
        if self.action == "metadata":
            action_map: dict[str, str] = getattr(self, "action_map", {})
            return action_map.get((self.request.method or "").lower(), self.action)
        return self.action

    def input_fields(self) -> list[str]:
        serializer = self.inputs.get(self.effective_action() or "")
        return list(serializer().fields) if serializer is not None else []


class InstanceViewSet(HephaestusAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      mixins.CreateModelMixin, viewsets.GenericViewSet[Any]):
    """Workflow instances. ``{id}`` is the business id; it names the newest instance with that id."""

    # (GenericViewSet[Any]: the history action pages history entries, the others instances)

    lookup_field = "instance_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = LOOKUP_REGEX
    filter_backends = [DjangoFilterBackend]
    filterset_class = InstanceFilter
    pagination_class = KeysetPagination
    ordering = DEFAULT_ORDERING
    inputs: ClassVar[dict[str, type[serializers.Serializer[Any]]]] = {
        "create": StartSerializer, "resume": ResumeSerializer, "cancel": CancelSerializer, "retry": RetrySerializer,
        "pause": EmptySerializer, "unpause": EmptySerializer, "migrate": MigrateSerializer}
    required_permissions: ClassVar[dict[str, str]] = {
        "list": "view", "retrieve": "view", "history": "view", "children": "view",
        "create": "add", "resume": "change", "cancel": "change", "retry": "change",
        "pause": "change", "unpause": "change", "migrate": "change",
    }
    titles = (gettext_lazy("Instance"), gettext_lazy("Instances"))

    def get_queryset(self) -> WorkflowInstanceQuerySet:
        if self.action == "list" and "context" not in self.expanded():
            return WorkflowInstance.objects.only(*(c for c in INSTANCE_COLUMNS if c != "context"))
        return WorkflowInstance.objects.only(*INSTANCE_COLUMNS)

    def get_serializer_class(self) -> type[serializers.Serializer[Any]]:
        action = self.effective_action()
        if action == "history":
            return HistoryEntrySerializer
        if action == "children":
            return InstanceSerializer
        if action == "list":
            return InstanceListSerializer
        return self.inputs.get(action or "", InstanceSerializer)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "expand": self.expanded() if self.action == "list" else ()}

    def expanded(self) -> tuple[str, ...]:
        """What ``?expand=`` asks the list to add (``?expand=context`` or ``expand=a,b``)."""
        request = getattr(self, "request", None)
        if request is None:
            return ()
        names = [part.strip() for value in request.query_params.getlist("expand") for part in value.split(",")]
        unknown = [name for name in names if name and name not in EXPANDABLE]
        if unknown:
            raise ValidationError({"expand": [_("Unknown value %(value)r: expand takes %(allowed)s.") % {
                "value": unknown[0], "allowed": ", ".join(EXPANDABLE)}]})
        return tuple(name for name in EXPANDABLE if name in names)

    def get_object(self) -> WorkflowInstance:
        row = self.get_queryset().newest(self.kwargs["id"])
        if row is None:
            raise NotFound(f"no instance with id {self.kwargs['id']!r}")
        return row

    def _answer(self, instance: Instance) -> Response:
        return Response(InstanceSerializer(self.get_queryset().get(pk=instance.pk)).data)

    def validated_body(self, serializer_class: type[InputSerializer], **context: Any) -> dict[str, Any]:
        """The request body checked by ``serializer_class`` (unknown fields refused): a 400 otherwise."""
        serializer = serializer_class(data=self.request.data, context=context)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def example_body(self, method: str) -> dict[str, Any] | None:
        """Forms that work as given: a start of a registered workflow with a fresh value, a resume
        with an event the waiting step declares, and no body for cancel and retry."""
        if method != "POST":
            return None
        if self.action == "create":
            names = sorted(w.name for w in registry.all_workflows() if not w.abstract)
            return {"workflow": names[0] if names else "", "value": f"example-{secrets.token_hex(3)}",
                    "context": {}}
        if self.action == "resume":
            return resume_example(self.kwargs.get("id", ""))
        return {}

    @extend_schema(parameters=[OpenApiParameter(
        "expand", str, many=True, explode=True, enum=list(EXPANDABLE),
        description="Add fields the list leaves out: ?expand=context gives each row its context.")],
        responses={200: InstanceListSerializer(many=True), **_BAD, **_ERRORS})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Instances, newest first (filters, ``ordering``, cursor pagination). Rows leave out the
        context unless ``?expand=context`` asks for it."""
        self.expanded()  # a bad ?expand= is a 400 before anything is read
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: InstanceSerializer, **_ERRORS, **_NOT_FOUND})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The newest instance with this id."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(request=StartSerializer, responses={
        201: InstanceSerializer, **_BAD, **_ERRORS,
        409: OpenApiResponse(DetailSerializer, description="An active instance already holds this id.")})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Start an instance (it runs until it waits or finishes before the answer)."""
        return super().create(request, *args, **kwargs)

    @extend_schema(
        request=ResumeSerializer,
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, location="header", required=False,
                                     description="Same as the body's idempotency_key.")],
        responses={200: InstanceSerializer, **_BAD, **_ERRORS, **_NOT_FOUND, **_CONFLICT})
    @action(detail=True, methods=["post"], name=gettext_lazy("Resume instance"))
    def resume(self, request: Request, id: str) -> Response:
        """Complete a waiting step with ``event`` (``step`` chooses when several wait), merging
        ``data`` into its context entry. A repeated idempotency key does nothing."""
        body = self.validated_body(ResumeSerializer, idempotency_key_header=request.headers.get(IDEMPOTENCY_HEADER))
        return self._answer(services.resume(id, body["event"], step=body.get("step"), data=body.get("data"),
                                            idempotency_key=body.get("idempotency_key")))

    @extend_schema(request=CancelSerializer, responses={200: InstanceSerializer, **_BAD, **_ERRORS, **_NOT_FOUND,
                                                        **_CONFLICT})
    @action(detail=True, methods=["post"], name=gettext_lazy("Cancel instance"))
    def cancel(self, request: Request, id: str) -> Response:
        """Cancel a pending, running, waiting or paused instance and its active children
        (``{"compensate": true}``: its compensations run first)."""
        data = self.validated_body(CancelSerializer)
        return self._answer(services.cancel(id, compensate=data["compensate"]))

    @extend_schema(request=None, responses={200: InstanceSerializer, **_BAD, **_ERRORS, **_NOT_FOUND, **_CONFLICT})
    @action(detail=True, methods=["post"], name=gettext_lazy("Pause instance"))
    def pause(self, request: Request, id: str) -> Response:
        """Pause a running or waiting instance: no step starts and no timer fires until unpaused."""
        self.validated_body(EmptySerializer)
        return self._answer(services.pause(id))

    @extend_schema(request=None, responses={200: InstanceSerializer, **_BAD, **_ERRORS, **_NOT_FOUND, **_CONFLICT})
    @action(detail=True, methods=["post"], name=gettext_lazy("Unpause instance"))
    def unpause(self, request: Request, id: str) -> Response:
        """Unpause a paused instance: runnable steps are dispatched and due timers fire."""
        self.validated_body(EmptySerializer)
        return self._answer(services.unpause(id))

    @extend_schema(request=MigrateSerializer, responses={200: InstanceSerializer, **_BAD, **_ERRORS, **_NOT_FOUND,
                                                         **_CONFLICT})
    @action(detail=True, methods=["post"], name=gettext_lazy("Migrate instance"))
    def migrate(self, request: Request, id: str) -> Response:
        """Move a running, waiting or paused instance to another version of its workflow."""
        data = self.validated_body(MigrateSerializer)
        return self._answer(services.migrate(id, to_version=data["version"], step_map=data.get("step_map")))

    @extend_schema(request=RetrySerializer, responses={200: InstanceSerializer, **_BAD, **_ERRORS, **_NOT_FOUND,
                                                       **_CONFLICT})
    @action(detail=True, methods=["post"], name=gettext_lazy("Retry instance"))
    def retry(self, request: Request, id: str) -> Response:
        """Re-run the failed step of a failed instance."""
        self.validated_body(RetrySerializer)
        return self._answer(services.retry(id))

    @extend_schema(responses={200: HistoryEntrySerializer(many=True), **_BAD, **_ERRORS,
                              **_NOT_FOUND})
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=HistoryPagination,
            name=gettext_lazy("Instance history"))
    def history(self, request: Request, id: str) -> Response:
        """The instance's execution history, in order."""
        found = WorkflowInstance.objects.newest_first(id).values_list("pk", "history_length").first()
        if found is None:
            raise NotFound(f"no instance with id {id!r}")
        pk, self.history_length = found  # the paginator reads each page as one range of seq
        entries = HistoryEntry.objects.filter(instance_id=pk).only(*HISTORY_COLUMNS).order_by("seq")
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(HistoryEntrySerializer(page, many=True).data)

    @extend_schema(responses={200: InstanceSerializer(many=True), **_BAD, **_ERRORS, **_NOT_FOUND})
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=ChildrenPagination,
            name=gettext_lazy("Instance children"))
    def children(self, request: Request, id: str) -> Response:
        """The child workflows the instance's children steps started, in the order they started."""
        pk = WorkflowInstance.objects.newest_first(id).values_list("pk", flat=True).first()
        if pk is None:
            raise NotFound(f"no instance with id {id!r}")
        page = self.paginate_queryset(self.get_queryset().filter(parent_id=pk).order_by("pk"))
        return self.get_paginated_response(InstanceSerializer(page, many=True).data)


class WorkflowViewSet(HephaestusAPIMixin, viewsets.ViewSet):
    """Registered workflows, with their graphs. ``{name}`` is the registry name."""

    lookup_field = "name"
    lookup_value_regex = LOOKUP_REGEX
    serializer_class = WorkflowSerializer
    titles = (gettext_lazy("Workflow"), gettext_lazy("Workflows"))

    @extend_schema(responses={200: WorkflowSerializer(many=True), **_ERRORS})
    def list(self, request: Request) -> Response:
        """Every registered workflow, by name."""
        workflows = sorted(registry.all_workflows(), key=lambda w: w.name)
        return Response(WorkflowSerializer([workflow_shape(w) for w in workflows], many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("version", int, description="Show this version's graph (default: current).")],
        responses={200: WorkflowSerializer, **_BAD, **_ERRORS,
                   404: OpenApiResponse(DetailSerializer, description="No workflow has this name.")})
    def retrieve(self, request: Request, name: str) -> Response:
        """One workflow: versions, steps and their events, edges and a Mermaid rendering."""
        try:
            workflow = registry.get_workflow(name)
        except UnknownWorkflow:
            raise NotFound(f"no workflow named {name!r} is registered") from None
        version = request.query_params.get("version")
        if version is not None:
            try:
                number = int(version)
                workflow.definition(number)
            except ValueError:
                raise ValidationError({"version": [
                    f"workflow {workflow.name} has no version {version!r} "
                    f"(versions: {', '.join(map(str, workflow.all_versions()))})"]}) from None
            return Response(WorkflowSerializer(workflow_shape(workflow, number)).data)
        return Response(WorkflowSerializer(workflow_shape(workflow)).data)


def resume_example(instance_id: str) -> dict[str, Any]:
    """A resume body for the newest instance ``instance_id``: its first
    :func:`~hephaestus_django.services.resume_options` (with the step, when several wait)."""
    row = WorkflowInstance.objects.newest(instance_id)
    options = services.resume_options(row) if row is not None else []
    if not options:
        return {"event": ""}
    body: dict[str, Any] = {"event": options[0].event}
    if len({option.step for option in options}) > 1:
        body["step"] = options[0].step.registry_name()
    return body


class APIRootView(APIView):
    """The routes of this API. Paths relative to here: ``instances/``, ``instances/{id}/`` (with
    ``resume/``, ``cancel/``, ``retry/``, ``pause/``, ``unpause/``, ``migrate/``, ``history/`` and ``children/``),
    ``workflows/``, ``workflows/{name}/`` and
    ``schema/``."""

    # The links give nothing away; each route checks its own permissions.
    permission_classes = [AllowAny]
    schema = None  # not an operation of the API: left out of the OpenAPI document

    def get_view_name(self) -> str:
        return _("Workflows API")

    def get_renderers(self) -> list[BaseRenderer]:
        return with_our_browsable_api(super().get_renderers())

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        namespace = request.resolver_match.namespace if request.resolver_match else "hephaestus"
        links = {}
        for key, name in (("instances", "instance-list"), ("workflows", "workflow-list"), ("schema", "schema")):
            try:
                links[key] = request.build_absolute_uri(reverse(f"{namespace}:{name}"))
            except NoReverseMatch:  # no schema/ without drf-spectacular
                continue
        return Response(links)
