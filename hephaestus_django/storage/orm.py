"""The ORM storage: core instances to and from rows, with the fewest statements per transition.

On PostgreSQL a step transition is one statement on the uncontended path: the guarded UPDATE of
the instance row, the INSERT of its history entries and the changes to its runs, in one
data-modifying CTE (:func:`write_sql`). Elsewhere it is one statement per table touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar

from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Max, Model, Q
from django.utils.dateparse import parse_datetime

from hephaestus_django.core import clock, registry
from hephaestus_django.core.base import Step
from hephaestus_django.core.children import ChildSummary
from hephaestus_django.core.effects import RETRY, ScheduleTimer
from hephaestus_django.core.exceptions import AlreadyRunning, InstanceNotFound, UnknownWorkflow
from hephaestus_django.core.graph import Graph
from hephaestus_django.core.instance import Compensation, Context, ExecutionEntry, History, Instance
from hephaestus_django.core.keys import unique_slot
from hephaestus_django.core.ports import CLAIMED, MISSING, QUEUED, THROTTLED, LostRun, Run, ScheduleState, Timer
from hephaestus_django.core.status import DISPATCHABLE, EntryKind, Status
from hephaestus_django.storage.models import (
    ACTIVE,
    HistoryEntry,
    ResumeKey,
    ScheduleTick,
    StepRun,
    WorkflowInstance,
    WorkflowSchedule,
)
from hephaestus_django.storage.models import Timer as TimerRow
from hephaestus_django.storage.sql import (
    HISTORY_COLUMNS,
    RUN_COLUMNS,
    claim_sql,
    create_sql,
    extra_shape,
    extra_values,
    insert_sql,
    move_run_sql,
    pg_adapters,
    prepared,
    slot_lock,
    steal_sql,
    take_next_sql,
    update_sql,
    write_sql,
)

DISPATCHABLE_VALUES = [s.value for s in DISPATCHABLE]


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


def _stored_datetime(value: Any) -> datetime:
    """A date-time of a JSON column (ISO 8601 text)."""
    parsed = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(parsed, datetime):
        raise ValueError(f"not a stored date-time: {value!r}")
    return parsed


def to_instance(row: WorkflowInstance, history: list[HistoryEntry] | None = None) -> Instance:
    """The core instance a row stores (``UnknownWorkflow`` when its workflow or a step is gone).

    Without ``history`` rows, the instance's ``execution_history`` reads the stored entries the
    first time it is looked at (a :class:`~hephaestus_django.core.instance.History`)."""
    workflow, graph = _graph(row.workflow, row.workflow_version)
    name = row.workflow

    def steps(names: Iterable[str]) -> set[type[Step]]:
        return {_step(graph, n, name) for n in names}

    waiting = {_step(graph, n, name): _stored_datetime(t) for n, t in row.waiting_steps.items()}
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
        waiting_steps=waiting,
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


def _run_values(run: Run, now: datetime) -> dict[str, Any]:
    """Column values of a run as written now (a claimed one is claimed, and alive, now)."""
    claimed = run.state == CLAIMED
    return {"step": run.step, "attempt": run.attempt, "state": run.state, "queue_name": run.queue_name,
            "priority": run.priority, "concurrency_limit": run.limit, "enqueued": run.enqueued,
            "worker": run.worker if claimed else "", "token": run.token or str(uuid.uuid4()), "task_id": "",
            "dispatched_at": now, "claimed_at": now if claimed else None, "heartbeat_at": now if claimed else None}


def _run_from_row(row: Any, prefix: str = "") -> Run:
    def get(name: str) -> Any:
        return getattr(row, prefix + name)

    return Run(get("instance_id") if not prefix else row.pk, get("step"), get("attempt"), get("state"),
               get("queue_name"), get("priority"), get("concurrency_limit"), get("enqueued"), get("worker"),
               str(get("token")))


def _insert_extra(rows: Sequence[Any]) -> None:
    """Insert unsaved model instances (ORM path), one bulk INSERT per model."""
    by_model: dict[type[Any], list[Any]] = {}
    for row in rows:
        by_model.setdefault(type(row), []).append(row)
    for model, objs in by_model.items():
        model._default_manager.bulk_create(objs)



class DjangoStorage:
    """Instances, history, timers and runs in the ``hephaestus_django`` tables."""

    name: ClassVar[str] = "django_orm"
    #: A value the database refuses (PostgreSQL: NUL in text, a too long string...) or that cannot
    #: be encoded at all (an integer too long for ``str``): the step's outcome fails, not the worker.
    unstorable_errors: ClassVar[tuple[type[BaseException], ...]] = (DataError, ValueError, TypeError,
                                                                    OverflowError, RecursionError)

    def atomic(self) -> AbstractContextManager[Any]:
        return transaction.atomic()

    def writes_alone(self) -> bool:
        """PostgreSQL, outside any transaction: every write of ours is one statement (a data-modifying
        CTE), atomic by itself. Inside a caller's transaction a write keeps its savepoint, so that a
        refused value never aborts the caller's transaction."""
        return connection.vendor == "postgresql" and not connection.in_atomic_block

    # ---- instances ------------------------------------------------------------------------------------
    def create(self, instance: Instance, scope: str, runs: Sequence[Run] = (), extra: Sequence[Any] = ()) -> None:
        now = clock.now()
        fields = row_fields(instance)
        # Two global starts of one id collide on the unique slot ("g|<id>"). A global start racing
        # a start in another scope needs no lock: each checks only its own scope's rule, so
        # whichever commits second was, in serial order, started after the first and allowed.
        if scope == "global":
            clash = WorkflowInstance.objects.active().filter(instance_id=instance.id).first()
            if clash is not None:
                raise AlreadyRunning(f"instance {instance.id} is already active (workflow {clash.workflow})")
        fields.update(instance_id=instance.id, workflow=instance.workflow.name,
                      workflow_version=instance.workflow_version, created_at=now, updated_at=now, revision=1,
                      history_length=0, parent_id=instance.parent_pk, parent_instance_id=instance.parent_id or "",
                      parent_step=instance.parent_step or "")
        if connection.vendor == "postgresql":
            pk = self._create_pg(fields, runs, extra, now)
        else:
            pk = self._create_orm(fields, runs, extra, now)
        if pk is None:
            raise AlreadyRunning(f"instance {instance.id} is already active in workflow {instance.workflow.name} "
                                 f"(unique scope {scope!r})")
        instance.pk = pk
        instance.created_at = instance.updated_at = now
        instance.revision = 1
        if instance.execution_history:
            HistoryEntry.objects.bulk_create(_history_rows(instance))
        instance.mark_persisted()

    def _create_pg(self, fields: dict[str, Any], runs: Sequence[Run], extra: Sequence[Any], now: datetime) -> Any:
        """One statement, no savepoint: a taken uniqueness slot inserts nothing (``None``)."""
        adapt = pg_adapters()
        params = [adapt[name](value) for name, value in fields.items()]
        for run in runs:
            values = _run_values(run, now)
            params.extend(values[c] for c in RUN_COLUMNS)
        params.extend(extra_values(extra))
        with connection.cursor() as cursor:
            cursor.execute(create_sql(tuple(fields), len(runs), extra_shape(extra)), params)
            row = cursor.fetchone()
        return None if row is None else row[0]

    def _create_orm(self, fields: dict[str, Any], runs: Sequence[Run], extra: Sequence[Any], now: datetime) -> Any:
        try:
            with transaction.atomic():  # a savepoint: a caller's transaction survives AlreadyRunning
                row = WorkflowInstance.objects.create(**fields)
        except IntegrityError:
            return None
        if runs:
            StepRun.objects.bulk_create([StepRun(instance_id=row.pk, **_run_values(r, now)) for r in runs])
        _insert_extra(extra)
        return row.pk

    def load(self, id: str, workflow: str | None = None, *, for_update: bool = False,
             history: bool = True) -> Instance:
        qs = WorkflowInstance.objects.all()
        if for_update:
            qs = qs.select_for_update()
        row = qs.newest(id, workflow)
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

    def save(self, instance: Instance, runs: Sequence[Run] = (), release: str | None = None,
             extra: Sequence[Any] = ()) -> None:
        self._write(instance, runs, release, extra, check_revision=False, holder=None)

    def save_if_unchanged(self, instance: Instance, runs: Sequence[Run] = (), release: str | None = None,
                          holder: tuple[str, int] | None = None, extra: Sequence[Any] = ()) -> bool:
        return self._write(instance, runs, release, extra, check_revision=True, holder=holder)

    def _write(self, instance: Instance, runs: Sequence[Run], release: str | None, extra: Sequence[Any], *,
               check_revision: bool, holder: tuple[str, int] | None) -> bool:
        """Store the state, the new history entries and the run changes: on PostgreSQL one
        statement (see :func:`write_sql`), elsewhere one per table. With ``check_revision`` (and
        ``holder``) nothing is written unless the stored revision is still the instance's (and the
        worker still holds ``release``'s run)."""
        now = clock.now()
        fields = row_fields(instance)
        for name in _CREATE_ONLY:
            del fields[name]
        entries = _history_values(instance)
        fields.update(updated_at=now, revision=instance.revision + 1,
                      history_length=instance.history_length + len(entries))
        if release is not None and any(r.step == release for r in runs):
            release = None  # the step runs again at once: its run is renewed, not removed
        if release is None:
            holder = None
        finished = not instance.status.is_active
        # compensating: the steps it left (their unclaimed runs) go; a claimed one ends with its outcome
        keep = _names(instance.active_steps) if instance.status == Status.COMPENSATING else None
        try:  # only a retried instance can collide: another run of its id started meanwhile
            if connection.vendor == "postgresql":
                updated = self._write_pg(instance, fields, entries, runs, release, finished, keep, check_revision,
                                         holder, extra, now)
            else:
                updated = self._write_orm(instance, fields, entries, runs, release, finished, keep, check_revision,
                                          holder, extra, now)
        except IntegrityError:
            raise AlreadyRunning(f"another instance {instance.id} is active in workflow {instance.workflow.name}") \
                from None
        if not updated:
            return False
        instance.revision += 1
        instance.updated_at = now
        instance.mark_persisted()
        return True

    def _write_pg(self, instance: Instance, fields: dict[str, Any], entries: list[dict[str, Any]],
                  runs: Sequence[Run], release: str | None, finished: bool, keep: list[str] | None,
                  check_revision: bool, holder: tuple[str, int] | None, extra: Sequence[Any], now: datetime) -> int:
        adapt = pg_adapters()
        params: list[Any] = [adapt[name](value) for name, value in fields.items()]
        params.append(instance.pk)
        if check_revision:
            params.append(instance.revision)
        if holder is not None:
            params.extend((instance.pk, release, holder[0], holder[1]))
        for values in entries:
            params.extend(adapt[f"history.{c}"](values[c]) for c in HISTORY_COLUMNS)
        if release is not None:
            params.append(release)
        if keep is not None and not finished:
            params.append(keep)
        for run in runs:
            values = _run_values(run, now)
            params.extend(values[c] for c in RUN_COLUMNS)
        params.extend(extra_values(extra))
        sql = write_sql(tuple(fields), check_revision, holder is not None, len(entries), release is not None,
                        finished, len(runs), extra_shape(extra), keep is not None and not finished)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def _write_orm(self, instance: Instance, fields: dict[str, Any], entries: list[dict[str, Any]],
                   runs: Sequence[Run], release: str | None, finished: bool, keep: list[str] | None,
                   check_revision: bool, holder: tuple[str, int] | None, extra: Sequence[Any], now: datetime) -> int:
        """Other databases: one plain statement per table touched (texts built once, no ORM query
        compilation on the hot path)."""
        params = prepared(WorkflowInstance, fields)
        params.append(instance.pk)
        if check_revision:
            params.append(instance.revision)
        if holder is not None:
            params.extend((instance.pk, release, holder[0], holder[1]))
        with connection.cursor() as cursor:
            cursor.execute(update_sql(tuple(fields), check_revision, holder is not None), params)
            updated = int(cursor.rowcount)
            if not updated:
                return 0
            if entries:
                cursor.execute(insert_sql(HistoryEntry, HISTORY_COLUMNS, len(entries)),
                               [p for e in entries for p in (instance.pk, *prepared(HistoryEntry, e))])
            if release is not None and runs and not finished:
                # the run that ended becomes the first one the change made runnable (a chain moves on):
                # one UPDATE instead of a DELETE and an INSERT
                cursor.execute(move_run_sql(), [*prepared(StepRun, _run_values(runs[0], now)), instance.pk, release])
                if cursor.rowcount:
                    release, runs = None, runs[1:]
        ended = Q(step=release) if release is not None else Q()
        if finished:
            ended |= ~Q(state=CLAIMED)
            TimerRow.objects.filter(instance_id=instance.pk).delete()
        elif keep is not None:
            ended |= ~Q(state=CLAIMED) & ~Q(step__in=keep)
        if ended:
            StepRun.objects.filter(ended, instance_id=instance.pk).delete()
        self._write_runs(instance.pk, runs, now)
        _insert_extra(extra)
        return updated

    # ---- runs -------------------------------------------------------------------------------------------
    def _write_runs(self, instance_pk: Any, runs: Sequence[Run], now: datetime) -> None:
        if runs:
            StepRun.objects.bulk_create([StepRun(instance_id=instance_pk, **_run_values(r, now)) for r in runs],
                                        update_conflicts=True, unique_fields=["instance", "step"],
                                        update_fields=list(RUN_COLUMNS[1:]))

    def write_runs(self, instance: Instance, runs: Sequence[Run], extra: Sequence[Any] = ()) -> None:
        self._write_runs(instance.pk, runs, clock.now())
        _insert_extra(extra)

    def claim(self, token: str, worker: str, *, load: bool = True) -> tuple[str, Instance | None, Run | None]:
        now = clock.now()
        if load and connection.vendor == "postgresql":
            rows = list(WorkflowInstance.objects.raw(claim_sql(self.writes_alone()), [worker, now, now, token]))
            if rows:
                return CLAIMED, to_instance(rows[0]), _run_from_row(rows[0], prefix="run_")
        else:
            claimed = StepRun.objects.filter(token=token, state=QUEUED, concurrency_limit__isnull=True) \
                .update(state=CLAIMED, worker=worker, claimed_at=now, heartbeat_at=now, enqueued=True)
            if claimed:
                taken = StepRun.objects.get(token=token)
                return CLAIMED, self.load_pk(taken.instance_id) if load else None, _run_from_row(taken)
        row = StepRun.objects.filter(token=token, state=QUEUED).first()
        if row is None or row.concurrency_limit is None:
            return MISSING, None, None
        return self._claim_slot(row, worker, load, now)

    def _claim_slot(self, row: StepRun, worker: str, load: bool,
                    now: datetime) -> tuple[str, Instance | None, Run | None]:
        """Claim a run of a step with a concurrency limit: only while fewer than its limit of that
        step's runs are claimed, counted under a per-step lock; otherwise the run is throttled."""
        with transaction.atomic():
            slot_lock(row.step)
            busy = StepRun.objects.filter(step=row.step, state=CLAIMED, concurrency_limit__isnull=False).count()
            target = StepRun.objects.filter(pk=row.pk, state=QUEUED)
            if busy >= (row.concurrency_limit or 0):
                throttled = target.update(state=THROTTLED, enqueued=False, worker="")
                return (THROTTLED, None, _run_from_row(row)) if throttled else (MISSING, None, None)
            if not target.update(state=CLAIMED, worker=worker, claimed_at=now, heartbeat_at=now, enqueued=True):
                return MISSING, None, None
        return CLAIMED, self.load_pk(row.instance_id) if load else None, _run_from_row(row)

    def steal(self, instance_pk: Any, routing: tuple[str, int], worker: str, tasks: type[Model], ready: str,
              done: str, note: Any, limit: int) -> list[Run]:
        """PostgreSQL: claim for ``worker`` up to ``limit`` queued runs of the instance (with this
        routing, no concurrency limit) whose tasks still wait in ``tasks`` (a task table of this
        database whose ids are the runs' tokens), marking those tasks ``done`` with ``note``, in
        one statement."""
        if connection.vendor != "postgresql" or limit <= 0:
            return []
        now = clock.now()
        with connection.cursor() as cursor:
            [note_value] = prepared(tasks, {"return_value": note})
            cursor.execute(steal_sql(tasks, ready, done, self.writes_alone()),
                           [instance_pk, routing[0], routing[1], limit, now, now, note_value, worker, now, now])
            rows = cursor.fetchall()
        return [Run(instance_pk, row[0], row[1], CLAIMED, routing[0], routing[1], None, True, worker, str(row[2]))
                for row in rows]

    def take_next(self, routing: tuple[str, int], worker: str, tasks: type[Model], task_routing: tuple[str, str, int],
                  ready: str, done: str, note: Any, latest: datetime) -> tuple[Run, Instance | UnknownWorkflow] | None:
        """PostgreSQL: claim for ``worker`` one of the oldest queued runs with this routing (of any
        instance, no concurrency limit) whose task still waits in ``tasks`` (a task table of this
        database whose ids are the runs' tokens; ``task_routing``: the task's backend, queue and
        priority), unless a task of a higher priority is due on that queue (``latest``: the
        ``run_after`` of a task that has none); mark that task ``done`` with ``note``; return the
        run and its instance (or why the instance cannot be read: its workflow is gone), in one
        statement."""
        if connection.vendor != "postgresql":
            return None
        now = clock.now()
        [note_value] = prepared(tasks, {"return_value": note})
        backend, queue, priority = task_routing
        rows = list(WorkflowInstance.objects.raw(
            take_next_sql(tasks, ready, done, self.writes_alone()),
            [routing[0], routing[1], backend, queue, latest, now, priority, priority, now, now, note_value, worker,
             now, now]))
        if not rows:
            return None
        run = _run_from_row(rows[0], prefix="run_")
        try:
            return run, to_instance(rows[0])
        except UnknownWorkflow as exc:
            return run, exc

    def run_instance_pk(self, token: str) -> Any:
        """The instance of the run dispatched with ``token`` (``None``: no such run)."""
        return StepRun.objects.filter(token=token).values_list("instance_id", flat=True).first()

    def holds(self, instance_pk: Any, step: str, worker: str, attempt: int) -> bool:
        return StepRun.objects.filter(instance_id=instance_pk, step=step, worker=worker, attempt=attempt,
                                      state=CLAIMED).exists()

    def release(self, instance_pk: Any, step: str, *, worker: str | None = None, requeue: bool = False) -> None:
        target = StepRun.objects.filter(instance_id=instance_pk, step=step)
        if worker is not None:
            target = target.exclude(Q(state=CLAIMED) & ~Q(worker=worker))
        if requeue:
            target.update(state=QUEUED, worker="", enqueued=False, claimed_at=None, heartbeat_at=None,
                          dispatched_at=clock.now())
        else:
            target.delete()

    def promote_throttled(self, step: str, count: int, *, enqueued: bool = False) -> list[Run]:
        with transaction.atomic():
            slot_lock(step)  # after any claim counting the slots of this step has decided
            pks = list(StepRun.objects.select_for_update(skip_locked=True)
                       .filter(step=step, state=THROTTLED).order_by("dispatched_at", "pk")
                       .values_list("pk", flat=True)[:count])
            if not pks:
                return []
            StepRun.objects.filter(pk__in=pks).update(state=QUEUED)
            return self.redispatch(pks, mark_enqueued=enqueued)

    def heartbeat(self, worker: str, instance_pks: Iterable[Any]) -> int:
        """Show that ``worker`` is alive and still working on its claims of ``instance_pks``."""
        return StepRun.objects.filter(worker=worker, state=CLAIMED, instance_id__in=list(instance_pks)) \
            .update(heartbeat_at=clock.now())

    def queued_runs(self, instance_pks: Iterable[Any] | None = None) -> list[Run]:
        qs = StepRun.objects.filter(state=QUEUED, instance__status__in=DISPATCHABLE_VALUES)
        if instance_pks is not None:
            qs = qs.filter(instance_id__in=list(instance_pks))
        return [_run_from_row(r) for r in qs.order_by("dispatched_at", "pk")]

    def runs(self, instance_pk: Any = None) -> list[Run]:
        qs = StepRun.objects.order_by("dispatched_at", "pk")
        if instance_pk is not None:
            qs = qs.filter(instance_id=instance_pk)
        return [_run_from_row(r) for r in qs]

    def lost_runs(self, cutoff: datetime, limit: int = 100) -> list[LostRun]:
        rows = StepRun.objects.filter(state=CLAIMED, heartbeat_at__lt=cutoff).order_by("heartbeat_at") \
            .values_list("pk", "instance_id", "step", "attempt", "worker", "heartbeat_at")[:limit]
        return [LostRun(*row) for row in rows]

    def claimed_run(self, token: str) -> LostRun | None:
        """The run dispatched with ``token`` if a worker holds it (say, a task delivered again finds
        the claim its first delivery made), else ``None``."""
        row = StepRun.objects.filter(token=token, state=CLAIMED) \
            .values_list("pk", "instance_id", "step", "attempt", "worker", "heartbeat_at").first()
        return None if row is None else LostRun(*row)

    def take_lost(self, lost: LostRun) -> bool:
        return bool(StepRun.objects.filter(pk=lost.pk, state=CLAIMED, worker=lost.worker,
                                           heartbeat_at=lost.heartbeat).delete()[0])

    def undispatched(self, cutoff: datetime, *, enqueued: bool, limit: int = 1000, where: Any = None) -> list[Any]:
        """Inside the caller's transaction, locked: pks of queued runs of dispatchable instances
        dispatched before ``cutoff`` and (``enqueued`` False) never marked as having reached the
        queue, or (True) sent; ``where``: a further condition on them."""
        qs = StepRun.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            state=QUEUED, enqueued=enqueued, dispatched_at__lt=cutoff, instance__status__in=DISPATCHABLE_VALUES)
        if where is not None:
            qs = qs.filter(where)
        return list(qs.order_by("dispatched_at", "pk").values_list("pk", flat=True)[:limit])

    def enqueued_runs(self, cutoff: datetime, limit: int = 200) -> list[tuple[Any, str]]:
        """(pk, task id) of queued runs enqueued before ``cutoff`` with a known task id."""
        return list(StepRun.objects.filter(state=QUEUED, enqueued=True, dispatched_at__lt=cutoff,
                                           instance__status__in=DISPATCHABLE_VALUES).exclude(task_id="")
                    .order_by("dispatched_at", "pk").values_list("pk", "task_id")[:limit])

    def redispatch(self, pks: Iterable[Any], *, mark_enqueued: bool) -> list[Run]:
        """Give queued runs a new dispatch (a new token: their old task, if it ever runs, finds
        nothing to claim), stamped now; the caller sends them."""
        now = clock.now()
        runs = []
        for pk in pks:
            token = str(uuid.uuid4())
            if StepRun.objects.filter(pk=pk, state=QUEUED).update(token=token, dispatched_at=now, task_id="",
                                                                   enqueued=mark_enqueued):
                runs.append(_run_from_row(StepRun.objects.get(pk=pk)))
        return runs

    def mark_enqueued(self, sent: Iterable[tuple[Run, str]]) -> None:
        """Record that the tasks of these runs reached the queue, with the backend's task ids."""
        for run, task_id in sent:
            StepRun.objects.filter(token=run.token, state=QUEUED).update(enqueued=True, task_id=task_id[:255])

    def throttled_steps(self) -> list[tuple[str, int, int]]:
        """(step, limit, free slots) of every step with throttled runs and a free slot."""
        waiting = StepRun.objects.filter(state=THROTTLED).values("step").annotate(limit=Max("concurrency_limit"))
        found = []
        for row in waiting:
            busy = StepRun.objects.filter(step=row["step"], state=CLAIMED, concurrency_limit__isnull=False).count()
            if row["limit"] is not None and busy < row["limit"]:
                found.append((row["step"], row["limit"], row["limit"] - busy))
        return found

    # ---- timers -----------------------------------------------------------------------------------------
    def add_timers(self, instance: Instance, timers: Iterable[tuple[ScheduleTimer, datetime]]) -> list[Timer]:
        rows = TimerRow.objects.bulk_create([
            TimerRow(instance_id=instance.pk, step=effect.step.registry_name() if effect.step is not None else "",
                     purpose=effect.purpose,
                     attempt=effect.attempt, due_at=due)
            for effect, due in timers
        ])
        return [to_timer(r) for r in rows]

    def due_timers(self, now: datetime, limit: int = 100, *, instance_pk: Any = None) -> list[Timer]:
        """Due timers of one instance, or of every instance that is not paused (those wait for unpause)."""
        rows = TimerRow.objects.filter(due_at__lte=now)
        if instance_pk is not None:
            rows = rows.filter(instance_id=instance_pk)
        else:
            rows = rows.exclude(instance__status=Status.PAUSED.value)
        return [to_timer(r) for r in rows.order_by("due_at", "pk")[:limit]]

    def timer(self, pk: Any) -> Timer | None:
        row = TimerRow.objects.filter(pk=pk).first()
        return None if row is None else to_timer(row)

    def retry_timer_steps(self, instance_pk: Any) -> set[str]:
        return set(TimerRow.objects.filter(instance_id=instance_pk, purpose=RETRY).values_list("step", flat=True))

    def rename_steps(self, instance_pk: Any, renamed: dict[str, str]) -> None:
        timers = TimerRow.objects.filter(instance_id=instance_pk, step__in=list(renamed))
        for pk, step in list(timers.values_list("pk", "step")):  # one by one: renames may swap two names
            TimerRow.objects.filter(pk=pk).update(step=renamed[step])
        # runs are unique per step: written again under their new names (a run whose new name
        # another run has already is dropped)
        moved = list(StepRun.objects.filter(instance_id=instance_pk, step__in=list(renamed)))
        if moved:
            StepRun.objects.filter(pk__in=[r.pk for r in moved]).delete()
            for run in moved:
                run.pk, run.step = None, renamed[run.step]
            StepRun.objects.bulk_create(moved, ignore_conflicts=True)

    def delete_timers(self, instance: Instance) -> None:
        TimerRow.objects.filter(instance_id=instance.pk).delete()

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
            HistoryEntry.objects.create(instance_id=pk, seq=row.history_length + 1, kind=EntryKind.FAILED,
                                        step=row.current_step, timestamp=now, error=error)
            StepRun.objects.filter(instance_id=pk).delete()
            TimerRow.objects.filter(instance_id=pk).delete()
        return (row.parent_id, row.parent_step) if row.parent_id is not None else None

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


def to_timer(row: TimerRow) -> Timer:
    """The core timer a ``Timer`` row stores."""
    return Timer(row.pk, row.instance_id, row.step, row.purpose, row.due_at, row.attempt)
