"""The admin of workflow schedules (``docs/admin.md``): the schedules declared in code, with their next
tick, and a durable pause toggle per schedule.

Schedules live in code (``schedules = [Schedule(...)]`` on a workflow class); a row keeps what
the workers need (the next tick, whether it is paused). The changelist lists every registered
schedule (adding the rows of those no worker has seen yet) and pauses or unpauses them, one at a
time with the button of its row or several with the actions, through the services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from hephaestus_django import services
from hephaestus_django.core import registry
from hephaestus_django.core.registry import short_name
from hephaestus_django.storage.models import WorkflowInstance, WorkflowSchedule


def _declared() -> dict[tuple[str, str], Any]:
    return {(wf.name, s.name): s for wf in registry.all_workflows() for s in wf.schedules}


class WorkflowScheduleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only schedules; the change permission pauses and unpauses them."""

    list_display = ("name", "workflow_name", "cron", "timezone", "is_paused", "next_tick_display", "last_tick",
                    "last_instance_link", "toggle")
    list_display_links = None
    list_filter = ("paused",)
    search_fields = ("workflow", "name")
    actions = ("pause_schedules", "unpause_schedules")
    ordering = ("workflow", "name")

    class Media:
        css = {"all": ("hephaestus_django/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Allows pausing; the schedule itself is defined in code and never edited here."""
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        declared = _declared()
        # rows for the schedules no worker has seen yet (their next tick stays unknown until one does)
        WorkflowSchedule.objects.bulk_create([WorkflowSchedule(workflow=w, name=n) for w, n in declared],
                                             ignore_conflicts=True)
        self._declared = declared
        return super().changelist_view(request, extra_context)

    def _schedule(self, obj: WorkflowSchedule) -> Any:
        declared = getattr(self, "_declared", None)
        if declared is None:
            declared = self._declared = _declared()
        return declared.get((obj.workflow, obj.name))

    @admin.display(description=_("workflow"), ordering="workflow")
    def workflow_name(self, obj: WorkflowSchedule) -> str:
        return format_html('<span title="{}">{}</span>', obj.workflow, short_name(obj.workflow))

    @admin.display(description=_("cron"))
    def cron(self, obj: WorkflowSchedule) -> str:
        schedule = self._schedule(obj)
        if schedule is None:
            return format_html('<span class="hx-muted">{}</span>', _("not declared any more"))
        return format_html("<code>{}</code>", schedule.cron)

    @admin.display(description=_("time zone"))
    def timezone(self, obj: WorkflowSchedule) -> str:
        schedule = self._schedule(obj)
        return str(schedule.timezone) if schedule is not None else "—"

    @admin.display(description=_("paused"), boolean=True, ordering="paused")
    def is_paused(self, obj: WorkflowSchedule) -> bool:
        return obj.paused

    @admin.display(description=_("next tick"), ordering="next_tick")
    def next_tick_display(self, obj: WorkflowSchedule) -> str:
        if obj.paused:
            return format_html('<span class="hx-muted">{}</span>', _("paused"))
        if obj.next_tick is None:
            return format_html('<span class="hx-muted">{}</span>', _("after the next worker pass"))
        return str(obj.next_tick)

    @admin.display(description=_("last instance"))
    def last_instance_link(self, obj: WorkflowSchedule) -> str:
        if not obj.last_instance:
            return "—"
        opts = WorkflowInstance._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist", current_app=self.admin_site.name)
        return format_html('<a href="{}?{}">{}</a>', url, urlencode({"q": obj.last_instance}), obj.last_instance)

    @admin.display(description=_("pause"))
    def toggle(self, obj: WorkflowSchedule) -> str:
        if self._schedule(obj) is None:
            return "—"
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_toggle", args=[obj.pk],
                      current_app=self.admin_site.name)
        label = _("Unpause") if obj.paused else _("Pause")
        # a button of the changelist's own form (which carries the CSRF token), posted to the toggle URL
        return format_html('<button type="submit" class="button hx-toggle" formaction="{}" name="hx_toggle" '
                           'value="{}">{}</button>', url, obj.pk, label)

    # ---- changing the pause ------------------------------------------------------------------------
    def _set_paused(self, request: HttpRequest, rows: Any, paused: bool) -> int:
        changed = 0
        for row in rows:
            if self._schedule(row) is None:
                messages.error(request, _("%(name)s is not declared by a registered workflow any more.")
                               % {"name": row})
                continue
            (services.pause_schedule if paused else services.unpause_schedule)(row.workflow, row.name)
            self.log_change(request, row, "Paused through the admin." if paused else "Unpaused through the admin.")
            changed += 1
        return changed

    @admin.action(permissions=["change"], description=_("Pause selected schedules"))
    def pause_schedules(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = self._set_paused(request, queryset, True)
        if count:
            messages.success(request, ngettext("Paused %(count)d schedule.", "Paused %(count)d schedules.", count)
                             % {"count": count})

    @admin.action(permissions=["change"], description=_("Unpause selected schedules"))
    def unpause_schedules(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = self._set_paused(request, queryset, False)
        if count:
            messages.success(request, ngettext("Unpaused %(count)d schedule (its next tick is the first after "
                                               "now).", "Unpaused %(count)d schedules (their next tick is the "
                                               "first after now).", count) % {"count": count})

    def toggle_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        row = WorkflowSchedule.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
                             current_app=self.admin_site.name)
        if row is None:
            messages.error(request, _("No such schedule."))
            return HttpResponseRedirect(changelist)
        if self._set_paused(request, [row], not row.paused):
            text = _("Paused %(name)s.") if not row.paused else _("Unpaused %(name)s.")
            messages.success(request, text % {"name": row})
        return HttpResponseRedirect(changelist)

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [path("<path:object_id>/toggle/", self.admin_site.admin_view(self.toggle_view), name=f"{info}_toggle"),
                *super().get_urls()]
