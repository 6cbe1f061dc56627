"""``GET instances/``: filters, ordering and cursor pagination."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from hephaestus_django.storage.models import WorkflowInstance
from tests.api import workflows_api as wf
from tests.api.conftest import make_rows, url

pytestmark = pytest.mark.django_db


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def listing(api: APIClient, **params: Any) -> Any:
    return api.get(url("instance-list"), params)


def _without_context(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "context"}


def test_list_is_newest_first_with_the_compact_instance_shape(api: APIClient, start: Any) -> None:
    first = start("L-1")
    second = start("L-2")
    response = listing(api)
    assert response.json()["results"] == [_without_context(second), _without_context(first)]
    assert response.json()["next"] is None
    assert response.json()["previous"] is None


def test_list_rows_carry_their_context_only_when_asked(api: APIClient, start: Any) -> None:
    """A page of 50 rows would otherwise carry 50 full contexts (SPEC §12, issue 14)."""
    started = start("L-1", context={"big": ["x" * 100] * 50})
    assert "context" not in listing(api).json()["results"][0]
    for params in ({"expand": "context"}, {"expand": "context,"}):
        assert listing(api, **params).json()["results"] == [started]
    response = listing(api, expand="everything")
    assert response.status_code == 400
    assert response.json() == {"expand": ["Unknown value 'everything': expand takes context."]}


def test_the_compact_list_does_not_read_the_context_column(api: APIClient, start: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    start("L-1")
    with CaptureQueriesContext(connection) as queries:
        assert listing(api).status_code == 200
    select = next(q["sql"] for q in queries.captured_queries if "hephaestus_django_workflowinstance" in q["sql"])
    assert '"context"' not in select
    with CaptureQueriesContext(connection) as queries:
        assert listing(api, expand="context").status_code == 200
    select = next(q["sql"] for q in queries.captured_queries if "hephaestus_django_workflowinstance" in q["sql"])
    assert '"context"' in select


def test_empty_list(api: APIClient) -> None:
    assert listing(api).json() == {"next": None, "previous": None, "results": []}


def test_filter_by_workflow(api: APIClient, start: Any) -> None:
    start("A")
    start("B", workflow=wf.ApiParallelFlow)
    assert ids(listing(api, workflow=wf.ApiParallelFlow.name)) == ["par::B"]
    assert ids(listing(api, workflow="no.such.Flow")) == []


def test_filter_by_one_or_several_statuses(api: APIClient, start: Any) -> None:
    start("W")
    start("F", context={"fail": True})
    start("C", context={"bad": True})
    assert ids(listing(api, status="waiting")) == ["order::W"]
    assert sorted(ids(api.get(url("instance-list") + "?status=waiting&status=failed"))) == ["order::F", "order::W"]
    assert ids(listing(api, status="cancelled")) == []


def test_filter_by_version_and_current_step(api: APIClient, start: Any) -> None:
    start("one", workflow=wf.ApiVersioned, version=1)
    start("two", workflow=wf.ApiVersioned)
    assert ids(listing(api, workflow_version=1)) == ["ver::one"]
    assert ids(listing(api, workflow_version=2)) == ["ver::two"]
    assert ids(listing(api, version=1)) == ["ver::one"]  # the name SPEC §6 uses
    assert api.get(url("instance-list") + "?version=zero").status_code == 400
    assert ids(listing(api, current_step=wf.ApiApprove.registry_name())) == ["ver::two"]


def test_filter_by_created_and_updated_ranges(api: APIClient) -> None:
    now = timezone.now()
    old, mid, new = (make_rows(1, prefix=p, created_at=now - timedelta(days=d), updated_at=now - timedelta(days=d))[0]
                     for p, d in (("old", 10), ("mid", 5), ("new", 1)))
    WorkflowInstance.objects.filter(pk=old.pk).update(updated_at=now)
    day = timedelta(days=1)
    assert ids(listing(api, created_after=(now - 6 * day).isoformat())) == ["order::new-0", "order::mid-0"]
    assert ids(listing(api, created_before=(now - 6 * day).isoformat())) == ["order::old-0"]
    assert ids(listing(api, created_after=(now - 6 * day).isoformat(),
                       created_before=(now - 2 * day).isoformat())) == ["order::mid-0"]
    assert ids(listing(api, updated_after=(now - day / 2).isoformat())) == ["order::old-0"]
    assert ids(listing(api, updated_before=(now - 2 * day).isoformat())) == ["order::mid-0"]
    assert ids(listing(api, created_after=mid.created_at.isoformat())) == ["order::new-0", "order::mid-0"]
    assert new.pk


def test_date_filters_accept_any_iso_offset(api: APIClient) -> None:
    """ISO 8601 allows offsets PostgreSQL refuses (beyond ±15:59): they are compared in UTC."""
    make_rows(1, prefix="late", created_at=timezone.now())
    response = api.get(url("instance-list") + "?created_before=0779-08-03T23%3A11%3A15.12-20%3A48")
    assert response.status_code == 200 and ids(response) == []
    response = api.get(url("instance-list") + "?created_after=2000-01-01T00%3A00%3A00%2B23%3A59")
    assert response.status_code == 200 and ids(response) == ["order::late-0"]


def test_search_on_id(api: APIClient, start: Any) -> None:
    start("ORD-2024.17")
    start("ORD-2025.01")
    start("other")
    assert ids(listing(api, search="2024")) == ["order::ORD-2024.17"]
    assert sorted(ids(listing(api, search="ord-"))) == ["order::ORD-2024.17", "order::ORD-2025.01"]
    assert ids(listing(api, search="%")) == []


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "bogus"}, "status"),
    ({"workflow_version": "x"}, "workflow_version"),
    ({"workflow_version": "0"}, "workflow_version"),
    ({"workflow_version": "1.5"}, "workflow_version"),
    ({"workflow_version": str(2**40)}, "workflow_version"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": "2024-13-01T00:00:00Z"}, "created_before"),
    ({"updated_after": "0001-01-01T00:00:00+14:00"}, "updated_after"),
    ({"updated_before": "nope"}, "updated_before"),
    ({"search": "a\x00b"}, "search"),
    ({"workflow": "a\x00b"}, "workflow"),
    ({"ordering": "pk"}, "ordering"),
    ({"ordering": "context"}, "ordering"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "501"}, "page_size"),
])
def test_bad_filters_are_400_keyed_by_parameter(api: APIClient, params: dict[str, str], field: str) -> None:
    response = listing(api, **params)
    assert response.status_code == 400
    assert field in response.json()


ORDERINGS = {
    "created_at": lambda b: (b["created_at"],),
    "updated_at": lambda b: (b["updated_at"],),
    "id": lambda b: (b["id"],),
    "workflow": lambda b: (b["workflow"],),
    "workflow_version": lambda b: (b["workflow_version"],),
    "status": lambda b: (b["status"],),
    "current_step": lambda b: (b["current_step"] or "",),
}


@pytest.fixture
def mixed(start: Any) -> list[dict[str, Any]]:
    """Instances that differ (and tie) on every ordering field."""
    return [
        start("m1"), start("m2", context={"fail": True}), start("m3", context={"bad": True}),
        start("m4", workflow=wf.ApiVersioned, version=1), start("m5", workflow=wf.ApiVersioned),
        start("m6", workflow=wf.ApiParallelFlow), start("m7"),
    ]


@pytest.mark.parametrize("field", ORDERINGS)
@pytest.mark.parametrize("descending", [False, True])
def test_ordering_pages_through_every_row_once(api: APIClient, mixed: list[dict[str, Any]], field: str,
                                               descending: bool) -> None:
    ordering = f"-{field}" if descending else field
    response = listing(api, ordering=ordering, page_size=2)
    seen: list[dict[str, Any]] = []
    while True:
        seen += response.json()["results"]
        if response.json()["next"] is None:
            break
        response = api.get(response.json()["next"])
    assert len(seen) == len(mixed)
    assert {b["id"] for b in seen} == {b["id"] for b in mixed}
    keys = [ORDERINGS[field](b) for b in seen]
    assert keys == sorted(keys, reverse=descending)


def test_pagination_forward_and_back(api: APIClient) -> None:
    make_rows(7, prefix="P")
    first = listing(api, page_size=3).json()
    assert [r["id"] for r in first["results"]] == ["order::P-6", "order::P-5", "order::P-4"]
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == ["order::P-3", "order::P-2", "order::P-1"]
    third = api.get(second["next"]).json()
    assert [r["id"] for r in third["results"]] == ["order::P-0"]
    assert third["next"] is None
    back = api.get(third["previous"]).json()
    assert back["results"] == second["results"]
    assert api.get(back["previous"]).json()["results"] == first["results"]


def test_pagination_with_identical_timestamps(api: APIClient) -> None:
    make_rows(5, prefix="T", created_at=timezone.now())
    response = listing(api, page_size=2)
    seen = []
    while True:
        seen += ids(response)
        if response.json()["next"] is None:
            break
        response = api.get(response.json()["next"])
    assert sorted(seen) == sorted(f"order::T-{i}" for i in range(5))


def test_next_link_keeps_the_filters(api: APIClient) -> None:
    make_rows(3, prefix="K", status="failed")
    make_rows(3, prefix="W")
    first = listing(api, status="failed", page_size=2).json()
    assert "status=failed" in first["next"]
    second = api.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == ["order::K-0"]


def test_a_cursor_of_another_ordering_is_400(api: APIClient) -> None:
    make_rows(3, prefix="C")
    link = listing(api, page_size=1).json()["next"]
    response = api.get(link + "&ordering=id")
    assert response.status_code == 400
    assert "cursor" in response.json()
