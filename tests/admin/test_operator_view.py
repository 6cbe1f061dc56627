"""The admin of SPEC §12 and issue 14 (server side; tests/admin/test_browser.py looks at the pages
in Chromium): no deletion of active instances, graph node states with a legend, tracebacks folded,
one date format, retry delays, overdue timers, ids as they are in messages, versioned workflows
listed once, and filters and search that never fail on input."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from hephaestus_django import services
from hephaestus_django.core import clock
from hephaestus_django.storage.models import ACTIVE, HistoryEntry, Timer, WorkflowInstance
from hephaestus_django.testing import frozen_clock
from tests.admin import workflows_admin as w
from tests.admin.conftest import CHANGELIST, bulk_rows, change_url

pytestmark = pytest.mark.django_db


def _html(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return str(response.content.decode())


def _messages(response: Any) -> list[str]:
    return re.findall(r'<ul class="messagelist">\s*<li[^>]*>(.*?)</li>', _html(response), re.S)


def _states(html: str) -> dict[str, str]:
    """Step short name -> ``data-state`` of its node in the instance's graph."""
    return {step.rsplit(".", 1)[-1]: state
            for step, state in re.findall(r'<g class="hx-node[^"]*" data-step="([^"]+)" data-state="([a-z]+)">', html)}


# ---- deletion ------------------------------------------------------------------------------------------
@pytest.fixture
def deleter(db: None) -> Client:
    user = User.objects.create_user("deleter", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="hephaestus_django",
        codename__in=["view_workflowinstance", "change_workflowinstance", "delete_workflowinstance"]))
    client = Client()
    client.force_login(user)
    return client


def test_the_active_set_covers_every_status_that_holds_a_key() -> None:
    from hephaestus_django.core.status import ACTIVE_STATUSES

    assert set(ACTIVE) == {s.value for s in ACTIVE_STATUSES} >= {"pending", "running", "waiting"}


@pytest.mark.parametrize("status", sorted(ACTIVE))
def test_the_delete_view_refuses_an_active_instance(deleter: Client, status: str) -> None:
    bulk_rows(1, status=status)
    row = WorkflowInstance.objects.get()
    page = deleter.get(change_url(row))
    assert f'href="{CHANGELIST}{row.pk}/delete/"' not in _html(page)  # no Delete link on its page
    response = deleter.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.redirect_chain[-1][0] == change_url(row)
    assert _messages(response) == [
        f"bulk::0 is {status}: an active instance cannot be deleted. Cancel it first; once it is finished "
        "it can be deleted or pruned."]
    assert WorkflowInstance.objects.filter(pk=row.pk).exists()


def test_a_finished_instance_can_be_deleted(deleter: Client, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "D-1")
    services.cancel(row.instance_id)
    assert f'href="{CHANGELIST}{row.pk}/delete/"' in _html(deleter.get(change_url(row)))
    response = deleter.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not WorkflowInstance.objects.filter(pk=row.pk).exists()
    assert not HistoryEntry.objects.filter(instance_id=row.pk).exists()


def test_bulk_delete_refuses_a_selection_with_active_instances(deleter: Client) -> None:
    bulk_rows(2, prefix="done", status="completed")
    bulk_rows(1, prefix="live", status="running")
    pks = list(WorkflowInstance.objects.values_list("pk", flat=True))
    response = deleter.post(CHANGELIST, {"action": "delete_selected", "_selected_action": pks, "post": "yes"},
                            follow=True)
    assert _messages(response) == [
        f"Nothing was deleted: active instances ({', '.join(ACTIVE)}) cannot be deleted; cancel them first or "
        "select finished ones only. Active: live::0."]
    assert WorkflowInstance.objects.count() == 3


def test_bulk_delete_of_finished_instances_confirms_then_deletes(deleter: Client) -> None:
    bulk_rows(2, prefix="done", status="failed")
    pks = list(WorkflowInstance.objects.values_list("pk", flat=True))
    confirmation = deleter.post(CHANGELIST, {"action": "delete_selected", "_selected_action": pks})
    assert "Are you sure" in _html(confirmation)
    deleter.post(CHANGELIST, {"action": "delete_selected", "_selected_action": pks, "post": "yes"})
    assert WorkflowInstance.objects.count() == 0


def test_delete_is_the_last_action_and_says_finished(deleter: Client) -> None:
    bulk_rows(1)
    html = _html(deleter.get(CHANGELIST))
    options = re.findall(r'<option value="([a-z_]+)"', html.split('name="action"', 1)[1].split("</select>", 1)[0])
    assert options[-1] == "delete_selected"
    assert options[:3] == ["cancel_instances", "retry_instances", "resume_instances"]
    assert "Delete selected finished instances…" in html


def test_deleting_re_checks_the_status_in_the_statement(deleter: Client) -> None:
    """An instance retried between the confirmation and the delete is not deleted."""
    from django.contrib import admin

    from hephaestus_django.admin import WorkflowInstanceAdmin

    bulk_rows(1, status="failed")
    row = WorkflowInstance.objects.get()
    WorkflowInstance.objects.filter(pk=row.pk).update(status="running")  # what a concurrent retry did
    model_admin = WorkflowInstanceAdmin(WorkflowInstance, admin.site)
    model_admin.delete_model(None, row)  # type: ignore[arg-type]
    model_admin.delete_queryset(None, WorkflowInstance.objects.all())  # type: ignore[arg-type]
    assert WorkflowInstance.objects.filter(pk=row.pk).exists()


# ---- graph states ---------------------------------------------------------------------------------------
def test_a_failed_step_is_drawn_failed_never_active(admin_client: Client, start: Any) -> None:
    row = start(w.AdmFlakyFlow, "F-1")
    html = _html(admin_client.get(change_url(row)))
    assert _states(html) == {"AdmPrepare": "completed", "AdmFlaky": "failed", "Done": "pending"}
    assert "[!] AdmFlaky" in html


def test_a_cancelled_instance_draws_its_stopped_steps_cancelled(admin_client: Client, start: Any) -> None:
    row = start(w.AdmParallelFlow, "P-1")
    services.cancel(row.instance_id)
    states = _states(_html(admin_client.get(change_url(row))))
    assert states == {"AdmSplit": "completed", "AdmLeft": "cancelled", "AdmRight": "cancelled",
                      "AdmJoin": "pending", "Done": "pending"}


def test_a_branch_not_taken_is_skipped(admin_client: Client, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "S-1")
    services.resume(row.instance_id, "approved")
    states = _states(_html(admin_client.get(change_url(row))))
    assert states == {"AdmPrepare": "completed", "AdmApprove": "completed", "AdmShip": "completed",
                      "AdmReject": "skipped", "Done": "completed"}
    waiting = start(w.AdmApprovalFlow, "S-2")
    assert _states(_html(admin_client.get(change_url(waiting)))) == {
        "AdmPrepare": "completed", "AdmApprove": "waiting", "AdmShip": "pending", "AdmReject": "pending",
        "Done": "pending"}


def test_the_graph_has_a_legend_of_every_state(admin_client: Client, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "L-1")
    html = _html(admin_client.get(change_url(row)))
    legend = re.search(r'<ul class="hx-legend"[^>]*>(.*?)</ul>', html, re.S)
    assert legend is not None
    assert re.findall(r'data-state="([a-z]+)"', legend.group(1)) == [
        "completed", "active", "waiting", "failed", "cancelled", "skipped", "pending"]
    assert 'class="hx-zoom-toggle"' in html  # fit to width, or actual size


# ---- history: tracebacks and retries -----------------------------------------------------------------------
def test_tracebacks_are_shown_folded(admin_client: Client, start: Any) -> None:
    row = start(w.AdmFlakyFlow, "F-1")
    html = _html(admin_client.get(change_url(row)))
    failure = html[html.index('class="hx-failure"'):html.index("</section>", html.index('class="hx-failure"'))]
    assert '<details class="hx-traceback"><summary>Traceback</summary><pre>Traceback (most recent call last):' \
        in failure
    assert "raise ConnectionError(&quot;payment gateway unreachable — réessayez&quot;)" in failure
    history = html[html.index('class="module hx-history"'):]
    assert history.count('<details class="hx-entry-traceback"><summary>traceback</summary>') == 1


def test_retry_rows_show_their_delay(admin_client: Client, start: Any) -> None:
    row = start(w.AdmRetryFlow, "R-1")
    html = _html(admin_client.get(change_url(row)))
    retrying = re.search(r'<tr class="hx-entry hx-row-retrying">(.*?)</tr>', html, re.S)
    assert retrying is not None
    assert '<span class="hx-delay">retry in 2.5 s</span>' in retrying.group(1)
    assert "0.000 s" not in retrying.group(1).split("hx-delay", 1)[0]
    assert "KeyError: &#x27;missing_key_5&#x27;" in retrying.group(1)


def test_overdue_timers_are_flagged(admin_client: Client, start: Any) -> None:
    with frozen_clock(clock.now() - timedelta(hours=1)):
        row = start(w.AdmRetryFlow, "R-1")
    assert Timer.objects.filter(instance_id=row.pk).count() == 1
    html = _html(admin_client.get(change_url(row)))
    assert re.search(r'<span class="hx-overdue" title="[^"]+">overdue by 59\xa0minutes</span>', html), \
        html[html.index("hx-timers"):][:1500]
    fresh = start(w.AdmRetryFlow, "R-2")
    assert "hx-overdue" not in _html(admin_client.get(change_url(fresh)))


# ---- dates ---------------------------------------------------------------------------------------------------
def test_one_date_format_on_the_page(admin_client: Client, start: Any) -> None:
    row = start(w.AdmRetryFlow, "R-1", telemetry_metadata={"tenant": "x"})
    html = _html(admin_client.get(change_url(row)))
    body = html.split('<div id="content"', 1)[1]
    shown = re.findall(r'<time class="hx-time" datetime="[^"]+" title="[^"]+">([^<]+)</time>', body)
    assert len(shown) >= 6  # created, updated, started, telemetry start, history, timer
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text) for text in shown), shown
    assert not re.search(r"\b(a\.m\.|p\.m\.|noon|midnight)", body)  # Django's other format
    assert str(row.telemetry_start_time) not in re.sub(r'title="[^"]*"', "", body)  # not a raw number


def test_the_telemetry_start_time_is_a_date(admin_client: Client, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "T-1")
    html = _html(admin_client.get(change_url(row)))
    field = html[html.index("field-telemetry_started"):][:800]
    assert f'title="{row.telemetry_start_time} ns since the epoch"' in field
    assert re.search(r'<time class="hx-time"[^>]*>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}</time>', field)


# ---- messages ------------------------------------------------------------------------------------------------
def test_ids_in_messages_keep_their_case(admin_client: Client, start: Any) -> None:
    row = start(w.AdmApprovalFlow, "ORD-1004")
    services.cancel(row.instance_id)
    response = admin_client.post(CHANGELIST, {"action": "cancel_instances", "_selected_action": [row.pk],
                                              "post": "yes"}, follow=True)
    [message] = _messages(response)
    assert message.startswith("adm::ORD-1004: ")


# ---- versioned workflows -----------------------------------------------------------------------------------
def test_versions_are_listed_under_their_workflow(admin_client: Client) -> None:
    changelist = _html(admin_client.get(CHANGELIST))
    filters = changelist.split('id="changelist-filter"', 1)[1]
    assert ">AdmVersioned<" in filters
    assert ">v1<" not in filters.split("By version", 1)[0] and "AdmVersioned.v1" not in filters
    page = _html(admin_client.get(f"{CHANGELIST}workflows/"))
    assert 'id="tests.admin.AdmVersioned"' in page
    assert 'id="tests.admin.AdmVersioned.v1"' not in page and 'id="tests.admin.AdmVersioned.v2"' not in page
    detail = _html(admin_client.get(f"{CHANGELIST}workflows/tests.admin.AdmVersioned.v1/"))
    assert "<h1>AdmVersioned v1</h1>" in detail


# ---- hostile input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {"status": "\x00"}, {"status__exact": "\x00"}, {"workflow": "\x00"}, {"q": "adm\x00"},
    {"workflow_version": "\x00"}, {"o": "\x00"}, {"\x00": "1"},
])
def test_a_nul_in_a_filter_or_search_is_dropped_with_a_message(admin_client: Client, start: Any,
                                                               params: dict[str, str]) -> None:
    start(w.AdmApprovalFlow, "N-1")
    response = admin_client.get(CHANGELIST, {**params, "workflow_version": "1"} if "workflow_version" not in params
                                else params, follow=True)
    assert response.status_code == 200
    assert any("was ignored: it holds a character (NUL) no instance can have" in m for m in _messages(response))
    last = response.redirect_chain[-1][0]
    assert "%00" not in last


@pytest.mark.parametrize("params", [
    {"workflow_version": "99999999999999999999"}, {"workflow_version": "-1"}, {"workflow_version": "１"},
    {"created_at__year": "abc"}, {"created_at__year": "99999"}, {"created_at__year": "2024", "created_at__month": "13"},
    {"created_at__year": "2024", "created_at__month": "2", "created_at__day": "31"}, {"p": "99999999999999999999"},
    {"q": "x" * 5000}, {"workflow": "no.such.Workflow"}, {"status": "bogus"},
])
def test_odd_filters_never_fail(admin_client: Client, start: Any, params: dict[str, str]) -> None:
    start(w.AdmApprovalFlow, "N-1")
    response = admin_client.get(CHANGELIST, params, follow=True)
    assert response.status_code == 200


def test_a_long_history_is_paged(admin_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from hephaestus_django.admin import instances

    monkeypatch.setattr(instances, "HISTORY_LIMIT", 4)
    bulk_rows(1, status="completed")
    row = WorkflowInstance.objects.get()
    at = datetime(2024, 1, 1, tzinfo=UTC)
    HistoryEntry.objects.bulk_create([HistoryEntry(instance=row, seq=n, kind="completed", step="s", event="e",
                                                   timestamp=at) for n in range(1, 11)])
    WorkflowInstance.objects.filter(pk=row.pk).update(history_length=10)
    pages = {page: admin_client.get(change_url(row), {"history_page": page}) for page in ("1", "2", "3", "99", "x")}
    assert [e.seq for e in pages["1"].context["hx_history"]] == [7, 8, 9, 10]
    assert [e.seq for e in pages["2"].context["hx_history"]] == [3, 4, 5, 6]
    assert [e.seq for e in pages["3"].context["hx_history"]] == [1, 2]
    assert [e.seq for e in pages["99"].context["hx_history"]] == [1, 2]  # past the end: the oldest page
    assert [e.seq for e in pages["x"].context["hx_history"]] == [7, 8, 9, 10]
    second = _html(pages["2"])
    assert 'href="?history_page=3#hx-history-title">Older entries</a>' in second
    assert 'href="?history_page=1#hx-history-title">Newer entries</a>' in second
    assert "The first 2 entries are not shown" in second and "4 newer entries are on the previous pages" in second
