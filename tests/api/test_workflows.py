"""``GET workflows/`` and ``GET workflows/{name}/``."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from hephaestus_django.core import registry
from hephaestus_django.shapes import workflow_shape
from tests.api import workflows_api as wf
from tests.api.conftest import url

pytestmark = pytest.mark.django_db

WORKFLOW_KEYS = {"name", "versions", "current_version", "unique", "tags", "metadata", "steps", "edges", "mermaid"}


def test_list_has_every_registered_workflow_by_name(api: APIClient) -> None:
    response = api.get(url("workflow-list"))
    assert response.status_code == 200
    body = response.json()
    names = [w["name"] for w in body]
    assert names == sorted(w.name for w in registry.all_workflows())
    assert wf.ApiOrderFlow.name in names
    assert all(set(w) == WORKFLOW_KEYS for w in body)


def test_detail_with_dotted_name(api: APIClient) -> None:
    response = api.get(url("workflow-detail", wf.ApiOrderFlow.name))
    assert response.status_code == 200
    body = response.json()
    assert body == workflow_shape(wf.ApiOrderFlow)
    assert body["name"] == "tests.api.workflows_api.ApiOrderFlow"
    assert body["unique"] == {"key": "order", "scope": "workflow"}
    assert body["tags"] == ["api", "orders"]
    assert body["metadata"] == {"team": "api"}
    steps = {s["name"]: s for s in body["steps"]}
    assert steps[wf.ApiApprove.registry_name()] == {"name": wf.ApiApprove.registry_name(),
                                                    "context_key": "api_approve",
                                                    "events": ["approved", "rejected"]}
    assert {"from": wf.ApiCheck.registry_name(), "event": "ok", "to": wf.ApiApprove.registry_name()} in body["edges"]
    assert body["mermaid"].lstrip().startswith("flowchart")


def test_detail_of_a_versioned_workflow(api: APIClient) -> None:
    body = api.get(url("workflow-detail", wf.ApiVersioned.name)).json()
    assert body["versions"] == [1, 2]
    assert body["current_version"] == 2
    assert wf.ApiApprove.registry_name() in {s["name"] for s in body["steps"]}
    old = api.get(url("workflow-detail", wf.ApiVersioned.name), {"version": 1}).json()
    assert wf.ApiApprove.registry_name() not in {s["name"] for s in old["steps"]}
    assert old["current_version"] == 2


@pytest.mark.parametrize("version", ["3", "0", "x", "1.0"])
def test_detail_unknown_version_is_400(api: APIClient, version: str) -> None:
    response = api.get(url("workflow-detail", wf.ApiVersioned.name), {"version": version})
    assert response.status_code == 400
    assert "version" in response.json()


@pytest.mark.parametrize("name", ["no.such.Workflow", "os.system", "tests.api.workflows_api.ApiCheck", "x"])
def test_detail_unknown_name_is_404(api: APIClient, name: str) -> None:
    response = api.get(url("workflow-detail", name))
    assert response.status_code == 404
    assert "detail" in response.json()
