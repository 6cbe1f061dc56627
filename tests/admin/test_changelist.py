"""The instance changelist: columns, filters, search, dates, counts and query budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hephaestus_django.admin.pagination import EstimatedCountPaginator
from hephaestus_django.storage.models import WorkflowInstance
from tests.admin import workflows_admin as w
from tests.admin.conftest import CHANGELIST, bulk_rows

pytestmark = pytest.mark.django_db

TABLE = WorkflowInstance._meta.db_table


def _ids(response: Any) -> list[str]:
    return [obj.instance_id for obj in response.context["cl"].result_list]


def test_columns_show_status_colour_version_and_step(admin_client: Any, start: Any) -> None:
    start(w.AdmApprovalFlow, "A-1", {"name": "Zoë"})
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<span class="hx-status hx-status-waiting">waiting</span>' in html
    assert 'title="tests.admin.workflows_admin.AdmApprove">AdmApprove</span>' in html
    assert 'title="tests.admin.AdmApprovalFlow">AdmApprovalFlow</span>' in html
    assert ">v1<" in html
    assert "adm::A-1" in html
    assert "hephaestus_django/admin.css" in html
    assert "Registered workflows" in html


def test_rows_are_loaded_without_their_json_columns(admin_client: Any) -> None:
    bulk_rows(5)
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(CHANGELIST)
    row_queries = [q["sql"] for q in queries.captured_queries if f'FROM "{TABLE}"' in q["sql"]]
    assert row_queries
    assert not any('."context"' in sql or '."step_configs"' in sql for sql in row_queries)


def test_filters_by_status_workflow_and_version(admin_client: Any, start: Any) -> None:
    start(w.AdmApprovalFlow, "W-1")
    start(w.AdmFlakyFlow, "F-1")
    start(w.AdmVersioned, "V-1", version=1)
    start(w.AdmVersioned, "V-2")

    assert _ids(admin_client.get(CHANGELIST, {"status__exact": "failed"})) == ["flaky::F-1"]
    assert _ids(admin_client.get(CHANGELIST, {"workflow": w.AdmApprovalFlow.name})) == ["adm::W-1"]
    assert _ids(admin_client.get(CHANGELIST, {"workflow": w.AdmVersioned.name, "workflow_version": "2"})) \
        == ["ver::V-2"]
    assert sorted(_ids(admin_client.get(CHANGELIST, {"workflow_version": "1"}))) == [
        "adm::W-1", "flaky::F-1", "ver::V-1"]
    # a malformed version is refused the way Django refuses bad lookups: back to the list with ?e=1
    response = admin_client.get(CHANGELIST, {"workflow_version": "x"})
    assert response.status_code == 302 and "e=1" in response["Location"]


def test_filter_choices_come_from_the_registry(admin_client: Any, start: Any) -> None:
    start(w.AdmApprovalFlow, "W-1")
    response = admin_client.get(CHANGELIST, {"workflow": "gone.Workflow"})
    specs = {spec.title: spec for spec in response.context["cl"].filter_specs}
    workflow_choices = {c["display"] for c in specs["workflow"].choices(response.context["cl"])}
    # registered workflows, and the selected one that is not registered
    assert {"AdmApprovalFlow", "AdmParallelFlow", "Workflow"} <= workflow_choices
    versions = {c["display"] for c in specs["version"].choices(response.context["cl"])}
    assert "v1" in versions
    # versions of the selected workflow only
    response = admin_client.get(CHANGELIST, {"workflow": w.AdmVersioned.name})
    specs = {spec.title: spec for spec in response.context["cl"].filter_specs}
    assert [c["display"] for c in specs["version"].choices(response.context["cl"])] == ["All", "v1", "v2"]


def test_search_by_id_prefix_and_business_value(admin_client: Any, start: Any) -> None:
    start(w.AdmApprovalFlow, "ORD-2024.17")
    start(w.AdmApprovalFlow, "ORD-2025.01")
    start(w.AdmGateFlow, "ORD-2024.17")
    assert _ids(admin_client.get(CHANGELIST, {"q": "adm::ORD-2024"})) == ["adm::ORD-2024.17"]
    assert sorted(_ids(admin_client.get(CHANGELIST, {"q": "ORD-2024.17"}))) == [
        "adm::ORD-2024.17", "gate::ORD-2024.17"]
    assert _ids(admin_client.get(CHANGELIST, {"q": "nothing"})) == []


def test_date_hierarchy_drills_down_from_first_to_last_row(admin_client: Any) -> None:
    bulk_rows(3, start_at=datetime(2023, 11, 30, tzinfo=UTC), step=timedelta(days=40))  # 2023-11 .. 2024-02
    hierarchy = admin_client.get(CHANGELIST).context["hx_date_hierarchy"]
    assert [c["title"] for c in hierarchy["choices"]] == ["2023", "2024"]
    response = admin_client.get(CHANGELIST, {"created_at__year": "2024"})
    assert len(response.context["cl"].result_list) == 2
    hierarchy = response.context["hx_date_hierarchy"]
    assert [c["title"] for c in hierarchy["choices"]] == ["January 2024", "February 2024"]
    hierarchy = admin_client.get(CHANGELIST, {"created_at__year": "2024", "created_at__month": "1"}).context[
        "hx_date_hierarchy"]
    assert [c["title"] for c in hierarchy["choices"]] == ["January 9"]
    response = admin_client.get(CHANGELIST, {"created_at__year": "2024", "created_at__month": "1",
                                             "created_at__day": "9"})
    assert response.context["hx_date_hierarchy"]["choices"] == [{"title": "January 9"}]
    assert _ids(response) == ["bulk::1"]
    assert admin_client.get(CHANGELIST, {"q": "nothing"}).context["hx_date_hierarchy"] is None


def _changelist_queries(client: Any, **params: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return len(queries.captured_queries)


def test_query_count_does_not_grow_with_the_table(admin_client: Any) -> None:
    bulk_rows(50, prefix="small")
    small = _changelist_queries(admin_client)
    small_filtered = _changelist_queries(admin_client, status__exact="completed")
    bulk_rows(4950, prefix="large", start_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert WorkflowInstance.objects.count() == 5000
    assert _changelist_queries(admin_client) == small
    assert _changelist_queries(admin_client, status__exact="completed") == small_filtered
    response = admin_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 50
    assert response.context["cl"].result_count == 5000


def test_query_count_above_the_count_limit(admin_client: Any, settings: Any) -> None:
    settings.HEPHAESTUS = {"ADMIN_COUNT_LIMIT": 100}
    bulk_rows(200, prefix="small")
    before = _changelist_queries(admin_client)
    bulk_rows(4800, prefix="large", start_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert _changelist_queries(admin_client) == before


def test_count_is_exact_up_to_the_limit(settings: Any) -> None:
    settings.HEPHAESTUS = {"ADMIN_COUNT_LIMIT": 30}
    bulk_rows(30)
    paginator = EstimatedCountPaginator(WorkflowInstance.objects.all(), 10)
    assert paginator.count == 30
    assert not paginator.is_estimate


def test_count_above_the_limit_is_exact_off_postgresql(settings: Any) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL estimates")
    settings.HEPHAESTUS = {"ADMIN_COUNT_LIMIT": 10}
    bulk_rows(25)
    paginator = EstimatedCountPaginator(WorkflowInstance.objects.all(), 10)
    assert paginator.count == 25
    assert not paginator.is_estimate


@pytest.mark.postgres
def test_postgresql_estimates_large_counts(admin_client: Any, settings: Any) -> None:
    settings.HEPHAESTUS = {"ADMIN_COUNT_LIMIT": 10}
    bulk_rows(300)
    bulk_rows(40, prefix="failed", status="failed")
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{TABLE}"')

    unfiltered = EstimatedCountPaginator(WorkflowInstance.objects.all(), 10)
    assert unfiltered.count == pytest.approx(340, rel=0.2)
    assert unfiltered.is_estimate
    filtered = EstimatedCountPaginator(WorkflowInstance.objects.filter(status="failed"), 10)
    assert filtered.count > 10
    assert filtered.is_estimate
    # a filter that the planner overestimates is still counted exactly when the rows are few
    few = EstimatedCountPaginator(WorkflowInstance.objects.filter(instance_id__startswith="failed::5"), 10)
    assert few.count == 1
    assert not few.is_estimate

    response = admin_client.get(CHANGELIST)
    assert response.context["cl"].paginator.is_estimate
    assert "About 3" in response.content.decode()  # "About 340 rows", give or take the estimate


def test_reltuples_unknown_falls_back_to_an_exact_count(settings: Any, monkeypatch: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    from hephaestus_django.admin import pagination

    settings.HEPHAESTUS = {"ADMIN_COUNT_LIMIT": 10}
    bulk_rows(25)
    monkeypatch.setattr(pagination, "_table_estimate", lambda queryset: None)
    paginator = EstimatedCountPaginator(WorkflowInstance.objects.all(), 10)
    assert paginator.count == 25
    assert not paginator.is_estimate


def test_permissions(viewer_client: Any, stranger_client: Any, changer_client: Any, client: Any,
                     start: Any) -> None:
    start(w.AdmApprovalFlow, "A-1")
    response = viewer_client.get(CHANGELIST)
    assert response.status_code == 200
    assert "adm::A-1" in response.content.decode()
    assert response.context.get("action_form") is None or not any(
        name in str(response.context["action_form"]) for name in ("cancel_instances", "resume_instances"))
    actions = dict(changer_client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert {"cancel_instances", "retry_instances", "resume_instances"} <= set(actions)
    assert "delete_selected" not in actions
    assert stranger_client.get(CHANGELIST).status_code == 403
    assert client.get(CHANGELIST).status_code == 302  # anonymous: to the login page
