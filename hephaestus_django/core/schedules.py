"""Schedules: a workflow class starts one instance per tick of a crontab expression.

::

    class NightlyReport(Workflow):
        unique = Unique(key="report")
        schedules = [Schedule("0 3 * * *", value="nightly-{tick:%Y%m%d}", timezone="Europe/Paris")]
        ...

Each tick starts one instance whose business value is ``value`` formatted with the tick (an
aware datetime in the schedule's time zone) and the schedule's ``name``, and whose context is
``context`` plus ``{"scheduled_for": <tick in ISO 8601>}``. The runner fires the ticks
(``Runner.fire_schedules``); a storage guarantees that each tick starts once.

Crontab expressions are evaluated by cronsim, which follows Debian's cron (and its daylight
saving time rules: a time skipped by a spring-forward transition runs at the first minute after
it, a time repeated by a fall-back transition runs once).
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import KW_ONLY, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError

from hephaestus_django.core.base import snake_case
from hephaestus_django.core.graph import check_json_safe
from hephaestus_django.core.keys import VALUE_RE

__all__ = ["DEFAULT_VALUE", "Schedule", "schedule_problems"]

#: The business value of a tick when the schedule gives none.
DEFAULT_VALUE = "{name}-{tick:%Y%m%d%H%M}"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
#: A tick used to try a schedule's value format when its class is created.
_SAMPLE_TICK = datetime(2001, 2, 3, 4, 5, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Start an instance of the declaring workflow at every tick of ``cron`` (5 fields).

    ``value``: a format string for the business value, given ``tick`` (aware, in ``timezone``)
    and ``name`` (default ``"{name}-{tick:%Y%m%d%H%M}"``). ``context``: the start context (a
    JSON object), to which ``scheduled_for`` is added. ``name``: unique within the workflow
    (default: the workflow class name in snake_case). The workflow class checks all of it.
    """

    cron: Any
    _: KW_ONLY
    value: Any = None
    context: Any = None
    timezone: Any = "UTC"
    name: Any = None

    # ---- evaluation (on a checked schedule) -----------------------------------------------------
    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after ``after`` (aware, in the schedule's time zone)."""
        return next(CronSim(self.cron, after.astimezone(self.zone)))

    def latest_tick(self, at: datetime) -> datetime:
        """The last tick at or before ``at`` (aware, in the schedule's time zone)."""
        return next(CronSim(self.cron, (at + _MICROSECOND).astimezone(self.zone), reverse=True))

    def value_for(self, tick: datetime) -> str:
        """The business value of the instance that ``tick`` starts."""
        return str((self.value or DEFAULT_VALUE).format(tick=tick.astimezone(self.zone), name=self.name))

    def context_for(self, tick: datetime) -> dict[str, Any]:
        """The start context of the instance that ``tick`` starts."""
        return {**(self.context or {}), "scheduled_for": tick.astimezone(self.zone).isoformat()}

    def describe(self) -> str:
        return f"schedule {self.name!r} ({self.cron!r}, {self.timezone})"


def _cron_problem(cron: Any) -> str | None:
    if not isinstance(cron, str):
        return f"cron must be a str of 5 fields, not {cron!r}"
    fields = cron.split()
    if len(fields) != 5:
        return f"cron {cron!r} must have 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}"
    try:
        CronSim(cron, _SAMPLE_TICK)
    except CronSimError as exc:
        return f"cron {cron!r} is not a valid crontab expression: {exc}"
    return None


def _timezone_problem(timezone: Any) -> str | None:
    if not isinstance(timezone, str) or not timezone:
        return f"timezone must be an IANA time zone name such as 'Europe/Paris', not {timezone!r}"
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"timezone {timezone!r} is not a known IANA time zone"
    return None


def _value_problem(schedule: Schedule) -> str | None:
    value = schedule.value
    if value is None:
        value = DEFAULT_VALUE
    elif not isinstance(value, str) or not value:
        return f"value must be a format string such as 'nightly-{{tick:%Y%m%d}}', not {value!r}"
    try:
        sample = value.format(tick=_SAMPLE_TICK, name=schedule.name)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        return f"value {value!r} cannot be formatted with tick and name: {type(exc).__name__}: {exc}"
    if not VALUE_RE.match(sample):
        return (f"value {value!r} gives {sample!r}, which is not a business value (1-128 letters, digits, "
                "'-', '_' and '.', starting with a letter or digit)")
    return None


def schedule_problems(class_name: str, schedules: Any) -> tuple[list[Schedule], list[str]]:
    """The declared schedules with their default names filled in, and every problem with them."""
    if not isinstance(schedules, list | tuple):
        return [], [f"schedules must be a list of Schedule(...), not {schedules!r}"]
    resolved: list[Schedule] = []
    problems: list[str] = []
    seen: set[str] = set()
    for position, schedule in enumerate(schedules):
        if not isinstance(schedule, Schedule):
            problems.append(f"schedules[{position}] must be a Schedule(...), not {schedule!r}")
            continue
        name: Any = schedule.name if schedule.name is not None else snake_case(class_name)
        label = f"schedule {name!r}" if isinstance(name, str) else f"schedules[{position}]"
        found = []
        if not isinstance(name, str) or not _NAME_RE.match(name):
            found.append(f"name must be 1-64 letters, digits, '-' and '_' starting with a letter or digit, "
                         f"not {name!r}")
        elif name in seen:
            found.append("another schedule of this workflow has the same name: give each one a name=")
        else:
            seen.add(name)
        schedule = replace(schedule, name=name)
        for problem in (_cron_problem(schedule.cron), _timezone_problem(schedule.timezone),
                        _value_problem(schedule) if not found else None):
            if problem:
                found.append(problem)
        context = schedule.context
        if context is not None and (not isinstance(context, dict) or not check_json_safe(context)):
            found.append(f"context must be a JSON object (a dict with str keys), not {context!r}")
        problems.extend(f"{label}: {p}" for p in found)
        resolved.append(schedule)
    return resolved, problems
