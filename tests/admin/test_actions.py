"""Cancel, retry and resume: changelist actions with confirmation pages, and the instance pages.

Every change goes through ``hephaestus_django.services``; refusals are messages, never a 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages

from hephaestus_django import services
from hephaestus_django.admin import operations
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
from tests.admin import workflows_admin as w
from tests.admin.conftest import CHANGELIST, bulk_rows, change_url

pytestmark = pytest.mark.django_db

APPROVE = w.AdmApprove.registry_name()


def act(client: Any, action: str, rows: list[Any], url: str = CHANGELIST, **data: Any) -> Any:
    """Post a changelist action (``post="yes"`` confirms it)."""
    return client.post(url, {"action": action, "_selected_action": [r.pk for r in rows], "index": 0, **data})


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def status(row: WorkflowInstance) -> str:
    row.refresh_from_db()
    return row.status


def history(row: WorkflowInstance) -> list[tuple[str, str]]:
    return list(HistoryEntry.objects.filter(instance=row).order_by("seq").values_list("kind", "event"))


# ---- cancel ------------------------------------------------------------------------------------------
def test_cancel_asks_then_cancels(admin_client: Any, start: Any) -> None:
    a, b = start(w.AdmApprovalFlow, "A-1"), start(w.AdmParallelFlow, "P-1")
    response = act(admin_client, "cancel_instances", [a, b])
    assert response.status_code == 200
    html = response.content.decode()
    assert "Cancel these 2 instances?" in html
    assert 'name="post" value="yes"' in html and 'name="action" value="cancel_instances"' in html
    assert status(a) == status(b) == "waiting"  # nothing yet

    response = act(admin_client, "cancel_instances", [a, b], post="yes")
    assert response.status_code == 302
    assert texts(response) == ["Cancelled 2 instances."]
    assert status(a) == status(b) == "cancelled"
    assert history(a)[-1] == ("cancelled", "")
    assert LogEntry.objects.filter(object_id=str(a.pk),
                                   change_message="Cancelled through the admin.").exists()


def test_cancel_reports_instances_it_cannot_cancel(admin_client: Any, start: Any) -> None:
    waiting, failed = start(w.AdmApprovalFlow, "A-1"), start(w.AdmFlakyFlow, "F-1")
    response = act(admin_client, "cancel_instances", [waiting, failed])
    assert "1 of them has a status that does not allow this" in response.content.decode()
    response = act(admin_client, "cancel_instances", [waiting, failed], post="yes")
    assert response.status_code == 302
    messages = texts(response)
    assert messages[0] == "Cancelled 1 instance."
    assert messages[1].startswith("flaky::F-1: instance flaky::F-1 is failed")
    assert status(waiting) == "cancelled" and status(failed) == "failed"


def test_cancel_across_the_filtered_selection(admin_client: Any, start: Any) -> None:
    rows = [start(w.AdmApprovalFlow, f"A-{n}") for n in range(3)]
    done = start(w.AdmGateFlow, "G-1")
    services.resume(done.instance_id, "signed")
    url = f"{CHANGELIST}?status__exact=waiting"
    response = act(admin_client, "cancel_instances", rows[:1], url=url, select_across="1")
    assert "Cancel these 3 instances?" in response.content.decode()
    response = act(admin_client, "cancel_instances", rows[:1], url=url, select_across="1", post="yes")
    assert texts(response) == ["Cancelled 3 instances."]
    assert [status(r) for r in rows] == ["cancelled"] * 3 and status(done) == "completed"


def test_too_many_instances_at_once(admin_client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(operations, "ACTION_LIMIT", 2)
    bulk_rows(3, status="waiting")
    response = act(admin_client, "cancel_instances", list(WorkflowInstance.objects.all()))
    assert response.status_code == 302
    assert texts(response) == ["Select at most 2 instances at once (or use the management commands)."]


# ---- retry -------------------------------------------------------------------------------------------
def test_retry_failed_instances(admin_client: Any, start: Any) -> None:
    failed = start(w.AdmFlakyFlow, "F-1")
    response = act(admin_client, "retry_instances", [failed])
    assert "Retry this failed instance?" in response.content.decode()
    w.FLAKY["fail"] = False
    response = act(admin_client, "retry_instances", [failed], post="yes")
    assert texts(response) == ["Retried 1 instance."]
    assert status(failed) == "completed"
    assert ("retrying", "") in history(failed)


def test_retry_that_fails_again_is_reported(admin_client: Any, start: Any) -> None:
    failed = start(w.AdmFlakyFlow, "F-1")
    response = act(admin_client, "retry_instances", [failed], post="yes")
    messages = texts(response)
    assert messages[0] == "Retried 1 instance."
    assert messages[1].startswith("flaky::F-1 failed: ConnectionError: payment gateway unreachable")
    assert status(failed) == "failed"


def test_retry_of_a_waiting_instance_is_refused(admin_client: Any, start: Any) -> None:
    waiting = start(w.AdmApprovalFlow, "A-1")
    response = act(admin_client, "retry_instances", [waiting], post="yes")
    assert texts(response) == ["adm::A-1: instance adm::A-1 is waiting; only failed instances can be retried"]
    assert status(waiting) == "waiting"


# ---- resume --------------------------------------------------------------------------------------------
def _choices(response: Any, row: WorkflowInstance) -> list[tuple[str, str]]:
    field = response.context["form"].fields[f"resume_{row.pk}"]
    flat = []
    for value, label in field.choices:
        flat.extend(label if isinstance(label, list | tuple) else [(value, label)])
    return [(v, str(label)) for v, label in flat if v]


def test_resume_form_offers_only_declared_events(admin_client: Any, start: Any) -> None:
    approval = start(w.AdmApprovalFlow, "A-1")
    gate = start(w.AdmGateFlow, "G-1")
    parallel = start(w.AdmParallelFlow, "P-1")
    completed = start(w.AdmVersioned, "V-1", version=1)
    response = act(admin_client, "resume_instances", [approval, gate, parallel, completed])
    assert response.status_code == 200
    assert _choices(response, approval) == [(f"{APPROVE}|approved", "AdmApprove → approved"),
                                            (f"{APPROVE}|rejected", "AdmApprove → rejected")]
    # a WaitForEvent without timeout: "received" only, labelled with its event name
    assert _choices(response, gate) == [
        (f"{w.AdmGate.registry_name()}|received", "AdmGate → received (signed)")]
    assert _choices(response, parallel) == [
        (f"{w.AdmLeft.registry_name()}|ok", "AdmLeft → ok"),
        (f"{w.AdmRight.registry_name()}|ok", "AdmRight → ok"),
        (f"{w.AdmRight.registry_name()}|skip", "AdmRight → skip"),
    ]
    assert f"resume_{completed.pk}" not in response.context["form"].fields
    assert "ver::V-1 (completed)" in response.content.decode()  # listed as left alone


def test_resume_through_the_action(admin_client: Any, start: Any) -> None:
    approval, parallel = start(w.AdmApprovalFlow, "A-1"), start(w.AdmParallelFlow, "P-1")
    response = act(admin_client, "resume_instances", [approval, parallel], post="yes",
                   **{f"resume_{approval.pk}": f"{APPROVE}|approved",
                      f"resume_{parallel.pk}": f"{w.AdmRight.registry_name()}|skip"})
    assert response.status_code == 302
    assert texts(response) == ["Resumed 2 instances."]
    assert status(approval) == "completed"
    assert status(parallel) == "waiting"  # AdmLeft still waits
    parallel.refresh_from_db()
    assert parallel.waiting_steps.keys() == {w.AdmLeft.registry_name()}
    message = f"Resumed through the admin ({APPROVE}: approved)."
    assert LogEntry.objects.filter(object_id=str(approval.pk), change_message=message).exists()


def test_resume_leaves_blank_choices_waiting_but_needs_one(admin_client: Any, start: Any) -> None:
    a, b = start(w.AdmApprovalFlow, "A-1"), start(w.AdmApprovalFlow, "A-2")
    response = act(admin_client, "resume_instances", [a, b], post="yes",
                   **{f"resume_{a.pk}": "", f"resume_{b.pk}": ""})
    assert response.status_code == 200
    assert "Choose an event for at least one instance." in response.content.decode()
    assert texts(response) == ["Nothing was resumed: choose one of the offered events."]
    response = act(admin_client, "resume_instances", [a, b], post="yes",
                   **{f"resume_{a.pk}": f"{APPROVE}|rejected", f"resume_{b.pk}": ""})
    assert texts(response) == ["Resumed 1 instance."]
    assert status(a) == "completed" and status(b) == "waiting"


@pytest.mark.parametrize("value", [f"{APPROVE}|bogus", f"{APPROVE}|", f"{w.AdmShip.registry_name()}|shipped",
                                   "os.system|approved", "approved"])
def test_tampered_resume_is_rejected_without_change(admin_client: Any, start: Any, value: str) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    before = history(row)
    response = act(admin_client, "resume_instances", [row], post="yes", **{f"resume_{row.pk}": value})
    assert response.status_code == 200
    assert texts(response) == ["Nothing was resumed: choose one of the offered events."]
    assert "Select a valid choice" in response.content.decode()
    assert status(row) == "waiting" and history(row) == before


def test_resume_with_nothing_waiting(admin_client: Any, start: Any) -> None:
    failed = start(w.AdmFlakyFlow, "F-1")
    response = act(admin_client, "resume_instances", [failed])
    assert response.status_code == 302
    assert texts(response) == ["None of the selected instances has a waiting step to resume."]


def test_instance_that_stopped_waiting_meanwhile_is_reported(admin_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    form_page = act(admin_client, "resume_instances", [row])
    assert form_page.status_code == 200
    services.resume(row.instance_id, "approved")  # someone else was quicker
    response = act(admin_client, "resume_instances", [row], post="yes",
                   **{f"resume_{row.pk}": f"{APPROVE}|approved"})
    assert response.status_code == 302
    assert texts(response) == ["None of the selected instances has a waiting step to resume."]


# ---- permissions ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["cancel_instances", "retry_instances", "resume_instances"])
def test_viewer_cannot_run_actions(viewer_client: Any, start: Any, action: str) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    response = act(viewer_client, action, [row], post="yes", **{f"resume_{row.pk}": f"{APPROVE}|approved"})
    # the viewer has no action at all: the post just shows the changelist again
    assert response.status_code == 200
    assert response.context["action_form"] is None
    assert texts(response) == []
    assert status(row) == "waiting"


def test_changer_runs_actions(changer_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    response = act(changer_client, "cancel_instances", [row], post="yes")
    assert texts(response) == ["Cancelled 1 instance."]


@pytest.mark.parametrize("verb", ["cancel", "retry", "resume"])
def test_instance_operation_pages_need_the_change_permission(viewer_client: Any, stranger_client: Any,
                                                             client: Any, start: Any, verb: str) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    url = f"{CHANGELIST}{row.pk}/{verb}/"
    assert viewer_client.get(url).status_code == 403
    data = {"post": "yes", f"resume_{row.pk}": f"{APPROVE}|approved"}
    assert viewer_client.post(url, data).status_code == 403
    assert stranger_client.get(url).status_code == 403
    assert client.get(url).status_code == 302  # anonymous: login
    assert status(row) == "waiting"


# ---- the instance page's buttons ---------------------------------------------------------------------------
def test_resume_from_the_instance_page(changer_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    url = f"{CHANGELIST}{row.pk}/resume/"
    response = changer_client.get(url)
    assert response.status_code == 200
    assert _choices(response, row) == [(f"{APPROVE}|approved", "AdmApprove → approved"),
                                       (f"{APPROVE}|rejected", "AdmApprove → rejected")]
    assert "— choose an event —" in response.content.decode()

    response = changer_client.post(url, {f"resume_{row.pk}": ""})
    assert response.status_code == 200 and status(row) == "waiting"  # a choice is required
    response = changer_client.post(url, {f"resume_{row.pk}": f"{APPROVE}|nope"})
    assert response.status_code == 200
    assert texts(response) == ["Nothing was resumed: choose one of the offered events."]
    assert status(row) == "waiting"

    response = changer_client.post(url, {f"resume_{row.pk}": f"{APPROVE}|approved"})
    assert response.status_code == 302 and response["Location"] == change_url(row)
    assert texts(response) == ["Resumed 1 instance."]
    assert status(row) == "completed"
    # completed: nothing to resume any more
    response = changer_client.get(url)
    assert response.status_code == 302
    assert texts(response)[-1] == "adm::A-1 has no waiting step to resume."


def test_cancel_and_retry_from_the_instance_page(admin_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    response = admin_client.get(f"{CHANGELIST}{row.pk}/cancel/")
    assert "Cancel this instance?" in response.content.decode()
    response = admin_client.post(f"{CHANGELIST}{row.pk}/cancel/", {"post": "yes"})
    assert response.status_code == 302 and status(row) == "cancelled"

    failed = start(w.AdmFlakyFlow, "F-1")
    page = admin_client.get(f"{CHANGELIST}{failed.pk}/retry/")
    assert "Retry this failed instance?" in page.content.decode()
    w.FLAKY["fail"] = False
    response = admin_client.post(f"{CHANGELIST}{failed.pk}/retry/", {"post": "yes"})
    assert texts(response) == ["Retried 1 instance."] and status(failed) == "completed"
    # refusals are messages, not errors
    response = admin_client.post(f"{CHANGELIST}{failed.pk}/retry/", {"post": "yes"})
    assert response.status_code == 302
    assert "only failed instances can be retried" in texts(response)[-1]


def test_unknown_instance_redirects(admin_client: Any) -> None:
    response = admin_client.get(f"{CHANGELIST}999999/resume/")
    assert response.status_code == 302
    assert "doesn’t exist" in texts(response)[0]


# ---- rows the services cannot reach ------------------------------------------------------------------
def test_older_instance_with_a_reused_id_is_refused(admin_client: Any, start: Any) -> None:
    old = start(w.AdmApprovalFlow, "A-1")
    services.cancel(old.instance_id)
    new = start(w.AdmApprovalFlow, "A-1")  # the id is free again once the first one finished
    response = act(admin_client, "cancel_instances", [old], post="yes")
    assert texts(response) == ["adm::A-1: a newer instance with this id exists; act on that one instead."]
    assert status(new) == "waiting"
    assert not admin_client.get(change_url(old)).context["hx_offered"]["cancel"]


def test_same_id_in_two_workflows(admin_client: Any, start: Any) -> None:
    from hephaestus_django.core import Unique, Workflow

    first = start(w.AdmApprovalFlow, "X-1")

    class AdmOtherFlow(Workflow):
        name = "tests.admin.AdmOtherFlow"
        unique = Unique(key="adm")
        start_step = w.AdmApprove
        transitions = {(w.AdmApprove, "approved"): w.Done, (w.AdmApprove, "rejected"): w.Done}

    try:
        second = start(AdmOtherFlow, "X-1")
        assert second.instance_id == first.instance_id
        # the older row, in its own workflow, is what the admin changes
        response = act(admin_client, "resume_instances", [first], post="yes",
                       **{f"resume_{first.pk}": f"{APPROVE}|approved"})
        assert texts(response) == ["Resumed 1 instance."]
        assert status(first) == "completed" and status(second) == "waiting"
    finally:
        from hephaestus_django.core import registry

        registry.unregister(AdmOtherFlow.name)


def test_unregistered_workflow_is_reported(admin_client: Any) -> None:
    bulk_rows(1, workflow="gone.Workflow", status="waiting")
    row = WorkflowInstance.objects.get()
    response = act(admin_client, "cancel_instances", [row], post="yes")
    assert response.status_code == 302
    assert texts(response) == ["bulk::0: no workflow named 'gone.Workflow' is registered"]
    assert status(row) == "waiting"


def test_a_user_with_another_action_cannot_post_ours(client: Any, start: Any) -> None:
    """Staff with view and delete permissions see ``delete_selected`` only; ours are refused."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("deleter", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="hephaestus_django", codename__in=["view_workflowinstance",
                                                                   "delete_workflowinstance"]))
    client.force_login(user)
    row = start(w.AdmApprovalFlow, "A-1")
    response = act(client, "cancel_instances", [row], post="yes")
    assert response.status_code == 302
    assert texts(response) == ["No action selected."]
    assert status(row) == "waiting"


def test_many_problems_are_summarised(admin_client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(operations, "MAX_ERROR_MESSAGES", 1)
    bulk_rows(3)  # completed: none can be cancelled
    response = act(admin_client, "cancel_instances", list(WorkflowInstance.objects.all()), post="yes")
    messages = texts(response)
    assert len(messages) == 2 and "only pending, running and waiting" in messages[0]
    assert messages[1] == "…and 2 more problems."


def test_an_unexpected_error_is_reported_not_raised(admin_client: Any, start: Any, monkeypatch: Any,
                                                    caplog: Any) -> None:
    a, b = start(w.AdmApprovalFlow, "A-1"), start(w.AdmApprovalFlow, "A-2")
    real_cancel = services.cancel

    def cancel(id: str, **kwargs: Any) -> Any:
        if id == a.instance_id:
            raise RuntimeError("boom")
        return real_cancel(id, **kwargs)

    monkeypatch.setattr(services, "cancel", cancel)
    response = act(admin_client, "cancel_instances", [a, b], post="yes")
    assert response.status_code == 302
    assert texts(response) == ["Cancelled 1 instance.", "adm::A-1: unexpected error (see the server log)."]
    assert status(a) == "waiting" and status(b) == "cancelled"
    assert "admin cancel of adm::A-1 failed" in caplog.text
