"""The Python API (``docs/reference/python-api.md``): what the admin, the API and the commands call (the
workflow facade, ``OrderFlow.start(...)``, reaches the same database runner through :func:`install`).

::

    from hephaestus_django import start_instance, resume, cancel, retry, get_instance, list_instances
    from hephaestus_django import pause, unpause, migrate

The instances the changes return (``start_instance``, ``resume``, ``cancel``, ``retry``, ``pause``,
``unpause``, ``migrate``) read their stored history only when it is looked at
(``instance.execution_history``): callers that only need the state read no history rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hephaestus_django.core import engine, facade
from hephaestus_django.core.engine import ResumeOption
from hephaestus_django.core.exceptions import HephaestusError
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.workflow import LIST_LIMIT
from hephaestus_django.runtime.dispatch import get_runner
from hephaestus_django.storage.orm import to_instance

__all__ = ["cancel", "get_instance", "install", "list_instances", "list_schedules", "migrate", "migrate_many", "pause",
           "pause_schedule", "plan_migration", "resume", "resume_options", "retry", "start_instance", "unpause",
           "unpause_schedule"]


def install() -> None:
    """Make the workflow facade (``OrderFlow.start(...)``) use the database."""
    facade.set_backend(get_runner())


def start_instance(workflow: Any, context: dict[str, Any], *, id: str, version: int | None = None,
                   telemetry_metadata: dict[str, Any] | None = None) -> Instance:
    """Start ``workflow`` (class or registry name) with the full instance ``id``."""
    return get_runner().start_instance(workflow, context, id=id, version=version,
                                        telemetry_metadata=telemetry_metadata)


def resume(id: str, event: str, *, step: Any = None, data: dict[str, Any] | None = None,
           idempotency_key: str | None = None, workflow: Any = None) -> Instance:
    """Complete the waiting step of the newest instance ``id`` (of ``workflow``, if given) with ``event``.

    ``data`` (a JSON object) is merged into that step's context entry and recorded in the
    ``resumed`` history entry. A resume whose ``idempotency_key`` (at most 255 characters) was
    already used on this instance does nothing and returns the instance as it is.
    """
    return get_runner().resume(id, event, step=step, data=data, idempotency_key=idempotency_key,
                               workflow=workflow)


def cancel(id: str, *, workflow: Any = None, compensate: bool = False) -> Instance:
    """Cancel the newest instance ``id`` (of ``workflow``, if given); with ``compensate``, the
    compensations of its completed steps run first (status ``compensating``, then ``cancelled``)."""
    return get_runner().cancel(id, workflow=workflow, compensate=compensate)


def pause(id: str, *, workflow: Any = None) -> Instance:
    """Pause the running or waiting instance ``id``: no step starts and no timer fires until
    :func:`unpause` (``NotPausable`` otherwise)."""
    return get_runner().pause(id, workflow=workflow)


def unpause(id: str, *, workflow: Any = None) -> Instance:
    """Unpause the paused instance ``id`` (``NotPaused`` otherwise): it goes back to the status it
    had, the steps that became runnable are dispatched and the timers that fell due fire."""
    return get_runner().unpause(id, workflow=workflow)


def migrate(id: str, *, to_version: int, step_map: dict[str, str] | None = None, workflow: Any = None) -> Instance:
    """Move the active (running, waiting or paused) instance ``id`` to version ``to_version`` of its
    workflow; ``step_map`` maps step registry names that the target version lacks. ``MigrationError``
    (nothing changed) lists the steps that match nothing."""
    return get_runner().migrate(id, to_version=to_version, step_map=step_map, workflow=workflow)


def plan_migration(row: Any, *, to_version: int, step_map: dict[str, str] | None = None) -> dict[str, str]:
    """What :func:`migrate` would do to the instance stored in ``row`` (a ``WorkflowInstance``),
    without doing it: {step registry name now: after}; ``MigrationError`` when it cannot move."""
    from hephaestus_django.storage.orm import to_instance

    return get_runner().plan_migration(to_instance(row), to_version=to_version, step_map=step_map)


@dataclass
class MigrationReport:
    """What :func:`migrate_many` did (or, with ``dry_run``, would do)."""

    workflow: str
    from_version: int
    to_version: int
    dry_run: bool
    #: Ids of the instances moved (or movable), with {step now: step after} for each.
    migrated: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Ids of the instances that could not move, with why (and the unmatched steps).
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "from_version": self.from_version, "to_version": self.to_version,
                "dry_run": self.dry_run, "migrated": sorted(self.migrated),
                "failed": [{"id": id, **why} for id, why in sorted(self.failed.items())]}


def migrate_many(workflow: Any, *, from_version: int, to_version: int, step_map: dict[str, str] | None = None,
                 dry_run: bool = False, batch_size: int = 500) -> MigrationReport:
    """Move every active (running, waiting, paused) instance of ``workflow`` at ``from_version`` to
    ``to_version``, each in its own transaction; those that cannot move are reported and left as
    they are. ``MigrationError`` for a version the workflow does not have."""
    from hephaestus_django.core.engine import MIGRATABLE_STATUSES
    from hephaestus_django.core.exceptions import HephaestusError, MigrationError
    from hephaestus_django.core.runner import resolve_workflow
    from hephaestus_django.storage.models import WorkflowInstance
    from hephaestus_django.storage.orm import to_instance

    wf = resolve_workflow(workflow)
    for version in (from_version, to_version):
        try:
            wf.definition(version)
        except ValueError as exc:
            raise MigrationError(str(exc), field="version") from None
    if from_version == to_version:
        raise MigrationError(f"--from-version and --to-version are both {to_version}", field="version")
    runner = get_runner()
    report = MigrationReport(wf.name, from_version, to_version, dry_run)
    rows = WorkflowInstance.objects.filter(workflow=wf.name, workflow_version=from_version,
                                           status__in=[s.value for s in MIGRATABLE_STATUSES])
    last_pk = 0
    while True:
        batch = list(rows.filter(pk__gt=last_pk).order_by("pk")[:batch_size])
        if not batch:
            return report
        last_pk = batch[-1].pk
        for row in batch:
            try:
                if dry_run:
                    report.migrated[row.instance_id] = runner.plan_migration(
                        to_instance(row), to_version=to_version, step_map=step_map)
                else:
                    runner.migrate_pk(row.pk, to_version=to_version, step_map=step_map)
                    report.migrated[row.instance_id] = {}
            except HephaestusError as exc:
                report.failed[row.instance_id] = {"error": str(exc), "unmatched": getattr(exc, "unmatched", [])}


def resume_options(instance: Any) -> list[ResumeOption]:
    """What ``instance`` (a core ``Instance`` or a ``WorkflowInstance`` row) can be resumed with
    now: one :class:`~hephaestus_django.core.engine.ResumeOption` (``step``, ``event``, ``alias``;
    ``as_json()``) per waiting step and event leading somewhere, in graph order. Children steps are
    never offered; an instance whose workflow (or version) is no longer registered offers nothing.
    The admin's resume form, the API's example body and ``hephaestus_resume`` use it."""
    if not isinstance(instance, Instance):
        if not instance.waiting_steps:
            return []  # nothing to build
        try:
            instance = to_instance(instance)
        except HephaestusError:
            return []
    try:
        return engine.resume_options(instance)
    except (HephaestusError, ValueError):  # its version is gone
        return []


def retry(id: str, *, workflow: Any = None) -> Instance:
    """Re-run the failed step of the failed instance ``id`` (of ``workflow``, if given)."""
    return get_runner().retry(id, workflow=workflow)


def get_instance(id: str) -> Instance:
    """The newest instance with ``id`` (across workflows), with its history."""
    return get_runner().get(id)


def list_instances(*, limit: int | None = LIST_LIMIT, **filters: Any) -> list[Instance]:
    """The newest instances, at most ``limit`` (``None``: all); filters: ``workflow``, ``status``,
    ``status__in``, ``workflow_version``. No history is read unless an instance's is looked at."""
    workflow = filters.pop("workflow", None)
    return get_runner().list(workflow, limit=limit, **filters)


# ---- schedules ------------------------------------------------------------------------------------
def list_schedules() -> list[dict[str, Any]]:
    """Every schedule of the registered workflows with its state: ``workflow``, ``name``, ``cron``,
    ``timezone``, ``value``, ``context``, ``paused``, ``next_tick`` (``None`` until a worker pass
    has seen it: then the first tick after that pass), ``last_tick`` and ``last_instance``."""
    from hephaestus_django.core import registry
    from hephaestus_django.core.schedules import DEFAULT_VALUE

    states = get_runner().storage.schedule_states()
    found = []
    for workflow in sorted(registry.all_workflows(), key=lambda w: w.name):
        for schedule in workflow.schedules:
            state = states.get((workflow.name, schedule.name))
            found.append({
                "workflow": workflow.name, "name": schedule.name, "cron": schedule.cron,
                "timezone": schedule.timezone, "value": schedule.value or DEFAULT_VALUE,
                "context": schedule.context or {}, "paused": bool(state and state.paused),
                "next_tick": state.next_tick if state else None,
                "last_tick": state.last_tick if state else None,
                "last_instance": state.last_instance if state else None,
            })
    return found


def pause_schedule(workflow: Any, name: str) -> None:
    """Pause schedule ``name`` of ``workflow``: its ticks start nothing until it is unpaused."""
    get_runner().pause_schedule(workflow, name)


def unpause_schedule(workflow: Any, name: str) -> None:
    """Unpause it: its next tick is the first after now (ticks missed while paused are skipped)."""
    get_runner().unpause_schedule(workflow, name)
