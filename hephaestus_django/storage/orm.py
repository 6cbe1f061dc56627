"""The ORM storage: core instances to and from rows, with the fewest statements per transition.

A step transition costs three statements: ``SELECT ... FOR UPDATE`` of the instance row,
one ``UPDATE`` of it, and one ``INSERT`` of its new history entries.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar

from django.db import IntegrityError, connection, transaction
from django.utils.dateparse import parse_datetime

from hephaestus_django.core import clock, registry
from hephaestus_django.core.base import Step
from hephaestus_django.core.children import ChildSummary
from hephaestus_django.core.effects import ScheduleTimer
from hephaestus_django.core.exceptions import AlreadyRunning, InstanceNotFound, UnknownWorkflow
from hephaestus_django.core.graph import Graph
from hephaestus_django.core.instance import Compensation, Context, ExecutionEntry, History, Instance
from hephaestus_django.core.keys import unique_slot
from hephaestus_django.core.ports import ScheduleState, Timer
from hephaestus_django.core.status import Status
from hephaestus_django.storage.models import (
    ACTIVE,
    HistoryEntry,
    ResumeKey,
    ScheduleTick,
    WorkflowInstance,
    WorkflowSchedule,
)
from hephaestus_django.storage.models import Timer as TimerRow


def _graph(workflow_name: str, version: int) -> tuple[Any, Graph]:
    workflow = registry.get_workflow(workflow_name)
    try:
        definition = workflow.definition(version)
    except ValueError as exc:
        raise UnknownWorkflow(str(exc), field="workflow") from None
    return workflow, definition.graph


def _step(graph: Graph, name: str, workflow: str) -> type[Step]:
    step = graph.by_name.get(name)
    if step is None:
        raise UnknownWorkflow(f"workflow {workflow} has no step {name!r} any more", field="workflow")
    return step


def _entry_from_row(row: HistoryEntry, graph: Graph | None) -> ExecutionEntry:
    step_ref: Any = row.step or None
    if step_ref and graph is not None:
        step_ref = graph.by_name.get(row.step, row.step)
    return ExecutionEntry(step_ref, row.event or None, row.timestamp, row.context_updates, kind=row.kind,
                          attempt=row.attempt, error=row.error or None, duration=row.duration, delay=row.delay,
                          traceback=row.traceback or None)


def _history_loader(pk: Any, graph: Graph) -> Any:
    """What reads an instance's stored history the first time somebody looks at it."""

    def load(count: int) -> list[ExecutionEntry]:
        rows = HistoryEntry.objects.filter(instance_id=pk, seq__lte=count).order_by("seq")
        return [_entry_from_row(h, graph) for h in rows]

    return load


def to_instance(row: WorkflowInstance, history: list[HistoryEntry] | None = None) -> Instance:
    """The core instance a row stores (``UnknownWorkflow`` when its workflow or a step is gone).

    Without ``history`` rows, the instance's ``execution_history`` reads the stored entries the
    first time it is looked at (a :class:`~hephaestus_django.core.instance.History`)."""
    workflow, graph = _graph(row.workflow, row.workflow_version)
    name = row.workflow

    def steps(names: Iterable[str]) -> set[type[Step]]:
        return {_step(graph, n, name) for n in names}

    waiting = {_step(graph, n, name): parse_datetime(t) if isinstance(t, str) else t
               for n, t in row.waiting_steps.items()}
    context = row.context or {}
    completion_order = [_step(graph, n, name) for n in row.completed_steps]  # stored in completion order
    instance = Instance(
        id=row.instance_id,
        workflow=workflow,
        workflow_version=row.workflow_version,
        current_step=graph.by_name.get(row.current_step) if row.current_step else None,
        status=Status(row.status),
        context=Context(initial=context.get("initial", {}), steps=context.get("steps", {})),
        step_configs={_step(graph, n, name): c for n, c in row.step_configs.items()},
        active_steps=steps(row.active_steps),
        completed_steps=set(completion_order),
        completion_order=completion_order,
        runtime_metadata=row.runtime_metadata,
        telemetry_metadata=row.telemetry_metadata,
        telemetry_start_time=row.telemetry_start_time,
        execution_history=[_entry_from_row(h, graph) for h in history] if history is not None
        else History.stored(row.history_length, _history_loader(row.pk, graph)),
        waiting_steps=waiting,  # type: ignore[arg-type]
        pending_joins=steps(row.pending_joins),
        error=row.error or None,
        paused_from=Status(row.paused_from) if row.paused_from else None,
        compensation=_compensation_from(row.compensation, graph, name),
        parent_id=row.parent_instance_id or None,
        parent_pk=row.parent_id,
        parent_step=row.parent_step or None,
        revision=row.revision,
        pk=row.pk,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
    instance.history_length = row.history_length
    instance.persisted_entries = len(history) if history is not None else row.history_length
    return instance


def _names(steps: Iterable[type[Step]]) -> list[str]:
    return sorted(s.registry_name() for s in steps)


def _compensation_from(data: Any, graph: Graph, workflow: str) -> Compensation | None:
    if not data:
        return None
    return Compensation(outcome=Status(data["outcome"]), error=data.get("error"),
                        pending=[_step(graph, n, workflow) for n in data.get("pending", [])],
                        done=[_step(graph, n, workflow) for n in data.get("done", [])],
                        failed_step=data.get("failed_step"))


def _compensation_fields(saga: Compensation | None) -> dict[str, Any] | None:
    if saga is None:
        return None
    return {"outcome": saga.outcome.value, "error": saga.error, "pending": [s.registry_name() for s in saga.pending],
            "done": [s.registry_name() for s in saga.done], "failed_step": saga.failed_step}


def _completed_names(instance: Instance) -> list[str]:
    """Completed steps in the order they completed (any not in ``completion_order``: sorted, first)."""
    ordered = [s.registry_name() for s in instance.completion_order if s in instance.completed_steps]
    if len(ordered) == len(instance.completed_steps):
        return ordered
    known = set(instance.completion_order)
    return _names(s for s in instance.completed_steps if s not in known) + ordered


#: Schedule ticks kept per schedule (the admin and the history of what each tick started).
KEPT_TICKS = 100

#: Set when the row is created and never changed by a state change.
_CREATE_ONLY = ("telemetry_metadata", "telemetry_start_time", "started_at")


def row_fields(instance: Instance) -> dict[str, Any]:
    """The columns that carry an instance's state."""
    scope = instance.workflow.unique.scope
    active = instance.status.is_active
    return {
        "workflow_version": instance.workflow_version,
        "status": instance.status.value,
        "current_step": instance.current_step.registry_name() if instance.current_step else "",
        "context": instance.context.to_dict(),
        "step_configs": {s.registry_name(): c for s, c in instance.step_configs.items()},
        "active_steps": _names(instance.active_steps),
        "completed_steps": _completed_names(instance),
        "waiting_steps": {s.registry_name(): t for s, t in instance.waiting_steps.items()},
        "pending_joins": _names(instance.pending_joins),
        "runtime_metadata": instance.runtime_metadata,
        "telemetry_metadata": instance.telemetry_metadata,
        "telemetry_start_time": instance.telemetry_start_time,
        "error": instance.error or "",
        "paused_from": instance.paused_from.value if instance.paused_from else "",
        "compensation": _compensation_fields(instance.compensation),
        "unique_slot": unique_slot(scope, instance.id, instance.workflow.name, instance.workflow_version)
        if active else None,
        "started_at": instance.started_at,
        "finished_at": instance.finished_at,
    }


def _history_values(instance: Instance) -> list[dict[str, Any]]:
    """Column values of the history entries not stored yet."""
    return [
        {"seq": instance.history_length + offset + 1, "kind": str(entry.kind), "step": entry.step_name or "",
         "event": entry.event or "", "timestamp": entry.timestamp, "context_updates": entry.context_updates,
         "attempt": entry.attempt, "error": entry.error or "", "duration": entry.duration, "delay": entry.delay,
         "traceback": entry.traceback or ""}
        for offset, entry in enumerate(instance.new_entries)
    ]


def _history_rows(instance: Instance) -> list[HistoryEntry]:
    return [HistoryEntry(instance_id=instance.pk, **values) for values in _history_values(instance)]


_HISTORY_COLUMNS = ("seq", "kind", "step", "event", "timestamp", "context_updates", "attempt", "error", "duration",
                    "delay", "traceback")
_SQL_TYPES = {"PositiveIntegerField": "integer", "CharField": "varchar", "TextField": "text",
              "DateTimeField": "timestamptz", "JSONField": "jsonb", "FloatField": "double precision"}


def _update_with_history(instance: Instance, fields: dict[str, Any], entries: list[dict[str, Any]],
                         check_revision: bool) -> int:
    """PostgreSQL: ``WITH u AS (UPDATE ... RETURNING id) INSERT INTO history SELECT ... FROM u``.

    The history rows are inserted only if the UPDATE matched, in the same statement; returns
    how many rows were inserted (0 when the revision check failed).
    """
    columns = tuple(fields)
    adapt = _pg_adapters()
    params: list[Any] = [adapt[name](value) for name, value in fields.items()]
    params.append(instance.pk)
    if check_revision:
        params.append(instance.revision)
    for values in entries:
        params.extend(adapt[f"history.{c}"](values[c]) for c in _HISTORY_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(_update_with_history_sql(columns, check_revision, len(entries)), params)
        return int(cursor.rowcount)


def _same(value: Any) -> Any:
    return value


@functools.cache
def _pg_adapters() -> dict[str, Any]:
    """Per column, what turns a value into a psycopg parameter: JSON columns go through the
    field's encoder (as ``Field.get_db_prep_save`` would); everything else psycopg adapts itself."""
    adapters: dict[str, Any] = {}
    for prefix, meta in (("", WorkflowInstance._meta), ("history.", HistoryEntry._meta)):
        for field in meta.concrete_fields:
            if field.get_internal_type() == "JSONField":
                adapters[prefix + field.name] = functools.partial(_adapt_json, encoder=field.encoder)
            else:
                adapters[prefix + field.name] = _same
    return adapters


def _adapt_json(value: Any, encoder: Any) -> Any:
    return None if value is None else connection.ops.adapt_json_value(value, encoder)


@functools.cache
def _history_fields() -> list[Any]:
    return [HistoryEntry._meta.get_field(c) for c in _HISTORY_COLUMNS]


@functools.lru_cache(maxsize=64)
def _update_with_history_sql(columns: tuple[str, ...], check_revision: bool, entries: int) -> str:
    """The statement's text, built once per shape (identifiers from the models' metadata; every
    value is a parameter)."""
    meta, hmeta = WorkflowInstance._meta, HistoryEntry._meta
    qn = connection.ops.quote_name
    sets = ", ".join(f"{qn(meta.get_field(name).column)} = %s" for name in columns)
    where = f"{qn(meta.pk.column)} = %s"
    if check_revision:
        where += f" AND {qn(meta.get_field('revision').column)} = %s"
    hfields = _history_fields()
    casts = ", ".join(f"%s::{_SQL_TYPES[f.get_internal_type()]}" for f in hfields)
    values = ", ".join(f"({casts})" for _ in range(entries))
    history_columns = ", ".join(qn(f.column) for f in hfields)
    return (f"WITH u AS (UPDATE {qn(meta.db_table)} SET {sets} "  # noqa: S608
            f"WHERE {where} RETURNING {qn(meta.pk.column)}) "
            f"INSERT INTO {qn(hmeta.db_table)} ({qn(hmeta.get_field('instance').column)}, {history_columns}) "
            f"SELECT u.{qn(meta.pk.column)}, v.* FROM u CROSS JOIN (VALUES {values}) AS v")


class DjangoStorage:
    """Instances, history and timers in the ``hephaestus_django`` tables."""

    name: ClassVar[str] = "django_orm"
    supports_locking: ClassVar[bool] = True

    def atomic(self) -> AbstractContextManager[Any]:
        return transaction.atomic()

    def create(self, instance: Instance, scope: str) -> None:
        now = clock.now()
        fields = row_fields(instance)
        # Two global starts of one id collide on the unique slot ("g|<id>"). A global start racing
        # a start in another scope needs no lock: each checks only its own rule (SPEC §2.1), so
        # whichever commits second was, in serial order, started after the first and allowed.
        if scope == "global":
            clash = WorkflowInstance.objects.active().filter(instance_id=instance.id).first()
            if clash is not None:
                raise AlreadyRunning(f"instance {instance.id} is already active (workflow {clash.workflow})")
        try:
            with transaction.atomic():  # a savepoint: a caller's transaction survives AlreadyRunning
                row = WorkflowInstance.objects.create(
                    instance_id=instance.id, workflow=instance.workflow.name, created_at=now, updated_at=now,
                    revision=1, parent_id=instance.parent_pk, parent_instance_id=instance.parent_id or "",
                    parent_step=instance.parent_step or "", **fields,
                )
        except IntegrityError:
            raise AlreadyRunning(
                f"instance {instance.id} is already active in workflow {instance.workflow.name} "
                f"(unique scope {scope!r})"
            ) from None
        instance.pk = row.pk
        instance.created_at = instance.updated_at = now
        instance.revision = 1
        if instance.execution_history:
            HistoryEntry.objects.bulk_create(_history_rows(instance))
        instance.mark_persisted()

    def load(self, id: str, workflow: str | None = None, *, for_update: bool = False,
             history: bool = True) -> Instance:
        qs = WorkflowInstance.objects.filter(instance_id=id)
        if workflow is not None:
            qs = qs.filter(workflow=workflow)
        if for_update:
            qs = qs.select_for_update()
        row = qs.order_by("-pk").first()
        if row is None:
            where = f" in workflow {workflow}" if workflow else ""
            raise InstanceNotFound(f"no instance with id {id!r}{where}", field="id")
        return self._instance(row, history)

    def load_pk(self, pk: Any, *, for_update: bool = False, history: bool = False) -> Instance:
        qs = WorkflowInstance.objects.all()
        if for_update:
            qs = qs.select_for_update()
        row = qs.filter(pk=pk).first()
        if row is None:
            raise InstanceNotFound(f"no instance with pk {pk!r}", field="id")
        return self._instance(row, history)

    def _instance(self, row: WorkflowInstance, history: bool) -> Instance:
        entries = list(HistoryEntry.objects.filter(instance_id=row.pk).order_by("seq")) if history else None
        return to_instance(row, entries)

    def save(self, instance: Instance) -> None:
        self._write(instance, check_revision=False)

    def save_if_unchanged(self, instance: Instance) -> bool:
        return self._write(instance, check_revision=True)

    def _write(self, instance: Instance, *, check_revision: bool) -> bool:
        """Store the state and the new history entries: on PostgreSQL one statement (the UPDATE
        and the INSERT of the entries in one data-modifying CTE), elsewhere one of each. With
        ``check_revision`` nothing is written unless the stored revision is still the instance's."""
        now = clock.now()
        fields = row_fields(instance)
        for name in _CREATE_ONLY:
            del fields[name]
        entries = _history_values(instance)
        fields.update(updated_at=now, revision=instance.revision + 1,
                      history_length=instance.history_length + len(entries))
        try:  # only a retried instance can collide: another run of its id started meanwhile
            if entries and connection.vendor == "postgresql":
                updated = _update_with_history(instance, fields, entries, check_revision)
            else:
                target = WorkflowInstance.objects.filter(pk=instance.pk)
                if check_revision:
                    target = target.filter(revision=instance.revision)
                updated = target.update(**fields)
                if updated and entries:
                    HistoryEntry.objects.bulk_create([HistoryEntry(instance_id=instance.pk, **v) for v in entries])
        except IntegrityError:
            raise AlreadyRunning(f"another instance {instance.id} is active in workflow {instance.workflow.name}") \
                from None
        if not updated:
            return False
        instance.revision += 1
        instance.updated_at = now
        instance.mark_persisted()
        return True

    def add_timers(self, instance: Instance, timers: Iterable[tuple[ScheduleTimer, datetime]]) -> list[Timer]:
        rows = TimerRow.objects.bulk_create([
            TimerRow(instance_id=instance.pk, step=effect.step.registry_name() if effect.step is not None else "",
                     purpose=effect.purpose,
                     attempt=effect.attempt, due_at=due)
            for effect, due in timers
        ])
        return [Timer(r.pk, r.instance_id, r.step, r.purpose, r.due_at, r.attempt) for r in rows]

    def delete_timers(self, instance: Instance) -> None:
        TimerRow.objects.filter(instance_id=instance.pk).delete()

    def due_timers(self, now: datetime, limit: int = 100, *, instance_pk: Any = None) -> list[Timer]:
        """Due timers of one instance, or of every instance that is not paused (those wait for unpause)."""
        rows = TimerRow.objects.filter(due_at__lte=now)
        if instance_pk is not None:
            rows = rows.filter(instance_id=instance_pk)
        else:
            rows = rows.exclude(instance__status=Status.PAUSED.value)
        return [Timer(r.pk, r.instance_id, r.step, r.purpose, r.due_at, r.attempt)
                for r in rows.order_by("due_at", "pk")[:limit]]

    def retry_timer_steps(self, instance_pk: Any) -> set[str]:
        return set(TimerRow.objects.filter(instance_id=instance_pk, purpose="retry").values_list("step", flat=True))

    def rename_timer_steps(self, instance_pk: Any, renamed: dict[str, str]) -> None:
        for old, new in renamed.items():
            TimerRow.objects.filter(instance_id=instance_pk, step=old).update(step=new)

    # ---- schedules ------------------------------------------------------------------------------------
    @staticmethod
    def _schedule_state(row: WorkflowSchedule) -> ScheduleState:
        return ScheduleState(row.workflow, row.name, row.next_tick, row.paused, row.last_tick,
                             row.last_instance or None)

    def schedule_states(self) -> dict[tuple[str, str], ScheduleState]:
        return {(r.workflow, r.name): self._schedule_state(r) for r in WorkflowSchedule.objects.all()}

    def see_schedule(self, workflow: str, name: str, next_tick: datetime) -> None:
        WorkflowSchedule.objects.bulk_create([WorkflowSchedule(workflow=workflow, name=name, next_tick=next_tick)],
                                             ignore_conflicts=True)
        WorkflowSchedule.objects.filter(workflow=workflow, name=name, next_tick__isnull=True) \
            .update(next_tick=next_tick)

    def lock_schedule(self, workflow: str, name: str) -> ScheduleState | None:
        # skip_locked: a schedule another worker is firing is left to it
        row = WorkflowSchedule.objects.select_for_update(skip_locked=True) \
            .filter(workflow=workflow, name=name).first()
        return self._schedule_state(row) if row is not None else None

    def claim_tick(self, workflow: str, name: str, tick: datetime) -> bool:
        schedule = WorkflowSchedule.objects.only("pk").get(workflow=workflow, name=name)
        try:
            with transaction.atomic():  # a savepoint: the caller's transaction survives a lost race
                ScheduleTick.objects.create(schedule=schedule, tick=tick)
        except IntegrityError:
            return False
        return True

    def record_tick(self, workflow: str, name: str, tick: datetime, next_tick: datetime,
                    instance: Instance | None, error: str) -> None:
        schedule = WorkflowSchedule.objects.filter(workflow=workflow, name=name)
        ScheduleTick.objects.filter(schedule__in=schedule, tick=tick).update(
            instance_id=instance.pk if instance is not None else None, error=error)
        changes: dict[str, Any] = {"next_tick": next_tick, "last_tick": tick}
        if instance is not None:
            changes["last_instance"] = instance.id
        schedule.update(**changes)
        # keep the latest ticks only: next_tick only moves forward (under the row lock), so an older
        # tick can never be started again
        ticks = ScheduleTick.objects.filter(schedule__in=schedule)
        oldest_kept = ticks.order_by("-tick").values_list("tick", flat=True)[KEPT_TICKS - 1:KEPT_TICKS].first()
        if oldest_kept is not None:
            ticks.filter(tick__lt=oldest_kept).delete()

    def set_schedule_paused(self, workflow: str, name: str, paused: bool, next_tick: datetime | None) -> None:
        WorkflowSchedule.objects.update_or_create(workflow=workflow, name=name,
                                                  defaults={"paused": paused, "next_tick": next_tick})

    def timers(self, instance_pk: Any = None) -> list[Timer]:
        qs = TimerRow.objects.order_by("due_at", "pk")
        if instance_pk is not None:
            qs = qs.filter(instance_id=instance_pk)
        return [Timer(r.pk, r.instance_id, r.step, r.purpose, r.due_at, r.attempt) for r in qs]

    def fail_unknown(self, pk: Any, error: str) -> tuple[Any, str] | None:
        """Fail an active instance that can no longer be loaded (its workflow is unregistered).

        Returns its parent's key and children step when it is a child workflow that this failed
        (the caller, in the same transaction, lets the parent know), else ``None``.
        """
        now = clock.now()
        with transaction.atomic():
            row = WorkflowInstance.objects.select_for_update().filter(pk=pk).first()
            if row is None or row.status not in ACTIVE:
                return None
            WorkflowInstance.objects.filter(pk=pk).update(
                status=Status.FAILED.value, error=error, unique_slot=None, finished_at=now, updated_at=now,
                revision=row.revision + 1, history_length=row.history_length + 1)
            HistoryEntry.objects.create(instance_id=pk, seq=row.history_length + 1, kind="failed",
                                        step=row.current_step, timestamp=now, error=error)
        return (row.parent_id, row.parent_step) if row.parent_id is not None else None

    def pending_retry_steps(self) -> dict[Any, set[str]]:
        """Instance pk -> names of its steps waiting on a retry timer."""
        found: dict[Any, set[str]] = {}
        for pk, step in TimerRow.objects.filter(purpose="retry").values_list("instance_id", "step"):
            found.setdefault(pk, set()).add(step)
        return found

    def claim_timer(self, timer: Timer) -> bool:
        deleted, _ = TimerRow.objects.filter(pk=timer.pk).delete()
        return bool(deleted)

    # ---- resume keys and child workflows --------------------------------------------------------------
    def claim_resume_key(self, instance: Instance, key: str) -> bool:
        try:
            with transaction.atomic():  # a savepoint: the caller's transaction survives a used key
                ResumeKey.objects.create(instance_id=instance.pk, key=key, created_at=clock.now())
        except IntegrityError:
            return False
        return True

    def has_active_children(self, pk: Any, step: str) -> bool:
        return WorkflowInstance.objects.filter(parent_id=pk, parent_step=step, status__in=ACTIVE).exists()

    def children_of(self, pk: Any, step: str) -> list[ChildSummary]:
        rows = WorkflowInstance.objects.filter(parent_id=pk, parent_step=step).order_by("pk") \
            .values_list("instance_id", "workflow", "status", "error", "context")
        return [ChildSummary(id, workflow, status, error or None, (context or {}).get("steps", {}))
                for id, workflow, status, error, context in rows]

    def _descendant_levels(self, pk: Any) -> list[list[Any]]:
        """Keys of the active descendants of ``pk``, one list per generation (one query each)."""
        levels: list[list[Any]] = []
        frontier = [pk]
        while frontier:
            frontier = list(WorkflowInstance.objects.filter(parent_id__in=frontier, status__in=ACTIVE)
                            .order_by("pk").values_list("pk", flat=True))
            if frontier:
                levels.append(frontier)
        return levels

    def active_descendants(self, pk: Any) -> list[Any]:
        return [child for level in self._descendant_levels(pk) for child in level]

    def lock_active_descendants(self, pk: Any) -> list[Any]:
        """Walk the tree level by level, lock each level deepest first; walk again under the locks
        (a child may have started children meanwhile) until nothing new turns up."""
        locked: set[Any] = set()
        while True:
            levels = self._descendant_levels(pk)
            found = [child for level in levels for child in level]
            new = [[child for child in level if child not in locked] for level in levels]
            if not any(new):
                return found
            for level in reversed(new):
                if level:
                    list(WorkflowInstance.objects.select_for_update().filter(pk__in=level).order_by("pk")
                         .values_list("pk", flat=True))
                    locked.update(level)

    def list(self, workflow: str | None = None, *, limit: int | None = None, **filters: Any) -> list[Instance]:
        """Newest first, at most ``limit`` (``None``: all); histories are read only when looked at."""
        qs = WorkflowInstance.objects.all()
        if workflow is not None:
            qs = qs.filter(workflow=workflow)
        allowed = {"status", "status__in", "workflow_version"}
        unknown = set(filters) - allowed
        if unknown:
            raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})")
        if "status" in filters:
            filters["status"] = Status(filters["status"]).value
        if "status__in" in filters:
            filters["status__in"] = [Status(s).value for s in filters["status__in"]]
        rows = qs.filter(**filters).order_by("-created_at", "-pk")
        return [to_instance(r) for r in (rows if limit is None else rows[:limit])]
