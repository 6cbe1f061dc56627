"""Pages of the instance admin beyond Django's own, as a mixin of its ``ModelAdmin``
(:class:`InstancePagesMixin`): confirmation pages of the actions, the resume and migrate forms,
the per-instance cancel/retry/resume/pause/unpause/migrate pages and the registered-workflows
pages, with their URLs. It imports nothing of :mod:`hephaestus_django.admin.instances`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.functional import Promise
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from hephaestus_django import services
from hephaestus_django.admin import operations
from hephaestus_django.admin.filters import display_name, listed_workflows
from hephaestus_django.admin.forms import MigrateForm, ResumeForm
from hephaestus_django.admin.graphs import draw
from hephaestus_django.core import registry, render
from hephaestus_django.core.exceptions import HephaestusError
from hephaestus_django.core.registry import short_name
from hephaestus_django.storage.models import WorkflowInstance

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[WorkflowInstance]
else:
    _ModelAdmin = object

TEMPLATES = "admin/hephaestus_django/workflowinstance"
#: Rows listed on a confirmation page; the rest are counted.
LISTED = 100


def _question(verb: str, count: int) -> str:
    if verb == operations.CANCEL:
        text = ngettext("Cancel this instance? Its waiting steps and timers are dropped and no further "
                        "step runs.",
                        "Cancel these %(count)d instances? Their waiting steps and timers are dropped and no "
                        "further step runs.", count)
    elif verb == operations.PAUSE:
        text = ngettext("Pause this instance? No step starts and no timer fires until it is unpaused (a step "
                        "already executing finishes).",
                        "Pause these %(count)d instances? No step starts and no timer fires until they are "
                        "unpaused (steps already executing finish).", count)
    elif verb == operations.UNPAUSE:
        text = ngettext("Unpause this instance? Its runnable steps start and the timers that fell due fire.",
                        "Unpause these %(count)d instances? Their runnable steps start and the timers that fell "
                        "due fire.", count)
    else:
        text = ngettext("Retry this failed instance? Its failed step runs again.",
                        "Retry these %(count)d failed instances? Their failed steps run again.", count)
    return text % {"count": count}


TITLES = {
    operations.CANCEL: (gettext_lazy("Cancel instances"), gettext_lazy("Yes, cancel")),
    operations.RETRY: (gettext_lazy("Retry failed instances"), gettext_lazy("Yes, retry")),
    operations.RESUME: (gettext_lazy("Resume waiting instances"), gettext_lazy("Resume")),
    operations.PAUSE: (gettext_lazy("Pause instances"), gettext_lazy("Yes, pause")),
    operations.UNPAUSE: (gettext_lazy("Unpause instances"), gettext_lazy("Yes, unpause")),
    operations.MIGRATE: (gettext_lazy("Migrate instances to another version"), gettext_lazy("Yes, migrate")),
}


def pretty_json(value: Any) -> str:
    """Indented JSON with non-ASCII text as it is (no ``\\u`` escapes)."""
    return json.dumps(value, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)


def _rows(request: HttpRequest, queryset: QuerySet[Any]) -> list[WorkflowInstance] | None:
    """The selected rows, complete (the changelist defers the JSON columns); ``None`` if too many."""
    pks = list(queryset.order_by().values_list("pk", flat=True)[: operations.ACTION_LIMIT + 1])
    if len(pks) > operations.ACTION_LIMIT:
        messages.error(request, _("Select at most %(limit)d instances at once (or use the management "
                                  "commands).") % {"limit": operations.ACTION_LIMIT})
        return None
    return list(WorkflowInstance.objects.filter(pk__in=pks).order_by("-created_at", "-pk"))


def _action_fields(request: HttpRequest) -> dict[str, Any]:
    """What a confirmation page posts back so that Django's action machinery runs the action again."""
    return {
        "action_name": request.POST.get("action", ""),
        "select_across": request.POST.get("select_across", "0"),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }


def _refusal(form: ResumeForm) -> str:
    if "data" in form.errors:
        return _("Nothing was resumed: the data must be a JSON object (see below).")
    return _("Nothing was resumed: choose one of the offered events.")


def _migration_plan(row: WorkflowInstance, to_version: int, step_map: dict[str, str] | None) -> dict[str, Any]:
    """One line of the migrate confirmation: the instance, the version it would have, its steps."""
    try:
        mapping = services.plan_migration(row, to_version=to_version, step_map=step_map)
    except HephaestusError as exc:
        return {"row": row, "error": str(exc), "moves": []}
    moves = [(short_name(old), short_name(new)) for old, new in mapping.items() if old != new]
    kept = [short_name(old) for old, new in mapping.items() if old == new]
    return {"row": row, "error": "", "moves": moves, "kept": kept, "version": to_version}


#: Graphs with more steps are drawn on the workflow's own page only, not on the list.
LIST_GRAPH_LIMIT = 60

#: The past tense a change's log entry starts with.
_LOGGED = {operations.CANCEL: "Cancelled", operations.RETRY: "Retried", operations.RESUME: "Resumed",
           operations.PAUSE: "Paused", operations.UNPAUSE: "Unpaused", operations.MIGRATE: "Migrated"}


class InstancePagesMixin(_ModelAdmin):
    """The instance admin's own pages (mixed into a ``ModelAdmin`` of ``WorkflowInstance``)."""

    # ---- shared -------------------------------------------------------------------------------------------
    def _url(self, name: str, *args: Any) -> str:
        """The URL of this admin's page ``name`` (``change``, ``changelist``, ``workflows``, ``cancel``...)."""
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=args,
                       current_app=self.admin_site.name)

    def page_context(self, request: HttpRequest, title: str | Promise, **extra: Any) -> dict[str, Any]:
        """The template context of one of these pages (the admin site's, this model's, ``extra``)."""
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "media": self.media,
            "has_view_permission": self.has_view_permission(request),
            **extra,
        }

    def _change_logger(self, request: HttpRequest, verb: str) -> Any:
        """``log(row, detail)``: records a change made through the admin (a ``LogEntry``)."""
        label = _LOGGED[verb]

        def log(row: WorkflowInstance, detail: str) -> None:
            self.log_change(request, row, f"{label} through the admin{detail}.")

        return log

    # ---- changelist actions --------------------------------------------------------------------------------
    def confirm_action(self, request: HttpRequest, queryset: QuerySet[Any], verb: str) -> HttpResponse | None:
        """Cancel, retry, pause or unpause the selected instances after a confirmation page."""
        rows = _rows(request, queryset)
        if rows is None:
            return None
        if request.POST.get("post") == "yes":
            operations.apply(request, verb, rows, log=self._change_logger(request, verb),
                             options={"compensate": request.POST.get("compensate") == "on"})
            return None
        title, button = TITLES[verb]
        usable = sum(operations.applicable(verb, row) for row in rows)
        return TemplateResponse(request, f"{TEMPLATES}/action_confirmation.html", self.page_context(
            request, title, verb=verb, button=button, rows=rows[:LISTED], more=max(0, len(rows) - LISTED),
            question=_question(verb, len(rows)), unusable=len(rows) - usable, in_changelist=True,
            back_url=request.get_full_path(), **_action_fields(request)))

    def resume_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        """Resume waiting steps of the selected instances, each with an event chosen in a form."""
        rows = _rows(request, queryset)
        if rows is None:
            return None
        posted = request.POST.get("post") == "yes"
        form = ResumeForm(rows, data=request.POST if posted else None)
        if not form.has_choices:
            messages.warning(request, _("None of the selected instances has a waiting step to resume."))
            return None
        if posted:
            if form.is_valid():
                operations.apply(request, operations.RESUME, rows, form.selections(),
                                 log=self._change_logger(request, operations.RESUME), data=form.resume_data())
                return None
            messages.error(request, _refusal(form))
        title, button = TITLES[operations.RESUME]
        return TemplateResponse(request, f"{TEMPLATES}/resume.html", self.page_context(
            request, title, form=form, button=button, in_changelist=True,
            back_url=request.get_full_path(), **_action_fields(request)))

    def migrate_action(self, request: HttpRequest, queryset: QuerySet[Any] | None, *,
                       rows: list[WorkflowInstance] | None = None, **common: Any) -> HttpResponse | None:
        """Migrate the selected instances of one workflow: choose the version (and a step map), see
        what each instance would become, confirm."""
        in_changelist = rows is None
        if rows is None and queryset is not None:
            rows = _rows(request, queryset)
        if rows is None:
            return None
        names = {row.workflow for row in rows}
        back = common.get("back_url", request.get_full_path())
        if len(names) != 1 or not registry.is_registered(next(iter(names))):
            messages.error(request, _("Select instances of one registered workflow to migrate them."))
            return HttpResponseRedirect(back) if not in_changelist else None
        workflow = registry.get_workflow(next(iter(names)))
        stage = request.POST.get("hx_stage", "")
        form = MigrateForm(workflow, data=request.POST if stage else None)
        plans: list[dict[str, Any]] = []
        if stage and form.is_valid():
            to_version, step_map = form.cleaned_data["version"], form.cleaned_data["step_map"]
            if stage == "confirm" and request.POST.get("post") == "yes":
                operations.apply(request, operations.MIGRATE, rows,
                                 log=self._change_logger(request, operations.MIGRATE),
                                 options={"to_version": to_version, "step_map": step_map})
                return None if in_changelist else HttpResponseRedirect(back)
            plans = [_migration_plan(row, to_version, step_map) for row in rows[:LISTED]]
        title, button = TITLES[operations.MIGRATE]
        return TemplateResponse(request, f"{TEMPLATES}/migrate.html", self.page_context(
            request, title, form=form, plans=plans, rows=rows[:LISTED], more=max(0, len(rows) - LISTED),
            movable=sum(1 for plan in plans if not plan["error"]), workflow=workflow, button=button,
            in_changelist=in_changelist, back_url=back,
            **{k: v for k, v in common.items() if k not in ("back_url", "button", "in_changelist")},
            **(_action_fields(request) if in_changelist else {})))

    # ---- one instance ----------------------------------------------------------------------------------------
    def operation_view(self, request: HttpRequest, object_id: str, verb: str) -> HttpResponse:
        """``<pk>/cancel/``, ``<pk>/retry/``, ``<pk>/resume/``, ``<pk>/pause/``, ``<pk>/unpause/`` and
        ``<pk>/migrate/``: the same operations for one instance."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        row = self.get_object(request, object_id)
        if row is None:
            redirect: HttpResponse = self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]  # not in django-stubs
                request, self.opts, object_id)
            return redirect
        change_url = self._url("change", row.pk)
        posted = request.method == "POST"
        title, button = TITLES[verb]
        common = {"original": row, "change_url": change_url, "back_url": change_url, "button": button,
                  "in_changelist": False}
        if verb == operations.RESUME:
            form = ResumeForm([row], data=request.POST if posted else None)
            if not form.has_choices:
                messages.warning(request, _("%(id)s has no waiting step to resume.") % {"id": row.instance_id})
                return HttpResponseRedirect(change_url)
            if posted:
                if form.is_valid():
                    operations.apply(request, verb, [row], form.selections(),
                                     log=self._change_logger(request, verb), data=form.resume_data())
                    return HttpResponseRedirect(change_url)
                messages.error(request, _refusal(form))
            return TemplateResponse(request, f"{TEMPLATES}/resume.html",
                                    self.page_context(request, title, form=form, **common))
        if verb == operations.MIGRATE:
            response = self.migrate_action(request, None, rows=[row], **common)
            return response if response is not None else HttpResponseRedirect(change_url)
        if posted:
            operations.apply(request, verb, [row], log=self._change_logger(request, verb),
                             options={"compensate": request.POST.get("compensate") == "on"})
            return HttpResponseRedirect(change_url)
        usable = int(operations.applicable(verb, row))
        return TemplateResponse(request, f"{TEMPLATES}/action_confirmation.html", self.page_context(
            request, title, verb=verb, rows=[row], more=0, question=_question(verb, 1),
            unusable=1 - usable, **common))

    # ---- registered workflows -------------------------------------------------------------------------------
    def _workflow_entry(self, workflow: Any, *, all_versions: bool) -> dict[str, Any]:
        changelist = self._url("changelist")
        current = workflow.definition(None).version
        numbers = workflow.all_versions() if all_versions else [current]
        versions = []
        for number in sorted(numbers, key=lambda n: (n != current, -n)):
            graph = workflow.definition(number).graph
            drawn = all_versions or len(graph.nodes) <= LIST_GRAPH_LIMIT
            versions.append({
                "number": number, "current": number == current, "size": len(graph.nodes),
                "picture": draw(graph) if drawn else None,
                "steps": [{"name": s.registry_name(), "key": s.context_key(), "events": list(s.events)}
                          for s in graph.nodes] if all_versions else [],
                "mermaid": render.mermaid(graph) if all_versions else "",
            })
        return {
            "name": workflow.name, "short": display_name(workflow.name), "current": current,
            "all_versions": workflow.all_versions(), "unique": workflow.unique, "tags": list(workflow.tags),
            "metadata": pretty_json(workflow.metadata) if workflow.metadata else "", "versions": versions,
            "instances_url": f"{changelist}?{urlencode({'workflow': workflow.name})}",
            "detail_url": self._url("workflow", workflow.name),
        }

    def workflows_view(self, request: HttpRequest) -> HttpResponse:
        """Every registered workflow: name, versions, uniqueness, tags, metadata and its current graph."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        entries = [self._workflow_entry(wf, all_versions=False) for wf in listed_workflows()]
        title = _("Registered workflows")
        subtitle = ngettext("%(count)d workflow", "%(count)d workflows", len(entries)) % {"count": len(entries)}
        return TemplateResponse(request, "admin/hephaestus_django/workflows.html", self.page_context(
            request, title, subtitle=subtitle, workflows=entries, detail=False))

    def workflow_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """One registered workflow, every version drawn, with its steps and Mermaid text."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if not registry.is_registered(name):
            raise Http404(_("No workflow named %(name)s is registered.") % {"name": name})
        entry = self._workflow_entry(registry.get_workflow(name), all_versions=True)
        return TemplateResponse(request, "admin/hephaestus_django/workflows.html", self.page_context(
            request, entry["short"], workflows=[entry], detail=True, workflows_url=self._url("workflows")))

    # ---- urls -----------------------------------------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        """These pages' URLs before the ``ModelAdmin``'s own."""
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view

        def operation(verb: str) -> Any:
            def view(request: HttpRequest, object_id: str) -> HttpResponse:
                return self.operation_view(request, object_id, verb)

            return wrap(view)

        return [
            path("workflows/", wrap(self.workflows_view), name=f"{info}_workflows"),
            path("workflows/<path:name>/", wrap(self.workflow_view), name=f"{info}_workflow"),
            *(path(f"<path:object_id>/{verb}/", operation(verb), name=f"{info}_{verb}")
              for verb in (*operations.CONFIRMED, operations.RESUME, operations.MIGRATE)),
            *super().get_urls(),
        ]
