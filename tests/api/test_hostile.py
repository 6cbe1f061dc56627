"""Hostile input (SPEC §13): the API never answers 500 to input and never sends a traceback or a
server path; bodies over the size limit get a JSON 413. Each case checks the status, the message
and that nothing was written."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core import signing
from django.test import override_settings
from rest_framework.test import APIClient

from hephaestus_django.api.pagination import _SALT
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
from tests.api import workflows_api as wf
from tests.api.conftest import direct_start, url

pytestmark = pytest.mark.django_db

START = "/api/instances/"


def _post_raw(api: APIClient, path: str, text: str) -> Any:
    return api.post(path, text, content_type="application/json")


def _rows() -> tuple[int, int]:
    return WorkflowInstance.objects.count(), HistoryEntry.objects.count()


# ---- ids in paths -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/instances/%00/"),
    ("get", "/api/instances/order::A%00B/"),
    ("get", "/api/instances/%00/history/"),
    ("post", "/api/instances/%00/resume/"),
    ("post", "/api/instances/%00/cancel/"),
    ("post", "/api/instances/%00/retry/"),
    ("get", "/api/workflows/%00/"),
])
def test_a_nul_in_a_path_is_404_with_a_message(api: APIClient, method: str, path: str) -> None:
    direct_start("A")
    before = _rows()
    response = getattr(api, method)(path, {"event": "approved"} if method == "post" else None, format="json")
    assert response.status_code == 404
    assert "NUL character" in response.json()["detail"] or "no workflow named" in response.json()["detail"]
    assert _rows() == before


@pytest.mark.parametrize("param", ["workflow", "search", "current_step", "status", "ordering", "expand",
                                   "cursor", "page_size", "created_after", "version"])
def test_a_nul_in_a_list_filter_is_400_keyed_by_it(api: APIClient, param: str) -> None:
    response = api.get(url("instance-list"), {param: "a\x00b"})
    assert response.status_code == 400, response.content
    assert list(response.json()) == [param]


# ---- bodies the database cannot store -----------------------------------------------------------------
def _start_body(**context_or_fields: Any) -> dict[str, Any]:
    return {"workflow": wf.ApiOrderFlow.name, "value": "H-1", **context_or_fields}


def test_json_nested_beyond_the_parsers_limit_is_400_keyed_by_the_field(api: APIClient) -> None:
    deep = "[" * 5000 + "]" * 5000
    text = f'{{"workflow": "{wf.ApiOrderFlow.name}", "value": "H-1", "context": {{"a": {deep}}}}}'
    response = _post_raw(api, START, text)
    assert response.status_code == 400
    assert response.json() == {"context": ["context is nested more than 100 levels deep; nothing was written"]}
    assert _rows() == (0, 0)


def test_json_nested_deeper_than_the_database_takes_is_400_keyed_by_the_field(api: APIClient) -> None:
    value: Any = 1
    for _ in range(150):
        value = {"k": value}
    response = api.post(START, _start_body(context={"a": value}), format="json")
    assert response.status_code == 400
    [message] = response.json()["context"]
    assert "nested more than 100 levels deep" in message
    assert _rows() == (0, 0)


def test_a_body_that_is_only_deep_nesting_is_400(api: APIClient) -> None:
    response = _post_raw(api, START, "[" * 5000 + "]" * 5000)
    assert response.status_code == 400
    assert "nested more than 100 levels deep" in response.json()["detail"]


@pytest.mark.parametrize(("literal", "shown"), [("1e400", "inf"), ("-1e400", "-inf"), ("NaN", "nan"),
                                                ("Infinity", "inf"), ("-Infinity", "-inf")])
@pytest.mark.parametrize("field", ["context", "telemetry_metadata"])
def test_numbers_json_cannot_hold_are_400_keyed_by_the_field(api: APIClient, literal: str, shown: str,
                                                             field: str) -> None:
    text = f'{{"workflow": "{wf.ApiOrderFlow.name}", "value": "H-1", "{field}": {{"x": {literal}}}}}'
    response = _post_raw(api, START, text)
    assert response.status_code == 400
    assert response.json() == {field: [f"{field}['x'] is {shown}, which JSON cannot represent; nothing was written"]}
    assert _rows() == (0, 0)


@pytest.mark.parametrize("field", ["value", "id", "workflow", "version"])
def test_nan_in_a_plain_field_is_400_keyed_by_it(api: APIClient, field: str) -> None:
    body = json.dumps(_start_body()).replace("}", f', "{field}": NaN}}') if field != "value" else \
        f'{{"workflow": "{wf.ApiOrderFlow.name}", "value": NaN}}'
    response = _post_raw(api, START, body)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert "nan, which JSON cannot represent" in response.json()[field][0]
    assert _rows() == (0, 0)


def test_a_nul_in_the_context_is_400_keyed_by_it(api: APIClient) -> None:
    response = api.post(START, _start_body(context={"name": "a\x00b"}), format="json")
    assert response.status_code == 400
    assert response.json() == {"context": [
        "context['name'] contains a NUL character (\\u0000), which the database cannot store; nothing was written"]}
    assert _rows() == (0, 0)


def test_a_resume_body_with_nan_is_400_and_the_instance_still_waits(api: APIClient) -> None:
    direct_start("R")
    before = _rows()
    response = _post_raw(api, url("instance-resume", "order::R"), '{"event": NaN}')
    assert response.status_code == 400
    assert list(response.json()) == ["event"]
    assert _rows() == before
    assert WorkflowInstance.objects.get().status == "waiting"


# ---- size ------------------------------------------------------------------------------------------------
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_a_body_over_the_size_limit_is_a_json_413(api: APIClient, accept: str) -> None:
    body = json.dumps(_start_body(context={"blob": "x" * 2000}))
    response = api.post(START, body, content_type="application/json", HTTP_ACCEPT=accept)
    assert response.status_code == 413
    if accept == "application/json":
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "The request body is larger than the 1000 bytes this server accepts."}
    else:
        assert b"The request body is larger than the 1000 bytes this server accepts." in response.content
    assert _rows() == (0, 0)


# ---- cursors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    {"o": "-created_at,-pk", "p": [], "r": 0},
    {"o": "-created_at,-pk", "p": ["x"], "r": 0},
    {"o": "-created_at,-pk", "p": ["not a date", 1], "r": 0},
    {"o": "-created_at,-pk", "p": ["2024-01-01T00:00:00+00:00", "one"], "r": 0},
    {"o": "-created_at,-pk", "p": ["2024-01-01T00:00:00+00:00", 10**30], "r": 0},
    {"o": "-created_at,-pk", "p": ["2024-01-01T00:00:00", 1], "r": 0},
    {"o": "-created_at,-pk", "p": ["9999-12-31T23:59:59-23:59", 1], "r": 0},
    {"o": "-created_at,-pk", "p": [None, 1], "r": 0},
    {"o": "-created_at,-pk", "p": [{"a": 1}, [1]], "r": 0},
    {"o": "-created_at,-pk", "p": ["2024-01-01T00:00:00+00:00", 1], "r": "yes"},
    {"o": "-created_at,-pk", "p": "2024", "r": 0},
    {"o": "-created_at,-pk"},
    {"o": "id,pk", "p": ["a\x00b", 1], "r": 0},
])
def test_a_validly_signed_malformed_cursor_is_400(api: APIClient, payload: dict[str, Any]) -> None:
    direct_start("C")
    ordering = "id" if payload["o"].startswith("id") else None
    params = {"cursor": signing.dumps(payload, salt=_SALT), **({"ordering": ordering} if ordering else {})}
    response = api.get(url("instance-list"), params)
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["cursor"]


@pytest.mark.parametrize("position", [["x"], [10**30], [-1.5], [None], [[1]], [1, 2], []])
def test_a_validly_signed_malformed_history_cursor_is_400(api: APIClient, position: list[Any]) -> None:
    direct_start("C")
    token = signing.dumps({"o": "seq", "p": position, "r": 0}, salt=_SALT)
    response = api.get(url("instance-history", "order::C"), {"cursor": token})
    assert response.status_code == 400
    assert response.json() == {"cursor": ["Invalid cursor."]}


# ---- error bodies are messages ---------------------------------------------------------------------------
_TRACE = re.compile(r"Traceback|File \"|\.py\b|/work/|site-packages")


def test_a_failing_dispatch_answers_a_message_without_traceback(api: APIClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the immediate backend a start whose steps cannot run raises ``DispatchError`` with the
    task's traceback; the client gets its last line, the log keeps the rest."""
    from hephaestus_django.runtime import dispatch

    def broken(self: Any, instance: Any, steps: Any) -> int:
        try:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        except ValueError:
            import traceback

            raise dispatch.DispatchError(f"running the steps of {instance.id} failed:\n"
                                         f"{traceback.format_exc()}") from None

    monkeypatch.setattr(dispatch.DjangoRunner, "_run_here", broken)
    response = api.post(START, _start_body(), format="json")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail == ("running the steps of order::H-1 failed: "
                      "ValueError: A string literal cannot contain NUL (0x00) characters.")
    assert not _TRACE.search(response.content.decode())


def test_a_step_whose_result_cannot_be_stored_never_answers_with_a_traceback(api: APIClient) -> None:
    response = api.post(START, {"workflow": wf.ApiPoisonFlow.name, "value": "P-1"}, format="json")
    assert response.status_code in (201, 409), response.content
    assert not _TRACE.search(response.content.decode())


def test_no_error_body_carries_a_server_path(api: APIClient) -> None:
    """Every error answer of a tour of bad requests is a message: no traceback, no path."""
    direct_start("T")
    answers = [
        api.get("/api/instances/nope/"), api.get("/api/workflows/nope/"),
        api.post(START, {"workflow": "nope", "value": "x"}, format="json"),
        api.post(START, "{", content_type="application/json"),
        api.post(url("instance-resume", "order::T"), {"event": "nope"}, format="json"),
        api.post(url("instance-retry", "order::T"), {}, format="json"),
        api.get(url("instance-list"), {"cursor": "garbage"}),
    ]
    for response in answers:
        assert 400 <= response.status_code < 500
        assert not _TRACE.search(response.content.decode()), response.content
