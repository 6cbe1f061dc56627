"""Compensation, deadlines, pause and migration on the database, through every door: the Python
API and facade, the REST API, the commands, the admin and the signals (SPEC §10)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.core.management.base import CommandError

import hephaestus_django as h
from hephaestus_django import signals
from hephaestus_django.core import Status
from hephaestus_django.exceptions import (
    AlreadyRunning,
    HephaestusError,
    MigrationError,
    NotCancellable,
    NotPausable,
    NotPaused,
    NotRetryable,
)
from hephaestus_django.storage.models import HistoryEntry, Timer, WorkflowInstance
from hephaestus_django.testing import frozen_clock, run_until_idle
from tests import workflows as w
from tests.api.conftest import client_for, make_user, url

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/hephaestus_django/workflowinstance/"


def kinds(instance: Any) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.step_name.rsplit(".", 1)[-1] if e.step_name else None, e.event)
            for e in instance.execution_history]


def saga(value: str, **context: Any) -> Any:
    w.SagaFlow.start(value, context)
    return w.SagaFlow.get(value)


# ---- compensation -----------------------------------------------------------------------------------
def test_failure_compensates_completed_steps_in_reverse_order(tmp_path: Path) -> None:
    saga("S-1", fail=True, dir=str(tmp_path))
    instance = w.SagaFlow.resume("S-1", "go")
    assert instance.status == Status.FAILED
    assert instance.error == "Error: carrier refused the parcel"
    assert kinds(instance)[-4:] == [("resumed", "TGate", "received"), ("failed", "TShip", None),
                                    ("compensated", "TRefund", "refunded"), ("compensated", "TRelease", "released")]
    # a compensation sees the instance compensating and what the step it undoes wrote; its updates
    # land under its own context key
    assert instance.context.steps["t_refund"] == {"amount": 42, "status": "compensating"}
    assert instance.context.steps["t_release"] == {"stock": "back", "compensates": w.TReserve.registry_name()}
    row = WorkflowInstance.objects.get(pk=instance.pk)
    assert row.compensation["pending"] == [] and row.compensation["done"] == [w.TCharge.registry_name(),
                                                                               w.TReserve.registry_name()]
    assert row.unique_slot is None


def test_failed_compensation_then_retry_resumes_compensating(tmp_path: Path) -> None:
    flag = tmp_path / "bank-down"
    flag.write_text("x")
    saga("S-2", fail=True, dir=str(tmp_path), refund_fails=str(flag))
    instance = w.SagaFlow.resume("S-2", "go")
    assert instance.status == Status.FAILED
    assert instance.error == "ConnectionError: bank unreachable"  # the compensation's error
    assert kinds(instance)[-3:] == [("failed", "TShip", None), ("retrying", "TRefund", None),
                                    ("failed", "TRefund", None)]
    assert (tmp_path / "refund").read_text().count("x") == 2  # its own retries (max_attempts=2)
    assert not (tmp_path / "release").exists()
    flag.unlink()
    instance = h.retry("saga::S-2")
    assert instance.status == Status.FAILED
    assert instance.error == "Error: carrier refused the parcel"
    assert kinds(instance)[-3:] == [("retrying", "TRefund", None), ("compensated", "TRefund", "refunded"),
                                    ("compensated", "TRelease", "released")]
    assert (tmp_path / "ship").read_text().count("x") == 1  # the failed step never re-ran
    with pytest.raises(NotRetryable, match="its compensations have run"):
        h.retry("saga::S-2")


def test_compensating_and_paused_instances_hold_the_business_key() -> None:
    from hephaestus_django.runtime.dispatch import get_runner

    saga("K-1")
    h.pause("saga::K-1")
    with pytest.raises(AlreadyRunning):
        w.SagaFlow.start("K-1", {})
    storage = get_runner().storage
    instance = storage.load("saga::K-1", history=False)
    instance.status = Status.COMPENSATING  # as the engine leaves it between two compensations
    storage.save(instance)
    assert WorkflowInstance.objects.get(instance_id="saga::K-1").unique_slot == "w|tests.SagaFlow|saga::K-1"
    with pytest.raises(AlreadyRunning):
        w.SagaFlow.start("K-1", {})


def test_cancel_with_compensation_everywhere(admin_client: Any) -> None:
    saga("C-1")
    instance = h.cancel("saga::C-1", compensate=True)  # low level
    assert instance.status == Status.CANCELLED
    assert kinds(instance)[-3:] == [("cancelled", "TGate", None), ("compensated", "TRefund", "refunded"),
                                    ("compensated", "TRelease", "released")]
    saga("C-2")
    assert w.SagaFlow.cancel("C-2", compensate=True).status == Status.CANCELLED  # facade
    saga("C-3")
    api = client_for(make_user("root", superuser=True))
    response = api.post(url("instance-cancel", "saga::C-3"), {"compensate": True}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    saga("C-4")
    out = StringIO()
    call_command("hephaestus_cancel", "saga::C-4", "--compensate", "--json", stdout=out)
    assert json.loads(out.getvalue())["status"] == "cancelled"
    saga("C-5")
    row = WorkflowInstance.objects.get(instance_id="saga::C-5")
    admin_client.post(CHANGELIST, {"action": "cancel_instances", "_selected_action": [row.pk], "post": "yes",
                                   "compensate": "on", "index": 0})
    saga("C-6")
    api.post(url("instance-cancel", "saga::C-6"), {}, format="json")  # no compensation asked
    for value, compensated in (("C-1", 2), ("C-2", 2), ("C-3", 2), ("C-4", 2), ("C-5", 2), ("C-6", 0)):
        entries = HistoryEntry.objects.filter(instance__instance_id=f"saga::{value}", kind="compensated")
        assert entries.count() == compensated, value


def test_api_bodies_refuse_unknown_fields() -> None:
    saga("U-1")
    api = client_for(make_user("root", superuser=True))
    response = api.post(url("instance-cancel", "saga::U-1"), {"compensat": True}, format="json")
    assert response.status_code == 400 and response.json() == {"compensat": ["Unknown field (accepted: compensate)."]}
    response = api.post(url("instance-pause", "saga::U-1"), {"now": 1}, format="json")
    assert response.status_code == 400 and response.json() == {"now": ["Unknown field (accepted: none)."]}
    response = api.post(url("instance-migrate", "saga::U-1"), {"version": 2, "steps": {}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"steps": ["Unknown field (accepted: version, step_map)."]}
    response = api.post(url("instance-cancel", "saga::U-1"), {"compensate": "maybe"}, format="json")
    assert response.status_code == 400 and "compensate" in response.json()
    assert w.SagaFlow.get("U-1").status == Status.WAITING


# ---- deadline -------------------------------------------------------------------------------------------
def test_deadline_fails_and_compensates_by_the_clock() -> None:
    with frozen_clock() as clock:
        w.DeadlineFlow.start("D-1", {})
        timer = Timer.objects.get(purpose="deadline")
        assert timer.step == ""
        clock.advance(59)
        run_until_idle()
        assert w.DeadlineFlow.get("D-1").status == Status.WAITING
        clock.advance(1)
        run_until_idle()
    instance = w.DeadlineFlow.get("D-1")
    assert instance.status == Status.FAILED
    assert instance.error.startswith("DeadlineExceeded")
    assert kinds(instance)[-2:] == [("failed", None, None), ("compensated", "TRelease", "released")]
    assert not Timer.objects.exists()


def test_deadline_timer_of_a_finished_instance_does_nothing() -> None:
    with frozen_clock() as clock:
        w.DeadlineFlow.start("D-2", {})
        w.DeadlineFlow.resume("D-2", "received")
        clock.advance(120)
        run_until_idle()
    assert w.DeadlineFlow.get("D-2").status == Status.COMPLETED


# ---- pause ------------------------------------------------------------------------------------------------
def test_pause_everywhere_and_its_errors(admin_client: Any) -> None:
    saga("P-1")
    assert h.pause("saga::P-1").status == Status.PAUSED
    with pytest.raises(NotPausable):
        h.pause("saga::P-1")
    assert w.SagaFlow.unpause("P-1").status == Status.WAITING
    with pytest.raises(NotPaused):
        h.unpause("saga::P-1")
    assert w.SagaFlow.pause("P-1").status == Status.PAUSED
    api = client_for(make_user("root", superuser=True))
    response = api.post(url("instance-pause", "saga::P-1"), format="json")
    assert response.status_code == 409 and "only running and waiting" in response.json()["detail"]
    response = api.post(url("instance-unpause", "saga::P-1"), format="json")
    assert response.status_code == 200 and response.json()["status"] == "waiting"
    response = api.post(url("instance-unpause", "saga::P-1"), format="json")
    assert response.status_code == 409 and "not paused" in response.json()["detail"]
    out = StringIO()
    call_command("hephaestus_pause", "saga::P-1", "--json", stdout=out)
    assert json.loads(out.getvalue())["status"] == "paused"
    with pytest.raises(CommandError, match="instance saga::P-1 is paused; only running and waiting"):
        call_command("hephaestus_pause", "saga::P-1")
    out = StringIO()
    call_command("hephaestus_unpause", "saga::P-1", stdout=out)
    assert out.getvalue().startswith("Unpaused saga::P-1.")
    row = WorkflowInstance.objects.get(instance_id="saga::P-1")
    response = admin_client.post(CHANGELIST, {"action": "pause_instances", "_selected_action": [row.pk],
                                              "post": "yes", "index": 0}, follow=True)
    assert "Paused 1 instance." in [str(m) for m in get_messages(response.wsgi_request)]
    page = admin_client.get(f"{CHANGELIST}{row.pk}/change/")
    assert page.context["hx_offered"]["unpause"] and not page.context["hx_offered"]["pause"]
    assert 'class="hx-status hx-status-paused"' in page.content.decode()
    admin_client.post(f"{CHANGELIST}{row.pk}/unpause/")
    row.refresh_from_db()
    assert row.status == "waiting"
    entries = list(HistoryEntry.objects.filter(instance=row, step="").values_list("kind", flat=True))
    assert entries == ["paused", "unpaused"] * 4


def test_paused_instance_fires_no_timer_until_unpaused() -> None:
    with frozen_clock() as clock:
        w.TimerFlow.start("P-2", {})
        h.pause("timer::P-2")
        clock.advance(3600)
        assert run_until_idle() == 0
        assert Timer.objects.count() == 1
        assert h.get_instance("timer::P-2").status == Status.PAUSED
        instance = h.unpause("timer::P-2")
    assert instance.status == Status.COMPLETED
    assert [e.kind for e in instance.execution_history] == ["paused", "paused", "unpaused", "timer_fired",
                                                            "completed", "completed"]


def test_an_event_is_taken_while_paused_and_nothing_starts_until_unpause() -> None:
    saga("P-3")
    # resume inside a paused instance: the event is recorded, TShip waits for unpause
    h.pause("saga::P-3")
    paused = h.resume("saga::P-3", "go")
    assert paused.status == Status.PAUSED
    assert w.TShip in paused.active_steps and w.TShip not in paused.completed_steps
    assert run_until_idle() == 0
    assert h.unpause("saga::P-3").status == Status.COMPLETED


def test_cancel_a_paused_instance() -> None:
    saga("P-4")
    h.pause("saga::P-4")
    assert h.cancel("saga::P-4").status == Status.CANCELLED
    with pytest.raises(NotCancellable):
        h.cancel("saga::P-4")


# ---- migration --------------------------------------------------------------------------------------------
def test_migrate_everywhere() -> None:
    for value in ("M-1", "M-2", "M-3"):
        w.MigFlow.start(value, {})
    instance = h.migrate("mig::M-1", to_version=2)
    assert instance.workflow_version == 2
    entry = instance.execution_history[-1]
    assert (entry.kind, entry.step_ref, entry.context_updates) == ("migrated", None,
                                                                   {"from_version": 1, "to_version": 2})
    assert w.MigFlow.resume("M-1", "received").context.steps["m_end_v2"] == {"by": "v2"}
    assert w.MigFlow.migrate("M-2", to_version=2).workflow_version == 2
    api = client_for(make_user("root", superuser=True))
    response = api.post(url("instance-migrate", "mig::M-3"),
                        {"version": 3, "step_map": {w.MGate.registry_name(): w.MOtherGate.registry_name()}},
                        format="json")
    assert response.status_code == 200 and response.json()["workflow_version"] == 3
    assert response.json()["active_steps"] == [w.MOtherGate.registry_name()]


def test_migration_errors_in_the_api() -> None:
    w.MigFlow.start("M-4", {})
    api = client_for(make_user("root", superuser=True))
    response = api.post(url("instance-migrate", "mig::M-4"), {"version": 3}, format="json")
    assert response.status_code == 400
    assert response.json() == {"step_map": [
        f"instance mig::M-4 cannot move from version 1 to 3: version 3 has no step {w.MGate.registry_name()} "
        "(map each to a step of version 3 with step_map)"]}
    response = api.post(url("instance-migrate", "mig::M-4"), {"version": 7}, format="json")
    assert response.status_code == 400 and "has no version 7" in response.json()["version"][0]
    h.cancel("mig::M-4")
    response = api.post(url("instance-migrate", "mig::M-4"), {"version": 2}, format="json")
    assert response.status_code == 409 and "only running, waiting and paused" in response.json()["detail"]
    assert api.post(url("instance-migrate", "mig::nope"), {"version": 2}, format="json").status_code == 404
    assert h.get_instance("mig::M-4").workflow_version == 1


def test_migrate_command_reports_each_instance_it_could_not_move() -> None:
    for value in ("B-1", "B-2", "B-3"):
        w.MigFlow.start(value, {})
    h.migrate("mig::B-3", to_version=3, step_map={w.MGate.registry_name(): w.MOtherGate.registry_name()})
    w.MigFlow.start("B-4", {}, version=3)
    out = StringIO()
    with pytest.raises(CommandError, match="2 instance\\(s\\) could not be migrated"):
        call_command("hephaestus_migrate", "tests.MigFlow", "--from-version", "3", "--to-version", "1",
                     "--dry-run", stdout=out)
    assert out.getvalue().splitlines()[0] == "Would migrate 0 of 2 active instance(s) of tests.MigFlow from " \
        "version 3 to 1."
    out = StringIO()
    call_command("hephaestus_migrate", "tests.MigFlow", "--from-version", "1", "--to-version", "2", "--json",
                 stdout=out)
    report = json.loads(out.getvalue())
    assert report == {"workflow": "tests.MigFlow", "from_version": 1, "to_version": 2, "dry_run": False,
                      "migrated": ["mig::B-1", "mig::B-2"], "failed": []}
    step_map = json.dumps({w.MOtherGate.registry_name(): w.MGate.registry_name()})
    out = StringIO()
    call_command("hephaestus_migrate", "tests.MigFlow", "--from-version", "3", "--to-version", "2",
                 "--step-map", step_map, stdout=out)
    assert out.getvalue().startswith("Migrated 2 of 2 active instance(s)")
    assert set(WorkflowInstance.objects.values_list("workflow_version", flat=True)) == {2}


@pytest.mark.parametrize(("args", "message"), [
    (["tests.Nope", "--from-version", "1", "--to-version", "2"], "no workflow named 'tests.Nope'"),
    (["tests.MigFlow", "--from-version", "1", "--to-version", "9"], "has no version 9"),
    (["tests.MigFlow", "--from-version", "1", "--to-version", "1"], "are both 1"),
    (["tests.MigFlow", "--from-version", "1", "--to-version", "2", "--step-map", "{x"], "--step-map is not valid"),
    (["tests.MigFlow", "--from-version", "1", "--to-version", "2", "--step-map", '{"a": 1}'], "values must be"),
])
def test_migrate_command_bad_input(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("hephaestus_migrate", *args)


def test_admin_migrate_action_lists_what_each_instance_would_become(admin_client: Any) -> None:
    for value in ("A-1", "A-2"):
        w.MigFlow.start(value, {})
    rows = list(WorkflowInstance.objects.order_by("pk"))
    data = {"action": "migrate_instances", "_selected_action": [r.pk for r in rows], "index": 0}
    response = admin_client.post(CHANGELIST, data)
    assert response.status_code == 200 and response.templates[0].name.endswith("migrate.html")
    response = admin_client.post(CHANGELIST, {**data, "hx_stage": "preview", "version": "3"})
    html = response.content.decode()
    assert html.count("cannot move:") == 2 and "version 3 has no step" in html
    step_map = json.dumps({w.MGate.registry_name(): w.MOtherGate.registry_name()})
    response = admin_client.post(CHANGELIST, {**data, "hx_stage": "preview", "version": "3", "step_map": step_map})
    html = response.content.decode()
    assert "cannot move:" not in html and html.count("v3: MGate → MOtherGate") == 2
    assert set(WorkflowInstance.objects.values_list("workflow_version", flat=True)) == {1}  # nothing yet
    response = admin_client.post(CHANGELIST, {**data, "hx_stage": "confirm", "post": "yes", "version": "3",
                                              "step_map": step_map}, follow=True)
    assert "Migrated 2 instances." in [str(m) for m in get_messages(response.wsgi_request)]
    assert set(WorkflowInstance.objects.values_list("workflow_version", flat=True)) == {3}
    response = admin_client.post(CHANGELIST, {**data, "hx_stage": "preview", "version": "3", "step_map": "{oops"})
    assert "Not valid JSON" in response.content.decode()


# ---- signals -----------------------------------------------------------------------------------------------
def test_signals_cover_compensation_pause_and_migration() -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    def listen(name: str) -> Any:
        def receiver(sender: Any, measurements: Any, metadata: Any, **kwargs: Any) -> None:
            received.append((name, metadata))
        return receiver

    receivers = {name: listen(name) for name in ("workflow_exception", "workflow_stopped", "engine_advanced",
                                                 "step_stopped")}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        saga("G-1", fail=True)
        w.SagaFlow.resume("G-1", "go")
        saga("G-2")
        h.pause("saga::G-2")
        h.cancel("saga::G-2", compensate=True)
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)
    [failed] = [m for n, m in received if n == "workflow_exception"]
    assert (failed["instance_id"], failed["status"], failed["reason"]) == (
        "saga::G-1", "failed", "Error: carrier refused the parcel")
    assert failed["failed_step"] == w.TShip.registry_name()
    stops = [m for n, m in received if n == "step_stopped" and m["step"] == w.TRefund.registry_name()]
    assert [m["instance_id"] for m in stops] == ["saga::G-1", "saga::G-2"]
    transitions = {(m["status_before"], m["status_after"]) for n, m in received if n == "engine_advanced"}
    assert {("running", "compensating"), ("compensating", "failed"), ("waiting", "paused"),
            ("compensating", "cancelled")} <= transitions
    [stopped] = [m for n, m in received if n == "workflow_stopped"]
    assert (stopped["instance_id"], stopped["status"]) == ("saga::G-2", "cancelled")


def test_errors_are_hephaestus_errors() -> None:
    for error in (NotPausable, NotPaused, MigrationError):
        assert issubclass(error, HephaestusError)
    assert issubclass(MigrationError, ValueError)
    assert h.Schedule.__name__ == "Schedule"
    assert {"pause", "unpause", "migrate", "Schedule"} <= set(dir(h))
