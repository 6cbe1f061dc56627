"""Query filters of ``GET instances/`` (django-filter). Bad values answer 400, keyed by parameter.

``?workflow=NAME&status=waiting&status=failed&workflow_version=2&current_step=STEP``
``&created_after=ISO&created_before=ISO&updated_after=ISO&updated_before=ISO&search=TEXT&ordering=-created_at``
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField

from hephaestus_django.api.schema import extend_schema_field
from hephaestus_django.storage.models import InstanceStatus, WorkflowInstance

#: Public ordering names -> model fields (``id`` is the business id).
ORDERING_FIELDS = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "id": "instance_id",
    "workflow": "workflow",
    "workflow_version": "workflow_version",
    "status": "status",
    "current_step": "current_step",
}
DEFAULT_ORDERING = "-created_at"
MAX_INT = 2**31 - 1  # the largest value a PositiveIntegerField holds on every database


class StorableDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time that every database backend can compare: given to the database in
    UTC (PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows), and never shifted
    out of range (year 1 at a positive offset)."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is not None and parsed.tzinfo is not None:
            try:
                parsed = parsed.astimezone(UTC)
            except OverflowError:
                raise forms.ValidationError(_("Date-time out of range."), code="invalid") from None
        return parsed


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = StorableDateTimeField


class IntegerFilter(django_filters.Filter):
    """A whole number (``NumberFilter`` takes decimals)."""

    field_class = forms.IntegerField


def _ordering_choices() -> list[tuple[str, str]]:
    choices = []
    for name in ORDERING_FIELDS:
        choices += [(name, name), (f"-{name}", f"-{name}")]
    return choices


class InstanceFilter(django_filters.FilterSet):
    """Filters and ordering of the instance list."""

    workflow = django_filters.CharFilter(field_name="workflow", help_text=_("Workflow registry name."))
    # distinct=False: no join can repeat a row, and DISTINCT would make the database de-duplicate
    # every matching row (JSON columns included) before it can stop at the page's LIMIT.
    status = django_filters.MultipleChoiceFilter(
        field_name="status", choices=InstanceStatus.choices, distinct=False,
        help_text=_("One or more statuses: ?status=waiting&status=failed."))
    workflow_version = extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_INT})(
        IntegerFilter(field_name="workflow_version", min_value=1, max_value=MAX_INT))
    #: The filter's documented name (``docs/api.md``); ``workflow_version`` works too.
    version = extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_INT})(
        IntegerFilter(field_name="workflow_version", min_value=1, max_value=MAX_INT,
                      help_text=_("Same as workflow_version.")))
    current_step = django_filters.CharFilter(field_name="current_step", help_text=_("Step registry name."))
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte",
                                   help_text=_("Created at or after this ISO 8601 date-time."))
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt",
                                    help_text=_("Created before this ISO 8601 date-time."))
    updated_after = DateTimeFilter(field_name="updated_at", lookup_expr="gte",
                                   help_text=_("Updated at or after this ISO 8601 date-time."))
    updated_before = DateTimeFilter(field_name="updated_at", lookup_expr="lt",
                                    help_text=_("Updated before this ISO 8601 date-time."))
    search = django_filters.CharFilter(field_name="instance_id", lookup_expr="icontains",
                                       help_text=_("Part of the instance id (case-insensitive)."))
    ordering = django_filters.ChoiceFilter(
        choices=_ordering_choices(), method="order", empty_label=None,
        help_text=_("Field to order by, '-' for descending (default -created_at); ties by row order."))

    class Meta:
        model = WorkflowInstance
        fields: list[str] = []

    def order(self, queryset: QuerySet[WorkflowInstance], name: str, value: str) -> QuerySet[WorkflowInstance]:
        descending = value.startswith("-")
        field = ORDERING_FIELDS[value.lstrip("-")]
        return queryset.order_by(f"-{field}" if descending else field)
