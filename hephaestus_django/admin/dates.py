"""Dates in the admin: one format everywhere, and a date drill-down that costs one query.

:func:`moment` writes every date and time of the admin pages the same way, ``2024-01-31
17:05:09`` in the current time zone (with the exact ISO 8601 instant in a ``<time>`` element).

The changelist's drill-down: Django's ``{% date_hierarchy %}`` lists the years, months or days that hold rows with a
``SELECT DISTINCT`` over the whole (filtered) table. Here the choices span from the first to
the last row of the current selection, which the index on ``created_at`` answers at once; a
period inside that span may hold no row.
"""

from __future__ import annotations

import calendar
import datetime
from typing import Any

from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _

#: The one format of dates and times on the admin pages of this app.
FORMAT = "Y-m-d H:i:s"


def _number(value: Any) -> str | None:
    """A drill-down parameter that is a (short) number, else ``None``."""
    if isinstance(value, list):
        value = value[-1] if value else None
    return value if isinstance(value, str) and value.isdigit() and len(value) <= 4 else None


def _local(value: datetime.datetime) -> datetime.datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def moment(value: Any) -> str:
    """``value`` (a datetime, or ISO text from a JSON column) as ``<time>`` in :data:`FORMAT`, in
    the current time zone; ``—`` for nothing."""
    if value is None or value == "":
        return "—"
    instant = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(instant, datetime.datetime):
        return str(value)
    return format_html('<time class="hx-time" datetime="{}" title="{}">{}</time>', instant.isoformat(),
                       instant.isoformat(), formats.date_format(_local(instant), FORMAT))


def stacked_moment(value: Any) -> str:
    """:func:`moment` on two lines, the day above the time (for narrow table columns)."""
    if value is None:
        return "—"
    local = _local(value)
    return format_html('<time class="hx-time hx-stacked-time" datetime="{}" title="{}">{} '
                       '<span class="hx-clock">{}</span></time>', value.isoformat(), value.isoformat(),
                       formats.date_format(local, "Y-m-d"), formats.date_format(local, "H:i:s"))


def from_nanoseconds(value: int | None) -> datetime.datetime | None:
    """A telemetry start time (nanoseconds since the epoch) as an aware datetime."""
    if value is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(value / 1e9, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def date_hierarchy(cl: Any) -> dict[str, Any] | None:
    """The context of ``admin/date_hierarchy.html`` for the changelist ``cl`` (``None``: nothing)."""
    field = cl.date_hierarchy
    if not field:
        return None
    year_field, month_field, day_field = f"{field}__year", f"{field}__month", f"{field}__day"
    generic = f"{field}__"
    year, month, day = (_number(cl.params.get(name)) for name in (year_field, month_field, day_field))
    if not year:  # Django ignores a month without a year, and a day without a month
        month = None
    if not month:
        day = None
    try:
        if year and month and day:
            datetime.date(int(year), int(month), int(day))
        elif year and month:
            datetime.date(int(year), int(month), 1)
        elif year:
            datetime.date(int(year), 1, 1)
    except ValueError:  # a date that does not exist: Django reports the lookup, no drill-down here
        return None

    def link(filters: dict[str, Any]) -> str:
        return str(cl.get_query_string(filters, [generic]))

    if year and month and day:
        chosen = datetime.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {"link": link({year_field: year, month_field: month}),
                     "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT"))},
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    bounds = cl.queryset.order_by().aggregate(first=Min(field), last=Max(field))
    first, last = bounds["first"], bounds["last"]
    if first is None or last is None:
        return None
    first, last = _local(first), _local(last)
    if not year and first.year == last.year:  # one year only: start one level down, as Django does
        year = str(first.year)
        if first.month == last.month:
            month = str(first.month)
    if year and month:
        y, m = int(year), int(month)
        start = first.day if (first.year, first.month) == (y, m) else 1
        end = last.day if (last.year, last.month) == (y, m) else calendar.monthrange(y, m)[1]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": year},
            "choices": [
                {"link": link({year_field: year, month_field: month, day_field: d}),
                 "title": capfirst(formats.date_format(datetime.date(y, m, d), "MONTH_DAY_FORMAT"))}
                for d in range(start, end + 1)
            ],
        }
    if year:
        y = int(year)
        start = first.month if first.year == y else 1
        end = last.month if last.year == y else 12
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {"link": link({year_field: year, month_field: m}),
                 "title": capfirst(formats.date_format(datetime.date(y, m, 1), "YEAR_MONTH_FORMAT"))}
                for m in range(start, end + 1)
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: str(y)}), "title": str(y)}
                    for y in range(first.year, last.year + 1)],
    }
