"""The OpenAPI schema (drf-spectacular) describes exactly the routes and shapes of SPEC §6 and §2.1,
and a bounded schemathesis run against it finds no 5xx and no response that breaks it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from rest_framework.test import APIClient

import hephaestus_django as h
from hephaestus_django.api import schema as api_schema
from hephaestus_django.api.serializers import HistoryEntrySerializer, InstanceSerializer, WorkflowSerializer
from hephaestus_django.core import keys, registry
from hephaestus_django.shapes import history_shape, instance_shape
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
from tests.api import workflows_api as wf
from tests.api.conftest import client_for, direct_start, make_user, url

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not api_schema.HAS_SPECTACULAR, reason="needs drf-spectacular"),
]

ROUTES = {
    "/instances/": {"get", "post"},
    "/instances/{id}/": {"get"},
    "/instances/{id}/resume/": {"post"},
    "/instances/{id}/cancel/": {"post"},
    "/instances/{id}/retry/": {"post"},
    "/instances/{id}/pause/": {"post"},
    "/instances/{id}/unpause/": {"post"},
    "/instances/{id}/migrate/": {"post"},
    "/instances/{id}/history/": {"get"},
    "/instances/{id}/children/": {"get"},
    "/workflows/": {"get"},
    "/workflows/{name}/": {"get"},
}
LIST_FILTERS = {"workflow", "status", "workflow_version", "version", "current_step", "created_after", "created_before",
                "updated_after", "updated_before", "search", "ordering", "cursor", "page_size", "expand"}


@pytest.fixture
def document(db: None) -> dict[str, Any]:
    response = client_for(make_user("root", superuser=True)).get(url("schema"), {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_lists_exactly_the_routes(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    assert {path: set(ops) - {"parameters"} for path, ops in document["paths"].items()} == ROUTES
    assert document["servers"] == [{"url": "/api"}]


def test_schema_documents_the_list_filters(document: dict[str, Any]) -> None:
    params = {p["name"]: p for p in document["paths"]["/instances/"]["get"]["parameters"]}
    assert set(params) == LIST_FILTERS
    assert params["status"]["schema"]["type"] == "array"
    assert params["status"]["explode"] is True


def test_schema_documents_every_error_answer(document: dict[str, Any]) -> None:
    responses = {(path, method): set(op["responses"])
                 for path, ops in document["paths"].items() for method, op in ops.items()}
    assert responses[("/instances/", "post")] == {"201", "400", "401", "403", "409"}
    assert responses[("/instances/{id}/resume/", "post")] == {"200", "400", "401", "403", "404", "409"}
    for action in ("cancel", "retry", "pause", "unpause", "migrate"):  # their bodies reject unknown fields: 400
        assert responses[(f"/instances/{{id}}/{action}/", "post")] == {"200", "400", "401", "403", "404", "409"}
    assert responses[("/instances/{id}/children/", "get")] == {"200", "400", "401", "403", "404"}
    assert responses[("/workflows/{name}/", "get")] == {"200", "400", "401", "403", "404"}


@pytest.mark.parametrize(("component", "serializer"), [("Instance", InstanceSerializer),
                                                       ("HistoryEntry", HistoryEntrySerializer),
                                                       ("Workflow", WorkflowSerializer)])
def test_components_name_the_shape_keys(document: dict[str, Any], component: str, serializer: Any) -> None:
    schema = document["components"]["schemas"][component]
    assert set(schema["properties"]) == set(schema["required"]) == set(serializer().fields)


def test_serializers_declare_what_the_shapes_produce(db: None) -> None:
    direct_start("SHAPE")
    row = WorkflowInstance.objects.get()
    assert set(instance_shape(row)) == set(InstanceSerializer().fields)
    assert set(history_shape(HistoryEntry.objects.first())) == set(HistoryEntrySerializer().fields)


def test_schema_needs_authentication(db: None) -> None:
    assert APIClient().get(url("schema")).status_code in (401, 403)


# ---- schemathesis ---------------------------------------------------------------------------------
AUTH = ("fuzzer", "pw")  # basic authentication, which schemathesis knows to be the credentials


@pytest.fixture
def wsgi_app(db: None) -> Iterator[Any]:
    """Django's WSGI app inside the test transaction (as the test client runs it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_schema(wsgi_app: Any) -> Any:
    make_user("fuzzer", superuser=True)
    # Something to find: a waiting, a failed and a finished instance.
    direct_start("FUZZ-1")
    direct_start("FUZZ-2", context={"fail": True})
    direct_start("FUZZ-3", context={"bad": True})
    direct_start("FUZZ-4", workflow=wf.ApiParallelFlow)
    direct_start("FUZZ-5", workflow=wf.ApiMovable)
    direct_start("FUZZ-6")
    h.pause("order::FUZZ-6")
    token = base64.b64encode(":".join(AUTH).encode()).decode()
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app,
                                          headers={"Authorization": f"Basic {token}"})


OPERATIONS = sorted((path, method) for path, methods in ROUTES.items() for method in methods)
KNOWN_IDS = ["order::FUZZ-1", "order::FUZZ-2", "order::FUZZ-3", "par::FUZZ-4", "mov::FUZZ-5", "order::FUZZ-6"]
STARTABLE = [wf.ApiOrderFlow, wf.ApiParallelFlow, wf.ApiVersioned, wf.ApiNoScopeFlow, wf.ApiGlobalFlow]
EVENTS = ["approved", "rejected", "go", "ok", "received"]


def aim(case: Any, data: Any) -> None:
    """Point a generated case at things that exist, so fuzzing reaches past the 404s and 400s."""
    st = hypothesis.strategies
    params = case.path_parameters or {}
    if "id" in params:
        params["id"] = data.draw(st.sampled_from(KNOWN_IDS))
    if "name" in params:
        params["name"] = data.draw(st.sampled_from(sorted(w.name for w in registry.all_workflows())))
    if not isinstance(case.body, dict):
        return
    if case.path == "/instances/":
        case.body["workflow"] = data.draw(st.sampled_from(STARTABLE)).name
        case.body.pop("id", None)
        case.body["value"] = data.draw(st.from_regex(keys.VALUE_RE, fullmatch=True))
        if data.draw(st.booleans()):
            case.body.pop("version", None)
    elif case.path.endswith("/resume/"):
        case.body["event"] = data.draw(st.sampled_from(EVENTS))
        if data.draw(st.booleans()):  # an event the waiting instance's step declares
            params["id"], case.body["event"] = "order::FUZZ-1", data.draw(st.sampled_from(["approved", "rejected"]))
        if data.draw(st.booleans()):
            case.body.pop("step", None)
        if data.draw(st.booleans()):
            case.body.pop("data", None)
        if data.draw(st.booleans()):  # the header and the field must agree: keep at most one of them
            (case.headers or {}).pop("Idempotency-Key", None)
        else:
            case.body.pop("idempotency_key", None)
    elif case.path.endswith("/migrate/"):
        params["id"] = "mov::FUZZ-5"
        case.body = {"version": data.draw(st.sampled_from([1, 2]))}  # no generated extra field (400)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_schema: Any, path: str,
                                                                      method: str) -> None:
    operation = fuzz_schema[path][method.upper()]

    @hypothesis.given(case=operation.as_strategy(), data=hypothesis.strategies.data())
    @hypothesis.settings(max_examples=20, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def run(case: Any, data: Any) -> None:
        if data.draw(hypothesis.strategies.booleans()):
            aim(case, data)
        # Every check but "schema-valid data is accepted": names, events and cursors are checked against
        # the registry, the waiting step and the signature, which a schema cannot express.
        response = case.call_and_validate(auth=AUTH, excluded_checks=[positive_data_acceptance])
        STATUSES.append(response.status_code)

    STATUSES: list[int] = []
    run()
    assert 401 not in STATUSES and 403 not in STATUSES  # the fuzzer was authenticated
    assert any(200 <= code < 300 for code in STATUSES)  # and reached real answers


def test_the_api_works_without_drf_spectacular() -> None:
    """Without the optional extra: no ``schema/`` route, and every other route still resolves."""
    import subprocess
    import sys
    from pathlib import Path

    script = '''
import sys
from importlib.abc import MetaPathFinder

class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "drf_spectacular" or name.startswith("drf_spectacular."):
            raise ModuleNotFoundError(name)

sys.meta_path.insert(0, Block())
import types
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "django_filters",
                    "hephaestus_django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    ROOT_URLCONF="root_urls", USE_TZ=True, SECRET_KEY="x")
django.setup()
from django.urls import NoReverseMatch, include, path, reverse
sys.modules["root_urls"] = types.ModuleType("root_urls")
sys.modules["root_urls"].urlpatterns = [path("api/", include("hephaestus_django.api.urls"))]
from hephaestus_django.api import schema, urls
assert not schema.HAS_SPECTACULAR and schema.schema_view() is None
assert reverse("hephaestus:instance-history", args=["order::a.b-c_d"]) == "/api/instances/order::a.b-c_d/history/"
try:
    reverse("hephaestus:schema")
except NoReverseMatch:
    print("ok")
'''
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
