"""SPEC §9 in the admin: the resume form's JSON ``data``, parent and children links on the instance
page, the children step marked in the graph and never offered to the resume form."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
from tests.admin import workflows_admin as w
from tests.admin.conftest import CHANGELIST, change_url
from tests.admin.test_actions import act, status, texts
from tests.workflows_compose import CShip, ParcelParent

pytestmark = pytest.mark.django_db

APPROVE = w.AdmApprove.registry_name()


def snapshot(row: WorkflowInstance) -> tuple[Any, ...]:
    row.refresh_from_db()
    return row.status, row.revision, row.context, HistoryEntry.objects.filter(instance=row).count()


def test_resume_with_data_from_the_instance_page(changer_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    url = f"{CHANGELIST}{row.pk}/resume/"
    page = changer_client.get(url).content.decode()
    assert 'name="data"' in page and "a JSON object merged into each resumed step" in page
    box = re.search(r'<textarea name="data"[^>]*>(.*?)</textarea>', page, re.S)
    assert box is not None and box.group(1).strip() == ""  # empty, not "null"
    response = changer_client.post(url, {f"resume_{row.pk}": f"{APPROVE}|approved",
                                         "data": '{"approved_by": "Zoë", "level": 2}'})
    assert response.status_code == 302
    assert texts(response) == ["Resumed 1 instance."]
    assert status(row) == "completed"
    assert row.context["steps"]["adm_approve"] == {"approved_by": "Zoë", "level": 2}
    entry = HistoryEntry.objects.get(instance=row, kind="resumed")
    assert entry.context_updates == {"approved_by": "Zoë", "level": 2}


@pytest.mark.parametrize(("data", "error"), [
    ("{not json", "Enter a valid JSON."),
    ("[1, 2]", "Enter a JSON object ({...}), not an array."),
    ('"text"', "Enter a JSON object ({...}), not a string."),
    ("12", "Enter a JSON object ({...}), not a number."),
    ("true", "Enter a JSON object ({...}), not a boolean."),
    ('{"n": NaN}', "data[&#x27;n&#x27;] is nan, which JSON cannot represent"),
    ('{"s": "\\u0000"}', "data[&#x27;s&#x27;] contains a NUL character"),
])
def test_bad_data_is_shown_and_changes_nothing(changer_client: Any, start: Any, data: str, error: str) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    before = snapshot(row)
    response = changer_client.post(f"{CHANGELIST}{row.pk}/resume/",
                                   {f"resume_{row.pk}": f"{APPROVE}|approved", "data": data})
    assert response.status_code == 200
    assert texts(response) == ["Nothing was resumed: the data must be a JSON object (see below)."]
    assert error in response.content.decode()
    assert snapshot(row) == before


def test_the_changelist_action_gives_the_data_to_every_chosen_instance(admin_client: Any, start: Any) -> None:
    a, b = start(w.AdmApprovalFlow, "A-1"), start(w.AdmApprovalFlow, "A-2")
    response = act(admin_client, "resume_instances", [a, b], post="yes", data='{"batch": 7}',
                   **{f"resume_{a.pk}": f"{APPROVE}|approved", f"resume_{b.pk}": f"{APPROVE}|rejected"})
    assert texts(response) == ["Resumed 2 instances."]
    for row in (a, b):
        status(row)
        assert row.context["steps"]["adm_approve"] == {"batch": 7}


def test_the_changelist_action_refuses_bad_data(admin_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    before = snapshot(row)
    response = act(admin_client, "resume_instances", [row], post="yes", data="[]",
                   **{f"resume_{row.pk}": f"{APPROVE}|approved"})
    assert response.status_code == 200
    assert texts(response) == ["Nothing was resumed: the data must be a JSON object (see below)."]
    assert snapshot(row) == before


def test_empty_data_resumes_without_data(changer_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    changer_client.post(f"{CHANGELIST}{row.pk}/resume/", {f"resume_{row.pk}": f"{APPROVE}|approved", "data": ""})
    assert status(row) == "completed"
    assert HistoryEntry.objects.get(instance=row, kind="resumed").context_updates is None


# ---- parent and children ------------------------------------------------------------------------------------------
@pytest.fixture
def family(start: Any) -> tuple[WorkflowInstance, list[WorkflowInstance]]:
    parent = start(ParcelParent, "O1", {"parcels": ["P1", "P2"]})
    return parent, list(WorkflowInstance.objects.filter(parent=parent).order_by("pk"))


def test_the_parent_page_links_its_children_and_marks_the_children_step(
        viewer_client: Any, family: tuple[WorkflowInstance, list[WorkflowInstance]]) -> None:
    parent, children = family
    page = viewer_client.get(change_url(parent)).content.decode()
    assert "Child workflows" in page
    for child in children:
        assert f'<a href="{change_url(child)}">{child.instance_id}</a>' in page
    assert f"{CHANGELIST}?parent__id__exact={parent.pk}" in page
    step = re.escape(CShip.registry_name())
    node = re.search(r'<g class="([^"]*)" data-step="' + step + r'"[^>]* data-children="true">', page)
    assert node is not None and "hx-children-step" in node.group(1) and "hx-waiting" in node.group(1)
    assert page.count('data-children="true"') == 1
    assert "starts child workflows" in page


def test_a_child_page_links_its_parent(viewer_client: Any,
                                       family: tuple[WorkflowInstance, list[WorkflowInstance]]) -> None:
    parent, children = family
    page = viewer_client.get(change_url(children[0])).content.decode()
    assert f'<a href="{change_url(parent)}">cparent::O1</a>' in page
    assert "started by its step CShip" in page
    assert "Child workflows" not in page


def test_the_changelist_filters_by_parent(viewer_client: Any,
                                          family: tuple[WorkflowInstance, list[WorkflowInstance]]) -> None:
    parent, children = family
    page = viewer_client.get(f"{CHANGELIST}?parent__id__exact={parent.pk}").content.decode()
    assert all(child.instance_id in page for child in children)
    assert "cparent::O1</a>" not in page


def test_the_children_step_is_not_offered_for_resuming(changer_client: Any,
                                                       family: tuple[WorkflowInstance, list[WorkflowInstance]]) -> None:
    parent, _children = family
    page = changer_client.get(change_url(parent)).content.decode()
    assert "hx-tool-resume" not in page
    response = changer_client.post(f"{CHANGELIST}{parent.pk}/resume/",
                                   {f"resume_{parent.pk}": f"{CShip.registry_name()}|completed"})
    assert response.status_code == 302
    assert texts(response) == ["cparent::O1 has no waiting step to resume."]
    assert status(parent) == "waiting"
