"""Keyset ("cursor") pagination: one query per page, however deep, and no ``COUNT``.

A page is ``{"next": url | null, "previous": url | null, "results": [...]}``. The cursor is an
opaque signed token holding the position of the last (or first) row shown and the ordering it
belongs to; rows are ordered by the queryset's ordering field plus the primary key, so positions
are unique and the query can use the ``(field, ...)`` indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, Model, Q, QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from hephaestus_django.core.values import storable_problem

_SALT = "hephaestus_django.api.cursor"
_BIGINT = 2**63

Key = tuple[str, bool]  # (model field, descending)


class KeysetPagination(BasePagination):
    """Pages over a queryset ordered by one field (``view.ordering`` unless the queryset has one)."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    page_size = 50
    max_page_size = 500
    #: Fallback ordering when the queryset has none (a ``-`` prefix means descending).
    ordering = "-created_at"
    #: Whether the ordering field alone tells rows apart (no primary key needed as a tie-breaker).
    unique_ordering = False

    def paginate_queryset(self, queryset: QuerySet[Any] | Sequence[Any], request: Request,
                          view: Any = None) -> list[Any]:
        if not isinstance(queryset, QuerySet):
            raise TypeError(f"{type(self).__name__} pages over a queryset, not a {type(queryset).__name__}")
        self.request = request
        self.base_url = request.build_absolute_uri()
        size = self.get_page_size(request)
        self.keys = self.get_keys(queryset, view)
        cursor = self.decode_cursor(request, queryset.model)
        reverse = bool(cursor and cursor["r"])
        if cursor is not None:
            queryset = queryset.filter(self._beyond(cursor["p"], forward=not reverse))
        order = [f"-{f}" if desc != reverse else f for f, desc in self.keys]
        ordered = queryset.order_by(*order)
        window = self.window(cursor, reverse, size, view)
        if window is None:
            rows = list(ordered[: size + 1])
        else:
            bounds, reaches_end = window
            rows = list(ordered.filter(bounds)[: size + 1])
            if len(rows) <= size and not reaches_end:  # the window missed rows: read without it
                rows = list(ordered[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        if reverse:
            rows.reverse()
            self.has_previous, self.has_next = more, True
        else:
            self.has_previous, self.has_next = cursor is not None, more
        self.page = rows
        return rows

    def window(self, cursor: dict[str, Any] | None, reverse: bool, size: int,
               view: Any) -> tuple[Q, bool] | None:
        """An extra bound that holds the page's rows and the one after it (``None``: none), and
        whether it reaches the end of the rows in its direction."""
        return None

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [
                _("Must be an integer from 1 to %(max)d.") % {"max": self.max_page_size}]})
        return size

    def get_keys(self, queryset: QuerySet[Any], view: Any) -> list[Key]:
        ordering = list(queryset.query.order_by) or [getattr(view, "ordering", None) or self.ordering]
        first = str(ordering[0])
        field, descending = first.lstrip("-"), first.startswith("-")
        if field in ("pk", queryset.model._meta.pk.name) or self.unique_ordering:
            return [("pk" if field == queryset.model._meta.pk.name else field, descending)]
        return [(field, descending), ("pk", descending)]

    # ---- cursors -------------------------------------------------------------------------------
    def _ordering_label(self) -> str:
        return ",".join(f"-{f}" if desc else f for f, desc in self.keys)

    def _beyond(self, position: Sequence[Any], *, forward: bool) -> Q:
        """Rows after ``position`` in the ordering (before it when not ``forward``)."""
        condition = Q()
        for index in reversed(range(len(self.keys))):
            field, descending = self.keys[index]
            op = "lt" if descending == forward else "gt"
            strict = Q(**{f"{field}__{op}": position[index]})
            condition = strict if index == len(self.keys) - 1 else strict | (Q(**{field: position[index]}) & condition)
        first, descending = self.keys[0]
        # The redundant bound on the first field lets the database start the index scan there.
        bound = Q(**{f"{first}__{'lte' if descending == forward else 'gte'}": position[0]})
        return bound & condition

    def encode_cursor(self, row: Model, reverse: bool) -> str:
        position = []
        for field, _desc in self.keys:
            value = getattr(row, field)
            position.append(value.isoformat() if isinstance(value, datetime) else value)
        token = signing.dumps({"o": self._ordering_label(), "p": position, "r": int(reverse)}, salt=_SALT)
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def decode_cursor(self, request: Request, model: type[Model]) -> dict[str, Any] | None:
        """The cursor's position, each value checked against its field; a 400 for anything else
        (a token not signed here, another ordering's, or a signed token that holds garbage)."""
        token = request.query_params.get(self.cursor_query_param)
        if token is None:
            return None
        try:
            data = signing.loads(token, salt=_SALT)
        except (signing.BadSignature, ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or data.get("o") != self._ordering_label():
            raise ValidationError({self.cursor_query_param: [_("Invalid cursor for this ordering.")]})
        position, reverse = data.get("p"), data.get("r")
        if not isinstance(position, list) or len(position) != len(self.keys) or reverse not in (0, 1):
            raise ValidationError({self.cursor_query_param: [_("Invalid cursor.")]})
        try:
            data["p"] = [self._position_value(model, field, value)
                         for (field, _desc), value in zip(self.keys, position, strict=True)]
        except (DjangoValidationError, TypeError, ValueError, OverflowError):
            raise ValidationError({self.cursor_query_param: [_("Invalid cursor.")]}) from None
        return data

    @staticmethod
    def _position_value(model: type[Model], name: str, value: Any) -> Any:
        """``value`` as a value of field ``name`` that the database can compare (else an error)."""
        field = model._meta.pk if name == "pk" else model._meta.get_field(name)
        if not isinstance(field, Field):  # a reverse relation: no value to compare
            raise ValueError(f"bad cursor field {name}")
        if value is None or isinstance(value, dict | list | float) or storable_problem(value) is not None:
            raise ValueError(f"bad cursor value for {name}")
        python = field.to_python(value)
        if python is None:
            raise ValueError(f"bad cursor value for {name}")
        if isinstance(python, int) and not -_BIGINT <= python < _BIGINT:
            raise ValueError(f"cursor value for {name} out of range")
        if isinstance(python, datetime):
            if python.tzinfo is None:
                raise ValueError(f"cursor value for {name} has no time zone")
            python = python.astimezone(UTC)  # OverflowError at the ends of the calendar
        return python

    def get_next_link(self) -> str | None:
        if not self.has_next or not self.page:
            return None
        return self.encode_cursor(self.page[-1], reverse=False)

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        if not self.page:  # stepped past the end: back to the first page
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self.encode_cursor(self.page[0], reverse=True)

    # ---- responses and schema --------------------------------------------------------------------
    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {"next": link, "previous": link, "results": schema},
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {"name": self.cursor_query_param, "required": False, "in": "query",
             "description": "Opaque position from a previous page's next/previous link.",
             "schema": {"type": "string"}},
            {"name": self.page_size_query_param, "required": False, "in": "query",
             "description": f"Results per page (default {self.page_size}).",
             "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size}},
        ]


class HistoryPagination(KeysetPagination):
    """History entries of one instance, in order (``seq``, unique per instance).

    An instance's entries are numbered 1, 2, 3...: each page reads one bounded range of the
    ``(instance, seq)`` index (``seq`` between the cursor and the cursor plus a page), so a page of
    a history of 10,000 entries costs what a page of a short one does, whatever the planner
    estimates for that instance. The view gives the history's length as ``history_length``.
    """

    ordering = "seq"
    unique_ordering = True

    def window(self, cursor: dict[str, Any] | None, reverse: bool, size: int,
               view: Any) -> tuple[Q, bool] | None:
        total = getattr(view, "history_length", None)
        if not isinstance(total, int) or self.keys != [("seq", False)]:
            return None
        if cursor is None:
            low, high = 1, size + 1
        elif reverse:
            low, high = cursor["p"][0] - size - 1, cursor["p"][0] - 1
        else:
            low, high = cursor["p"][0] + 1, cursor["p"][0] + size + 1
        return Q(seq__gte=low, seq__lte=high), (low <= 1 if reverse else high >= total)
    page_size = 100
    max_page_size = 1000


class ChildrenPagination(KeysetPagination):
    """Child instances of one instance, in the order they started (primary key)."""

    ordering = "pk"
