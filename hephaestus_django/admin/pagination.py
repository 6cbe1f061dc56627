"""A paginator whose count stays cheap on tables of millions of rows.

Up to ``HEPHAESTUS["ADMIN_COUNT_LIMIT"]`` rows the count is exact and costs one bounded query
(``SELECT COUNT(*) FROM (... LIMIT n+1)``). Above it, PostgreSQL's planner estimate is used:
``pg_class.reltuples`` for the whole table, the ``EXPLAIN`` row estimate for a filtered list.
Other databases fall back to an exact count.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

from hephaestus_django.conf import settings


def _table_estimate(queryset: QuerySet[Any]) -> int | None:
    """``reltuples`` of the queryset's table: -1 (never analysed) and errors give ``None``."""
    connection = connections[queryset.db]
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


def _plan_estimate(queryset: QuerySet[Any]) -> int | None:
    """The planner's row estimate for the (filtered) queryset."""
    connection = connections[queryset.db]
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        row = cursor.fetchone()
    if row is None:
        return None
    plan = json.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
    try:
        return int(plan[0]["Plan"]["Plan Rows"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]  # generic in django-stubs only
    """Exact counts up to the limit, planner estimates above it (PostgreSQL); ``is_estimate`` tells."""

    is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        limit = int(settings.ADMIN_COUNT_LIMIT or 0)
        if not isinstance(queryset, QuerySet) or limit <= 0:
            return super().count
        bounded = queryset.order_by()[: limit + 1].count()
        if bounded <= limit:
            return bounded
        if connections[queryset.db].vendor != "postgresql":
            return queryset.count()
        filtered = bool(queryset.query.where) or queryset.query.distinct
        estimate = _plan_estimate(queryset) if filtered else _table_estimate(queryset)
        if estimate is None:
            return queryset.count()
        self.is_estimate = True
        # The bounded count proved there are more than ``limit`` rows, whatever the planner says.
        return max(estimate, bounded)
