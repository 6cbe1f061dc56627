"""Service changes read no history: a cancel or a resume of an instance with a long history costs
a few queries, the same through the Python API, the REST API and the commands, and none of them
reads the history table (the instance they return reads its history only when looked at)."""

from __future__ import annotations

import re
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

import hephaestus_django as h
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
from tests.api import workflows_api as wf
from tests.api.conftest import client_for, make_user, url

pytestmark = pytest.mark.django_db

#: Entries the instance has when it is changed.
HISTORY = 2_000
#: What a change may cost at most, whatever the path: measured 5 (resume through the service) to 7
#: (cancel through the API) on PostgreSQL, 8 to 10 on SQLite (savepoints included).
MAX_QUERIES = {"postgresql": 7}
MAX_QUERIES_ELSEWHERE = 10

_READS_HISTORY = re.compile(rf'(FROM|JOIN)\s+"?{HistoryEntry._meta.db_table}"?', re.IGNORECASE)


def waiting_with_history(value: str) -> WorkflowInstance:
    """A real waiting ApiOrderFlow instance whose history is then padded to :data:`HISTORY` entries
    (bulk-inserted: its first entries are the real ones)."""
    instance = h.start_instance(wf.ApiOrderFlow, {}, id=f"order::{value}")
    row = WorkflowInstance.objects.get(pk=instance.pk)
    assert row.status == "waiting"
    last = row.history.order_by("-seq").first()
    assert last is not None
    HistoryEntry.objects.bulk_create([
        HistoryEntry(instance=row, seq=seq, kind=last.kind, step=last.step, event=last.event,
                     timestamp=last.timestamp)
        for seq in range(row.history_length + 1, HISTORY + 1)])
    WorkflowInstance.objects.filter(pk=row.pk).update(history_length=HISTORY)
    return row


def through_service(verb: str, row: WorkflowInstance, client: Any) -> None:
    if verb == "cancel":
        h.cancel(row.instance_id)
    else:
        h.resume(row.instance_id, "approved")


def through_api(verb: str, row: WorkflowInstance, client: Any) -> None:
    body = {"event": "approved"} if verb == "resume" else {}
    response = client.post(url(f"instance-{verb}", row.instance_id), body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == ("cancelled" if verb == "cancel" else "completed")


def through_command(verb: str, row: WorkflowInstance, client: Any) -> None:
    out = StringIO()
    args = [row.instance_id, "approved"] if verb == "resume" else [row.instance_id]
    call_command(f"hephaestus_{verb}", *args, "--json", stdout=out)
    assert '"status"' in out.getvalue()


PATHS: dict[str, Callable[[str, WorkflowInstance, Any], None]] = {
    "service": through_service, "api": through_api, "command": through_command}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("verb", ["cancel", "resume"])
def test_a_change_reads_no_history_and_costs_a_few_queries(verb: str, path: str) -> None:
    row = waiting_with_history(f"{verb}-{path}")
    # a superuser authenticated by the test client: its permission checks need no query
    client = client_for(make_user(f"op-{verb}-{path}", superuser=True)) if path == "api" else None
    with CaptureQueriesContext(connection) as ctx:
        PATHS[path](verb, row, client)
    queries = [q["sql"] for q in ctx.captured_queries]
    reads = [sql for sql in queries if _READS_HISTORY.search(sql)]
    assert reads == [], reads
    assert len(queries) <= MAX_QUERIES.get(connection.vendor, MAX_QUERIES_ELSEWHERE), "\n".join(queries)
    row.refresh_from_db()
    assert row.status == ("cancelled" if verb == "cancel" else "completed")
    assert row.history_length > HISTORY
    print(f"{verb} through the {path} on {connection.vendor}: {len(queries)} queries")  # noqa: T201


def test_the_returned_instance_reads_its_history_when_looked_at() -> None:
    row = waiting_with_history("lazy")
    with CaptureQueriesContext(connection) as ctx:
        instance = h.cancel(row.instance_id)
    assert not any(_READS_HISTORY.search(q["sql"]) for q in ctx.captured_queries)
    with CaptureQueriesContext(connection) as ctx:
        history = list(instance.execution_history)
    assert len(ctx.captured_queries) == 1
    assert len(history) == HISTORY + 1
    assert history[-1].kind == "cancelled"
