"""End to end in a real headless Chromium (Playwright's sync API) against ``live_server``.

Log in, filter the changelist, open a waiting instance, resume it through the changelist action
and see it complete; screenshots of the changelist, a failed instance and the workflow graphs go
to ``artifacts/screenshots/`` (gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections

from hephaestus_django import services
from hephaestus_django.storage.models import WorkflowInstance
from tests.admin import workflows_admin as w
from tests.admin.conftest import CHANGELIST

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def javascript() -> bool:
    return True


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, javascript: bool) -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1360, "height": 900}, java_script_enabled=javascript)
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # While Playwright's loop runs, Django keeps this thread's connections apart from the
            # ones it closes at teardown: close them here, or the test database cannot be dropped.
            connections.close_all()


def _shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _start(workflow: Any, value: str, context: dict[str, Any] | None = None) -> WorkflowInstance:
    instance = services.start_instance(workflow, context or {}, id=f"{workflow.unique.key}::{value}")
    return WorkflowInstance.objects.get(pk=instance.pk)


@pytest.mark.django_db(transaction=True)
def test_resume_a_waiting_instance_through_the_action(live_server: Any, page: Any) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    for n in range(3):
        _start(w.AdmApprovalFlow, f"done-{n}", {"name": "Zoë"})
        services.resume(f"adm::done-{n}", "approved")
    waiting = _start(w.AdmApprovalFlow, "ORD-42", {"name": "Zoë 東京", "items": [{"sku": "ÆØÅ-1", "qty": 2}]})
    failed = _start(w.AdmFlakyFlow, "F-1", {"name": "Ana"})
    _start(w.AdmParallelFlow, "P-1")
    _start(w.AdmGateFlow, "G-1")
    base = live_server.url

    page.goto(f"{base}/admin/login/?next={CHANGELIST}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{CHANGELIST}")
    assert page.locator("#result_list tbody tr").count() == 7
    _shot(page, "changelist.png")

    # filter: waiting instances of the approval workflow
    page.click("#changelist-filter a:text-is('waiting')")
    page.click("#changelist-filter a:text-is('AdmApprovalFlow')")
    page.wait_for_url("**status__exact=waiting**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "adm::ORD-42" in rows.first.inner_text()
    _shot(page, "changelist-filtered.png")

    # the waiting instance's page: graph with the waiting step marked
    page.click("#result_list a:text-is('adm::ORD-42')")
    page.wait_for_url(f"**/{waiting.pk}/change/**")
    assert page.locator("svg.hx-graph g.hx-waiting").count() == 1
    assert page.locator("svg.hx-graph g.hx-completed").count() == 1
    assert "Zoë 東京" in page.locator(".field-context_json pre").inner_text()
    _shot(page, "instance-waiting.png")

    # resume it through the changelist action
    page.go_back()
    page.check(f"#result_list input[name=_selected_action][value='{waiting.pk}']")
    page.select_option("select[name=action]", "resume_instances")
    page.click("button[name=index]")
    page.wait_for_selector("table.hx-resume-table")
    _shot(page, "resume-form.png")
    page.select_option(f"select[name=resume_{waiting.pk}]", label="AdmApprove → approved")
    page.click("input[type=submit][value=Resume]")
    page.wait_for_selector("ul.messagelist li.success")
    assert "Resumed 1 instance." in page.locator("ul.messagelist").inner_text()
    waiting.refresh_from_db()
    assert waiting.status == "completed"

    # the list (still filtered on waiting) no longer shows it; its page shows it completed
    page.goto(f"{base}{CHANGELIST}{waiting.pk}/change/")
    assert page.locator(".field-status_badge .hx-status-completed").count() == 1
    assert page.locator("svg.hx-graph g.hx-completed").count() == 4

    # a failed instance: the error comes first
    page.goto(f"{base}{CHANGELIST}{failed.pk}/change/")
    assert "payment gateway unreachable" in page.locator(".hx-failure").inner_text()
    _shot(page, "instance-failed.png")

    page.goto(f"{base}/admin/hephaestus_django/")
    _shot(page, "app-index.png")
    page.click("a:text-is('Registered workflows')")
    page.wait_for_selector("body.hx-workflows")
    assert page.locator("section.hx-workflow svg.hx-graph").count() >= 5
    page.click(f"section.hx-workflow h2 a:text-is('{w.AdmParallelFlow.name}')")
    page.wait_for_selector("body.hx-workflow-detail")
    assert page.locator("svg.hx-graph").count() == 1
    _shot(page, "workflow-graph.png")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("javascript", [False])
def test_everything_works_without_javascript(live_server: Any, page: Any) -> None:
    """Filters, actions, confirmation pages and the instance page's buttons are plain links and forms."""
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    waiting = _start(w.AdmApprovalFlow, "A-1")
    other = _start(w.AdmParallelFlow, "P-1")
    base = live_server.url
    page.goto(f"{base}/admin/login/?next={CHANGELIST}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{CHANGELIST}")

    page.click("#changelist-filter a:text-is('AdmApprovalFlow')")
    page.wait_for_url("**workflow=**")
    assert page.locator("#result_list tbody tr").count() == 1
    page.check(f"#result_list input[name=_selected_action][value='{waiting.pk}']")
    page.select_option("select[name=action]", "resume_instances")
    page.click("button[name=index]")
    page.select_option(f"select[name=resume_{waiting.pk}]", label="AdmApprove → rejected")
    page.click("input[type=submit][value=Resume]")
    page.wait_for_selector("ul.messagelist li.success")

    # the instance page's own Cancel… button and its confirmation page
    page.goto(f"{base}{CHANGELIST}{other.pk}/change/")
    assert page.locator("svg.hx-graph g.hx-waiting").count() == 2
    page.click("a.hx-tool-cancel")
    _shot(page, "cancel-confirmation.png")
    page.click("input[type=submit][value='Yes, cancel']")
    page.wait_for_selector("ul.messagelist li.success")
    assert "Cancelled 1 instance." in page.locator("ul.messagelist").inner_text()
    assert page.locator(".field-status_badge .hx-status-cancelled").count() == 1
    waiting.refresh_from_db()
    assert waiting.status == "completed"
