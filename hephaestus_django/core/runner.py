"""The operations behind the facade and the low-level API, written once against a storage.

:class:`Runner` starts, resumes, cancels and retries instances and drives their steps.
It runs steps synchronously in the caller (iteratively: no recursion however long the
workflow) unless a subclass hands ``ExecuteStep`` effects to a queue instead.
"""

from __future__ import annotations

import builtins
import time
from collections import deque
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from hephaestus_django.core import clock, engine, registry, telemetry
from hephaestus_django.core.base import Step, StepOutcome
from hephaestus_django.core.effects import RETRY, Effect, ExecuteStep, ScheduleTimer
from hephaestus_django.core.exceptions import InvalidContext, UnknownWorkflow
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.keys import build_id
from hephaestus_django.core.ports import Storage, Timer
from hephaestus_django.core.values import check_storable
from hephaestus_django.core.workflow import LIST_LIMIT, BaseWorkflow


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
    def resume(self, id: str, event: Any, *, step: Any = None, workflow: Any = None) -> Instance:
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.resume(instance, event, step)
                self.storage.save(instance)
                self._schedule(instance, effects)
            self.run(instance, effects)
        return self.storage.load_pk(instance.pk, history=True)

    def cancel(self, id: str, *, workflow: Any = None) -> Instance:
        with telemetry_runner(self.runner_name), self.storage.atomic():
            instance = self._load_for_update(id, workflow)
            engine.cancel(instance)
            self.storage.save(instance)
        return self.storage.load_pk(instance.pk, history=True)

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
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                if not self.storage.claim_timer(timer):
                    return False
                instance = self.storage.load_pk(timer.instance_pk, for_update=True, history=False)
                effects = engine.fire_timer(instance, timer.step, timer.purpose, timer.attempt)
                if effects is None:
                    return False
                if timer.purpose != RETRY:  # a retry timer only re-runs the step
                    self.storage.save(instance)
                self._schedule(instance, effects)
            self.run(instance, effects)
        return True

    def run_until_idle(self, max_iterations: int = 10_000) -> int:
        """Fire due timers until none is due; returns how many fired."""
        total = 0
        for _ in range(max_iterations):
            fired = self.fire_due_timers()
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

