"""Child workflows meet pause and compensation (SPEC §9 with §10), on the database."""

from __future__ import annotations

import pytest

import hephaestus_django as h
from hephaestus_django.core import Status
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
from tests.workflows_compose import CompensatedParent, CShip, ParcelChild, ParcelParent

pytestmark = pytest.mark.django_db(transaction=True)


def test_children_that_finish_while_their_parent_is_paused_complete_it_at_unpause() -> None:
    ParcelParent.start("TP1", {"parcels": ["X1", "X2"]})
    h.pause("cparent::TP1")
    for parcel in ("X1", "X2"):
        assert ParcelChild.resume(parcel, "delivered").status == Status.COMPLETED
    parent = ParcelParent.get("TP1")
    assert parent.status == Status.PAUSED and CShip in parent.waiting_steps  # nothing moved while paused
    parent = h.unpause("cparent::TP1")
    assert parent.status == Status.COMPLETED
    assert parent.context.steps["c_invoice"] == {"parcels": ["cparcel::X1", "cparcel::X2"]}
    completions = HistoryEntry.objects.filter(instance__instance_id="cparent::TP1", step=CShip.registry_name(),
                                              kind="completed")
    assert completions.count() == 1


def test_cancelling_a_parent_with_compensation_cancels_its_children_and_compensates_it() -> None:
    CompensatedParent.start("TC1", {"parcels": ["Y1", "Y2"]})
    ParcelChild.resume("Y1", "delivered")  # one child done, one still waiting
    parent = h.cancel("uparent::TC1", compensate=True)
    assert parent.status == Status.CANCELLED
    assert parent.context.steps["u_release_budget"] == {"budget": 100}
    assert [e.kind for e in parent.execution_history].count("compensated") == 1
    statuses = dict(WorkflowInstance.objects.filter(parent__instance_id="uparent::TC1")
                    .values_list("instance_id", "status"))
    assert statuses == {"cparcel::Y1": "completed", "cparcel::Y2": "cancelled"}
