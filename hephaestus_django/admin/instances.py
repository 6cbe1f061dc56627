"""The admin of :class:`~hephaestus_django.storage.models.WorkflowInstance`.

- Changelist: id, workflow, version, coloured status, current step, dates; filters whose choices
  come from the registry; a paginator that estimates counts on very large tables; no per-row
  queries (the JSON columns are not even loaded).
- Instance page: read-only. Formatted JSON, the workflow graph with each step's state, the
  execution history (one query, however long it is), the error of a failed instance, and links
  to its parent and its child workflows.
- Actions (change permission): cancel, retry, resume, pause, unpause and migrate, each with a
  confirmation page, all through :mod:`hephaestus_django.services`. The same operations are offered
  on the instance page. These pages (and ``workflows/`` below) are the methods of
  :class:`~hephaestus_django.admin.views.InstancePagesMixin`.
- Deletion (delete permission) of finished instances only: the delete view and the bulk action
  refuse active ones (every status of the active set: pending, running, waiting...).
- Filters and search never fail on input a database cannot take (a NUL character): such a
  parameter is dropped with a message.
- ``workflows/`` and ``workflows/<name>/``: the registered workflows with their graphs (linked from
  the app index, the changelist and each instance page).
"""

from __future__ import annotations

import sys
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.timesince import timesince
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from hephaestus_django.admin import operations, views
from hephaestus_django.admin.dates import date_hierarchy, from_nanoseconds, moment, stacked_moment
from hephaestus_django.admin.filters import VersionFilter, WorkflowFilter
from hephaestus_django.admin.forms import resume_choices
from hephaestus_django.admin.graphs import instance_picture
from hephaestus_django.admin.pagination import EstimatedCountPaginator
from hephaestus_django.admin.views import InstancePagesMixin, pretty_json
from hephaestus_django.core import clock, registry
from hephaestus_django.core.registry import short_name
from hephaestus_django.core.status import EntryKind, Status
from hephaestus_django.core.values import storable_problem
from hephaestus_django.storage.models import ACTIVE, HistoryEntry, Timer, WorkflowInstance, WorkflowInstanceQuerySet

#: History entries per page of an instance's history (the latest ones first; ``?history_page=2``...).
HISTORY_LIMIT = 200
#: Child workflows listed on an instance page (the changelist, filtered, shows them all).
CHILDREN_LIMIT = 100
#: Columns the changelist never shows: not loading them keeps a page of rows small.
HEAVY_COLUMNS = ("context", "step_configs", "active_steps", "completed_steps", "waiting_steps",
                 "pending_joins", "runtime_metadata", "telemetry_metadata", "error")


def _versions(name: str) -> list[int]:
    """The versions of a registered workflow (none when it is not registered)."""
    return registry.get_workflow(name).all_versions() if registry.is_registered(name) else []


def _step_list(names: Any) -> str:
    if not names:
        return "—"
    return format_html_join(", ", '<span title="{}">{}</span>', ((n, short_name(n)) for n in names))


def is_active(row: Any) -> bool:
    """Whether the row's status is one of the active set (which holds its business key)."""
    return row.status in ACTIVE


def _active_names() -> str:
    return ", ".join(ACTIVE)


class WorkflowInstanceAdmin(InstancePagesMixin, admin.ModelAdmin):  # type: ignore[type-arg]  # generic in django-stubs only
    """Read-only instances; state changes only through the services (actions and instance pages)."""

    list_display = ("instance_id", "workflow_name", "version", "status_badge", "current_step_name",
                    "created", "updated")
    list_display_links = ("instance_id",)
    list_filter = (("status", admin.ChoicesFieldListFilter), WorkflowFilter, VersionFilter)
    date_hierarchy = "created_at"
    search_fields = ("instance_id",)
    search_help_text = _("An instance id or its beginning (order::A-1…), or a business value (A-17).")
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("cancel_instances", "retry_instances", "resume_instances", "pause_instances", "unpause_instances",
               "migrate_instances")
    readonly_fields = (
        "instance_id", "workflow_link", "version", "status_badge", "current_step_name", "parent_link",
        "active_steps_display", "waiting_steps_display", "completed_steps_display", "pending_joins_display",
        "context_json", "step_configs_json", "runtime_metadata_json", "telemetry_metadata_json",
        "telemetry_started", "history_length", "created_on", "updated_on", "started", "finished",
    )
    fieldsets = (
        (None, {"fields": ("instance_id", "workflow_link", "version", "status_badge", "current_step_name",
                           "parent_link")}),
        (_("Steps"), {"fields": ("active_steps_display", "waiting_steps_display", "completed_steps_display",
                                 "pending_joins_display")}),
        (_("Context"), {"fields": ("context_json",)}),
        (_("Step configs"), {"fields": ("step_configs_json",)}),
        (_("Metadata"), {"fields": ("runtime_metadata_json", "telemetry_metadata_json",
                                    "telemetry_started")}),
        (_("Dates"), {"fields": ("created_on", "updated_on", "started", "finished", "history_length")}),
    )

    class Media:
        css = {"all": ("hephaestus_django/admin.css",)}

    # ---- permissions: an observer -------------------------------------------------------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The change permission allows the actions; an instance's page is always read-only."""
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only finished instances can be deleted: an active one is cancelled first."""
        if obj is not None and is_active(obj):
            return False
        return super().has_delete_permission(request, obj)

    # ---- deletion: finished instances only ------------------------------------------------------------
    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        """The engine's actions first; Django's bulk delete last, for finished instances only.

        (``action_location``: Django 6.1 offers actions on the change form too.)"""
        # Django 6 (Python >= 3.12, as django-stubs tells the signatures apart) passes a location
        if action_location is None or sys.version_info < (3, 12):
            actions: dict[str, Any] = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)
        if "delete_selected" in actions:
            del actions["delete_selected"]
            actions["delete_selected"] = (type(self).delete_finished, "delete_selected",
                                          gettext("Delete selected finished instances…"))
        return actions

    def delete_view(self, request: HttpRequest, object_id: str,
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is not None and is_active(obj) and super().has_delete_permission(request, obj):
            messages.error(request, gettext(
                "%(id)s is %(status)s: an active instance cannot be deleted. Cancel it first; once it is "
                "finished it can be deleted or pruned.") % {"id": obj.instance_id, "status": obj.status})
            return HttpResponseRedirect(self._url("change", obj.pk))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        # one statement that re-checks the status: an instance retried meanwhile is not deleted
        WorkflowInstance.objects.filter(pk=obj.pk).finished().delete()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        cast(WorkflowInstanceQuerySet, queryset).finished().delete()  # this admin's querysets

    # ---- changelist ------------------------------------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == f"{self.opts.app_label}_{self.opts.model_name}_changelist":
            queryset = queryset.defer(*HEAVY_COLUMNS)
        return queryset

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any],
                           search_term: str) -> tuple[QuerySet[Any], bool]:
        """Ids by prefix; a term without ``::`` also matches business values (``key::VALUE``)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(instance_id__startswith=term)
        if "::" not in term:
            condition |= Q(instance_id__contains=f"::{term}")
        return queryset.filter(condition), False

    def changelist_view(self, request: HttpRequest,
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        unusable = sorted({name for name, values in request.GET.lists()
                           if storable_problem(name) or any(storable_problem(v) for v in values)})
        if unusable:  # a database could not compare them: drop them rather than fail
            messages.warning(request, ngettext(
                "The filter or search %(names)s was ignored: it holds a character (NUL) no instance can have.",
                "The filters or searches %(names)s were ignored: they hold a character (NUL) no instance can have.",
                len(unusable)) % {"names": ", ".join(repr(n) for n in unusable)})
            kept = [(name, value) for name, values in request.GET.lists() if name not in unusable
                    for value in values]
            return HttpResponseRedirect(f"{request.path}?{urlencode(kept)}" if kept else request.path)
        extra_context = {**(extra_context or {}), "workflows_url": self._url("workflows")}
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data and "cl" in response.context_data:
            response.context_data["hx_date_hierarchy"] = date_hierarchy(response.context_data["cl"])
        return response

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: WorkflowInstance) -> str:
        return stacked_moment(obj.created_at)

    @admin.display(description=_("updated"), ordering="updated_at")
    def updated(self, obj: WorkflowInstance) -> str:
        return stacked_moment(obj.updated_at)

    @admin.display(description=_("created"))
    def created_on(self, obj: WorkflowInstance) -> str:
        return moment(obj.created_at)

    @admin.display(description=_("updated"))
    def updated_on(self, obj: WorkflowInstance) -> str:
        return moment(obj.updated_at)

    @admin.display(description=_("started"))
    def started(self, obj: WorkflowInstance) -> str:
        return moment(obj.started_at)

    @admin.display(description=_("finished"))
    def finished(self, obj: WorkflowInstance) -> str:
        return moment(obj.finished_at)

    @admin.display(description=_("telemetry start time"))
    def telemetry_started(self, obj: WorkflowInstance) -> str:
        """A date, not the raw nanosecond count (which stays in the title)."""
        value = obj.telemetry_start_time
        when = from_nanoseconds(value)
        if when is None:
            return "—" if value is None else str(value)
        return format_html('<span title="{}">{}</span>', _("%(ns)s ns since the epoch") % {"ns": value},
                           moment(when))

    @admin.display(description=_("workflow"), ordering="workflow")
    def workflow_name(self, obj: WorkflowInstance) -> str:
        return format_html('<span title="{}">{}</span>', obj.workflow, short_name(obj.workflow))

    @admin.display(description=_("version"), ordering="workflow_version")
    def version(self, obj: WorkflowInstance) -> str:
        return f"v{obj.workflow_version}"

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: WorkflowInstance) -> str:
        return format_html('<span class="hx-status hx-status-{}">{}</span>', obj.status,
                           obj.get_status_display())

    @admin.display(description=_("current step"), ordering="current_step")
    def current_step_name(self, obj: WorkflowInstance) -> str:
        if not obj.current_step:
            return "—"
        return format_html('<span title="{}">{}</span>', obj.current_step, short_name(obj.current_step))

    # ---- actions -------------------------------------------------------------------------------------------
    @admin.action(permissions=["change"], description=_("Cancel selected instances…"))
    def cancel_instances(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self.confirm_action(request, queryset, operations.CANCEL)

    @admin.action(permissions=["change"], description=_("Retry selected failed instances…"))
    def retry_instances(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self.confirm_action(request, queryset, operations.RETRY)

    @admin.action(permissions=["change"], description=_("Resume a waiting step of selected instances…"))
    def resume_instances(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self.resume_action(request, queryset)

    @admin.action(permissions=["change"], description=_("Pause selected instances…"))
    def pause_instances(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self.confirm_action(request, queryset, operations.PAUSE)

    @admin.action(permissions=["change"], description=_("Unpause selected instances…"))
    def unpause_instances(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self.confirm_action(request, queryset, operations.UNPAUSE)

    @admin.action(permissions=["change"], description=_("Migrate selected instances to another version…"))
    def migrate_instances(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self.migrate_action(request, queryset)

    # ---- instance page -----------------------------------------------------------------------------------
    @admin.display(description=_("workflow"))
    def workflow_link(self, obj: WorkflowInstance) -> str:
        return format_html('<a href="{}">{}</a>', self._url("workflow", obj.workflow), obj.workflow)

    @admin.display(description=_("parent"))
    def parent_link(self, obj: WorkflowInstance) -> str:
        if obj.parent_id is not None:
            step = short_name(obj.parent_step)
            return format_html('<a href="{}">{}</a> <span class="hx-muted">({})</span>',
                               self._url("change", obj.parent_id), obj.parent_instance_id,
                               _("started by its step %(step)s") % {"step": step})
        if obj.parent_instance_id:
            return format_html('{} <span class="hx-muted">({})</span>', obj.parent_instance_id, _("deleted"))
        return "—"

    @admin.display(description=_("active steps"))
    def active_steps_display(self, obj: WorkflowInstance) -> str:
        return _step_list(obj.active_steps)

    @admin.display(description=_("waiting steps"))
    def waiting_steps_display(self, obj: WorkflowInstance) -> str:
        if not obj.waiting_steps:
            return "—"
        return format_html_join(", ", '<span title="{}">{}</span> <span class="hx-muted">({} {})</span>',
                                ((n, short_name(n), _("since"), moment(since))
                                 for n, since in obj.waiting_steps.items()))

    @admin.display(description=_("completed steps"))
    def completed_steps_display(self, obj: WorkflowInstance) -> str:
        return _step_list(obj.completed_steps)

    @admin.display(description=_("pending joins"))
    def pending_joins_display(self, obj: WorkflowInstance) -> str:
        return _step_list(obj.pending_joins)

    @admin.display(description=_("context"))
    def context_json(self, obj: WorkflowInstance) -> str:
        return self._json(obj.context)

    @admin.display(description=_("step configs"))
    def step_configs_json(self, obj: WorkflowInstance) -> str:
        return self._json(obj.step_configs)

    @admin.display(description=_("runtime metadata"))
    def runtime_metadata_json(self, obj: WorkflowInstance) -> str:
        return self._json(obj.runtime_metadata)

    @admin.display(description=_("telemetry metadata"))
    def telemetry_metadata_json(self, obj: WorkflowInstance) -> str:
        return self._json(obj.telemetry_metadata)

    @staticmethod
    def _json(value: Any) -> str:
        return format_html('<pre class="hx-json">{}</pre>', pretty_json(value))

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: Any = None) -> HttpResponse:
        if obj is not None:
            context.update(self._instance_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _instance_context(self, request: HttpRequest, obj: WorkflowInstance) -> dict[str, Any]:
        """Graph, history (one query), timers (one query) and the operations offered."""
        # pages of the history by position (seq), newest page first: an index range, however long
        pages = max(1, -(-obj.history_length // HISTORY_LIMIT))
        raw_page = request.GET.get("history_page", "1")
        page = min(int(raw_page), pages) if raw_page.isascii() and raw_page.isdigit() and len(raw_page) < 10 else 1
        page = max(page, 1)
        last = obj.history_length - (page - 1) * HISTORY_LIMIT
        hidden = max(0, last - HISTORY_LIMIT)
        history = HistoryEntry.objects.filter(instance_id=obj.pk, seq__gt=hidden, seq__lte=last).order_by("seq")
        can_change = self.has_change_permission(request)
        operable = obj.status != Status.COMPLETED and obj.status != Status.CANCELLED
        if can_change and operable and operations.superseded([obj]):
            can_change = False
        offered = {
            "resume": can_change and bool(resume_choices(obj)),
            **{verb: can_change and operations.applicable(verb, obj) for verb in operations.CONFIRMED},
            operations.MIGRATE: can_change and operations.applicable(operations.MIGRATE, obj)
            and len(_versions(obj.workflow)) > 1,
        }
        entries: list[Any] = list(history)
        for entry in entries:  # what the template shows, computed once here
            entry.short_step = short_name(entry.step)
            entry.pretty_updates = pretty_json(entry.context_updates) if entry.context_updates else ""
            entry.when = moment(entry.timestamp)
            entry.delay_text = f"{round(entry.delay, 3):g}" if entry.delay is not None else ""
        now = clock.now()  # the clock that decides when timers fire
        children: list[Any]  # rows that carry what the template shows, as the entries and timers do
        timers: list[Any] = list(Timer.objects.filter(instance_id=obj.pk).order_by("due_at", "pk"))
        for timer in timers:
            timer.when = moment(timer.due_at)
            timer.overdue = timesince(timer.due_at, now) if timer.due_at < now else ""
            timer.short_step = short_name(timer.step)
        failure = next((e for e in reversed(entries) if e.kind == EntryKind.FAILED), None)
        children = list(WorkflowInstance.objects.filter(parent_id=obj.pk).order_by("pk")
                        .only("instance_id", "workflow", "workflow_version", "status", "parent_step", "updated_at")
                        [: CHILDREN_LIMIT + 1])
        for child in children:
            child.change_url = self._url("change", child.pk)
            child.short_parent_step = short_name(child.parent_step)
        return {
            "hx_children": children[:CHILDREN_LIMIT],
            "hx_children_more": len(children) > CHILDREN_LIMIT,
            "hx_children_url": f"{self._url('changelist')}?parent__id__exact={obj.pk}",
            "hx_picture": instance_picture(obj, entries),
            "hx_history": entries,
            "hx_history_hidden": hidden,
            "hx_history_newer": obj.history_length - last,
            "hx_history_pages": {"older": f"?history_page={page + 1}" if page < pages else "",
                                 "newer": f"?history_page={page - 1}" if page > 1 else "", "page": page,
                                 "count": pages},
            "hx_timers": timers,
            "hx_failed": obj.status == Status.FAILED,
            "hx_failure": failure,
            "hx_offered": offered,
            "hx_urls": {verb: self._url(verb, obj.pk) for verb in offered},
            "workflow_url": self._url("workflow", obj.workflow),
        }

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
        context.setdefault("workflows_url", self._url("workflows"))
        return super().render_delete_form(request, context)

    def get_deleted_objects(self, objs: Any,
                            request: HttpRequest) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """Summarise instead of listing every history entry (an instance may have thousands)."""
        rows = list(objs)
        pks = [row.pk for row in rows]
        listed: list[Any] = [str(row) for row in rows[: views.LISTED]]
        if len(rows) > views.LISTED:
            listed.append(_("…and %(count)d more") % {"count": len(rows) - views.LISTED})
        counts = {
            str(WorkflowInstance._meta.verbose_name_plural): len(rows),
            str(HistoryEntry._meta.verbose_name_plural):
                HistoryEntry.objects.filter(instance_id__in=pks).count(),
            str(Timer._meta.verbose_name_plural): Timer.objects.filter(instance_id__in=pks).count(),
        }
        perms_needed = set()
        if not all(self.has_delete_permission(request, row) for row in rows):
            perms_needed.add(str(WorkflowInstance._meta.verbose_name))
        return listed, {k: v for k, v in counts.items() if v}, perms_needed, []

    def delete_finished(self, request: HttpRequest, queryset: WorkflowInstanceQuerySet) -> HttpResponse | None:
        """Django's bulk delete, refused when the selection holds an active instance."""
        active = list(queryset.active().order_by("-created_at", "-pk")
                      .values_list("instance_id", flat=True)[:operations.MAX_ERROR_MESSAGES + 1])
        if active:
            shown = ", ".join(active[: operations.MAX_ERROR_MESSAGES]) + (
                "…" if len(active) > operations.MAX_ERROR_MESSAGES else "")
            messages.error(request, gettext(
                "Nothing was deleted: active instances (%(statuses)s) cannot be deleted; cancel them first or "
                "select finished ones only. Active: %(ids)s.") % {"statuses": _active_names(), "ids": shown})
            return None
        return delete_selected(self, request, queryset)
