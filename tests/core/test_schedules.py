"""Schedules in the core: validation at class creation and ticks fired by the Runner (SPEC §10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hephaestus_django.core import Done, Schedule, Status, Unique, Workflow, WorkflowDefinitionError
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner
from tests.core.helpers import FrozenClock, make_step


def scheduled(*schedules: Schedule, unique: Unique | None = None, name: str = "Nightly") -> type[Workflow]:
    step = make_step("Report")
    return type(name, (Workflow,), {"unique": unique or Unique(key="report"), "start_step": step,
                                    "schedules": list(schedules), "transitions": {(step, "ok"): Done}})


def test_schedule_signature_and_defaults() -> None:
    with pytest.raises(TypeError):
        Schedule("0 3 * * *", "value")  # type: ignore[misc]  # everything but cron is keyword-only
    flow = scheduled(Schedule("0 3 * * *"))
    [schedule] = flow.schedules
    assert (schedule.name, schedule.timezone, schedule.value, schedule.context) == ("nightly", "UTC", None, None)
    tick = datetime(2024, 5, 6, 3, 0, tzinfo=UTC)
    assert schedule.value_for(tick) == "nightly-202405060300"
    assert schedule.context_for(tick) == {"scheduled_for": "2024-05-06T03:00:00+00:00"}


def test_value_and_context_use_the_tick_in_the_schedules_time_zone() -> None:
    schedule = scheduled(Schedule("0 3 * * *", value="nightly-{tick:%Y%m%d-%H}", context={"kind": "full"},
                                  timezone="Europe/Paris", name="paris")).schedules[0]
    tick = schedule.next_tick(datetime(2024, 5, 6, 0, 0, tzinfo=UTC))
    assert tick == datetime(2024, 5, 6, 1, 0, tzinfo=UTC)  # 03:00 in Paris (UTC+2)
    assert schedule.value_for(tick) == "nightly-20240506-03"
    assert schedule.context_for(tick) == {"kind": "full", "scheduled_for": "2024-05-06T03:00:00+02:00"}


def test_daylight_saving_time_follows_cron() -> None:
    schedule = scheduled(Schedule("30 2 * * *", timezone="Europe/Paris")).schedules[0]
    # 02:30 does not exist on 2024-03-31 in Paris: the tick is the first minute after the jump
    tick = schedule.next_tick(datetime(2024, 3, 30, 12, 0, tzinfo=UTC))
    assert tick.isoformat() == "2024-03-31T03:00:00+02:00"
    schedule = scheduled(Schedule("30 2 * * *", timezone="Europe/Paris"), name="Autumn").schedules[0]
    first = schedule.next_tick(datetime(2024, 10, 26, 12, 0, tzinfo=UTC))  # 02:30 happens twice on the 27th
    assert first.isoformat() == "2024-10-27T02:30:00+02:00"
    assert schedule.next_tick(first).isoformat() == "2024-10-28T02:30:00+01:00"  # once


@pytest.mark.parametrize(("schedule", "message"), [
    (Schedule("0 3 * *"), "schedule 'nightly': cron '0 3 * *' must have 5 fields"),
    (Schedule("0 3 * * * *"), "must have 5 fields (minute hour day-of-month month day-of-week), not 6"),
    (Schedule("61 3 * * *"), "schedule 'nightly': cron '61 3 * * *' is not a valid crontab expression"),
    (Schedule(3), "schedule 'nightly': cron must be a str of 5 fields, not 3"),
    (Schedule("0 3 * * *", timezone="Mars/Olympus"), "timezone 'Mars/Olympus' is not a known IANA time zone"),
    (Schedule("0 3 * * *", value="{tick:%Y %m}"), "which is not a business value"),
    (Schedule("0 3 * * *", value="{when}"), "cannot be formatted with tick and name: KeyError"),
    (Schedule("0 3 * * *", value=7), "value must be a format string"),
    (Schedule("0 3 * * *", context=["x"]), "context must be a JSON object"),
    (Schedule("0 3 * * *", name="no spaces"), "name must be 1-64 letters"),
    ("0 3 * * *", "schedules[0] must be a Schedule(...), not '0 3 * * *'"),
])
def test_invalid_schedules_are_definition_errors(schedule: Any, message: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as caught:
        scheduled(schedule)
    assert message in str(caught.value)
    assert "workflow tests.core.test_schedules.Nightly" in str(caught.value)


def test_two_schedules_need_two_names() -> None:
    with pytest.raises(WorkflowDefinitionError, match="another schedule of this workflow has the same name"):
        scheduled(Schedule("0 3 * * *"), Schedule("0 4 * * *"))
    flow = scheduled(Schedule("0 3 * * *"), Schedule("0 4 * * *", name="early"))
    assert [s.name for s in flow.schedules] == ["nightly", "early"]


def test_first_sight_is_not_backfilled(service: Runner, storage: MemoryStorage, frozen: FrozenClock) -> None:
    scheduled(Schedule("*/10 * * * *"))  # T0 = 12:00 is itself a tick
    assert service.fire_schedules() == 0
    state = storage.schedule_states()[("tests.core.test_schedules.Nightly", "nightly")]
    assert state.next_tick == datetime(2024, 1, 1, 12, 10, tzinfo=UTC)
    frozen.advance(minutes=9)
    assert service.fire_schedules() == 0
    frozen.advance(minutes=1)
    assert service.fire_schedules() == 1
    assert service.fire_schedules() == 0  # each tick once
    instance = service.get("report::nightly-202401011210")
    assert instance.status == Status.COMPLETED
    assert instance.context.initial == {"scheduled_for": "2024-01-01T12:10:00+00:00"}


def test_after_downtime_only_the_latest_missed_tick_starts(service: Runner, storage: MemoryStorage,
                                                           frozen: FrozenClock) -> None:
    scheduled(Schedule("*/10 * * * *"))
    service.fire_schedules()
    frozen.advance(hours=5, minutes=3)  # 30 ticks missed
    assert service.fire_schedules() == 1
    assert [i.id for i in service.list()] == ["report::nightly-202401011700"]
    assert storage.schedule_states()[("tests.core.test_schedules.Nightly", "nightly")].next_tick == \
        datetime(2024, 1, 1, 17, 10, tzinfo=UTC)


def test_a_tick_refused_by_uniqueness_is_recorded_and_skipped(service: Runner, storage: MemoryStorage,
                                                              frozen: FrozenClock) -> None:
    from hephaestus_django.core import WaitForEvent

    gate = type("Hold", (WaitForEvent,), {})
    type("Fixed", (Workflow,), {"unique": Unique(key="fixed"), "start_step": gate,
                                "schedules": [Schedule("* * * * *", value="same")],
                                "transitions": {(gate, "received"): Done}})
    service.fire_schedules()
    frozen.advance(minutes=1)
    assert service.fire_schedules() == 1
    frozen.advance(minutes=1)
    assert service.fire_schedules() == 0  # fixed::same is still waiting
    assert list(storage.ticks.values()) == ["fixed::same", None]
    frozen.advance(minutes=1)
    assert service.fire_schedules() == 0  # and the schedule moved on


def test_paused_schedule_starts_nothing_and_skips_missed_ticks(service: Runner, storage: MemoryStorage,
                                                               frozen: FrozenClock) -> None:
    flow = scheduled(Schedule("*/10 * * * *"))
    service.fire_schedules()
    service.pause_schedule(flow, "nightly")
    frozen.advance(minutes=30)
    assert service.fire_schedules() == 0
    service.unpause_schedule(flow.name, "nightly")
    assert service.fire_schedules() == 0  # the ticks missed while paused are not started
    frozen.advance(minutes=10)
    assert service.fire_schedules() == 1
    with pytest.raises(ValueError, match="has no schedule 'nope' \\(its schedules: nightly\\)"):
        service.pause_schedule(flow, "nope")


def test_run_until_idle_fires_ticks(service: Runner, frozen: FrozenClock) -> None:
    scheduled(Schedule("0 * * * *"))
    service.run_until_idle()
    frozen.advance(timedelta(hours=1).total_seconds())
    assert service.run_until_idle() == 1
    assert len(service.list()) == 1
