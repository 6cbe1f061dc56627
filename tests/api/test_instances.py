"""Instances through the API: start, detail, resume, cancel, retry and history (SPEC §6, §2.1)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
from tests.api import workflows_api as wf
from tests.api.conftest import make_rows, url

pytestmark = pytest.mark.django_db

INSTANCE_KEYS = {"id", "workflow", "workflow_version", "status", "current_step", "context", "step_configs",
                 "active_steps", "completed_steps", "runtime_metadata", "telemetry_metadata", "error",
                 "parent", "created_at", "updated_at"}
HISTORY_KEYS = {"kind", "step", "event", "timestamp", "attempt", "error", "duration", "context_updates",
                "traceback"}
APPROVE = wf.ApiApprove.registry_name()


def post(api: APIClient, path: str, body: dict[str, Any] | None = None) -> Any:
    return api.post(path, body or {}, format="json")


# ---- start -----------------------------------------------------------------------------------
def test_start_with_a_business_value(api: APIClient) -> None:
    response = post(api, url("instance-list"), {"workflow": wf.ApiOrderFlow.name, "value": "ORD-2024.17",
                                                "context": {"items": 2, "name": "Zoë"},
                                                "telemetry_metadata": {"trace": "t-1"}})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == INSTANCE_KEYS
    assert body["id"] == "order::ORD-2024.17"
    assert body["workflow"] == wf.ApiOrderFlow.name
    assert body["workflow_version"] == 1
    assert body["status"] == "waiting"
    assert body["current_step"] == APPROVE
    assert body["context"] == {"initial": {"items": 2, "name": "Zoë"}, "steps": {"api_check": {"checked": True}}}
    assert body["active_steps"] == [APPROVE]
    assert body["completed_steps"] == [wf.ApiCheck.registry_name()]
    assert body["telemetry_metadata"] == {"trace": "t-1"}
    assert body["error"] is None


def test_start_with_a_full_id(api: APIClient) -> None:
    response = post(api, url("instance-list"), {"workflow": wf.ApiOrderFlow.name, "id": "order::X_1"})
    assert response.status_code == 201
    assert response.json()["id"] == "order::X_1"
    assert response.json()["context"]["initial"] == {}


def test_start_a_scope_none_workflow_gets_a_suffix(api: APIClient) -> None:
    response = post(api, url("instance-list"), {"workflow": wf.ApiNoScopeFlow.name, "value": "nightly"})
    assert response.status_code == 201
    assert response.json()["id"].startswith("job::nightly::")
    assert response.json()["status"] == "completed"


def test_start_a_failing_instance_answers_201_with_the_error(api: APIClient) -> None:
    response = post(api, url("instance-list"), {"workflow": wf.ApiOrderFlow.name, "value": "F", "context":
                                                {"fail": True}})
    assert response.status_code == 201
    assert response.json()["status"] == "failed"
    assert "ApiCheck is broken" in response.json()["error"]


@pytest.mark.parametrize(("version", "expected"), [(None, 2), (1, 1), (2, 2)])
def test_start_versions(api: APIClient, version: int | None, expected: int) -> None:
    body: dict[str, Any] = {"workflow": wf.ApiVersioned.name, "value": f"v{version}"}
    if version is not None:
        body["version"] = version
    response = post(api, url("instance-list"), body)
    assert response.status_code == 201
    assert response.json()["workflow_version"] == expected


@pytest.mark.parametrize(("body", "field"), [
    ({"value": "A"}, "workflow"),
    ({"workflow": "no.such.Workflow", "value": "A"}, "workflow"),
    ({"workflow": "os.system", "value": "A"}, "workflow"),
    ({"workflow": "ApiOrderFlow"}, "value"),
    ({"workflow": "ApiOrderFlow", "value": "A", "id": "order::A"}, "id"),
    ({"workflow": "ApiOrderFlow", "value": "-starts-with-dash"}, "value"),
    ({"workflow": "ApiOrderFlow", "value": "has space"}, "value"),
    ({"workflow": "ApiOrderFlow", "value": "x" * 129}, "value"),
    ({"workflow": "ApiOrderFlow", "value": ["A"]}, "value"),
    ({"workflow": "ApiOrderFlow", "id": "no-separator"}, "id"),
    ({"workflow": "ApiOrderFlow", "id": "other::A"}, "id"),
    ({"workflow": "ApiOrderFlow", "value": "A", "context": [1, 2]}, "context"),
    ({"workflow": "ApiOrderFlow", "value": "A", "context": "text"}, "context"),
    ({"workflow": "ApiOrderFlow", "value": "A", "context": {"a": "nul\x00"}}, "context"),
    ({"workflow": "ApiOrderFlow", "value": "A", "context": {"a": ["SURROGATE"]}}, "context"),
    ({"workflow": "ApiOrderFlow", "value": "A", "telemetry_metadata": 3}, "telemetry_metadata"),
    ({"workflow": "ApiOrderFlow", "value": "A", "version": 2}, "version"),
    ({"workflow": "ApiOrderFlow", "value": "A", "version": 0}, "version"),
    ({"workflow": "ApiOrderFlow", "value": "A", "version": "two"}, "version"),
    ({"workflow": "ApiVersioned", "value": "A", "version": 3}, "version"),
])
def test_start_bad_input_is_400_keyed_by_field(api: APIClient, body: dict[str, Any], field: str) -> None:
    names = {"ApiOrderFlow": wf.ApiOrderFlow.name, "ApiVersioned": wf.ApiVersioned.name}
    if "workflow" in body:
        body = {**body, "workflow": names.get(body["workflow"], body["workflow"])}
    raw = json.dumps(body).replace("SURROGATE", "\\ud800")  # a lone surrogate, as JSON allows
    response = api.post(url("instance-list"), raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not WorkflowInstance.objects.exists()


def test_start_with_neither_value_nor_id_names_both(api: APIClient) -> None:
    response = post(api, url("instance-list"), {"workflow": wf.ApiOrderFlow.name})
    assert response.status_code == 400
    assert set(response.json()) == {"value", "id"}


def test_start_with_malformed_json_is_400(api: APIClient) -> None:
    response = api.post(url("instance-list"), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


def test_start_while_active_is_409(api: APIClient, start: Any) -> None:
    start("DUP")
    response = post(api, url("instance-list"), {"workflow": wf.ApiOrderFlow.name, "value": "DUP"})
    assert response.status_code == 409
    assert "already active" in response.json()["detail"]
    assert WorkflowInstance.objects.filter(instance_id="order::DUP").count() == 1


def test_start_global_scope_conflicts_across_workflows(api: APIClient, start: Any) -> None:
    start("G-1")
    response = post(api, url("instance-list"), {"workflow": wf.ApiGlobalFlow.name, "value": "G-1"})
    assert response.status_code == 409


# ---- detail ----------------------------------------------------------------------------------
def test_detail(api: APIClient, waiting: dict[str, Any]) -> None:
    response = api.get(url("instance-detail", waiting["id"]))
    assert response.status_code == 200
    assert response.json() == waiting


@pytest.mark.parametrize("value", ["a.b-c_d", "ORD-2024.17", "0e8a3c1e-3b1c-4a6a-9a55-7f8e9f2c1d00"])
def test_ids_with_dots_dashes_and_underscores_route(api: APIClient, start: Any, value: str) -> None:
    instance_id = start(value)["id"]
    assert api.get(url("instance-detail", instance_id)).status_code == 200
    assert api.get(url("instance-history", instance_id)).status_code == 200
    assert post(api, url("instance-resume", instance_id), {"event": "approved"}).status_code == 200


def test_detail_unknown_id_is_404(api: APIClient) -> None:
    response = api.get(url("instance-detail", "order::nope"))
    assert response.status_code == 404
    assert "order::nope" in response.json()["detail"]


def test_detail_is_the_newest_instance_with_that_id(api: APIClient, start: Any) -> None:
    first = start("AGAIN")
    assert post(api, url("instance-resume", first["id"]), {"event": "approved"}).json()["status"] == "completed"
    second = start("AGAIN", context={"round": 2})
    body = api.get(url("instance-detail", "order::AGAIN")).json()
    assert body["status"] == "waiting"
    assert body["context"]["initial"] == {"round": 2}
    assert body["created_at"] == second["created_at"]
    assert WorkflowInstance.objects.filter(instance_id="order::AGAIN").count() == 2


# ---- resume --------------------------------------------------------------------------------------
def test_resume(api: APIClient, waiting: dict[str, Any]) -> None:
    response = post(api, url("instance-resume", waiting["id"]), {"event": "approved"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == INSTANCE_KEYS
    assert body["status"] == "completed"
    assert body["active_steps"] == []


def test_resume_undeclared_event_is_400_and_changes_nothing(api: APIClient, waiting: dict[str, Any]) -> None:
    before = list(HistoryEntry.objects.order_by("pk").values())
    response = post(api, url("instance-resume", waiting["id"]), {"event": "paid"})
    assert response.status_code == 400
    assert "paid" in response.json()["event"][0]
    assert api.get(url("instance-detail", waiting["id"])).json() == waiting
    assert list(HistoryEntry.objects.order_by("pk").values()) == before


@pytest.mark.parametrize("raw", ['{}', '{"event": ""}', '{"event": null}', '{"event": "a\\u0000b"}',
                                 '{"event": {"x": 1}}', '{"event": ["approved"]}', '{"event": "%s"}' % ("e" * 256)])
def test_resume_without_a_usable_event_is_400(api: APIClient, waiting: dict[str, Any], raw: str) -> None:
    response = api.post(url("instance-resume", waiting["id"]), raw, content_type="application/json")
    assert response.status_code == 400
    assert "event" in response.json()


def test_resume_a_finished_instance_is_409(api: APIClient, start: Any) -> None:
    done = start("B", context={"bad": True})
    assert done["status"] == "completed"
    response = post(api, url("instance-resume", done["id"]), {"event": "approved"})
    assert response.status_code == 409


def test_resume_unknown_id_is_404(api: APIClient) -> None:
    assert post(api, url("instance-resume", "order::nope"), {"event": "approved"}).status_code == 404


def test_resume_chooses_the_step_when_several_wait(api: APIClient, start: Any) -> None:
    instance = start("P", workflow=wf.ApiParallelFlow)
    assert sorted(instance["active_steps"]) == sorted([wf.ApiLeft.registry_name(), wf.ApiRight.registry_name()])
    ambiguous = post(api, url("instance-resume", instance["id"]), {"event": "go"})
    assert ambiguous.status_code == 400
    assert "event" in ambiguous.json()
    unknown_step = post(api, url("instance-resume", instance["id"]), {"event": "go", "step": "os.system"})
    assert unknown_step.status_code == 400
    assert "step" in unknown_step.json()
    left = post(api, url("instance-resume", instance["id"]), {"event": "go", "step": wf.ApiLeft.registry_name()})
    assert left.status_code == 200
    assert left.json()["active_steps"] == [wf.ApiRight.registry_name()]
    again = post(api, url("instance-resume", instance["id"]), {"event": "go", "step": wf.ApiLeft.registry_name()})
    assert again.status_code == 409
    right = post(api, url("instance-resume", instance["id"]), {"event": "go"})
    assert right.json()["status"] == "completed"


def test_actions_on_an_instance_whose_workflow_is_gone_are_409(api: APIClient) -> None:
    make_rows(1, workflow="gone.Workflow", prefix="GONE", active_steps=["gone.Step"],
              waiting_steps={"gone.Step": "2024-01-01T00:00:00+00:00"})
    instance_id = "order::GONE-0"
    assert api.get(url("instance-detail", instance_id)).status_code == 200
    assert api.get(url("instance-history", instance_id)).status_code == 200
    assert post(api, url("instance-resume", instance_id), {"event": "go"}).status_code == 409
    assert post(api, url("instance-cancel", instance_id)).status_code == 409


# ---- cancel and retry -------------------------------------------------------------------------
def test_cancel(api: APIClient, waiting: dict[str, Any]) -> None:
    response = post(api, url("instance-cancel", waiting["id"]))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = post(api, url("instance-cancel", waiting["id"]))
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]


def test_cancel_unknown_id_is_404(api: APIClient) -> None:
    assert post(api, url("instance-cancel", "order::nope")).status_code == 404


def test_retry(api: APIClient, failed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(wf.SWITCHES, "broken", False)
    response = post(api, url("instance-retry", failed["id"]))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "waiting"
    assert body["error"] is None
    assert post(api, url("instance-retry", failed["id"])).status_code == 409


def test_retry_a_failing_step_again_answers_200_failed(api: APIClient, failed: dict[str, Any]) -> None:
    response = post(api, url("instance-retry", failed["id"]))
    assert response.status_code == 200
    assert response.json()["status"] == "failed"


def test_retry_unknown_id_is_404(api: APIClient) -> None:
    assert post(api, url("instance-retry", "order::nope")).status_code == 404


@pytest.mark.parametrize("verb", ["get", "put", "patch", "delete"])
def test_actions_accept_only_post(api: APIClient, waiting: dict[str, Any], verb: str) -> None:
    for name in ("instance-resume", "instance-cancel", "instance-retry"):
        assert getattr(api, verb)(url(name, waiting["id"])).status_code == 405


@pytest.mark.parametrize("verb", ["put", "patch", "delete"])
def test_instances_cannot_be_edited_or_deleted(api: APIClient, waiting: dict[str, Any], verb: str) -> None:
    assert getattr(api, verb)(url("instance-detail", waiting["id"]), {}, format="json").status_code == 405
    assert WorkflowInstance.objects.count() == 1


# ---- history -----------------------------------------------------------------------------------
def test_history(api: APIClient, waiting: dict[str, Any]) -> None:
    post(api, url("instance-resume", waiting["id"]), {"event": "approved"})
    response = api.get(url("instance-history", waiting["id"]))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert body["next"] is None and body["previous"] is None
    entries = body["results"]
    assert all(set(e) == HISTORY_KEYS for e in entries)
    assert [(e["kind"], e["step"], e["event"]) for e in entries] == [
        ("completed", wf.ApiCheck.registry_name(), "ok"),
        ("paused", APPROVE, None),
        ("resumed", APPROVE, "approved"),
        ("completed", "hephaestus_django.core.steps.Done", "done"),
    ]
    assert entries[0]["context_updates"] == {"checked": True}
    assert entries[0]["attempt"] == 1


def test_history_of_a_failure(api: APIClient, failed: dict[str, Any]) -> None:
    entries = api.get(url("instance-history", failed["id"])).json()["results"]
    assert entries[-1]["kind"] == "failed"
    assert "ApiCheck is broken" in entries[-1]["error"]


def test_history_pages_in_order(api: APIClient) -> None:
    (row,) = make_rows(1, prefix="H", history=7)
    instance_id = row.instance_id
    page = api.get(url("instance-history", instance_id), {"page_size": 3}).json()
    seen = []
    pages = 0
    while True:
        pages += 1
        seen += [e["context_updates"]["seq"] for e in page["results"]]
        if page["next"] is None:
            break
        page = api.get(page["next"]).json()
    assert seen == list(range(1, 8))
    assert pages == 3
    back = api.get(page["previous"]).json()
    assert [e["context_updates"]["seq"] for e in back["results"]] == [4, 5, 6]
    first = api.get(back["previous"]).json()
    assert [e["context_updates"]["seq"] for e in first["results"]] == [1, 2, 3]
    assert first["previous"] is None


def test_history_is_the_newest_instances(api: APIClient, start: Any) -> None:
    start("HN", context={"bad": True})
    start("HN")
    entries = api.get(url("instance-history", "order::HN")).json()["results"]
    assert entries[-1]["kind"] == "paused"


def test_history_unknown_id_is_404(api: APIClient) -> None:
    assert api.get(url("instance-history", "order::nope")).status_code == 404


@pytest.mark.parametrize("params", [{"cursor": "garbage"}, {"page_size": "0"}, {"page_size": "x"},
                                    {"page_size": "100000"}])
def test_history_bad_paging_is_400(api: APIClient, waiting: dict[str, Any], params: dict[str, str]) -> None:
    response = api.get(url("instance-history", waiting["id"]), params)
    assert response.status_code == 400
    assert set(response.json()) <= {"cursor", "page_size"}


def test_the_browsable_api_renders(api: APIClient, waiting: dict[str, Any]) -> None:
    for path in (url("instance-list"), url("instance-detail", waiting["id"]), url("instance-history", waiting["id"]),
                 url("workflow-list"), url("workflow-detail", wf.ApiOrderFlow.name)):
        response = api.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
