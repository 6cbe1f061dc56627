"""The resume form: for each instance, a choice among its waiting steps and their declared events,
and optional JSON ``data`` for the resumed steps.

Choices are computed from the instance's current state, so a tampered value (an undeclared event,
a step that is not waiting) is not a valid choice and nothing is resumed. Children steps (they
wait for their child workflows, not for an event) are never offered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext_lazy as _

from hephaestus_django import services
from hephaestus_django.core.registry import short_name
from hephaestus_django.core.values import storable_problem
from hephaestus_django.storage.models import WorkflowInstance

#: Separates the step's registry name from the event in a choice value (never in a dotted path).
SEPARATOR = "|"

Choices = list[tuple[str, list[tuple[str, str]]]]

#: How a JSON value that is not an object is named in the error (booleans before numbers).
_JSON_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (list, "an array"), (str, "a string"), (bool, "a boolean"), ((int, float), "a number"))


def resume_choices(row: WorkflowInstance) -> Choices:
    """``[(step label, [("step|event", event label), ...]), ...]``: the instance's
    :func:`~hephaestus_django.services.resume_options`, grouped by waiting step (an event is
    offered when the step declares it and the workflow has a transition for it, so a
    ``WaitForEvent`` without a ``timeout`` is offered ``received`` only). Instances whose workflow
    is not registered any more offer nothing.
    """
    groups: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for option in services.resume_options(row):
        name = option.step.registry_name()
        step_label, choices = groups.setdefault(name, (short_name(name), []))
        label = f"{option.event} ({option.alias})" if option.alias else option.event
        choices.append((f"{name}{SEPARATOR}{option.event}", f"{step_label} → {label}"))
    return list(groups.values())


def parse_choice(value: str) -> tuple[str, str]:
    """``"pkg.Step|event"`` -> ``("pkg.Step", "event")``."""
    step, _sep, event = value.partition(SEPARATOR)
    return step, event


class OptionalJSONField(forms.JSONField):
    """A JSON field whose empty value shows as an empty box (Django's shows ``null``)."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class ResumeForm(forms.Form):
    """One ``resume_<pk>`` choice per resumable instance, and ``data`` for every chosen step.

    With one instance the choice is required; with several, instances left blank stay waiting,
    but at least one must be chosen. ``data`` is a JSON object or empty (the same
    rule as the API's and the command's resume data).
    """

    if not TYPE_CHECKING:  # a declared field named like Form.data: the form's metaclass takes it out of the class
        data = OptionalJSONField(
            label=_("data"), required=False, encoder=DjangoJSONEncoder,
            widget=forms.Textarea(attrs={"rows": 4, "cols": 60, "class": "hx-json-input", "spellcheck": "false"}),
            help_text=_('Optional: a JSON object merged into each resumed step\'s context entry, e.g. '
                        '{"approved_by": "ann"}.'))

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
        return bool(self.rows)

    @property
    def data_field(self) -> forms.BoundField:
        """The ``data`` field (``form.data`` is the submitted data itself)."""
        return self["data"]

    def clean_data(self) -> dict[str, Any] | None:
        value = self.cleaned_data.get("data")
        if value is None:
            return None
        if not isinstance(value, dict):
            kind = next((name for types, name in _JSON_KINDS if isinstance(value, types)), type(value).__name__)
            raise forms.ValidationError(_("Enter a JSON object ({...}), not %(kind)s.") % {"kind": kind})
        problem = storable_problem(value, "data")
        if problem is not None:
            raise forms.ValidationError(problem)
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.rows and not self.errors and not any(cleaned.get(name) for name in self.rows):
            raise forms.ValidationError(_("Choose an event for at least one instance."))
        return cleaned

    def resume_data(self) -> dict[str, Any] | None:
        """The valid ``data`` (``None`` when left empty)."""
        value: dict[str, Any] | None = self.cleaned_data.get("data")
        return value

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


class MigrateForm(forms.Form):
    """The target version of a migration, and an optional step map (a JSON object)."""

    version = forms.TypedChoiceField(label=_("target version"), coerce=int)
    step_map = forms.CharField(
        label=_("step map"), required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text=_('Optional JSON: {"old step registry name": "new step registry name"} for the steps the '
                    "target version does not have."))

    def __init__(self, workflow: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = workflow.definition(None).version
        cast(forms.ChoiceField, self.fields["version"]).choices = [
            (v, f"v{v}" + (f" ({_('current')})" if v == current else "")) for v in workflow.all_versions()]

    def clean_step_map(self) -> dict[str, str] | None:
        text = self.cleaned_data.get("step_map", "").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": exc.msg}) from None
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in value.items()):
            raise forms.ValidationError(_("Give a JSON object of step registry names: {\"old\": \"new\"}."))
        return value
