"""SPEC §9 through the API: resume data and idempotency keys (body and header), unknown body
fields refused on every POST, the ``parent`` field and ``instances/{id}/children/``."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

import hephaestus_django as h
from hephaestus_django.storage.models import HistoryEntry, ResumeKey, WorkflowInstance
from tests.api import workflows_api as wf
from tests.api.conftest import client_for, make_user, url
from tests.workflows_compose import ParcelChild, ParcelParent, TwoWaitFlow

pytestmark = pytest.mark.django_db

APPROVE = wf.ApiApprove.registry_name()


def post(api: APIClient, path: str, body: Any = None, **headers: str) -> Any:
    return api.post(path, body if body is not None else {}, format="json", headers=headers or None)


def state(instance_id: str) -> tuple[Any, ...]:
    row = WorkflowInstance.objects.filter(instance_id=instance_id).latest("pk")
    return row.status, row.revision, row.context, HistoryEntry.objects.filter(instance=row).count()


# ---- resume data ---------------------------------------------------------------------------------------
def test_resume_with_data(api: APIClient, waiting: dict[str, Any]) -> None:
    response = post(api, url("instance-resume", waiting["id"]),
                    {"event": "approved", "data": {"approved_by": "Zoë", "level": 2}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed"
    assert body["context"]["steps"]["api_approve"] == {"approved_by": "Zoë", "level": 2}
    history = api.get(url("instance-history", waiting["id"])).json()["results"]
    resumed = [e for e in history if e["kind"] == "resumed"]
    assert [(e["step"], e["context_updates"]) for e in resumed] == [(APPROVE, {"approved_by": "Zoë", "level": 2})]


@pytest.mark.parametrize(("data", "message"), [
    (["approved_by", "Zoë"], 'Expected a dictionary of items but got type "list".'),
    ("Zoë", 'Expected a dictionary of items but got type "str".'),
    ({"note": "a\u0000b"}, "data['note'] contains a NUL character"),
])
def test_resume_with_bad_data_is_400_keyed_data_and_changes_nothing(api: APIClient, waiting: dict[str, Any],
                                                                      data: Any, message: str) -> None:
    before = state(waiting["id"])
    response = post(api, url("instance-resume", waiting["id"]), {"event": "approved", "data": data})
    assert response.status_code == 400
    assert list(response.json()) == ["data"]
    assert response.json()["data"][0].startswith(message)
    assert state(waiting["id"]) == before


def test_resume_with_data_that_is_not_json_is_400(api: APIClient, waiting: dict[str, Any]) -> None:
    before = state(waiting["id"])
    response = api.post(url("instance-resume", waiting["id"]), '{"event": "approved", "data": {"x": NaN}}',
                        content_type="application/json")
    assert response.status_code == 400
    response = api.post(url("instance-resume", waiting["id"]), '{"event": "approved", "data": {"x": ',
                        content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert state(waiting["id"]) == before


# ---- idempotency keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["body", "header", "both"])
def test_a_redelivered_resume_answers_200_and_changes_nothing(api: APIClient, where: str) -> None:
    h.start_instance(TwoWaitFlow, {}, id="twowait::A1")
    body: dict[str, Any] = {"event": "ping", "data": {"delivery": 1}}
    headers = {}
    if where in ("body", "both"):
        body["idempotency_key"] = "evt_7"
    if where in ("header", "both"):
        headers["Idempotency-Key"] = "evt_7"
    first = post(api, url("instance-resume", "twowait::A1"), body, **headers)
    assert first.status_code == 200, first.content
    after_first = state("twowait::A1")
    again = post(api, url("instance-resume", "twowait::A1"), {**body, "data": {"delivery": 2}}, **headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert state("twowait::A1") == after_first
    assert again.json()["context"]["steps"] == {"k_first": {"delivery": 1}}
    assert list(ResumeKey.objects.values_list("key", flat=True)) == ["evt_7"]


def test_the_header_and_the_field_must_agree(api: APIClient, waiting: dict[str, Any]) -> None:
    before = state(waiting["id"])
    response = post(api, url("instance-resume", waiting["id"]), {"event": "approved", "idempotency_key": "a"},
                    **{"Idempotency-Key": "b"})
    assert response.status_code == 400
    assert response.json() == {"idempotency_key": [
        "The Idempotency-Key header and the idempotency_key field differ; give one of them."]}
    assert state(waiting["id"]) == before


@pytest.mark.parametrize(("body", "headers", "message"), [
    ({"idempotency_key": "k" * 256}, {}, "Ensure this field has no more than 255 characters."),
    ({}, {"Idempotency-Key": "k" * 256}, "Idempotency-Key header: Ensure this field has no more than 255 characters."),
    ({"idempotency_key": ""}, {}, "This field may not be blank."),
    ({"idempotency_key": 12}, {}, "Not a valid string."),
])
def test_bad_idempotency_keys_are_400(api: APIClient, waiting: dict[str, Any], body: dict[str, Any],
                                       headers: dict[str, str], message: str) -> None:
    before = state(waiting["id"])
    response = post(api, url("instance-resume", waiting["id"]), {"event": "approved", **body}, **headers)
    assert response.status_code == 400
    assert response.json() == {"idempotency_key": [message]}
    assert state(waiting["id"]) == before
    assert not ResumeKey.objects.exists()


def test_a_key_of_255_characters_is_accepted(api: APIClient, waiting: dict[str, Any]) -> None:
    response = post(api, url("instance-resume", waiting["id"]), {"event": "approved"},
                    **{"Idempotency-Key": "k" * 255})
    assert response.status_code == 200
    assert ResumeKey.objects.get().key == "k" * 255


# ---- unknown fields -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("action", "body", "field"), [
    ("instance-list", {"workflow": wf.ApiOrderFlow.name, "value": "U-1", "contxt": {"a": 1}}, "contxt"),
    ("instance-resume", {"evnet": "approved", "event": "approved"}, "evnet"),
    ("instance-resume", {"event": "approved", "idempotencykey": "k"}, "idempotencykey"),
    ("instance-cancel", {"compensate": True, "reason": "x"}, "reason"),
    ("instance-retry", {"force": True}, "force"),
])
def test_every_post_body_refuses_unknown_fields(api: APIClient, waiting: dict[str, Any], action: str,
                                                 body: dict[str, Any], field: str) -> None:
    path = url(action) if action == "instance-list" else url(action, waiting["id"])
    before = state(waiting["id"]), WorkflowInstance.objects.count()
    response = post(api, path, body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert response.json()[field] == [response.json()[field][0]]
    assert response.json()[field][0].startswith("Unknown field (accepted: ")
    assert (state(waiting["id"]), WorkflowInstance.objects.count()) == before


def test_unknown_fields_are_reported_with_the_other_errors(api: APIClient, waiting: dict[str, Any]) -> None:
    response = post(api, url("instance-resume", waiting["id"]), {"step": 3.5, "colour": "red"})
    assert response.status_code == 400
    assert response.json() == {"event": ["This field is required."],
                               "colour": ["Unknown field (accepted: event, step, data, idempotency_key)."]}


def test_cancel_and_retry_take_an_empty_body(api: APIClient, waiting: dict[str, Any]) -> None:
    assert api.post(url("instance-cancel", waiting["id"])).status_code == 200
    assert post(api, url("instance-retry", waiting["id"]), {}).status_code == 409


# ---- parent and children ----------------------------------------------------------------------------------------
def test_instances_show_their_parent_and_list_their_children(api: APIClient) -> None:
    h.start_instance(ParcelParent, {"parcels": [f"P{i}" for i in range(5)]}, id="cparent::O1")
    parent = api.get(url("instance-detail", "cparent::O1")).json()
    assert parent["parent"] is None
    child = api.get(url("instance-detail", "cparcel::P3")).json()
    assert child["parent"] == "cparent::O1"
    listed = api.get(url("instance-list"), {"workflow": ParcelChild.name}).json()["results"]
    assert {c["parent"] for c in listed} == {"cparent::O1"}

    first = api.get(url("instance-children", "cparent::O1"), {"page_size": 2}).json()
    assert [c["id"] for c in first["results"]] == ["cparcel::P0", "cparcel::P1"]
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()
    assert [c["id"] for c in second["results"] + third["results"]] == ["cparcel::P2", "cparcel::P3", "cparcel::P4"]
    assert third["next"] is None
    assert all(c["parent"] == "cparent::O1" and c["status"] == "waiting" for c in third["results"])
    assert api.get(url("instance-children", "cparcel::P0")).json()["results"] == []


def test_children_of_an_unknown_instance_is_404(api: APIClient) -> None:
    assert api.get(url("instance-children", "cparent::nope")).status_code == 404


def test_children_need_the_view_permission(db: None) -> None:
    h.start_instance(ParcelParent, {"parcels": ["P1"]}, id="cparent::O2")
    assert client_for(make_user("nobody")).get(url("instance-children", "cparent::O2")).status_code == 403
    assert client_for(make_user("viewer", "view")).get(url("instance-children", "cparent::O2")).status_code == 200


def test_children_list_costs_two_queries(api: APIClient, django_assert_num_queries: Any) -> None:
    h.start_instance(ParcelParent, {"parcels": [f"P{i}" for i in range(20)]}, id="cparent::O3")
    api.get(url("instance-children", "cparent::O3"))  # permissions: warm the caches
    with django_assert_num_queries(2):  # the parent's pk, one page of children
        response = api.get(url("instance-children", "cparent::O3"))
    assert len(response.json()["results"]) == 20


def test_the_parent_step_cannot_be_resumed_through_the_api(api: APIClient) -> None:
    h.start_instance(ParcelParent, {"parcels": ["P1"]}, id="cparent::O4")
    response = post(api, url("instance-resume", "cparent::O4"), {"event": "completed"})
    assert response.status_code == 409
    assert "waits only for its child workflows" in response.json()["detail"]
