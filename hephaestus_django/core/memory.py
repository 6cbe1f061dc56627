"""In-memory storage: with :class:`~hephaestus_django.core.runner.Runner` over it, the whole engine
and no database.

Used by the core's tests, and by code that runs workflows without Django::

    from hephaestus_django.core.memory import MemoryStorage
    from hephaestus_django.core.runner import Runner

    runner = Runner(MemoryStorage())
    instance = runner.start_instance(OrderFlow, {"order_id": 1}, id="orderid::1")
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

from hephaestus_django.core.children import ChildSummary
from hephaestus_django.core.effects import RETRY, ScheduleTimer
from hephaestus_django.core.exceptions import AlreadyRunning, InstanceNotFound
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.keys import ActiveRef, conflicts
from hephaestus_django.core.ports import CLAIMED, MISSING, QUEUED, THROTTLED, LostRun, Run, ScheduleState, Timer
from hephaestus_django.core.status import ACTIVE_STATUSES, Status


class MemoryStorage:
    """Instances in a dict, guarded by one re-entrant lock (the ``atomic()`` block)."""

    name: ClassVar[str] = "memory"
    #: Values in memory are never refused by the store itself.
    unstorable_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self) -> None:
        self._instances: dict[int, Instance] = {}
        self._timers: dict[int, Timer] = {}
        self._runs: dict[tuple[Any, str], Run] = {}
        self._schedules: dict[tuple[str, str], ScheduleState] = {}
        #: (workflow, schedule, tick) -> id of the instance it started (None: refused)
        self.ticks: dict[tuple[str, str, datetime], str | None] = {}
        self._resume_keys: set[tuple[int, str]] = set()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One lock for everything; on an exception the stored state is rolled back, as a
        database transaction (or savepoint) would be."""
        with self._lock:
            saved = dict(self._instances), dict(self._timers), dict(self._runs), set(self._resume_keys)
            try:
                yield
            except BaseException:
                self._instances, self._timers, self._runs, self._resume_keys = saved
                raise

    def writes_alone(self) -> bool:
        return False

    def create(self, instance: Instance, scope: str, runs: Sequence[Run] = (), extra: Sequence[Any] = ()) -> None:
        with self._lock:
            new = ActiveRef(instance.id, instance.workflow.name, instance.workflow_version)
            active = (ActiveRef(i.id, i.workflow.name, i.workflow_version) for i in self._instances.values()
                      if i.status in ACTIVE_STATUSES)
            clash = conflicts(scope, new, active)
            if clash is not None:
                raise AlreadyRunning(f"instance {instance.id} is already active in workflow {clash.workflow}")
            instance.pk = next(self._ids)
            # keep a copy of the caller's data, as a database row would: mutating it later changes nothing
            instance.context.initial = copy.deepcopy(instance.context.initial)
            instance.created_at = instance.updated_at = instance.started_at
            self._store(instance)
            self.write_runs(instance, runs)

    def _store(self, instance: Instance) -> None:
        instance.revision += 1
        instance.mark_persisted()
        self._instances[instance.pk] = self._copy(instance)

    def _copy(self, instance: Instance) -> Instance:
        # a shallow copy with fresh containers: callers may mutate it without touching the store
        clone = copy.copy(instance)
        clone.active_steps = set(instance.active_steps)
        clone.completed_steps = set(instance.completed_steps)
        clone.completion_order = list(instance.completion_order)
        clone.compensation = copy.deepcopy(instance.compensation)
        clone.waiting_steps = dict(instance.waiting_steps)
        clone.pending_joins = set(instance.pending_joins)
        clone.step_configs = dict(instance.step_configs)
        clone.runtime_metadata = dict(instance.runtime_metadata)
        clone.context = copy.copy(instance.context)
        clone.context.steps = dict(instance.context.steps)
        clone.execution_history = list(instance.execution_history)
        return clone

    def load(self, id: str, workflow: str | None = None, *, for_update: bool = False,
             history: bool = True) -> Instance:
        matches = [i for i in self._instances.values()
                   if i.id == id and (workflow is None or i.workflow.name == workflow)]
        if not matches:
            where = f" in workflow {workflow}" if workflow else ""
            raise InstanceNotFound(f"no instance with id {id!r}{where}")
        return self._copy(max(matches, key=lambda i: i.pk))

    def load_pk(self, pk: Any, *, for_update: bool = False, history: bool = False) -> Instance:
        try:
            return self._copy(self._instances[pk])
        except KeyError:
            raise InstanceNotFound(f"no instance with pk {pk!r}") from None

    def save(self, instance: Instance, runs: Sequence[Run] = (), release: str | None = None,
             extra: Sequence[Any] = ()) -> None:
        with self._lock:
            instance.updated_at = instance.execution_history[-1].timestamp if instance.execution_history else None
            self._store(instance)
            if release is not None:
                self._runs.pop((instance.pk, release), None)
            self.write_runs(instance, runs)
            if not instance.status.is_active:  # its queued runs and its timers go with it
                self._drop_runs(instance.pk, set())
                for pk, timer in list(self._timers.items()):
                    if timer.instance_pk == instance.pk:
                        del self._timers[pk]
            elif instance.status == Status.COMPENSATING:  # so do the queued runs of the steps it left
                self._drop_runs(instance.pk, {s.registry_name() for s in instance.active_steps})

    def _drop_runs(self, instance_pk: Any, keep: set[str]) -> None:
        """Remove the instance's unclaimed runs of steps not in ``keep`` (a claimed one ends with its outcome)."""
        for key, run in list(self._runs.items()):
            if key[0] == instance_pk and run.state != CLAIMED and run.step not in keep:
                del self._runs[key]

    def save_if_unchanged(self, instance: Instance, runs: Sequence[Run] = (), release: str | None = None,
                          holder: tuple[str, int] | None = None, extra: Sequence[Any] = ()) -> bool:
        with self._lock:
            stored = self._instances.get(instance.pk)
            if stored is None or stored.revision != instance.revision:
                return False
            if holder is not None and release is not None and not self.holds(instance.pk, release, *holder):
                return False
            self.save(instance, runs, release)
            return True

    # ---- runs ---------------------------------------------------------------------------------------
    def write_runs(self, instance: Instance, runs: Sequence[Run], extra: Sequence[Any] = ()) -> None:
        with self._lock:
            for run in runs:
                self._runs[(instance.pk, run.step)] = dataclasses.replace(run, instance_pk=instance.pk)

    def claim(self, token: str, worker: str, *, load: bool = True) -> tuple[str, Instance | None, Run | None]:
        with self._lock:
            run = next((r for r in self._runs.values() if r.token == token and r.state == QUEUED), None)
            if run is None:
                return MISSING, None, None
            key = (run.instance_pk, run.step)
            if run.limit is not None:
                busy = sum(1 for r in self._runs.values() if r.step == run.step and r.state == CLAIMED)
                if busy >= run.limit:
                    self._runs[key] = dataclasses.replace(run, state=THROTTLED, enqueued=False)
                    return THROTTLED, None, run
            self._runs[key] = dataclasses.replace(run, state=CLAIMED, worker=worker, enqueued=True)
            return CLAIMED, self.load_pk(run.instance_pk) if load else None, self._runs[key]

    def holds(self, instance_pk: Any, step: str, worker: str, attempt: int) -> bool:
        run = self._runs.get((instance_pk, step))
        return run is not None and run.state == CLAIMED and run.worker == worker and run.attempt == attempt

    def release(self, instance_pk: Any, step: str, *, worker: str | None = None, requeue: bool = False) -> None:
        with self._lock:
            run = self._runs.get((instance_pk, step))
            if run is None or (worker is not None and run.state == CLAIMED and run.worker != worker):
                return
            if requeue:
                self._runs[(instance_pk, step)] = dataclasses.replace(run, state=QUEUED, worker="", enqueued=False)
            else:
                del self._runs[(instance_pk, step)]

    def promote_throttled(self, step: str, count: int, *, enqueued: bool = False) -> list[Run]:
        with self._lock:
            promoted: list[Run] = []
            for key, run in list(self._runs.items()):
                if len(promoted) >= count:
                    break
                if run.step == step and run.state == THROTTLED:
                    self._runs[key] = dataclasses.replace(run, state=QUEUED, enqueued=enqueued, token=str(uuid.uuid4()))
                    promoted.append(self._runs[key])
            return promoted

    def queued_runs(self, instance_pks: Iterable[Any] | None = None) -> list[Run]:
        wanted = None if instance_pks is None else set(instance_pks)
        return [r for r in self._runs.values() if r.state == QUEUED and (wanted is None or r.instance_pk in wanted)]

    def runs(self, instance_pk: Any = None) -> list[Run]:
        return [r for r in self._runs.values() if instance_pk is None or r.instance_pk == instance_pk]

    def lost_runs(self, cutoff: datetime, limit: int = 100) -> list[LostRun]:
        """In memory nothing outlives its process: no run is ever lost."""
        return []

    def take_lost(self, lost: LostRun) -> bool:
        with self._lock:
            return self._runs.pop((lost.instance_pk, lost.step), None) is not None

    def add_timers(self, instance: Instance, timers: Iterable[tuple[ScheduleTimer, datetime]]) -> list[Timer]:
        added = []
        with self._lock:
            for effect, due in timers:
                pk = next(self._ids)
                step = effect.step.registry_name() if effect.step is not None else ""
                self._timers[pk] = Timer(pk, instance.pk, step, effect.purpose, due, effect.attempt)
                added.append(self._timers[pk])
        return added

    def due_timers(self, now: datetime, limit: int = 100, *, instance_pk: Any = None) -> list[Timer]:
        def wanted(timer: Timer) -> bool:
            if instance_pk is not None:
                return bool(timer.instance_pk == instance_pk)
            owner = self._instances.get(timer.instance_pk)
            return owner is None or owner.status != Status.PAUSED

        due = sorted((t for t in self._timers.values() if t.due <= now and wanted(t)), key=lambda t: (t.due, t.pk))
        return due[:limit]

    def claim_timer(self, timer: Timer) -> bool:
        with self._lock:
            return self._timers.pop(timer.pk, None) is not None

    def delete_timers(self, instance: Instance) -> None:
        with self._lock:
            for pk in [pk for pk, t in self._timers.items() if t.instance_pk == instance.pk]:
                del self._timers[pk]

    def retry_timer_steps(self, instance_pk: Any) -> set[str]:
        return {t.step for t in self._timers.values() if t.instance_pk == instance_pk and t.purpose == RETRY}

    def rename_steps(self, instance_pk: Any, renamed: dict[str, str]) -> None:
        with self._lock:
            runs = {key: run for key, run in self._runs.items() if key[0] == instance_pk and key[1] in renamed}
            for key in runs:
                del self._runs[key]
            for key, run in runs.items():
                self._runs.setdefault((instance_pk, renamed[key[1]]), dataclasses.replace(run, step=renamed[key[1]]))
            for pk, t in list(self._timers.items()):
                if t.instance_pk == instance_pk and t.step in renamed:
                    self._timers[pk] = Timer(t.pk, t.instance_pk, renamed[t.step], t.purpose, t.due, t.attempt)

    # ---- schedules -----------------------------------------------------------------------------------
    def schedule_states(self) -> dict[tuple[str, str], ScheduleState]:
        return dict(self._schedules)

    def see_schedule(self, workflow: str, name: str, next_tick: datetime) -> None:
        with self._lock:
            state = self._schedules.get((workflow, name))
            if state is None or state.next_tick is None:
                self._schedules[(workflow, name)] = ScheduleState(workflow, name, next_tick,
                                                                  state.paused if state else False)

    def lock_schedule(self, workflow: str, name: str) -> ScheduleState | None:
        return self._schedules.get((workflow, name))  # atomic() holds the storage's lock

    def claim_tick(self, workflow: str, name: str, tick: datetime) -> bool:
        with self._lock:
            if (workflow, name, tick) in self.ticks:
                return False
            self.ticks[(workflow, name, tick)] = None
            return True

    def record_tick(self, workflow: str, name: str, tick: datetime, next_tick: datetime,
                    instance: Instance | None, error: str) -> None:
        with self._lock:
            self.ticks[(workflow, name, tick)] = instance.id if instance is not None else None
            state = self._schedules[(workflow, name)]
            self._schedules[(workflow, name)] = ScheduleState(
                workflow, name, next_tick, state.paused, tick, instance.id if instance else state.last_instance)

    def set_schedule_paused(self, workflow: str, name: str, paused: bool, next_tick: datetime | None) -> None:
        with self._lock:
            state = self._schedules.get((workflow, name))
            self._schedules[(workflow, name)] = ScheduleState(
                workflow, name, next_tick, paused, state.last_tick if state else None,
                state.last_instance if state else None)

    def claim_resume_key(self, instance: Instance, key: str) -> bool:
        with self._lock:
            if (instance.pk, key) in self._resume_keys:
                return False
            self._resume_keys.add((instance.pk, key))
            return True

    def _children(self, pk: Any, step: str | None = None) -> list[Instance]:
        return sorted((i for i in self._instances.values()
                       if i.parent_pk == pk and (step is None or i.parent_step == step)), key=lambda i: i.pk)

    def has_active_children(self, pk: Any, step: str) -> bool:
        return any(i.status.is_active for i in self._children(pk, step))

    def children_of(self, pk: Any, step: str) -> list[ChildSummary]:
        return [ChildSummary(i.id, i.workflow.name, i.status.value, i.error, dict(i.context.steps))
                for i in self._children(pk, step)]

    def lock_active_descendants(self, pk: Any) -> list[Any]:
        return self.active_descendants(pk)  # one lock guards everything

    def active_descendants(self, pk: Any) -> list[Any]:
        found: list[Any] = []
        frontier = [pk]
        while frontier:
            frontier = [i.pk for parent in frontier for i in self._children(parent) if i.status.is_active]
            found.extend(frontier)
        return found

    def list(self, workflow: str | None = None, *, limit: int | None = None, **filters: Any) -> list[Instance]:
        statuses: set[str] | None = None
        if "status" in filters:
            statuses = {Status(filters.pop("status"))}
        if "status__in" in filters:
            statuses = {Status(s) for s in filters.pop("status__in")}
        version = filters.pop("workflow_version", None)
        if filters:
            raise TypeError(f"unknown filter(s): {', '.join(sorted(filters))}")
        found = [i for i in self._instances.values()
                 if (workflow is None or i.workflow.name == workflow)
                 and (statuses is None or i.status in statuses)
                 and (version is None or i.workflow_version == version)]
        newest = sorted(found, key=lambda i: i.pk, reverse=True)
        return [self._copy(i) for i in (newest if limit is None else newest[:limit])]
