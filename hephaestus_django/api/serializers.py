"""Request and response bodies.

Responses are the JSON shapes of instances, history entries and workflows, produced by
:mod:`hephaestus_django.shapes`; the fields declared on the response serializers document those
shapes in the OpenAPI schema (a test checks
that both name the same keys). Request serializers validate input and look workflow names up in
the registry (never importing them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from hephaestus_django import services
from hephaestus_django.core import keys, registry
from hephaestus_django.core.keys import SCOPES
from hephaestus_django.core.runner import MAX_IDEMPOTENCY_KEY
from hephaestus_django.core.values import storable_problem
from hephaestus_django.core.workflow import BaseWorkflow
from hephaestus_django.exceptions import UnknownWorkflow
from hephaestus_django.shapes import history_shape, instance_shape
from hephaestus_django.storage.models import EntryKindChoices, HistoryEntry, InstanceStatus, WorkflowInstance

#: The columns the instance shape reads (the list loads nothing else).
INSTANCE_COLUMNS = ("id", "instance_id", "workflow", "workflow_version", "status", "current_step", "context",
                    "step_configs", "active_steps", "completed_steps", "runtime_metadata", "telemetry_metadata",
                    "error", "parent_instance_id", "created_at", "updated_at")
#: The columns the history entry shape reads (plus ``seq`` for the cursor).
HISTORY_COLUMNS = ("id", "seq", "kind", "step", "event", "timestamp", "attempt", "error", "duration",
                   "context_updates", "traceback")


# Fields named like an attribute of DRF's ``Field`` or ``Serializer`` (``context``, ``parent``, ``data``)
# are declared under ``if not TYPE_CHECKING``: DRF's metaclass takes declared fields out of the class,
# so ``self.context`` stays the serializer's context; a type checker cannot know that.
# Serializers the views build with ``many=True`` over a list are ``Serializer[Any]``: DRF's stubs type
# the instance of such a call as one object.


# ---- responses -----------------------------------------------------------------------------------
class ContextSerializer(serializers.Serializer[dict[str, Any]]):
    initial = serializers.DictField(read_only=True, help_text=_("The data the instance was started with."))
    steps = serializers.DictField(child=serializers.DictField(), read_only=True,
                                  help_text=_("What each step returned, by context key."))


class InstanceSerializer(serializers.Serializer[Any]):
    """A workflow instance."""

    id = serializers.CharField(read_only=True, help_text=_("Business id, e.g. orderid::ORD-17."))
    workflow = serializers.CharField(read_only=True, help_text=_("Workflow registry name."))
    workflow_version = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=InstanceStatus.choices, read_only=True)
    current_step = serializers.CharField(read_only=True, allow_null=True,
                                         help_text=_("Registry name of the step that ran or paused last."))
    if not TYPE_CHECKING:
        context = ContextSerializer(read_only=True)
    step_configs = serializers.DictField(child=serializers.DictField(), read_only=True)
    active_steps = serializers.ListField(child=serializers.CharField(), read_only=True)
    completed_steps = serializers.ListField(child=serializers.CharField(), read_only=True)
    runtime_metadata = serializers.DictField(read_only=True)
    telemetry_metadata = serializers.DictField(read_only=True)
    error = serializers.CharField(read_only=True, allow_null=True, help_text=_("Why a failed instance failed."))
    if not TYPE_CHECKING:
        parent = serializers.CharField(read_only=True, allow_null=True,
                                       help_text=_("Id of the instance whose children step started this one."))
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: WorkflowInstance) -> dict[str, Any]:
        return instance_shape(instance)


class InstanceListSerializer(InstanceSerializer):
    """A row of the instance list: an instance without its context, unless ``?expand=context``."""

    if not TYPE_CHECKING:
        context = ContextSerializer(read_only=True, required=False, help_text=_("Only with ?expand=context."))

    def to_representation(self, instance: WorkflowInstance) -> dict[str, Any]:
        return instance_shape(instance, context="context" in self.context.get("expand", ()))


class HistoryEntrySerializer(serializers.Serializer[Any]):
    """One entry of an instance's execution history."""

    kind = serializers.ChoiceField(choices=EntryKindChoices.choices, read_only=True)
    step = serializers.CharField(read_only=True, allow_null=True)
    event = serializers.CharField(read_only=True, allow_null=True)
    timestamp = serializers.DateTimeField(read_only=True)
    attempt = serializers.IntegerField(read_only=True)
    error = serializers.CharField(read_only=True, allow_null=True)
    duration = serializers.FloatField(read_only=True, allow_null=True, help_text=_("Seconds."))
    context_updates = serializers.DictField(read_only=True, allow_null=True)
    traceback = serializers.CharField(read_only=True, allow_null=True,
                                      help_text=_("Python traceback of a failed or retrying step that raised."))

    def to_representation(self, instance: HistoryEntry) -> dict[str, Any]:
        return history_shape(instance)


class UniqueSerializer(serializers.Serializer[dict[str, Any]]):
    key = serializers.CharField(read_only=True)
    scope = serializers.ChoiceField(choices=[(s, s) for s in SCOPES], read_only=True)


class StepSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(read_only=True, help_text=_("Step registry name (what resume's 'step' takes)."))
    context_key = serializers.CharField(read_only=True)
    events = serializers.ListField(child=serializers.CharField(), read_only=True)


# ``from`` is a keyword, so this one is built from a namespace.
EdgeSerializer = type("EdgeSerializer", (serializers.Serializer,), {
    "__doc__": "An edge of the workflow graph: `from` emits `event`, which activates `to`.",
    "from": serializers.CharField(read_only=True),
    "event": serializers.CharField(read_only=True),
    "to": serializers.CharField(read_only=True),
})


class WorkflowSerializer(serializers.Serializer[Any]):
    """A registered workflow (``shapes.workflow_shape``)."""

    name = serializers.CharField(read_only=True)
    versions = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    current_version = serializers.IntegerField(read_only=True)
    unique = UniqueSerializer(read_only=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    metadata = serializers.DictField(read_only=True)
    steps = StepSerializer(many=True, read_only=True)
    edges = EdgeSerializer(many=True, read_only=True)
    mermaid = serializers.CharField(read_only=True, help_text=_("The graph as a Mermaid flowchart."))

    def to_representation(self, instance: dict[str, Any]) -> dict[str, Any]:
        return instance


class DetailSerializer(serializers.Serializer[dict[str, Any]]):
    """An error that is not about one input field (401, 403, 404, 409, 413)."""

    detail = serializers.CharField(read_only=True)


# ---- requests --------------------------------------------------------------------------------
class StorableDictField(serializers.DictField):
    """A JSON object the database can store (:func:`~hephaestus_django.core.values.storable_problem`)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        problem = storable_problem(value, self.field_name or "value")
        if problem is not None:
            raise serializers.ValidationError(f"{problem}; nothing was written")
        return value


class InputSerializer(serializers.Serializer[Any]):
    """A request body: a JSON object whose every key is one of the serializer's fields.

    An unknown key (a typo such as ``evnet``) is a 400 keyed by that key, never silently ignored.
    Every POST body of the API is one of these.
    """

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            known = [name for name, field in self.fields.items() if not field.read_only]
            allowed = ", ".join(known) if known else _("none")
            unknown = {str(key): [_("Unknown field (accepted: %(fields)s).") % {"fields": allowed}]
                       for key in data if key not in known}
        try:
            value: dict[str, Any] = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StartSerializer(InputSerializer):
    """Start an instance: give exactly one of ``value`` (business value) and ``id`` (full id)."""

    workflow = serializers.CharField(max_length=255, help_text=_("Workflow registry name."))
    value = serializers.CharField(required=False, max_length=128,
                                  help_text=_("Business value; the id is built from the workflow's unique key."))
    id = serializers.CharField(required=False, max_length=255, help_text=_("Full instance id, key::value."))
    if not TYPE_CHECKING:
        context = StorableDictField(default=dict, help_text=_("Initial context (a JSON object)."))
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**31 - 1,
                                       help_text=_("Workflow version (default: the workflow's choice)."))
    telemetry_metadata = StorableDictField(default=dict)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("value" in attrs) == ("id" in attrs):
            message = _("Give exactly one of 'value' and 'id'.")
            raise serializers.ValidationError({"value": [message], "id": [message]})
        try:
            workflow = registry.get_workflow(attrs["workflow"])
        except UnknownWorkflow as exc:
            raise serializers.ValidationError({"workflow": [str(exc)]}) from None
        attrs["workflow"] = workflow
        attrs["id"] = self._instance_id(workflow, attrs)
        try:
            attrs["version"] = workflow.resolve_version(attrs["context"], attrs.get("version"))
        except ValueError as exc:
            raise serializers.ValidationError({"version": [str(exc)]}) from None
        return attrs

    @staticmethod
    def _instance_id(workflow: type[BaseWorkflow], attrs: dict[str, Any]) -> str:
        unique = workflow.unique
        if "value" in attrs:
            try:
                return keys.build_id(unique.key, attrs["value"], unique.scope)
            except ValueError as exc:
                raise serializers.ValidationError({"value": [str(exc)]}) from None
        try:
            return keys.check_id_for(unique.key, attrs["id"])
        except ValueError as exc:
            raise serializers.ValidationError({"id": [str(exc)]}) from None

    def create(self, validated_data: dict[str, Any]) -> WorkflowInstance:
        instance = services.start_instance(
            validated_data["workflow"], validated_data["context"], id=validated_data["id"],
            version=validated_data["version"], telemetry_metadata=validated_data["telemetry_metadata"])
        return WorkflowInstance.objects.get(pk=instance.pk)

    def to_representation(self, instance: WorkflowInstance) -> dict[str, Any]:
        return instance_shape(instance)


class EmptySerializer(InputSerializer):
    """An action that takes no input (an empty body or ``{}``)."""


class MigrateSerializer(InputSerializer):
    """Move an active instance to another version of its workflow."""

    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text=_("The target version."))
    step_map = serializers.DictField(child=serializers.CharField(max_length=255), required=False, help_text=_(
        "{old step registry name: new step registry name} for steps the target version does not have."))


class StrictCharField(serializers.CharField):
    """A JSON string, and only that (DRF's ``CharField`` also takes numbers)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


#: The request header that carries a resume's idempotency key (same as the body's field).
IDEMPOTENCY_HEADER = "Idempotency-Key"


class ResumeSerializer(InputSerializer):
    """Complete a waiting step with an event it declares, optionally with data and an
    idempotency key (the ``Idempotency-Key`` header is the same as the ``idempotency_key`` field)."""

    event = serializers.CharField(max_length=255, help_text=_("An event the waiting step declares."))
    step = serializers.CharField(required=False, allow_null=True, max_length=255,
                                 help_text=_("Registry name of the waiting step, when several wait."))
    if not TYPE_CHECKING:
        data = serializers.DictField(required=False, allow_null=True,
                                     help_text=_("A JSON object merged into the waiting step's context entry and "
                                                 "recorded in the 'resumed' history entry."))
    idempotency_key = StrictCharField(
        required=False, allow_null=True, max_length=MAX_IDEMPOTENCY_KEY, trim_whitespace=False,
        help_text=_("A resume whose key this instance has seen already does nothing (answer 200 with the "
                    "instance as it is). Also accepted as the Idempotency-Key header."))

    def validate_data(self, value: Any) -> Any:
        problem = storable_problem(value, "data") if value is not None else None
        if problem is not None:
            raise serializers.ValidationError(problem)
        return value

    def validate_idempotency_key(self, value: Any) -> Any:
        if value is not None:
            problem = storable_problem(value, "idempotency_key")
            if problem is not None:
                raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        header = self.context.get("idempotency_key_header")
        if header is None:
            return attrs
        body = attrs.get("idempotency_key")
        if body is not None and body != header:
            raise serializers.ValidationError({"idempotency_key": [
                _("The %(header)s header and the idempotency_key field differ; give one of them.")
                % {"header": IDEMPOTENCY_HEADER}]})
        try:
            attrs["idempotency_key"] = self.validate_idempotency_key(
                self.fields["idempotency_key"].run_validation(header))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"idempotency_key": [
                f"{IDEMPOTENCY_HEADER} header: {message}" for message in exc.detail]}) from None
        return attrs


class CancelSerializer(InputSerializer):
    """Cancel an instance and its active children; with ``compensate`` the compensations of its
    completed steps run first."""

    compensate = serializers.BooleanField(default=False, help_text=_(
        "Run the compensations of the completed steps before the instance ends cancelled."))


class RetrySerializer(InputSerializer):
    """Re-run the failed step of a failed instance. The body is empty: ``{}``."""
