"""The operations behind the facade and the low-level API, written once against a storage.

:class:`Runner` starts, resumes, cancels and retries instances and drives their steps.
It runs steps synchronously in the caller (iteratively: no recursion however long the
workflow) unless a subclass hands ``ExecuteStep`` effects to a queue instead.
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
from hephaestus_django.core.effects import RETRY, Effect, ExecuteStep, ScheduleTimer
from hephaestus_django.core.exceptions import AlreadyRunning, InvalidContext, UnknownWorkflow
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.keys import build_id
from hephaestus_django.core.ports import Storage, Timer
from hephaestus_django.core.schedules import Schedule
from hephaestus_django.core.status import Status
from hephaestus_django.core.values import check_storable
from hephaestus_django.core.workflow import BaseWorkflow

logger = logging.getLogger("hephaestus")


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
        instance = self._new_instance(wf, context, id, version, telemetry_metadata)
        with telemetry_runner(self.runner_name):
            with telemetry.buffered() as events:  # no workflow_started for a start that is refused
                effects = engine.start(instance)
                with self.storage.atomic():
                    self.storage.create(instance, wf.unique.scope)
                    self._schedule(instance, effects)
                events.flush()
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True) if reload else instance

    def _new_instance(self, wf: type[BaseWorkflow], context: Any, id: Any, version: int | None,
                      telemetry_metadata: Any) -> Instance:
        """A pending instance, every argument checked; nothing is written."""
        checked_id: object = id  # user input: validate at run time
        if not isinstance(checked_id, str) or not checked_id:
            raise ValueError(f"'id' must be a non-empty str, not {id!r}")
        if not isinstance(context, dict):
            raise InvalidContext(f"'context' must be a dict, not {type(context).__name__}", field="context")
        check_storable(context, "context")
        if telemetry_metadata is None:
            telemetry_metadata = {}
        if not isinstance(telemetry_metadata, dict):
            raise ValueError(f"'telemetry_metadata' must be a dict, not {type(telemetry_metadata).__name__}")
        check_storable(telemetry_metadata, "telemetry_metadata")
        resolved = wf.resolve_version(context, version)
        instance = Instance.new(wf, resolved, context, id)
        instance.telemetry_metadata = dict(telemetry_metadata)
        return instance

    # ---- external events ---------------------------------------------------------------------------
    def resume(self, id: str, event: Any, *, step: Any = None, workflow: Any = None) -> Instance:
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.resume(instance, event, step)
                self.storage.save(instance)
                self._schedule(instance, effects)
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True)

    def cancel(self, id: str, *, workflow: Any = None, compensate: bool = False) -> Instance:
        """Cancel; with ``compensate`` the compensations of completed steps run first. The
        instance's timers are dropped (queued deferred fires find nothing)."""
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.cancel(instance, compensate)
                self.storage.save(instance)
                self.storage.delete_timers(instance)
                self._schedule(instance, effects)
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True)

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
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True)

    def get(self, id: str, *, workflow: Any = None) -> Instance:
        return self.storage.load(id, self._workflow_name(workflow), history=True)

    def list(self, workflow: Any = None, **filters: Any) -> list[Instance]:
        return self.storage.list(self._workflow_name(workflow), **filters)

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
        """Carry out ``ExecuteStep`` effects here, one after another, until none is left;
        returns how many steps ran."""
        queue = deque(e for e in effects if isinstance(e, ExecuteStep))
        ran = 0
        while queue:
            effect = queue.popleft()
            if not engine.is_runnable(instance, effect.step):
                continue
            ran += 1
            new_instance, new_effects = self.run_step(instance, effect.step, effect.attempt)
            if new_instance is not None:
                instance = new_instance
                queue.extend(e for e in new_effects if isinstance(e, ExecuteStep))
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
                if engine.is_applicable(instance, step):
                    effects = engine.apply_outcome(instance, step, outcome, attempt) or []
                    if self.storage.save_if_unchanged(instance):
                        result = (instance, effects)
                    else:
                        events.discard()
                if result is None:
                    fresh = self.storage.load_pk(instance.pk, for_update=True, history=False)
                    fresh_effects = engine.apply_outcome(fresh, step, outcome, attempt)
                    if fresh_effects is None:
                        return None, []
                    self.storage.save(fresh)
                    result = (fresh, fresh_effects)
                self._schedule(*result)
            events.flush()
        return result

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
                effects = engine.apply_outcome(fresh, step, outcome, attempt) or []
                self.storage.save(fresh)
                self._schedule(fresh, effects)
            events.flush()
        return fresh, effects

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
                effects = engine.fire_timer(instance, timer.step, timer.purpose, timer.attempt)
                if effects is None:
                    return False
                if timer.purpose != RETRY:  # a retry timer only re-runs the step
                    self.storage.save(instance)
                self._schedule(instance, effects)
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
                    instance = self._new_instance(
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


class telemetry_runner:  # noqa: N801 - used as a context manager, reads like one
    """Tag telemetry emitted inside the block with the runner's name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.token = telemetry.current_runner.set(self.name)

    def __exit__(self, *exc: object) -> None:
        telemetry.current_runner.reset(self.token)

