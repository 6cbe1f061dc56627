"""The registered-workflows pages and the links to them."""

from __future__ import annotations

from typing import Any

import pytest

from hephaestus_django.admin import views
from tests.admin import workflows_admin as w
from tests.admin.conftest import CHANGELIST

pytestmark = pytest.mark.django_db

WORKFLOWS = f"{CHANGELIST}workflows/"


def _entry(response: Any, name: str) -> dict[str, Any]:
    return next(e for e in response.context["workflows"] if e["name"] == name)


def test_lists_every_registered_workflow_with_its_graph(viewer_client: Any) -> None:
    response = viewer_client.get(WORKFLOWS)
    assert response.status_code == 200
    names = [e["name"] for e in response.context["workflows"]]
    assert names == sorted(names)
    approval = _entry(response, w.AdmApprovalFlow.name)
    assert approval["all_versions"] == [1] and approval["current"] == 1
    assert (approval["unique"].key, approval["unique"].scope) == ("adm", "workflow")
    assert approval["tags"] == ["admin", "tests"]
    [version] = approval["versions"]
    assert version["picture"].svg.startswith("<svg")
    html = response.content.decode()
    section = html[html.index(f'id="{w.AdmApprovalFlow.name}"'):]
    section = section[: section.index("</section>")]
    assert "<svg" in section and "AdmApprove" in section
    assert "<code>adm</code> (scope: workflow)" in section
    assert '<span class="hx-tag">admin</span>' in section
    assert "&quot;description&quot;: &quot;approval before shipping&quot;" in section
    assert f"{CHANGELIST}?workflow=tests.admin.AdmApprovalFlow" in section
    assert "--approved--&gt; AdmShip" in section  # the text rendering


def test_versioned_workflow_lists_versions_and_draws_the_current_one(viewer_client: Any) -> None:
    entry = _entry(viewer_client.get(WORKFLOWS), w.AdmVersioned.name)
    assert entry["all_versions"] == [1, 2] and entry["current"] == 2
    assert [v["number"] for v in entry["versions"]] == [2]


def test_large_graphs_are_drawn_on_their_own_page(viewer_client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(views, "LIST_GRAPH_LIMIT", 3)
    response = viewer_client.get(WORKFLOWS)
    [version] = _entry(response, w.AdmApprovalFlow.name)["versions"]
    assert version["picture"] is None
    assert "A graph of 5 steps is drawn on the workflow's page." in response.content.decode()


def test_detail_page_draws_every_version(viewer_client: Any) -> None:
    response = viewer_client.get(f"{WORKFLOWS}{w.AdmVersioned.name}/")
    assert response.status_code == 200
    [entry] = response.context["workflows"]
    assert [v["number"] for v in entry["versions"]] == [2, 1]
    assert all(v["picture"].svg for v in entry["versions"])
    html = response.content.decode()
    assert html.count('class="hx-graph"') == 2
    assert "tests.admin.workflows_admin.AdmApprove" in html  # steps table
    assert "flowchart TD" in html  # Mermaid text
    assert f'href="{WORKFLOWS}">Registered workflows</a>' in html  # breadcrumbs


def test_unknown_workflow_is_404(viewer_client: Any) -> None:
    assert viewer_client.get(f"{WORKFLOWS}no.such.Workflow/").status_code == 404


def test_needs_the_view_permission(stranger_client: Any, client: Any, changer_client: Any) -> None:
    assert stranger_client.get(WORKFLOWS).status_code == 403
    assert stranger_client.get(f"{WORKFLOWS}{w.AdmApprovalFlow.name}/").status_code == 403
    assert client.get(WORKFLOWS).status_code == 302  # anonymous: login
    assert changer_client.get(WORKFLOWS).status_code == 200  # change implies view


def test_linked_from_the_app_index_changelist_and_instance_page(viewer_client: Any, start: Any) -> None:
    app_index = viewer_client.get("/admin/hephaestus_django/")
    assert app_index.status_code == 200
    assert f'href="{WORKFLOWS}">Registered workflows</a>' in app_index.content.decode()
    assert f'href="{WORKFLOWS}">Registered workflows</a>' in viewer_client.get(CHANGELIST).content.decode()
    row = start(w.AdmApprovalFlow, "A-1")
    page = viewer_client.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
    assert f'href="{WORKFLOWS}{w.AdmApprovalFlow.name}/">' in page


def test_no_workflow_registered(viewer_client: Any, monkeypatch: Any) -> None:
    from hephaestus_django.core import registry

    monkeypatch.setattr(registry, "_workflows", {})
    response = viewer_client.get(WORKFLOWS)
    assert response.status_code == 200
    assert "No workflow is registered." in response.content.decode()


def test_admin_index_links_to_the_workflows_page(viewer_client: Any, stranger_client: Any) -> None:
    index = viewer_client.get("/admin/")
    entry = "/admin/hephaestus_django/registeredworkflow/"
    assert entry in index.content.decode() and "Registered workflows" in index.content.decode()
    follow = viewer_client.get(entry)
    assert follow.status_code == 302 and follow["Location"] == WORKFLOWS
    assert viewer_client.get(f"{entry}add/").status_code == 403
    stranger = stranger_client.get("/admin/")
    assert entry not in stranger.content.decode()
    assert stranger_client.get(entry).status_code == 403
