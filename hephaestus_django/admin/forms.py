"""The resume form: for each instance, a choice among its waiting steps and their declared events.

Choices are computed from the instance's current state, so a tampered value (an undeclared event,
a step that is not waiting) is not a valid choice and nothing is resumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from hephaestus_django.admin.filters import short_name
from hephaestus_django.core.engine import graph_of
from hephaestus_django.core.exceptions import HephaestusError
from hephaestus_django.core.steps import WaitForEvent
from hephaestus_django.storage.models import WorkflowInstance
from hephaestus_django.storage.orm import to_instance

#: Separates the step's registry name from the event in a choice value (never in a dotted path).
SEPARATOR = "|"

Choices = list[tuple[str, list[tuple[str, str]]]]


def resume_choices(row: WorkflowInstance) -> Choices:
    """``[(step label, [("step|event", event label), ...]), ...]`` for each waiting step of ``row``.

    An event is offered when the step declares it and the workflow has a transition for it (so a
    ``WaitForEvent`` without a ``timeout`` is offered ``received`` only). Instances whose workflow
    is not registered any more offer nothing.
    """
    if not row.waiting_steps:
        return []
    try:
        instance = to_instance(row)
        graph = graph_of(instance)
    except (HephaestusError, ValueError):
        return []
    groups: Choices = []
    for step in sorted(instance.waiting_steps, key=graph.index.__getitem__):
        config = instance.step_configs.get(step, {})
        options = []
        step_label = short_name(step.registry_name())
        for event in graph.handled_events(step):
            label = event
            if issubclass(step, WaitForEvent) and event == "received" and config.get("event_name"):
                label = f"{event} ({config['event_name']})"
            options.append((f"{step.registry_name()}{SEPARATOR}{event}", f"{step_label} → {label}"))
        if options:
            groups.append((step_label, options))
    return groups


def parse_choice(value: str) -> tuple[str, str]:
    """``"pkg.Step|event"`` -> ``("pkg.Step", "event")``."""
    step, _sep, event = value.partition(SEPARATOR)
    return step, event


class ResumeForm(forms.Form):
    """One ``resume_<pk>`` choice per resumable instance.

    With one instance the choice is required; with several, instances left blank stay waiting,
    but at least one must be chosen.
    """

    def __init__(self, rows: Iterable[WorkflowInstance], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows: dict[str, WorkflowInstance] = {}
        self.skipped: list[WorkflowInstance] = []
        rows = list(rows)
        for row in rows:
            choices = resume_choices(row)
            if not choices:
                self.skipped.append(row)
                continue
            name = f"resume_{row.pk}"
            self.rows[name] = row
            single = len(rows) == 1
            blank = _("— choose an event —") if single else _("— leave waiting —")
            self.fields[name] = forms.ChoiceField(
                label=row.instance_id,
                choices=[("", blank), *choices],
                required=single,
                help_text=_("waiting step and the event to resume it with"),
            )

    @property
    def has_choices(self) -> bool:
        return bool(self.fields)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.fields and not self.errors and not any(cleaned.get(name) for name in self.fields):
            raise forms.ValidationError(_("Choose an event for at least one instance."))
        return cleaned

    def selections(self) -> dict[int, tuple[str, str]]:
        """``{row pk: (step name, event)}`` of the valid, chosen resumptions."""
        chosen = {}
        for name, row in self.rows.items():
            value = self.cleaned_data.get(name)
            if value:
                chosen[row.pk] = parse_choice(value)
        return chosen

    def fields_with_rows(self) -> list[tuple[forms.BoundField, WorkflowInstance]]:
        """Bound fields with their instance, for the template."""
        return [(self[name], row) for name, row in self.rows.items()]
