"""What a person sees of the API in a browser (SPEC §12, issue 14): the root at the mount point, the
schema shown (not downloaded) and working without extra settings, titles that say what a page is,
forms that work as given, and tracebacks of failed steps in the history."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from hephaestus_django.api import schema as api_schema
from hephaestus_django.storage.models import WorkflowInstance
from tests.api import workflows_api as wf
from tests.api.conftest import client_for, direct_start, make_user, url

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _page(api: APIClient, path: str) -> str:
    """The page a browser gets (POST-only actions answer a GET with 405 and their form)."""
    response = api.get(path, HTTP_ACCEPT=BROWSER)
    assert response.status_code == (405 if path.endswith(("resume/", "cancel/", "retry/")) else 200), \
        response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def _title(page: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert found is not None
    return html.unescape(found.group(1)).strip()


def _raw_form(page: str) -> Any:
    found = re.search(r'<textarea[^>]*name="_content"[^>]*>(.*?)</textarea>', page, re.S)
    assert found is not None, "no raw data form"
    return json.loads(html.unescape(found.group(1)))


# ---- root ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("client", ["operator", "anonymous"])
def test_the_mount_point_links_to_the_routes(api: APIClient, client: str) -> None:
    caller = api if client == "operator" else APIClient()
    response = caller.get("/api/")
    assert response.status_code == 200
    links = {"instances": "http://testserver/api/instances/", "workflows": "http://testserver/api/workflows/"}
    if api_schema.HAS_SPECTACULAR:
        links["schema"] = "http://testserver/api/schema/"
    assert response.json() == links
    for link in links.values():  # every link leads somewhere for the operator
        assert api.get(link.removeprefix("http://testserver")).status_code == 200


def test_the_root_is_browsable(api: APIClient) -> None:
    page = _page(api, "/api/")
    assert _title(page) == "Workflows API"
    assert "http://testserver/api/instances/" in page


# ---- titles ---------------------------------------------------------------------------------------------
def test_pages_are_titled_by_what_they_show(api: APIClient) -> None:
    direct_start("T")
    titles = {
        "/api/instances/": "Instances",
        url("instance-detail", "order::T"): "Instance",
        url("instance-history", "order::T"): "Instance history",
        url("workflow-list"): "Workflows",
        url("workflow-detail", wf.ApiOrderFlow.name): "Workflow",
    }
    for path, title in titles.items():
        assert _title(_page(api, path)) == title, path
    breadcrumbs = re.search(r'<ul class="breadcrumb">(.*?)</ul>', _page(api, url("instance-detail", "order::T")),
                            re.S)
    assert breadcrumbs is not None
    crumbs = [html.unescape(c).strip() for c in re.findall(r"<a[^>]*>(.*?)</a>|<li class=\"active\">(.*?)</li>",
                                                           breadcrumbs.group(1)) for c in c if c.strip()]
    assert "Instance Instance" not in crumbs and "Workflow Instance" not in crumbs


# ---- forms that work as given ------------------------------------------------------------------------------
def test_the_start_form_works_as_given(api: APIClient) -> None:
    body = _raw_form(_page(api, "/api/instances/"))
    assert set(body) == {"workflow", "value", "context"}
    response = api.post("/api/instances/", body, format="json")
    assert response.status_code == 201, response.content


def test_the_resume_form_works_as_given(api: APIClient) -> None:
    direct_start("R")
    path = url("instance-resume", "order::R")
    body = _raw_form(_page(api, path))
    assert body == {"event": "approved"}
    response = api.post(path, body, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "completed"


def test_the_resume_form_names_the_step_when_several_wait(api: APIClient) -> None:
    direct_start("P", workflow=wf.ApiParallelFlow)
    path = url("instance-resume", "par::P")
    body = _raw_form(_page(api, path))
    assert body == {"event": "go", "step": wf.ApiLeft.registry_name()}
    assert api.post(path, body, format="json").status_code == 200


@pytest.mark.parametrize("verb", ["cancel", "retry"])
def test_cancel_and_retry_forms_are_empty(api: APIClient, verb: str) -> None:
    direct_start("E", context={"fail": True})
    path = url(f"instance-{verb}", "order::E")
    assert _raw_form(_page(api, path)) == {}
    assert api.post(path, {}, format="json").status_code in (200, 409)


# ---- schema ----------------------------------------------------------------------------------------------
pytest_spectacular = pytest.mark.skipif(not api_schema.HAS_SPECTACULAR, reason="needs drf-spectacular")


@pytest_spectacular
def test_a_browser_is_shown_the_schema(api: APIClient) -> None:
    page = _page(api, url("schema"))
    assert _title(page) == "OpenAPI schema"
    assert "openapi: 3" in html.unescape(page)
    assert "Content-Disposition" not in api.get(url("schema"), HTTP_ACCEPT=BROWSER)


@pytest_spectacular
def test_a_client_still_gets_the_document(api: APIClient) -> None:
    response = api.get(url("schema"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert api.get(url("schema"), {"format": "json"}).json()["openapi"].startswith("3.")


SCRIPT = '''
import json, sys, types
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "django_filters",
                    "drf_spectacular", "hephaestus_django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    ROOT_URLCONF="root_urls", USE_TZ=True, SECRET_KEY="x", ALLOWED_HOSTS=["*"],
    HEPHAESTUS={"API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]})
django.setup()
from django.urls import include, path
sys.modules["root_urls"] = types.ModuleType("root_urls")
sys.modules["root_urls"].urlpatterns = [path("api/", include("hephaestus_django.api.urls"))]
from django.test import Client
response = Client().get("/api/schema/", {"format": "json"})
assert response.status_code == 200, response.content[:3000]
document = json.loads(response.content)
print(sorted(document["paths"]))
'''


@pytest_spectacular
def test_the_schema_works_without_naming_drf_spectaculars_schema_class() -> None:
    """A project whose ``REST_FRAMEWORK`` setting does not name drf-spectacular's ``AutoSchema``
    (here: no setting at all) still gets the schema (SPEC §12)."""
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.replace("'", '"')) == [
        "/instances/", "/instances/{id}/", "/instances/{id}/cancel/", "/instances/{id}/children/",
        "/instances/{id}/history/", "/instances/{id}/migrate/", "/instances/{id}/pause/", "/instances/{id}/resume/",
        "/instances/{id}/retry/", "/instances/{id}/unpause/", "/workflows/", "/workflows/{name}/"]


# ---- tracebacks ---------------------------------------------------------------------------------------------
def test_the_history_of_a_step_that_raised_carries_its_traceback(api: APIClient) -> None:
    direct_start("F", context={"fail": True})
    entries = api.get(url("instance-history", "order::F")).json()["results"]
    failed = [e for e in entries if e["kind"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error"] == "RuntimeError: ApiCheck is broken"
    trace = failed[0]["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert 'raise RuntimeError("ApiCheck is broken")' in trace
    assert trace.rstrip().endswith("RuntimeError: ApiCheck is broken")
    assert all(e["traceback"] is None for e in entries if e["kind"] != "failed")


def test_an_error_result_has_no_traceback(api: APIClient) -> None:
    """``Error(...)`` and undeclared events are failures without an exception: no traceback."""
    direct_start("B", workflow=wf.ApiVersioned)  # waits: nothing failed
    direct_start("X", context={"fail": True})
    user = client_for(make_user("viewer", "view"))
    entries = user.get(url("instance-history", "ver::B")).json()["results"]
    assert all(e["traceback"] is None for e in entries)
    assert WorkflowInstance.objects.filter(instance_id="order::X", status="failed").exists()


@pytest_spectacular
@pytest.mark.parametrize("rest_framework", [{}, {"DEFAULT_SCHEMA_CLASS": "rest_framework.schemas.openapi.AutoSchema"}])
def test_the_schema_works_whatever_rest_framework_says(api: APIClient, rest_framework: dict[str, str]) -> None:
    from django.test import override_settings

    with override_settings(REST_FRAMEWORK=rest_framework):
        response = api.get(url("schema"), {"format": "json"})
    assert response.status_code == 200
    assert "/instances/{id}/resume/" in response.json()["paths"]
