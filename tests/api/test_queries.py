"""Query counts: the list does not grow with the table, history is one query per page."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.api.conftest import client_for, make_rows, make_user, url

pytestmark = pytest.mark.django_db


def count_queries(client: APIClient, path: str, params: dict[str, Any] | None = None) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path, params or {})
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries), response


@pytest.fixture
def session_client(db: None) -> APIClient:
    """Session authentication and model permissions: the queries a real request makes."""
    make_user("counter", "view")
    client = APIClient()
    assert client.login(username="counter", password="pw")
    return client


@pytest.mark.parametrize("params", [{}, {"status": "waiting"}, {"status": ["waiting", "failed"], "ordering": "id"},
                                    {"workflow_version": 1, "page_size": 500}, {"search": "-1"}])
def test_list_query_count_does_not_depend_on_the_number_of_rows(session_client: APIClient,
                                                                 params: dict[str, Any]) -> None:
    make_rows(10, prefix="A")
    small, response = count_queries(session_client, url("instance-list"), params)
    assert response.json()["results"]
    make_rows(990, prefix="B")
    large, response = count_queries(session_client, url("instance-list"), params)
    assert small == large
    # session, user, user permissions, group permissions, the page itself
    assert large <= 5
    if response.json()["next"]:
        following, _ = count_queries(session_client, response.json()["next"])
        assert following == large


@pytest.mark.parametrize("params", [{}, {"status": ["waiting", "failed"], "workflow_version": 1}])
def test_list_reads_each_page_with_one_plain_query(api: APIClient, params: dict[str, Any]) -> None:
    make_rows(1000, prefix="Q")
    with CaptureQueriesContext(connection) as ctx:
        response = api.get(url("instance-list"), {"page_size": 500, **params})
    instance_queries = [q["sql"] for q in ctx.captured_queries if "hephaestus_django_workflowinstance" in q["sql"]]
    assert len(response.json()["results"]) == 500
    assert len(instance_queries) == 1
    # No COUNT, and no DISTINCT, which would make the database de-duplicate every matching row first.
    assert "COUNT(" not in instance_queries[0].upper()
    assert "DISTINCT" not in instance_queries[0].upper()


def test_detail_query_count_does_not_depend_on_history(session_client: APIClient) -> None:
    (small,) = make_rows(1, prefix="S", history=2)
    (large,) = make_rows(1, prefix="L", history=500)
    a, _ = count_queries(session_client, url("instance-detail", small.instance_id))
    b, _ = count_queries(session_client, url("instance-detail", large.instance_id))
    assert a == b


def test_history_is_one_query_per_page_besides_the_instance_lookup(db: None) -> None:
    api = client_for(make_user("root", superuser=True))  # a superuser's permission checks need no query
    (row,) = make_rows(1, prefix="H", history=250)
    path: str | None = url("instance-history", row.instance_id)
    params: dict[str, Any] = {"page_size": 100}
    pages = []
    while path:
        with CaptureQueriesContext(connection) as ctx:
            response = api.get(path, params)
        params = {}
        sqls = [q["sql"] for q in ctx.captured_queries]
        history = [s for s in sqls if "hephaestus_django_historyentry" in s]
        instance = [s for s in sqls if "hephaestus_django_workflowinstance" in s and s not in history]
        assert len(history) == 1, history
        assert len(instance) == 1, instance
        assert len(sqls) == 2
        pages.append(len(response.json()["results"]))
        path = response.json()["next"]
    assert pages == [100, 100, 50]
