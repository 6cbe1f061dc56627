"""The read side's shared helpers: the newest row of an id, short names, timers from rows, and
``resume_options`` (what the admin's form, the API's example body and ``hephaestus_resume`` offer)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

import hephaestus_django as h
from hephaestus_django import services
from hephaestus_django.admin.forms import resume_choices
from hephaestus_django.api.views import resume_example
from hephaestus_django.core.engine import ResumeOption, resume_options
from hephaestus_django.core.ports import Timer
from hephaestus_django.core.registry import short_name
from hephaestus_django.storage.models import Timer as TimerRow
from hephaestus_django.storage.models import WorkflowInstance
from hephaestus_django.storage.orm import to_timer
from tests.api import workflows_api as api_wf
from tests.workflows import PApproval, PersistFlow
from tests.workflows_compose import ParcelParent

pytestmark = pytest.mark.django_db


def _row(instance_id: str, workflow: str = "w.A", status: str = "completed") -> WorkflowInstance:
    now = timezone.now()
    return WorkflowInstance.objects.create(instance_id=instance_id, workflow=workflow, status=status,
                                           created_at=now, updated_at=now)


# ---- the newest row of an id ------------------------------------------------------------------------------
def test_newest_is_the_last_row_written_for_the_id() -> None:
    first = _row("k::1")
    other = _row("k::2")
    second = _row("k::1", workflow="w.B")
    assert WorkflowInstance.objects.newest("k::1") == second
    assert WorkflowInstance.objects.newest("k::1", "w.A") == first
    assert WorkflowInstance.objects.newest("k::2") == other
    assert WorkflowInstance.objects.newest("k::3") is None
    assert list(WorkflowInstance.objects.newest_first("k::1").values_list("pk", flat=True)) == [second.pk, first.pk]
    # on any queryset of the model: .only(), .select_for_update()...
    assert WorkflowInstance.objects.only("instance_id").newest("k::1") == second


# ---- short names ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "short"), [
    ("orders.workflows.OrderFlow", "OrderFlow"), ("OrderFlow", "OrderFlow"), ("orders.Onboarding.v2", "Onboarding v2"),
    ("a.b.Steps.v10", "Steps v10"), ("", ""), (None, ""), ("a.b.vote", "vote")])
def test_short_name(name: str | None, short: str) -> None:
    assert short_name(name) == short


# ---- timers --------------------------------------------------------------------------------------------------
def test_to_timer_builds_the_core_timer_a_row_stores() -> None:
    row = _row("t::1", status="waiting")
    due = timezone.now() + timedelta(minutes=5)
    timer = TimerRow.objects.create(instance=row, step="a.Step", purpose="retry", attempt=3, due_at=due)
    assert to_timer(timer) == Timer(timer.pk, row.pk, "a.Step", "retry", due, 3)


# ---- resume options ------------------------------------------------------------------------------------------
def test_resume_options_of_a_waiting_step_are_its_handled_events() -> None:
    instance = h.start_instance(api_wf.ApiOrderFlow, {}, id="order::RO-1")
    options = resume_options(instance)
    assert options == [ResumeOption(api_wf.ApiApprove, "approved"), ResumeOption(api_wf.ApiApprove, "rejected")]
    assert options[0].as_json() == {"step": api_wf.ApiApprove.registry_name(), "event": "approved", "alias": None}
    row = WorkflowInstance.objects.get(pk=instance.pk)
    assert services.resume_options(row) == options  # from a row too
    assert resume_example("order::RO-1") == {"event": "approved"}
    h.resume("order::RO-1", "approved")
    assert services.resume_options(WorkflowInstance.objects.get(pk=instance.pk)) == []


def test_a_configured_event_name_is_the_alias_of_received() -> None:
    PersistFlow.start("RO-2", {})
    row = WorkflowInstance.objects.newest("persist::RO-2")
    assert row is not None and row.status == "waiting"
    # PApproval (WaitForEvent, no timeout): "received" only, which "approved" also means
    assert services.resume_options(row) == [ResumeOption(PApproval, "received", "approved")]
    step = PApproval.registry_name()
    assert resume_choices(row) == [(short_name(step), [(f"{step}|received", "PApproval → received (approved)")])]


def test_several_waiting_steps_each_offer_theirs_and_the_example_names_the_step() -> None:
    instance = h.start_instance(api_wf.ApiParallelFlow, {}, id="par::RO-3")
    options = services.resume_options(instance)
    assert [(o.step, o.event) for o in options] == [(api_wf.ApiLeft, "go"), (api_wf.ApiRight, "go")]
    assert resume_example("par::RO-3") == {"event": "go", "step": api_wf.ApiLeft.registry_name()}


def test_children_steps_and_unregistered_workflows_offer_nothing() -> None:
    h.start_instance(ParcelParent, {"parcels": ["p1"]}, id="cparent::RO-4")
    parent = WorkflowInstance.objects.newest("cparent::RO-4")
    assert parent is not None and parent.status == "waiting" and parent.waiting_steps
    assert services.resume_options(parent) == []
    assert resume_example("cparent::RO-4") == {"event": ""}
    gone = _row("gone::1", workflow="no.such.Workflow", status="waiting")
    gone.waiting_steps = {"no.such.Step": timezone.now().isoformat()}
    assert services.resume_options(gone) == []
    assert resume_example("nobody::1") == {"event": ""}


def test_the_resume_command_says_what_would_work() -> None:
    h.start_instance(api_wf.ApiParallelFlow, {}, id="par::RO-5")
    with pytest.raises(CommandError) as refused:
        call_command("hephaestus_resume", "par::RO-5", "nope", stdout=StringIO())
    message = str(refused.value)
    assert message.startswith("no waiting step of instance par::RO-5 declares event 'nope'")
    assert message.endswith(f"; resume with: go --step {api_wf.ApiLeft.registry_name()}, "
                            f"go --step {api_wf.ApiRight.registry_name()}")


def test_the_admin_pages_module_does_not_import_the_admin_class() -> None:
    import ast
    import inspect

    from hephaestus_django.admin import views

    tree = ast.parse(inspect.getsource(views))
    imported: set[Any] = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "hephaestus_django.admin.instances" not in imported
