"""Authentication and permissions: authenticated by default, model permissions per action."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.api import workflows_api as wf
from tests.api.conftest import client_for, make_user, url

pytestmark = pytest.mark.django_db

ID = "order::PERM"


def routes() -> list[tuple[str, str, dict[str, Any] | None, str, int]]:
    """(method, path, body, permission needed, status when allowed) for every route."""
    return [
        ("get", url("instance-list"), None, "view", 200),
        ("post", url("instance-list"), {"workflow": wf.ApiOrderFlow.name, "value": "NEW"}, "add", 201),
        ("get", url("instance-detail", ID), None, "view", 200),
        ("get", url("instance-history", ID), None, "view", 200),
        ("post", url("instance-resume", ID), {"event": "approved"}, "change", 200),
        ("post", url("instance-cancel", ID), None, "change", 200),
        ("post", url("instance-retry", ID), None, "change", 409),  # allowed; the instance is not failed
        ("get", url("workflow-list"), None, "view", 200),
        ("get", url("workflow-detail", wf.ApiOrderFlow.name), None, "view", 200),
        ("get", url("schema") + "?format=json", None, "view", 200),
    ]


def call(client: APIClient, method: str, path: str, body: dict[str, Any] | None) -> Any:
    if method == "post":
        return client.post(path, body or {}, format="json")
    return client.get(path)


@pytest.fixture
def instance(db: None) -> None:
    from tests.api.conftest import direct_start

    direct_start("PERM")


@pytest.mark.parametrize("route", range(len(routes())))
def test_anonymous_is_refused(instance: None, route: int) -> None:
    method, path, body, _perm, _ok = routes()[route]
    response = call(APIClient(), method, path, body)
    assert response.status_code in (401, 403)


@pytest.mark.parametrize("route", range(len(routes())))
def test_user_without_permissions_is_403(instance: None, route: int) -> None:
    method, path, body, _perm, _ok = routes()[route]
    response = call(client_for(make_user("nobody")), method, path, body)
    assert response.status_code == 403


@pytest.mark.parametrize("perms", [("view",), ("view", "add"), ("view", "change"), ("add", "change")])
@pytest.mark.parametrize("route", range(len(routes())))
def test_each_route_needs_its_permission(instance: None, route: int, perms: tuple[str, ...]) -> None:
    method, path, body, needed, ok = routes()[route]
    response = call(client_for(make_user("u", *perms)), method, path, body)
    if needed in perms:
        assert response.status_code == ok, response.content
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("route", range(len(routes())))
def test_superuser_may_do_everything(instance: None, route: int) -> None:
    method, path, body, _perm, ok = routes()[route]
    response = call(client_for(make_user("root", superuser=True)), method, path, body)
    assert response.status_code == ok


def test_permission_is_checked_before_the_lookup(db: None) -> None:
    reader = client_for(make_user("reader", "view"))
    assert reader.post(url("instance-cancel", "order::nope")).status_code == 403
    assert reader.get(url("instance-detail", "order::nope")).status_code == 404


def test_basic_authentication(instance: None) -> None:
    make_user("basic", "view")
    client = APIClient()
    token = base64.b64encode(b"basic:pw").decode()
    assert client.get(url("instance-list"), HTTP_AUTHORIZATION=f"Basic {token}").status_code == 200
    wrong = base64.b64encode(b"basic:wrong").decode()
    # 401 or 403: DRF answers 401 only when the first authentication class sends WWW-Authenticate.
    assert client.get(url("instance-list"), HTTP_AUTHORIZATION=f"Basic {wrong}").status_code in (401, 403)


def test_session_authentication(instance: None) -> None:
    make_user("session", "view")
    client = APIClient()
    assert client.login(username="session", password="pw")
    assert client.get(url("instance-detail", ID)).status_code == 200


def test_permission_classes_are_configurable(instance: None) -> None:
    setting = {"API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]}
    with override_settings(HEPHAESTUS=setting):
        assert APIClient().get(url("instance-list")).status_code == 200
        assert APIClient().post(url("instance-cancel", ID)).status_code == 200
    assert APIClient().get(url("instance-list")).status_code in (401, 403)


def test_configured_classes_replace_the_model_permissions(instance: None) -> None:
    staff = make_user("staff")
    staff.is_staff = True
    staff.save()
    with override_settings(HEPHAESTUS={"API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"]}):
        assert client_for(staff).get(url("instance-list")).status_code == 200
        assert client_for(make_user("plain", "view")).get(url("instance-list")).status_code == 403


def test_options_describes_only_the_actions_the_user_may_take(instance: None) -> None:
    reader = client_for(make_user("reader", "view"))
    operator = client_for(make_user("operator", "view", "add", "change"))
    for path, fields in ((url("instance-list"), {"workflow", "value", "id", "context", "version",
                                                 "telemetry_metadata"}),
                         (url("instance-resume", ID), {"event", "step", "data", "idempotency_key"})):
        assert "actions" not in reader.options(path).json()
        assert set(operator.options(path).json()["actions"]["POST"]) == fields
