"""The history of an instance with 10,000 entries stays paginated and fast (issue 14): every page
is one bounded range of the ``(instance, seq)`` index, and paging forward and back loses nothing,
even where the numbering has gaps."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from hephaestus_django.storage.models import HistoryEntry
from tests.api.conftest import make_rows, url

pytestmark = pytest.mark.django_db


def _walk(api: APIClient, path: str, **params: Any) -> tuple[list[int], list[int]]:
    """Seqs paging forward to the end, then back to the start."""
    forward: list[int] = []
    page = api.get(path, params).json()
    while True:
        forward += [e["attempt"] for e in page["results"]]
        if page["next"] is None:
            break
        page = api.get(page["next"]).json()
    backward: list[int] = []
    while page["previous"] is not None:
        page = api.get(page["previous"]).json()
        backward = [e["attempt"] for e in page["results"]] + backward
    return forward, backward


def _numbered(row: Any) -> None:
    """Store each entry's seq in its attempt, which the history shape shows."""
    for entry in HistoryEntry.objects.filter(instance=row):
        HistoryEntry.objects.filter(pk=entry.pk).update(attempt=entry.seq)


def test_paging_through_a_history_forward_and_back(api: APIClient) -> None:
    [row] = make_rows(1, history=50)
    _numbered(row)
    forward, backward = _walk(api, url("instance-history", row.instance_id), page_size=7)
    assert forward == list(range(1, 51))
    assert backward == list(range(1, 51))[:49]  # back to the first page from the last one


def test_gaps_in_the_numbering_lose_nothing(api: APIClient) -> None:
    [row] = make_rows(1, history=40)
    _numbered(row)
    HistoryEntry.objects.filter(instance=row, seq__in=[3, 4, 5, 6, 7, 8, 20, 21]).delete()
    forward, _ = _walk(api, url("instance-history", row.instance_id), page_size=5)
    assert forward == [n for n in range(1, 41) if n not in (3, 4, 5, 6, 7, 8, 20, 21)]


def test_every_page_of_ten_thousand_entries_is_one_bounded_range(api: APIClient) -> None:
    [row] = make_rows(1, history=10_000)
    path = url("instance-history", row.instance_id)
    with CaptureQueriesContext(connection) as first:
        page = api.get(path).json()
    assert len(page["results"]) == 100
    for _ in range(60):
        page = api.get(page["next"]).json()
    with CaptureQueriesContext(connection) as deep:
        deep_page = api.get(page["next"]).json()
    assert len(deep_page["results"]) == 100
    assert len(first.captured_queries) == len(deep.captured_queries)
    for queries in (first, deep):
        select = next(q["sql"] for q in queries.captured_queries if "historyentry" in q["sql"])
        assert '"seq" >= ' in select and '"seq" <= ' in select and "LIMIT 101" in select
