"""The instance page: read-only, formatted JSON, history, graph, failure, deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hephaestus_django import services
from hephaestus_django.admin import instances
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
from tests.admin import workflows_admin as w
from tests.admin.conftest import CHANGELIST, bulk_rows, change_url

pytestmark = pytest.mark.django_db


def test_page_is_read_only(admin_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1", {"name": "Zoë"})
    response = admin_client.get(change_url(row))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert response.context["adminform"].form.fields == {}
    # posting the form changes nothing
    assert admin_client.post(change_url(row), {"status": "completed"}).status_code == 403
    row.refresh_from_db()
    assert row.status == "waiting"
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_json_is_indented_and_shows_text_as_it_is(admin_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1", {"name": "Zoë 東京", "items": [{"sku": "ÆØÅ-1"}]},
                telemetry_metadata={"tenant": "Malmö"})
    html = admin_client.get(change_url(row)).content.decode()
    assert "Zoë 東京" in html and "ÆØÅ-1" in html and "Malmö" in html and "héllo Zoë 東京" in html
    assert "\\u" not in html.split("<body", 1)[1].split("<!-- END SVGs", 1)[0]
    # indented (PostgreSQL's jsonb may reorder keys, so only the shape is checked)
    assert '\n    &quot;name&quot;: &quot;Zoë 東京&quot;' in html
    assert "&quot;tests.admin.workflows_admin.AdmApprove&quot;: {}" in html  # step configs


def test_history_in_order(admin_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    services.resume(row.instance_id, "approved")
    response = admin_client.get(change_url(row))
    entries = response.context["hx_history"]
    assert [(e.seq, e.kind, e.short_step, e.event) for e in entries] == [
        (1, "completed", "AdmPrepare", "ready"),
        (2, "paused", "AdmApprove", ""),
        (3, "resumed", "AdmApprove", "approved"),
        (4, "completed", "AdmShip", "shipped"),
        (5, "completed", "Done", "done"),
    ]
    html = response.content.decode()
    assert html.index(">AdmPrepare<") < html.index(">AdmShip<")
    assert "Øresund Post" in html  # context updates of an entry, as they are


def test_graph_marks_step_states(admin_client: Any, start: Any) -> None:
    row = start(w.AdmParallelFlow, "P-1")
    services.resume(row.instance_id, "ok", step=w.AdmLeft)
    response = admin_client.get(change_url(row))
    html = response.content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="hx-graph"' in html
    assert 'class="hx-node hx-completed" data-step="tests.admin.workflows_admin.AdmSplit"' in html
    assert 'class="hx-node hx-completed" data-step="tests.admin.workflows_admin.AdmLeft"' in html
    assert 'class="hx-node hx-waiting" data-step="tests.admin.workflows_admin.AdmRight"' in html
    assert 'class="hx-node hx-pending" data-step="tests.admin.workflows_admin.AdmJoin"' in html
    text = response.context["hx_picture"].text
    assert "[~] AdmRight" in text and "[x] AdmLeft" in text
    assert "[~] AdmRight" in html  # the text rendering is in the page too, in a <pre>


def test_failed_instance_shows_its_error_first(admin_client: Any, start: Any) -> None:
    row = start(w.AdmFlakyFlow, "F-1")
    assert row.status == "failed"
    html = admin_client.get(change_url(row)).content.decode()
    box = html.index('class="hx-failure"')
    assert box < html.index('class="module hx-graph-module"')
    assert "Failed at step tests.admin.workflows_admin.AdmFlaky" in html
    assert "payment gateway unreachable — réessayez" in html[box:html.index("</section>", box)]


def test_unregistered_workflow_renders_without_graph(admin_client: Any) -> None:
    bulk_rows(1, workflow="gone.Workflow", status="waiting")
    row = WorkflowInstance.objects.get()
    row.waiting_steps = {"gone.Step": "2024-01-01T00:00:00Z"}
    row.save(update_fields=["waiting_steps"])  # test setup only: the admin itself never saves
    response = admin_client.get(change_url(row))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Workflow gone.Workflow version 1 is not registered" in html
    assert 'class="hx-graph"' not in html
    assert not response.context["hx_offered"]["resume"]  # no declared events to offer


def test_operations_offered_by_status_and_permission(admin_client: Any, viewer_client: Any,
                                                     start: Any) -> None:
    waiting = start(w.AdmApprovalFlow, "A-1")
    failed = start(w.AdmFlakyFlow, "F-1")
    offered = admin_client.get(change_url(waiting)).context["hx_offered"]
    assert offered == {"resume": True, "cancel": True, "retry": False, "pause": True, "unpause": False,
                       "migrate": False}
    html = admin_client.get(change_url(waiting)).content.decode()
    assert f'href="{CHANGELIST}{waiting.pk}/resume/"' in html
    assert admin_client.get(change_url(failed)).context["hx_offered"] == {
        "resume": False, "cancel": False, "retry": True, "pause": False, "unpause": False, "migrate": False}
    response = viewer_client.get(change_url(waiting))
    assert response.status_code == 200
    assert not any(response.context["hx_offered"].values())
    assert "/resume/" not in response.content.decode()


def test_viewer_can_read_stranger_cannot(viewer_client: Any, stranger_client: Any, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "A-1")
    assert viewer_client.get(change_url(row)).status_code == 200
    assert stranger_client.get(change_url(row)).status_code == 403


def _with_history(value: str, entries: int) -> WorkflowInstance:
    bulk_rows(1, prefix=value)
    row = WorkflowInstance.objects.get(instance_id=f"{value}::0")
    at = datetime(2024, 1, 1, tzinfo=UTC)
    HistoryEntry.objects.bulk_create([
        HistoryEntry(instance=row, seq=i + 1, kind="completed", step=w.AdmPrepare.registry_name(),
                     event="ready", timestamp=at + timedelta(seconds=i), duration=0.5,
                     context_updates={"n": i})
        for i in range(entries)])
    WorkflowInstance.objects.filter(pk=row.pk).update(history_length=entries)
    return row


def _page_queries(client: Any, row: WorkflowInstance) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(change_url(row))
    assert response.status_code == 200
    assert len(response.context["hx_history"]) == min(row.history_length, instances.HISTORY_LIMIT)
    return len(queries.captured_queries)


def test_query_count_does_not_grow_with_history(admin_client: Any) -> None:
    short, long = _with_history("short", 3), _with_history("long", 400)
    short.refresh_from_db()
    long.refresh_from_db()
    assert _page_queries(admin_client, short) == _page_queries(admin_client, long)


def test_long_history_shows_the_latest_entries(admin_client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(instances, "HISTORY_LIMIT", 5)
    row = _with_history("long", 12)
    response = admin_client.get(change_url(row))
    assert [e.seq for e in response.context["hx_history"]] == [8, 9, 10, 11, 12]
    assert "The first 7 entries are not shown" in response.content.decode()


def test_superuser_deletes_with_a_summary(admin_client: Any, changer_client: Any) -> None:
    row = _with_history("del", 50)
    delete_url = f"{CHANGELIST}{row.pk}/delete/"
    assert changer_client.get(delete_url).status_code == 403
    response = admin_client.get(delete_url)
    assert response.status_code == 200
    assert dict(response.context["model_count"]) == {"workflow instances": 1, "history entries": 50}
    assert response.context["deleted_objects"] == [str(row)]
    response = admin_client.post(delete_url, {"post": "yes"})
    assert response.status_code == 302
    assert not WorkflowInstance.objects.exists() and not HistoryEntry.objects.exists()


def test_delete_selected_lists_a_bounded_summary(admin_client: Any, monkeypatch: Any) -> None:
    from hephaestus_django.admin import views

    monkeypatch.setattr(views, "LISTED", 3)
    bulk_rows(5)
    pks = list(WorkflowInstance.objects.values_list("pk", flat=True))
    response = admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": pks,
                                              "index": 0})
    assert response.status_code == 200
    [listed] = response.context["deletable_objects"]
    assert len(listed) == 4 and listed[-1] == "…and 2 more"
    admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": pks, "post": "yes"})
    assert not WorkflowInstance.objects.exists()


def test_a_drawing_failure_does_not_break_the_page(admin_client: Any, start: Any, monkeypatch: Any,
                                                   caplog: Any) -> None:
    from hephaestus_django.core import render

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("layout bug")

    monkeypatch.setattr(render, "svg", broken)
    row = start(w.AdmApprovalFlow, "A-1")
    response = admin_client.get(change_url(row))
    assert response.status_code == 200
    assert "The graph could not be drawn (see the server log)." in response.content.decode()
    assert "drawing a workflow graph failed" in caplog.text
