"""Schedules on the database: ticks fired by the worker and the test kit, once each; no backfill;
the latest missed tick only; the command; the admin list and its durable pause (SPEC §10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

import hephaestus_django as h
from hephaestus_django import services
from hephaestus_django.core import Status, registry
from hephaestus_django.runtime.worker import run_pass
from hephaestus_django.storage.models import ScheduleTick, WorkflowInstance, WorkflowSchedule
from hephaestus_django.testing import fire_due_timers, frozen_clock, run_until_idle
from tests import workflows_schedules as ws

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 5, 6, 0, 5, tzinfo=UTC)  # 02:05 in Paris


@pytest.fixture
def scheduled() -> Iterator[None]:
    for workflow in ws.WORKFLOWS:
        registry.register(workflow)
    try:
        yield
    finally:
        for workflow in ws.WORKFLOWS:
            registry.unregister(workflow.name)


@pytest.fixture
def nightly(scheduled: None) -> Iterator[None]:
    """Only NightlyReport's schedules (the 100 of ManySchedules are for the worker race)."""
    registry.unregister(ws.ManySchedules.name)
    yield


def state(name: str) -> WorkflowSchedule:
    return WorkflowSchedule.objects.get(workflow=ws.NightlyReport.name, name=name)


def test_first_pass_notes_the_next_tick_without_backfill(nightly: None) -> None:
    with frozen_clock(T0) as clock:
        assert run_until_idle() == 0  # 00:00 UTC was a quarterly tick, before anyone saw the schedule
        assert WorkflowInstance.objects.count() == 0
        assert state("quarterly").next_tick == datetime(2024, 5, 6, 0, 15, tzinfo=UTC)
        assert state("nightly").next_tick == datetime(2024, 5, 6, 1, 0, tzinfo=UTC)  # 03:00 Paris
        clock.advance(minutes=10)
        assert fire_due_timers() == 1  # the test kit's fire_due_timers fires ticks too
        assert fire_due_timers() == 0
    instance = h.get_instance("report::quarterly-202405060015")
    assert instance.status == Status.COMPLETED
    assert instance.context.initial == {"scheduled_for": "2024-05-06T00:15:00+00:00"}
    tick = ScheduleTick.objects.get()
    assert (tick.tick, tick.instance_id, tick.error) == (datetime(2024, 5, 6, 0, 15, tzinfo=UTC), instance.pk, "")
    assert state("quarterly").last_instance == "report::quarterly-202405060015"


def test_value_context_and_time_zone_of_a_nightly_tick(nightly: None) -> None:
    with frozen_clock(T0) as clock:
        run_until_idle()
        clock.advance(hours=1)
        run_until_idle()
    instance = h.get_instance("report::nightly-20240506")
    assert instance.context.initial == {"kind": "full", "scheduled_for": "2024-05-06T03:00:00+02:00"}
    assert instance.context.steps["s_report"] == {"for": "2024-05-06T03:00:00+02:00"}


def test_after_downtime_only_the_latest_missed_tick_starts(nightly: None) -> None:
    with frozen_clock(T0) as clock:
        run_until_idle()
        clock.advance(hours=5)  # 20 quarterly ticks and one nightly tick missed
        assert run_until_idle() == 2
    ids = sorted(WorkflowInstance.objects.values_list("instance_id", flat=True))
    assert ids == ["report::nightly-20240506", "report::quarterly-202405060500"]
    assert state("quarterly").next_tick == datetime(2024, 5, 6, 5, 15, tzinfo=UTC)


def test_the_worker_pass_fires_ticks(nightly: None) -> None:
    with frozen_clock(T0) as clock:
        run_pass()
        clock.advance(minutes=10)
        assert run_pass() == (0, 0, 1)
    assert WorkflowInstance.objects.get().instance_id == "report::quarterly-202405060015"


def test_a_tick_row_exists_once_per_tick(nightly: None) -> None:
    """The tick table's constraint: a worker that read a stale next tick cannot start it again."""
    with frozen_clock(T0) as clock:
        run_until_idle()
        clock.advance(minutes=10)
        run_until_idle()
        WorkflowSchedule.objects.filter(name="quarterly").update(next_tick=datetime(2024, 5, 6, 0, 15, tzinfo=UTC))
        assert run_until_idle() == 0  # the tick row is there: nothing starts twice
    assert WorkflowInstance.objects.count() == 1
    assert ScheduleTick.objects.count() == 1


def test_paused_schedule_is_durable_and_skips_missed_ticks(nightly: None) -> None:
    with frozen_clock(T0) as clock:
        run_until_idle()
        services.pause_schedule(ws.NightlyReport, "quarterly")
        assert state("quarterly").paused
        clock.advance(hours=1)
        assert run_until_idle() == 1  # the nightly tick; quarterly is paused
        services.unpause_schedule(ws.NightlyReport.name, "quarterly")
        assert state("quarterly").next_tick == datetime(2024, 5, 6, 1, 15, tzinfo=UTC)
        assert run_until_idle() == 0
    assert list(WorkflowInstance.objects.values_list("instance_id", flat=True)) == ["report::nightly-20240506"]


def test_pausing_an_unknown_schedule_names_it(nightly: None) -> None:
    with pytest.raises(ValueError, match="has no schedule 'weekly' \\(its schedules: nightly, quarterly\\)"):
        services.pause_schedule(ws.NightlyReport, "weekly")


def test_schedules_command(nightly: None) -> None:
    out = StringIO()
    call_command("hephaestus_schedules", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:4] == ["WORKFLOW", "SCHEDULE", "CRON", "TIMEZONE"]
    assert "after the next worker pass" in lines[1]
    with frozen_clock(T0):
        run_until_idle()
    out = StringIO()
    call_command("hephaestus_schedules", "--json", stdout=out)
    listed = json.loads(out.getvalue())
    assert listed[0] == {
        "workflow": "tests.NightlyReport", "name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris",
        "value": "nightly-{tick:%Y%m%d}", "context": {"kind": "full"}, "paused": False,
        "next_tick": "2024-05-06T01:00:00+00:00", "last_tick": None, "last_instance": None}
    assert listed[1]["value"] == "{name}-{tick:%Y%m%d%H%M}"


def test_schedules_command_without_schedules() -> None:
    out = StringIO()
    call_command("hephaestus_schedules", stdout=out)
    assert out.getvalue().strip() == "No workflow declares a schedule."


# ---- admin ------------------------------------------------------------------------------------------
def test_admin_lists_schedules_and_toggles_the_pause(nightly: None, admin_client: Any) -> None:
    changelist = reverse("admin:hephaestus_django_workflowschedule_changelist")
    response = admin_client.get(changelist)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<code>0 3 * * *</code>" in html and "Europe/Paris" in html and "after the next worker pass" in html
    row = state("nightly")
    toggle = reverse("admin:hephaestus_django_workflowschedule_toggle", args=[row.pk])
    assert f'formaction="{toggle}"' in html
    assert admin_client.get(toggle).status_code == 405
    response = admin_client.post(toggle, follow=True)
    assert "Paused tests.NightlyReport: nightly." in response.content.decode()
    assert state("nightly").paused
    admin_client.post(toggle)
    assert not state("nightly").paused
    response = admin_client.post(changelist, {"action": "pause_schedules", "_selected_action": [row.pk]},
                                 follow=True)
    assert "Paused 1 schedule." in response.content.decode()
    assert state("nightly").paused


def test_admin_schedule_pause_needs_the_change_permission(nightly: None, client: Any,
                                                         django_user_model: Any) -> None:
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_workflowschedule"))
    client.force_login(user)
    changelist = reverse("admin:hephaestus_django_workflowschedule_changelist")
    assert client.get(changelist).status_code == 200
    row = state("nightly")
    toggle = reverse("admin:hephaestus_django_workflowschedule_toggle", args=[row.pk])
    assert client.post(toggle).status_code == 403
    assert not state("nightly").paused


def test_tick_refused_by_uniqueness_is_recorded(scheduled: None) -> None:
    registry.unregister(ws.ManySchedules.name)
    with frozen_clock(T0) as clock:
        run_until_idle()
        h.start_instance(ws.NightlyReport, {}, id="report::quarterly-202405060015")  # already there
        WorkflowInstance.objects.update(status="waiting", unique_slot="w|tests.NightlyReport|"
                                        "report::quarterly-202405060015")
        clock.advance(minutes=10)
        assert run_until_idle() == 0
    tick = ScheduleTick.objects.get()
    assert tick.instance_id is None and "already active" in tick.error
    assert state("quarterly").next_tick == datetime(2024, 5, 6, 0, 30, tzinfo=UTC)


def test_first_tick_is_after_the_first_pass(nightly: None) -> None:
    """A schedule the admin listed (row without a next tick) still starts nothing before a pass saw it."""
    with frozen_clock(T0) as clock:
        WorkflowSchedule.objects.create(workflow=ws.NightlyReport.name, name="quarterly")
        clock.advance(timedelta(hours=2).total_seconds())
        assert run_until_idle() == 0
        assert state("quarterly").next_tick == datetime(2024, 5, 6, 2, 15, tzinfo=UTC)


def test_only_the_latest_ticks_are_kept(nightly: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from hephaestus_django.storage import orm

    monkeypatch.setattr(orm, "KEPT_TICKS", 3)
    with frozen_clock(T0) as clock:
        run_until_idle()
        for _ in range(5):
            clock.advance(minutes=15)
            run_until_idle()
    ticks = list(ScheduleTick.objects.filter(schedule__name="quarterly").values_list("tick", flat=True))
    assert sorted(t.minute for t in ticks) == [0, 15, 45] and len(ticks) == 3  # 00:45, 01:00, 01:15
    assert WorkflowInstance.objects.filter(instance_id__startswith="report::quarterly").count() == 5
