"""The operations behind the facade and the low-level API, written once against a storage.

:class:`Runner` starts, resumes, cancels and retries instances and drives their steps.
It runs steps synchronously in the caller (iteratively: no recursion however long the
workflow) unless a subclass hands ``ExecuteStep`` effects to a queue instead.

Child workflows (``core.children``): the children of a children step are started in the
transaction that pauses it. Whenever a transaction finishes an instance that has a parent, it
then locks the parent's row and reads the statuses of the parent's children; the last child to
finish thus completes the parent's step, exactly once however many finish at the same moment.
Locks are always taken child first, then parent (cancelling a parent locks its active
descendants, deepest first, before the parent itself), so these transactions never deadlock.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections import deque
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from hephaestus_django.core import clock, engine, registry, telemetry
from hephaestus_django.core.base import Step, StepOutcome
from hephaestus_django.core.children import Child, Spawn, is_children_step
from hephaestus_django.core.effects import (
    RETRY,
    Continue,
    Effect,
    ExecuteStep,
    ScheduleTimer,
    StartChildren,
    by_instance,
)
from hephaestus_django.core.exceptions import (
    AlreadyRunning,
    HephaestusError,
    InstanceNotFound,
    InvalidContext,
    UnknownWorkflow,
)
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.keys import build_id
from hephaestus_django.core.ports import Storage, Timer
from hephaestus_django.core.schedules import Schedule
from hephaestus_django.core.status import Status
from hephaestus_django.core.values import check_storable, storable_problem
from hephaestus_django.core.workflow import LIST_LIMIT, BaseWorkflow

logger = logging.getLogger("hephaestus")

#: The longest idempotency key a resume accepts.
MAX_IDEMPOTENCY_KEY = 255


def resolve_workflow(workflow: Any) -> type[BaseWorkflow]:
    """A workflow class, or a registry name looked up in the registry (never imported)."""
    if isinstance(workflow, type) and issubclass(workflow, BaseWorkflow):
        if workflow.abstract:
            raise UnknownWorkflow(f"{workflow.__qualname__} is abstract and cannot be started", field="workflow")
        return workflow
    return registry.get_workflow(workflow)


class Runner:
    """Start/resume/cancel/retry/get/list over a :class:`Storage`, driving steps in process."""

    runner_name = "memory"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        telemetry.emit("runner_initialized", None, {"system_time": time.time_ns()},
                       {"name": type(self).__name__, "runner": self.runner_name, "storage": storage.name})

    # ---- starting -------------------------------------------------------------------------------
    def start(self, workflow: Any, value: Any, context: dict[str, Any], *, version: int | None = None,
              telemetry_metadata: dict[str, Any] | None = None) -> str:
        wf = resolve_workflow(workflow)
        instance_id = build_id(wf.unique.key, value, wf.unique.scope)
        return self.start_instance(wf, context, id=instance_id, version=version,
                                   telemetry_metadata=telemetry_metadata, reload=False).id

    def start_instance(self, workflow: Any, context: dict[str, Any], *, id: str, version: int | None = None,
                       telemetry_metadata: dict[str, Any] | None = None, reload: bool = True) -> Instance:
        """Start an instance; returns it as stored after its steps ran here (with ``reload``),
        or as it was when the start committed."""
        wf = resolve_workflow(workflow)
        instance = new_instance(wf, context, id, version, telemetry_metadata)
        with telemetry_runner(self.runner_name):
            with telemetry.buffered() as events:  # no workflow_started for a start that is refused
                effects = engine.start(instance)
                with self.storage.atomic():
                    self.storage.create(instance, wf.unique.scope)
                    self._schedule(instance, effects)
                events.flush()
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True) if reload else instance

    # ---- external events ---------------------------------------------------------------------------
    def resume(self, id: str, event: Any, *, step: Any = None, data: dict[str, Any] | None = None,
               idempotency_key: str | None = None, workflow: Any = None) -> Instance:
        """Complete a waiting step with ``event``; ``data`` goes into its context entry. A resume
        whose ``idempotency_key`` this instance has seen already does nothing (and raises nothing)."""
        check_resume_data(data)
        check_idempotency_key(idempotency_key)
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                if idempotency_key is not None and not self.storage.claim_resume_key(instance, idempotency_key):
                    return self.storage.load_pk(instance.pk, history=True)  # a redelivery: as it is
                was_active = instance.status.is_active
                effects = engine.resume(instance, event, step, data=data)
                self.storage.save(instance)
                self._schedule(instance, effects)
                effects += self._finished_now(instance, was_active)
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True)

    def cancel(self, id: str, *, workflow: Any = None, compensate: bool = False) -> Instance:
        """Cancel the instance and its active children (and theirs); with ``compensate`` the
        compensations of its completed steps run first. Their timers are dropped in the same
        transaction (queued deferred fires find nothing).

        The children are locked before the instance (the order in which a finishing child locks
        itself, then its parent). Children started between that and the instance's lock make the
        transaction start over, so that they are locked first too.
        """
        with telemetry_runner(self.runner_name):
            for attempt in range(1, _CANCEL_ATTEMPTS + 1):
                try:
                    instance, effects = self._cancel_tree(id, workflow, compensate, last=attempt == _CANCEL_ATTEMPTS)
                except _StartOver:
                    continue
                break
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True)

    def _cancel_tree(self, id: str, workflow: Any, compensate: bool, *,
                     last: bool) -> tuple[Instance, builtins.list[Effect]]:
        with self.storage.atomic():
            target = self.storage.load(id, self._workflow_name(workflow), history=False)
            spawns = any(is_children_step(s) for s in engine.graph_of(target).nodes)
            descendants = self.storage.lock_active_descendants(target.pk) if spawns else []
            instance = self.storage.load_pk(target.pk, for_update=True, history=False)
            if spawns:  # under the instance's lock no child can start any more
                locked = set(descendants)
                late = [pk for pk in self.storage.active_descendants(target.pk) if pk not in locked]
                if late and not last:
                    raise _StartOver
                descendants += late
            was_active = instance.status.is_active
            effects = engine.cancel(instance, compensate)
            self.storage.save(instance)
            for cancelled in [instance, *self._cancel_all(descendants)]:
                self.storage.delete_timers(cancelled)
            self._schedule(instance, effects)  # a compensation's timers, if any
            return instance, effects + self._finished_now(instance, was_active)

    def _cancel_all(self, pks: Iterable[Any]) -> builtins.list[Instance]:
        """Cancel the instances ``pks`` (locked already) that are still active."""
        cancelled = []
        for pk in pks:
            try:
                child = self.storage.load_pk(pk, for_update=True, history=False)
            except (InstanceNotFound, UnknownWorkflow):
                continue
            if child.status.is_active:
                engine.cancel(child)
                self.storage.save(child)
                cancelled.append(child)
        return cancelled

    def pause(self, id: str, *, workflow: Any = None) -> Instance:
        with telemetry_runner(self.runner_name), self.storage.atomic():
            instance = self._load_for_update(id, workflow)
            engine.pause(instance)
            self.storage.save(instance)
        return self.storage.load_pk(instance.pk, history=True)

    def unpause(self, id: str, *, workflow: Any = None) -> Instance:
        """Unpause, dispatch the steps that became runnable and fire the timers that fell due."""
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.unpause(instance)
                self.storage.save(instance)
                # a step waiting for its retry timer runs when that timer fires
                retrying = self.storage.retry_timer_steps(instance.pk)
                effects = [e for e in effects if not isinstance(e, ExecuteStep)
                           or e.step.registry_name() not in retrying]
                due = self.storage.due_timers(clock.now(), instance_pk=instance.pk)
                for step in [s for s in instance.waiting_steps if is_children_step(s)]:
                    # its children may have finished while the instance was paused
                    effects += self._complete_children_step(instance, step)
            self.run(instance, effects)
            for timer in due:
                self.fire_timer(timer)
        return self.storage.load_pk(instance.pk, history=True)

    def migrate(self, id: str, *, to_version: Any, step_map: Any = None, workflow: Any = None) -> Instance:
        """Move an active instance to another version of its workflow (``MigrationError``: nothing changed)."""
        instance = self.storage.load(id, self._workflow_name(workflow), history=False)
        self.migrate_pk(instance.pk, to_version=to_version, step_map=step_map)
        return self.storage.load_pk(instance.pk, history=True)

    def migrate_pk(self, pk: Any, *, to_version: Any, step_map: Any = None) -> Instance:
        """:meth:`migrate` of the instance stored under ``pk``; returns it as migrated (no history)."""
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self.storage.load_pk(pk, for_update=True, history=False)
                effects, renamed = engine.migrate(instance, to_version, step_map)
                self.storage.save(instance)
                if renamed:
                    self.storage.rename_timer_steps(instance.pk, renamed)
                self._schedule(instance, effects)
            self.run(instance, effects)
        return instance

    def plan_migration(self, instance: Instance, *, to_version: Any, step_map: Any = None) -> dict[str, str]:
        """What :meth:`migrate` would do to ``instance``: {step now: step after}, or ``MigrationError``."""
        mapping = engine.plan_migration(instance, to_version, step_map)
        return {old.registry_name(): new.registry_name() for old, new in mapping.items()}

    def retry(self, id: str, *, workflow: Any = None) -> Instance:
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.retry(instance)
                self.storage.save(instance)
                self._schedule(instance, effects)
                for step in [s for s in instance.waiting_steps if is_children_step(s)]:
                    # its children may have finished while the instance was failed
                    effects += self._complete_children_step(instance, step)
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True)

    def get(self, id: str, *, workflow: Any = None) -> Instance:
        return self.storage.load(id, self._workflow_name(workflow), history=True)

    def list(self, workflow: Any = None, *, limit: int | None = LIST_LIMIT, **filters: Any) -> list[Instance]:
        """The newest instances (of ``workflow``), at most ``limit`` (``None``: every one); their
        history is read only if somebody looks at it."""
        checked: object = limit  # user input: validate at run time
        if checked is not None and (isinstance(checked, bool) or not isinstance(checked, int) or checked < 1):
            raise ValueError(f"'limit' must be a positive int or None, not {limit!r}")
        return self.storage.list(self._workflow_name(workflow), limit=limit, **filters)

    def _workflow_name(self, workflow: Any) -> str | None:
        return None if workflow is None else resolve_workflow(workflow).name

    def _load_for_update(self, id: str, workflow: Any) -> Instance:
        return self.storage.load(id, self._workflow_name(workflow), for_update=True, history=False)

    # ---- driving steps -------------------------------------------------------------------------------
    def _schedule(self, instance: Instance, effects: Iterable[Effect]) -> builtins.list[Timer]:
        """Write the timers among ``effects`` (inside the caller's transaction); returns them."""
        now = clock.now()
        timers = [(e, now + timedelta(seconds=e.delay)) for e in effects if isinstance(e, ScheduleTimer)]
        if not timers:
            return []
        return self.storage.add_timers(instance, timers)

    def run(self, instance: Instance, effects: builtins.list[Effect]) -> int:
        """Carry out ``ExecuteStep`` effects here (those of other instances that ``Continue``
        effects carry too), one after another, until none is left; returns how many steps ran."""
        latest: dict[Any, Instance] = {}
        queue: deque[tuple[Any, ExecuteStep]] = deque()

        def add(owner: Instance, new_effects: Iterable[Effect]) -> None:
            for target, steps in by_instance(owner, new_effects):
                known = latest.get(target.pk)
                if known is None or known.revision <= target.revision:
                    latest[target.pk] = target
                queue.extend((target.pk, e) for e in steps)

        add(instance, effects)
        ran = 0
        while queue:
            pk, effect = queue.popleft()
            current = latest[pk]
            if not engine.is_runnable(current, effect.step):
                continue
            ran += 1
            new_instance, new_effects = self.run_step(current, effect.step, effect.attempt)
            if new_instance is not None:
                add(new_instance, new_effects)
        return ran

    def run_step(self, instance: Instance, step: type[Step],
                 attempt: int) -> tuple[Instance | None, builtins.list[Effect]]:
        """Execute ``step`` on ``instance`` (a snapshot: no lock is held while user code runs),
        then apply its outcome. Atomic steps run inside the transaction that applies it."""
        if step.atomic:
            return self._run_atomic(instance, step, attempt)
        outcome = engine.execute_step(instance, step, attempt)
        return self.apply(instance, step, outcome, attempt)

    def apply(self, instance: Instance, step: type[Step], outcome: StepOutcome,
              attempt: int) -> tuple[Instance | None, builtins.list[Effect]]:
        """Apply a step's outcome exactly once.

        First optimistically onto the snapshot the step ran on: the write succeeds only if the
        stored revision is still the snapshot's (one UPDATE, no prior read). If somebody else
        changed the instance meanwhile, the outcome is applied again onto the current state,
        read under a row lock. An outcome whose step is no longer active is dropped.
        """
        with telemetry.buffered() as events:
            with self.storage.atomic():
                result: tuple[Instance, list[Effect]] | None = None
                if isinstance(outcome.result, Spawn) and outcome.error is None:
                    pass  # starting children needs the row lock first
                elif engine.is_applicable(instance, step):
                    was_active = instance.status.is_active
                    effects = engine.apply_outcome(instance, step, outcome, attempt) or []
                    if self.storage.save_if_unchanged(instance):
                        self._schedule(instance, effects)
                        result = (instance, effects + self._finished_now(instance, was_active))
                    else:
                        events.discard()
                if result is None:
                    fresh = self.storage.load_pk(instance.pk, for_update=True, history=False)
                    result = self._apply_locked(fresh, step, outcome, attempt, events)
                    if result is None:
                        return None, []
            events.flush()
        return result

    def _apply_locked(self, instance: Instance, step: type[Step], outcome: StepOutcome, attempt: int,
                      events: telemetry.buffered) -> tuple[Instance, builtins.list[Effect]] | None:
        """Apply ``outcome`` onto ``instance`` (its row locked by this transaction) and store it;
        start the children it asks for. Returns the instance as stored and the effects to carry
        out; ``None`` when the outcome is stale."""
        was_active = instance.status.is_active
        effects = engine.apply_outcome(instance, step, outcome, attempt)
        if effects is None:
            return None
        spawns = [e for e in effects if isinstance(e, StartChildren)]
        started: builtins.list[Effect] = []
        if spawns:
            try:
                with self.storage.atomic():  # a savepoint: every child of this attempt, or none
                    for spawn in spawns:
                        started.extend(self._start_children(instance, spawn))
            except ChildNotStarted as exc:
                # nothing was stored: apply the attempt again, as a failure of the step
                events.discard()
                failure = StepOutcome(error=str(exc), duration=outcome.duration)
                instance = self.storage.load_pk(instance.pk, for_update=True, history=False)
                effects = engine.apply_outcome(instance, step, failure, attempt) or []
                started = []
            effects = [e for e in effects if not isinstance(e, StartChildren)]
        self.storage.save(instance)
        self._schedule(instance, effects)
        return instance, effects + started + self._finished_now(instance, was_active)

    # ---- child workflows ------------------------------------------------------------------------------
    def _start_children(self, parent: Instance, spawn: StartChildren) -> builtins.list[Effect]:
        """Start the children of ``spawn`` (in the caller's transaction); ``Continue`` effects
        that run their first steps. Raises what stops any of them from starting."""
        started: builtins.list[Effect] = []
        for number, child in enumerate(spawn.children, start=1):
            try:
                instance, effects = self._start_child(parent, spawn.step, child)
            except (HephaestusError, ValueError, TypeError) as exc:
                workflow = getattr(child.workflow, "name", child.workflow)
                raise ChildNotStarted(f"child {number} of {len(spawn.children)} ({workflow}) could not start: "
                                      f"{type(exc).__name__}: {exc}") from exc
            started.append(Continue(instance, effects))
        return started

    def _start_child(self, parent: Instance, step: type[Step], child: Child) -> tuple[Instance, builtins.list[Effect]]:
        wf = resolve_workflow(child.workflow)
        instance = new_instance(wf, child.start_context(), child.instance_id(wf, parent.id), child.version, None)
        instance.parent_id = parent.id
        instance.parent_pk = parent.pk
        instance.parent_step = step.registry_name()
        effects = engine.start(instance)
        self.storage.create(instance, wf.unique.scope)
        self._schedule(instance, effects)
        return instance, effects

    def _finished_now(self, instance: Instance, was_active: bool) -> builtins.list[Effect]:
        """When this transaction finished ``instance`` and it has a parent: lock the parent, and
        complete its children step if this was the last child (effects to carry out)."""
        if not was_active or instance.status.is_active or instance.parent_pk is None:
            return []
        return self.child_finished(instance.parent_pk, instance.parent_step or "")

    def child_finished(self, parent_pk: Any, step_name: str) -> builtins.list[Effect]:
        """A child of the children step ``step_name`` of instance ``parent_pk`` finished in the
        caller's transaction: lock the parent, complete that step if this was its last child."""
        try:
            parent = self.storage.load_pk(parent_pk, for_update=True, history=False)
        except (InstanceNotFound, UnknownWorkflow):
            return []  # the parent was deleted, or its workflow is gone: nobody waits
        step = engine.graph_of(parent).step(step_name)
        if step is None:
            return []
        return self._complete_children_step(parent, step)

    def _complete_children_step(self, parent: Instance, step: type[Step]) -> builtins.list[Effect]:
        """Complete ``parent``'s children ``step`` (the row locked) if all its children finished."""
        name = step.registry_name()
        if not engine.waits_for_children(parent, step) or self.storage.has_active_children(parent.pk, name):
            return []
        was_active = parent.status.is_active
        effects = engine.children_finished(parent, step, self.storage.children_of(parent.pk, name))
        if effects is None:
            return []
        self.storage.save(parent)
        self._schedule(parent, effects)
        return [Continue(parent, effects), *self._finished_now(parent, was_active)]

    def _run_atomic(self, instance: Instance, step: type[Step],
                    attempt: int) -> tuple[Instance | None, builtins.list[Effect]]:
        with telemetry.buffered() as events:
            with self.storage.atomic():
                fresh = self.storage.load_pk(instance.pk, for_update=True, history=False)
                if not engine.is_runnable(fresh, step):
                    return None, []
                outcome = None
                try:
                    with self.storage.atomic():  # the step's own writes: undone when it fails
                        outcome = engine.execute_step(fresh, step, attempt, threaded=False)
                        if engine.outcome_failed(step, outcome):
                            raise _RollBack
                except _RollBack:
                    pass
                if outcome is None:  # pragma: no cover - execute_step never raises
                    raise RuntimeError("atomic step produced no outcome")
                result = self._apply_locked(fresh, step, outcome, attempt, events)
            events.flush()
        return result if result is not None else (None, [])

    def fire_due_timers(self) -> int:
        """Fire every timer due by the engine's clock, once; returns how many changed something."""
        fired = 0
        for timer in self.storage.due_timers(clock.now(), limit=10_000):
            if self.fire_timer(timer):
                fired += 1
        return fired

    def fire_timer(self, timer: Timer) -> bool:
        """Fire one timer, unless its instance is paused (the timer then waits for ``unpause``)."""
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self.storage.load_pk(timer.instance_pk, for_update=True, history=False)
                if instance.status == Status.PAUSED or not self.storage.claim_timer(timer):
                    return False
                was_active = instance.status.is_active
                effects = engine.fire_timer(instance, timer.step, timer.purpose, timer.attempt)
                if effects is None:
                    return False
                if timer.purpose != RETRY:  # a retry timer only re-runs the step
                    self.storage.save(instance)
                self._schedule(instance, effects)
                effects += self._finished_now(instance, was_active)
            self.run(instance, effects)
        return True

    # ---- schedules (SPEC §10) -------------------------------------------------------------------------
    def fire_schedules(self) -> int:
        """Start the instance of every schedule tick that is due by the engine's clock; returns
        how many started.

        A schedule seen for the first time is only noted, with its first tick after now (no
        backfill); a schedule whose ticks were missed (no worker ran) starts only the latest one.
        """
        declared = [(wf, schedule) for wf in registry.all_workflows() for schedule in wf.schedules]
        if not declared:
            return 0
        now = clock.now()
        states = self.storage.schedule_states()
        started = 0
        for wf, schedule in declared:
            state = states.get((wf.name, schedule.name))
            if state is None or state.next_tick is None:
                self.storage.see_schedule(wf.name, schedule.name, schedule.next_tick(now))
            elif not state.paused and state.next_tick <= now and self.fire_schedule(wf, schedule, now):
                started += 1
        return started

    def fire_schedule(self, workflow: type[BaseWorkflow], schedule: Schedule, now: Any) -> bool:
        """Start the latest due tick of ``schedule``, once however many workers try (a storage
        constraint on (schedule, tick), written in the start's transaction)."""
        with telemetry_runner(self.runner_name):
            with telemetry.buffered() as events:
                with self.storage.atomic():
                    state = self.storage.lock_schedule(workflow.name, schedule.name)
                    if state is None or state.paused or state.next_tick is None or state.next_tick > now:
                        return False  # another worker holds it, or it moved on
                    tick = schedule.latest_tick(now)
                    following = schedule.next_tick(now)
                    if not self.storage.claim_tick(workflow.name, schedule.name, tick):
                        return False
                    value = schedule.value_for(tick)
                    instance = new_instance(
                        workflow, schedule.context_for(tick),
                        build_id(workflow.unique.key, value, workflow.unique.scope), None, None)
                    effects = engine.start(instance)
                    try:
                        self.storage.create(instance, workflow.unique.scope)
                    except AlreadyRunning as exc:
                        events.discard()
                        logger.warning("schedule %s of %s: tick %s not started: %s", schedule.name, workflow.name,
                                       tick.isoformat(), exc)
                        self.storage.record_tick(workflow.name, schedule.name, tick, following, None, str(exc))
                        return False
                    self._schedule(instance, effects)
                    self.storage.record_tick(workflow.name, schedule.name, tick, following, instance, "")
                events.flush()
            self.run(instance, effects)
        return True

    def pause_schedule(self, workflow: Any, name: str) -> None:
        """Pause a schedule: its ticks start nothing until it is unpaused (durable)."""
        wf, schedule = self.find_schedule(workflow, name)
        with self.storage.atomic():
            state = self.storage.schedule_states().get((wf.name, schedule.name))
            self.storage.set_schedule_paused(wf.name, schedule.name, True, state.next_tick if state else None)

    def unpause_schedule(self, workflow: Any, name: str) -> None:
        """Unpause a schedule: its next tick is the first one after now (missed ticks are skipped)."""
        wf, schedule = self.find_schedule(workflow, name)
        with self.storage.atomic():
            self.storage.set_schedule_paused(wf.name, schedule.name, False, schedule.next_tick(clock.now()))

    def find_schedule(self, workflow: Any, name: Any) -> tuple[type[BaseWorkflow], Schedule]:
        """The registered workflow and its schedule called ``name`` (``ValueError`` naming ``name``)."""
        wf = resolve_workflow(workflow)
        for schedule in wf.schedules:
            if schedule.name == name:
                return wf, schedule
        names = ", ".join(s.name for s in wf.schedules) or "none"
        raise ValueError(f"workflow {wf.name} has no schedule {name!r} (its schedules: {names})")

    def run_until_idle(self, max_iterations: int = 10_000) -> int:
        """Fire due timers and schedule ticks until none is due; returns how many fired."""
        total = 0
        for _ in range(max_iterations):
            fired = self.fire_due_timers() + self.fire_schedules()
            if not fired:
                break
            total += fired
        return total


class _RollBack(Exception):
    """Raised inside an atomic step's savepoint to undo its writes."""


#: Tries of a cancel whose instance started children meanwhile (the last one cancels them anyway).
_CANCEL_ATTEMPTS = 3


class _StartOver(Exception):
    """Raised inside a transaction to roll it back and run it again."""


class ChildNotStarted(HephaestusError):
    """A child of a children step could not start (the step fails; its other children are undone)."""


def new_instance(workflow: type[BaseWorkflow], context: Any, id: Any, version: int | None,
                 telemetry_metadata: Any) -> Instance:
    """A pending instance to start, every argument checked (nothing is stored)."""
    if not isinstance(id, str) or not id:
        raise ValueError(f"'id' must be a non-empty str, not {id!r}")
    if not isinstance(context, dict):
        raise InvalidContext(f"'context' must be a dict, not {type(context).__name__}", field="context")
    check_storable(context, "context")
    if telemetry_metadata is None:
        telemetry_metadata = {}
    if not isinstance(telemetry_metadata, dict):
        raise ValueError(f"'telemetry_metadata' must be a dict, not {type(telemetry_metadata).__name__}")
    check_storable(telemetry_metadata, "telemetry_metadata")
    resolved = workflow.resolve_version(context, version)
    instance = Instance.new(workflow, resolved, context, id)
    instance.telemetry_metadata = dict(telemetry_metadata)
    return instance


def check_resume_data(data: Any) -> None:
    """``InvalidContext`` naming ``data`` unless it is ``None`` or a dict the database can store."""
    if data is None:
        return
    if not isinstance(data, dict):
        raise InvalidContext(f"'data' must be a JSON object (a dict) or None, not {type(data).__name__}",
                             field="data")
    check_storable(data, "data", field="data")


def check_idempotency_key(key: Any) -> None:
    """``ValueError`` naming ``idempotency_key`` unless it is ``None`` or a str of 1-255 characters."""
    if key is None:
        return
    if not isinstance(key, str):
        raise ValueError(f"'idempotency_key' must be a str, not {type(key).__name__}")
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"'idempotency_key' must be 1 to {MAX_IDEMPOTENCY_KEY} characters long, not {len(key)}")
    problem = storable_problem(key, "idempotency_key")
    if problem is not None:
        raise ValueError(problem)


class telemetry_runner:  # noqa: N801 - used as a context manager, reads like one
    """Tag telemetry emitted inside the block with the runner's name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.token = telemetry.current_runner.set(self.name)

    def __exit__(self, *exc: object) -> None:
        telemetry.current_runner.reset(self.token)

