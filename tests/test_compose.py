"""SPEC §9 on the database (immediate backend): resume data and idempotency keys, child workflows
and list routes, counted in rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import hephaestus_django as h
from hephaestus_django.core import Status
from hephaestus_django.exceptions import InvalidContext, NotWaiting
from hephaestus_django.storage.models import HistoryEntry, ResumeKey, StepRun, Timer, WorkflowInstance
from hephaestus_django.testing import assert_path
from tests.workflows_compose import (
    CInvoice,
    CShip,
    KFirst,
    KSecond,
    LAudit,
    ListRouteFlow,
    LJoin,
    LNotify,
    LRefund,
    LTriage,
    ParcelChild,
    ParcelParent,
    QuickParent,
    TwoWaitFlow,
)

pytestmark = pytest.mark.django_db(transaction=True)


def entries(instance_id: str, **filters: object) -> list[HistoryEntry]:
    row = WorkflowInstance.objects.filter(instance_id=instance_id).latest("pk")
    return list(HistoryEntry.objects.filter(instance=row, **filters).order_by("seq"))


# ---- resume data ---------------------------------------------------------------------------------------
def test_resume_data_is_stored_in_the_context_and_the_history() -> None:
    TwoWaitFlow.start("D1", {})
    instance = TwoWaitFlow.resume("D1", "ping", data={"charge": "ch_1", "amount": "12.50", "by": "Zoë"})
    assert instance.context.steps == {"k_first": {"charge": "ch_1", "amount": "12.50", "by": "Zoë"}}
    row = WorkflowInstance.objects.get(instance_id="twowait::D1")
    assert row.context["steps"]["k_first"]["by"] == "Zoë"
    [resumed] = entries("twowait::D1", kind="resumed")
    assert (resumed.step, resumed.event, resumed.context_updates) == (
        KFirst.registry_name(), "received", {"charge": "ch_1", "amount": "12.50", "by": "Zoë"})


def test_bad_resume_data_changes_nothing() -> None:
    TwoWaitFlow.start("D2", {})
    before = (WorkflowInstance.objects.get(instance_id="twowait::D2").revision, HistoryEntry.objects.count())
    for data in (["not", "a", "dict"], {"when": float("inf")}, {"deep": [[[]]] * 2, "bytes": b"x"}):
        with pytest.raises(InvalidContext) as caught:
            h.resume("twowait::D2", "ping", data=data, idempotency_key="k")
        assert caught.value.field == "data"
        assert "data" in str(caught.value)
    after = (WorkflowInstance.objects.get(instance_id="twowait::D2").revision, HistoryEntry.objects.count())
    assert after == before
    assert not ResumeKey.objects.exists()


# ---- idempotency keys --------------------------------------------------------------------------------------
def test_a_redelivered_webhook_never_resumes_the_later_wait() -> None:
    TwoWaitFlow.start("K1", {})
    h.resume("twowait::K1", "ping", idempotency_key="evt_1", data={"n": 1})
    redelivered = h.resume("twowait::K1", "ping", idempotency_key="evt_1", data={"n": 1})
    assert redelivered.status == Status.WAITING
    assert redelivered.active_steps == {KSecond}
    assert [e.kind for e in entries("twowait::K1")] == ["paused", "resumed", "paused"]
    assert ResumeKey.objects.filter(instance__instance_id="twowait::K1").count() == 1
    done = h.resume("twowait::K1", "ping", idempotency_key="evt_2")
    assert done.status == Status.COMPLETED
    again = h.resume("twowait::K1", "ping", idempotency_key="evt_2")  # finished: still no error
    assert again.status == Status.COMPLETED
    assert len(again.execution_history) == len(done.execution_history)
    with pytest.raises(NotWaiting):
        h.resume("twowait::K1", "ping", idempotency_key="evt_3")
    assert sorted(ResumeKey.objects.values_list("key", flat=True)) == ["evt_1", "evt_2"]


def test_a_redelivery_costs_no_write() -> None:
    TwoWaitFlow.start("K2", {})
    h.resume("twowait::K2", "ping", idempotency_key="evt_1")
    with CaptureQueriesContext(connection) as queries:
        h.resume("twowait::K2", "ping", idempotency_key="evt_1")
    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("UPDATE", "DELETE"))]
    assert writes == []


def test_keys_are_deleted_with_their_instance() -> None:
    TwoWaitFlow.start("K3", {})
    h.resume("twowait::K3", "ping", idempotency_key="evt_1")
    h.cancel("twowait::K3")
    WorkflowInstance.objects.filter(instance_id="twowait::K3").delete()
    assert not ResumeKey.objects.exists()


def test_a_restarted_id_is_a_new_instance_with_new_keys() -> None:
    TwoWaitFlow.start("K4", {})
    h.resume("twowait::K4", "ping", idempotency_key="evt_1")
    h.cancel("twowait::K4")
    TwoWaitFlow.start("K4", {})
    assert h.resume("twowait::K4", "ping", idempotency_key="evt_1").active_steps == {KSecond}


# ---- child workflows ------------------------------------------------------------------------------------------
def test_a_parent_waits_for_its_children_and_goes_on_when_the_last_finishes() -> None:
    ParcelParent.start("O1", {"parcels": ["P1", "P2", "P3"]})
    parent = ParcelParent.get("O1")
    assert parent.status == Status.WAITING
    assert parent.active_steps == {CShip}
    rows = list(WorkflowInstance.objects.filter(parent__instance_id="cparent::O1").order_by("pk"))
    assert [(r.instance_id, r.status, r.parent_instance_id, r.parent_step) for r in rows] == [
        (f"cparcel::P{i}", "waiting", "cparent::O1", CShip.registry_name()) for i in (1, 2, 3)]
    child = h.get_instance("cparcel::P2")
    assert child.parent_id == "cparent::O1"
    assert parent.parent_id is None

    ParcelChild.resume("P3", "delivered", data={"signed_by": "ann"})
    ParcelChild.resume("P1", "delivered")
    assert ParcelParent.get("O1").status == Status.WAITING
    ParcelChild.resume("P2", "delivered")  # the last one: the parent goes on in this call
    parent = ParcelParent.get("O1")
    assert parent.status == Status.COMPLETED
    assert_path(parent, [CShip, CInvoice, h.Done])
    children = parent.context.steps["c_ship"]["children"]
    assert [(c["id"], c["workflow"], c["status"], c["error"]) for c in children] == [
        (f"cparcel::P{i}", "tests.ParcelChild", "completed", None) for i in (1, 2, 3)]
    assert children[2]["steps"] == {"c_parcel_gate": {"signed_by": "ann"}}
    assert parent.context.steps["c_invoice"] == {"parcels": ["cparcel::P1", "cparcel::P2", "cparcel::P3"]}
    [done] = entries("cparent::O1", step=CShip.registry_name(), kind="completed")
    assert done.event == "completed" and done.context_updates == {"children": children}


def test_children_that_run_through_complete_the_parent_inside_its_start() -> None:
    """Under the immediate backend the children finish inside the parent's step run: no deadlock,
    no ``NotWaiting``, the parent completes before ``start`` returns."""
    QuickParent.start("I1", {"children": 3})
    parent = QuickParent.get("I1")
    assert parent.status == Status.COMPLETED
    assert parent.context.steps["q_sum"] == {"total": 0 + 2 + 4}
    assert WorkflowInstance.objects.filter(parent__instance_id="qparent::I1", status="completed").count() == 3


def test_a_child_that_cannot_start_leaves_no_child_behind() -> None:
    ParcelChild.start("P2", {})  # already active: the parent's second child collides with it
    ParcelParent.start("O2", {"parcels": ["P1", "P2", "P3"]})
    parent = ParcelParent.get("O2")
    assert parent.status == Status.FAILED
    assert [(e.kind, e.attempt) for e in parent.execution_history] == [("retrying", 1), ("failed", 2)]
    assert parent.error.startswith("child 2 of 3 (tests.ParcelChild) could not start: AlreadyRunning: ")
    assert not WorkflowInstance.objects.filter(parent__isnull=False).exists()
    assert sorted(WorkflowInstance.objects.values_list("instance_id", flat=True)) == ["cparcel::P2", "cparent::O2"]


def test_a_failed_child_takes_the_failed_path() -> None:
    ParcelParent.start("O3", {"parcels": ["P1", "P2"]})
    ParcelChild.resume("P1", "delivered")
    h.cancel("cparcel::P2")
    parent = ParcelParent.get("O3")
    assert parent.status == Status.COMPLETED
    assert parent.context.steps["c_refund"] == {"failed": ["cparcel::P2"]}
    [done] = entries("cparent::O3", step=CShip.registry_name(), kind="completed")
    assert done.event == "failed"


def test_cancelling_a_parent_cancels_its_active_children() -> None:
    ParcelParent.start("O4", {"parcels": ["P1", "P2", "P3"]})
    ParcelChild.resume("P1", "delivered")
    cancelled = ParcelParent.cancel("O4")
    assert cancelled.status == Status.CANCELLED
    statuses = dict(WorkflowInstance.objects.filter(parent__instance_id="cparent::O4")
                    .values_list("instance_id", "status"))
    assert statuses == {"cparcel::P1": "completed", "cparcel::P2": "cancelled", "cparcel::P3": "cancelled"}
    assert [e.kind for e in entries("cparcel::P2")] == ["paused", "cancelled"]
    assert not Timer.objects.exists()


def test_an_external_resume_of_the_children_step_is_refused() -> None:
    ParcelParent.start("O5", {"parcels": ["P1"]})
    with pytest.raises(NotWaiting, match="waits only for its child workflows"):
        ParcelParent.resume("O5", "completed")
    assert ParcelParent.get("O5").status == Status.WAITING


def test_a_deleted_parent_leaves_its_children_alone() -> None:
    ParcelParent.start("O7", {"parcels": ["P9"]})
    WorkflowInstance.objects.filter(instance_id="cparent::O7").delete()
    child = WorkflowInstance.objects.get(instance_id="cparcel::P9")
    assert child.parent_id is None and child.parent_instance_id == "cparent::O7"
    assert ParcelChild.resume("P9", "delivered").status == Status.COMPLETED


# ---- list routes ----------------------------------------------------------------------------------------------
def test_a_route_fans_out_to_the_listed_targets_and_the_join_waits_for_them() -> None:
    ListRouteFlow.start("R1", {"branches": ["notify", "audit"]})
    instance = ListRouteFlow.get("R1")
    assert instance.status == Status.COMPLETED
    assert instance.context.steps["l_join"] == {"seen": ["l_audit", "l_notify"]}
    assert instance.context.steps["l_notify"] == {"config": {"channel": "sms"}}
    assert LRefund not in instance.completed_steps
    assert [e.step for e in entries("lroute::R1", kind="completed")].count(LJoin.registry_name()) == 1
    assert {LTriage, LAudit, LNotify, LJoin} <= instance.completed_steps


def test_a_child_whose_workflow_is_gone_fails_and_its_parent_goes_on(settings: object) -> None:
    from hephaestus_django.core import registry
    from hephaestus_django.runtime.dispatch import get_runner
    from hephaestus_django.testing import run_until_idle
    from tests.workflows_compose import QFan, QuickChild

    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}  # type: ignore[attr-defined]
    QuickParent.start("U1", {"children": 2})
    parent = WorkflowInstance.objects.get(instance_id="qparent::U1")
    [run] = StepRun.objects.filter(instance=parent)
    assert run.step == QFan.registry_name()
    assert get_runner().run_step_task(str(run.token)) == "ran 1 step(s)"  # children queued, not run
    assert WorkflowInstance.objects.filter(parent=parent, status="running").count() == 2
    assert list(StepRun.objects.filter(instance__parent=parent).values_list("state", flat=True)) == ["queued"] * 2
    registry.unregister(QuickChild.name)
    try:
        run_until_idle()
    finally:
        registry.register(QuickChild)
    assert sorted(WorkflowInstance.objects.filter(parent=parent).values_list("status", flat=True)) == ["failed"] * 2
    instance = QuickParent.get("U1")
    assert instance.status == Status.COMPLETED
    assert [c["status"] for c in instance.context.steps["q_fan"]["children"]] == ["failed", "failed"]
    assert "no workflow named 'tests.QuickChild'" in instance.context.steps["q_fan"]["children"][0]["error"]
    [done] = entries("qparent::U1", step=QFan.registry_name(), kind="completed")
    assert done.event == "failed"
