"""In-memory storage and the synchronous runner over it: the whole engine, no database.

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

from hephaestus_django.core.effects import ScheduleTimer
from hephaestus_django.core.exceptions import AlreadyRunning, InstanceNotFound
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.keys import ActiveRef, conflicts
from hephaestus_django.core.ports import CLAIMED, QUEUED, THROTTLED, LostRun, Run, Timer
from hephaestus_django.core.status import ACTIVE_STATUSES, Status


class MemoryStorage:
    """Instances in a dict, guarded by one re-entrant lock (the ``atomic()`` block)."""

    name: ClassVar[str] = "memory"
    supports_locking: ClassVar[bool] = True
    #: Values in memory are never refused by the store itself.
    unstorable_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self) -> None:
        self._instances: dict[int, Instance] = {}
        self._timers: dict[int, Timer] = {}
        self._runs: dict[tuple[Any, str], Run] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        with self._lock:
            yield

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
            if instance.status.is_finished:  # its queued runs and its timers go with it
                for key, run in list(self._runs.items()):
                    if key[0] == instance.pk and run.state != CLAIMED:
                        del self._runs[key]
                for pk, timer in list(self._timers.items()):
                    if timer.instance_pk == instance.pk:
                        del self._timers[pk]

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
                return "missing", None, None
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
                self._timers[pk] = Timer(pk, instance.pk, effect.step.registry_name(), effect.purpose, due,
                                         effect.attempt)
                added.append(self._timers[pk])
        return added

    def due_timers(self, now: datetime, limit: int = 100) -> list[Timer]:
        due = sorted((t for t in self._timers.values() if t.due <= now), key=lambda t: (t.due, t.pk))
        return due[:limit]

    def claim_timer(self, timer: Timer) -> bool:
        with self._lock:
            return self._timers.pop(timer.pk, None) is not None

    def timers(self) -> list[Timer]:
        return sorted(self._timers.values(), key=lambda t: (t.due, t.pk))

    def list(self, workflow: str | None = None, **filters: Any) -> list[Instance]:
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
        return [self._copy(i) for i in sorted(found, key=lambda i: i.pk, reverse=True)]
