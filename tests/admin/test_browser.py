"""End to end in a real headless Chromium (Playwright's sync API) against ``live_server``.

Log in, filter the changelist, open a waiting instance, resume it through the changelist action
and see it complete; then what an operator sees (issue 14): layout boxes at 1400, 1280 and 400 px
wide, the contrast of every text and badge in the light and the dark theme (computed from the
styles Chromium applies), graphs that fit the page, and graph node states. Screenshots, for people
only, go to ``artifacts/screenshots/`` (gitignored); the assertions never look at pixels.
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
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # While Playwright's loop runs, Django keeps this thread's connections apart from the
            # ones it closes at teardown: close them here, or the test database cannot be dropped.
            connections.close_all()


@pytest.fixture
def page(chromium: Any, javascript: bool) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1360, "height": 900}, java_script_enabled=javascript)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


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


# ---- what an operator sees (issue 14) ----------------------------------------------------------------------
WIDTHS = (1400, 1280, 400)

#: For each visible element with text of its own (and each SVG text): its colour, the colour
#: behind it (the first opaque background of it or its ancestors, translucent ones blended in;
#: for SVG text, the fill of the shape it is drawn on), and a description. Contrast is computed in
#: Python from these.
COLOURS_JS = """
(scope) => {
  const rgba = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const blend = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const behind = (el) => {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      let bg = rgba(style.backgroundColor);
      if (node instanceof SVGElement && node.tagName !== 'svg') bg = null;
      if (bg && bg[3] > 0) {
        layers.push(bg);
        if (bg[3] >= 1) break;
      }
    }
    let colour = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) colour = blend(layers[i], colour);
    return colour;
  };
  const visible = (el) => {
    const rects = el.getClientRects();
    if (!rects.length) return false;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none' || Number(style.opacity) === 0) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const label = (el) => {
    const cls = (el.getAttribute('class') || '').trim().replace(/\\s+/g, '.');
    return el.tagName.toLowerCase() + (cls ? '.' + cls : '') + ' "' + el.textContent.trim().slice(0, 40) + '"';
  };
  const found = [];
  const roots = [...document.querySelectorAll(scope)];
  for (const root of roots) {
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (['SCRIPT', 'STYLE', 'OPTION', 'TITLE', 'NOSCRIPT', 'TEMPLATE'].includes(el.tagName)) continue;
      if (el.closest('svg') && el.tagName.toLowerCase() === 'text') {
        if (!visible(el)) continue;
        const shape = el.previousElementSibling;
        const fill = shape ? rgba(getComputedStyle(shape).fill) : null;
        const opacity = shape ? Number(getComputedStyle(shape).fillOpacity || 1) : 1;
        let back = behind(el.closest('svg'));
        if (fill) back = blend([fill[0], fill[1], fill[2], opacity], back);
        found.push({what: label(el), fg: rgba(getComputedStyle(el).fill), bg: back});
        continue;
      }
      if (el.closest('svg')) continue;
      const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
      if (!own || !visible(el)) continue;
      found.push({what: label(el), fg: rgba(getComputedStyle(el).color), bg: behind(el)});
    }
  }
  return found;
}
"""


def _luminance(colour: list[float]) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in colour[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: list[float], bg: list[float]) -> float:
    if fg[3] < 1:  # translucent text: what shows is its blend with the background
        fg = [fg[i] * fg[3] + bg[i] * (1 - fg[3]) for i in range(3)] + [1]
    high, low = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _login(page: Any, base: str, next_url: str = CHANGELIST) -> None:
    page.goto(f"{base}/admin/login/?next={next_url}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")


def _open(chromium: Any, base: str, *, width: int = 1400, height: int = 900, scheme: str = "light") -> Any:
    context = chromium.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    context.set_default_timeout(15_000)
    page = context.new_page()
    _login(page, base)
    return page


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    return dict(box)


def _page_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


@pytest.fixture
def operator_data(db: None) -> dict[str, WorkflowInstance]:
    """An admin user and instances in every state a page shows: a long history with retries and a
    traceback, an overdue timer, waiting parallel steps, and rows with realistic long ids."""
    from datetime import timedelta

    from hephaestus_django.core import clock
    from hephaestus_django.testing import frozen_clock
    from tests.admin.conftest import bulk_rows

    User.objects.create_superuser("admin", "admin@example.com", "pw")
    rows = {
        "waiting": _start(w.AdmApprovalFlow, "ORD-2024-000042-EU", {"name": "Zoë 東京", "items": [{"sku": "ÆØÅ-1"}]}),
        "failed": _start(w.AdmFlakyFlow, "ORD-2024-000043-EU", {"name": "Ana"}),
        "parallel": _start(w.AdmParallelFlow, "ORD-2024-000044-EU"),
    }
    with frozen_clock(clock.now() - timedelta(hours=2)):
        rows["retrying"] = _start(w.AdmRetryFlow, "ORD-2024-000045-EU")
    done = _start(w.AdmApprovalFlow, "ORD-2024-000046-EU")
    services.resume(done.instance_id, "approved")
    rows["completed"] = WorkflowInstance.objects.get(pk=done.pk)
    cancelled = _start(w.AdmParallelFlow, "ORD-2024-000047-EU")
    services.cancel(cancelled.instance_id)
    rows["cancelled"] = WorkflowInstance.objects.get(pk=cancelled.pk)
    bulk_rows(40, prefix="order::ORD-2024-INTERNATIONAL-FULFILMENT", status="running",
              workflow="example.orders.workflows.InternationalOrderFulfilment")
    return rows


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", WIDTHS)
def test_the_changelist_fits_the_screen(live_server: Any, chromium: Any, operator_data: Any, width: int) -> None:
    """At 1400 and 1280 px every column is visible, dates included; at 400 px the page is no wider
    than the screen (the table scrolls inside its box)."""
    page = _open(chromium, live_server.url, width=width)
    assert page.locator("#result_list tbody tr").count() == 46
    assert _page_width(page) <= width
    if width >= 1280:
        results = page.locator(".results").first
        assert results.evaluate("e => e.scrollWidth <= e.clientWidth"), "the table is cut off"
        for column in ("created", "updated"):
            header = _box(page, f"#result_list th.column-{column}")
            cell = _box(page, f"#result_list td.field-{column}")
            shown = _box(page, f"#result_list td.field-{column} time")
            assert header["x"] + header["width"] <= width and cell["x"] + cell["width"] <= width
            # the whole date and time, inside its cell
            assert cell["x"] <= shown["x"] and shown["x"] + shown["width"] <= cell["x"] + cell["width"]
            assert page.locator(f"#result_list td.field-{column} time").first.evaluate(
                "e => e.scrollWidth <= e.clientWidth + 1")
    _shot(page, f"changelist-{width}.png")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", WIDTHS)
def test_the_instance_page_fits_the_screen(live_server: Any, chromium: Any, operator_data: Any,
                                           width: int) -> None:
    page = _open(chromium, live_server.url, width=width)
    for key in ("waiting", "retrying", "failed"):
        page.goto(f"{live_server.url}{CHANGELIST}{operator_data[key].pk}/change/")
        assert _page_width(page) <= width, f"the {key} instance's page is wider than {width} px"
        history = _box(page, ".hx-history")
        assert history["x"] >= 0 and history["x"] + history["width"] <= width
    _shot(page, f"instance-retrying-{width}.png")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", WIDTHS)
def test_the_resume_form_is_on_screen(live_server: Any, chromium: Any, operator_data: Any, width: int) -> None:
    page = _open(chromium, live_server.url, width=width)
    row = operator_data["parallel"]
    page.goto(f"{live_server.url}{CHANGELIST}{row.pk}/resume/")
    select = _box(page, f"select[name=resume_{row.pk}]")
    assert 0 <= select["x"] and select["x"] + select["width"] <= width
    submit = _box(page, "input[type=submit][value=Resume]")
    assert 0 <= submit["x"] and submit["x"] + submit["width"] <= width
    assert _page_width(page) <= width
    page.select_option(f"select[name=resume_{row.pk}]", index=1)
    page.click("input[type=submit][value=Resume]")
    page.wait_for_selector("ul.messagelist li.success")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_and_badges_have_aa_contrast(live_server: Any, chromium: Any, operator_data: Any,
                                          scheme: str) -> None:
    """WCAG AA: at least 4.5:1 for every visible text and badge of this app's pages."""
    page = _open(chromium, live_server.url, scheme=scheme)
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") == (scheme == "dark")
    pages = [CHANGELIST, f"{CHANGELIST}?status__exact=waiting", f"{CHANGELIST}workflows/",
             f"{CHANGELIST}workflows/{w.AdmParallelFlow.name}/",
             *(f"{CHANGELIST}{row.pk}/change/" for row in operator_data.values()),
             f"{CHANGELIST}{operator_data['parallel'].pk}/resume/"]
    low = []
    checked = 0
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # folded text too
        for item in page.evaluate(COLOURS_JS, "#content, .messagelist"):
            checked += 1
            ratio = contrast(item["fg"], item["bg"])
            if ratio < 4.5:
                low.append(f"{path}: {item['what']} {ratio:.2f}:1")
    assert checked > 300
    assert not low, "\n".join(sorted(set(low)))
    # the badges the issue named: the waiting status and the workflow names
    page.goto(f"{live_server.url}{CHANGELIST}")
    badge = page.locator(".hx-status-waiting").first
    colours = badge.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
    assert colours == ["rgb(255, 255, 255)", "rgb(147, 86, 0)"]
    _shot(page, f"changelist-{scheme}.png")


@pytest.mark.django_db(transaction=True)
def test_a_wide_graph_fits_the_page_and_shows_its_actual_size_on_request(live_server: Any, chromium: Any,
                                                                         operator_data: Any) -> None:
    page = _open(chromium, live_server.url, width=1280)
    page.goto(f"{live_server.url}{CHANGELIST}workflows/{w.AdmWideFlow.name}/")
    scroll = page.locator(".hx-graph-scroll").first
    svg = scroll.locator("svg")
    natural = float(svg.get_attribute("width") or 0)
    fitted = _box(page, ".hx-graph-scroll svg")
    panel = _box(page, ".hx-graph-scroll")
    assert natural > panel["width"]  # wider than the page...
    assert fitted["width"] <= panel["width"] + 1  # ...and drawn to fit it
    assert scroll.evaluate("e => e.scrollWidth <= e.clientWidth")
    page.click("label.hx-zoom-label")
    actual = _box(page, ".hx-graph-scroll svg")
    assert abs(actual["width"] - natural) < 2
    assert scroll.evaluate("e => e.scrollWidth > e.clientWidth && e.scrollLeft === 0")  # from the left
    assert _page_width(page) <= 1280


@pytest.mark.django_db(transaction=True)
def test_node_states_in_the_browser(live_server: Any, chromium: Any, operator_data: Any) -> None:
    """A failed step is red and marked failed, never drawn like a running one."""
    page = _open(chromium, live_server.url)
    page.goto(f"{live_server.url}{CHANGELIST}{operator_data['failed'].pk}/change/")
    failed = page.locator(f'svg.hx-graph g[data-step="{w.AdmFlaky.registry_name()}"]')
    assert failed.get_attribute("data-state") == "failed"
    assert page.locator('svg.hx-graph g[data-state="active"]').count() == 0
    fill = failed.locator("rect").evaluate("e => getComputedStyle(e).fill")
    assert fill == "rgb(253, 224, 220)"
    legend = page.locator("ul.hx-legend li")
    assert legend.evaluate_all("items => items.map(i => i.dataset.state)") == [
        "completed", "active", "waiting", "failed", "cancelled", "skipped", "pending"]
    page.goto(f"{live_server.url}{CHANGELIST}{operator_data['cancelled'].pk}/change/")
    assert page.locator('svg.hx-graph g[data-state="cancelled"]').count() == 2
    page.goto(f"{live_server.url}{CHANGELIST}{operator_data['completed'].pk}/change/")
    assert page.locator('svg.hx-graph g[data-state="skipped"]').count() == 1
