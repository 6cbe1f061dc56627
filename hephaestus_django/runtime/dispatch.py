"""The engine runner over the ORM, dispatching step executions through Django Tasks.

Immediate backend (the default): one ``advance`` task runs every step of an instance in the
caller, in a loop — no nested enqueues, no recursion limit. Queue backends (django-tasks-db,
django-tasks-rq): each step execution is one ``run_step`` task, enqueued when the transaction
that made the step runnable commits; due timers are enqueued with ``run_after`` where the
backend supports it, and always fired by ``manage.py hephaestus_worker``, which also re-runs
the steps of instances whose lease expired (a worker died, or a crash lost an enqueue).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from hephaestus_django.compat import IMMEDIATE_BACKENDS, TaskResultStatus, task_backends
from hephaestus_django.conf import settings
from hephaestus_django.core import clock, engine
from hephaestus_django.core.effects import Continue, Effect, ExecuteStep, by_instance
from hephaestus_django.core.exceptions import HephaestusError, InstanceNotFound, UnknownWorkflow
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.ports import Timer
from hephaestus_django.core.runner import Runner, telemetry_runner
from hephaestus_django.core.status import Status

# Imported when the app is ready, not at the first enqueue: on Django 6 the task class is taken
# from the configured backend when the tasks are defined.
from hephaestus_django.runtime.tasks import advance, fire_timer, run_step
from hephaestus_django.storage.models import Timer as TimerRow
from hephaestus_django.storage.models import WorkflowInstance
from hephaestus_django.storage.orm import DjangoStorage

logger = logging.getLogger("hephaestus")

#: True while this context already runs steps in process (inside ``advance``, the test kit, ...).
_inline: contextvars.ContextVar[bool] = contextvars.ContextVar("hephaestus_inline", default=False)
#: Statuses whose instances have steps (or compensations) to run; never ``paused``.
STEPPING = (Status.RUNNING.value, Status.COMPENSATING.value)


class DispatchError(HephaestusError):
    """The task backend could not run the workflow's steps."""


class DjangoRunner(Runner):
    """:class:`Runner` whose step executions go through the configured Django Tasks backend."""

    runner_name = "django_tasks"
    storage: DjangoStorage

    def __init__(self) -> None:
        super().__init__(DjangoStorage())

    @property
    def backend(self) -> Any:
        return task_backends[settings.TASK_BACKEND]

    @property
    def is_immediate(self) -> bool:
        return isinstance(self.backend, IMMEDIATE_BACKENDS)

    # ---- dispatch -----------------------------------------------------------------------------------
    def run(self, instance: Instance, effects: list[Effect]) -> int:
        groups = by_instance(instance, effects)  # ``Continue`` effects: children, parents
        if not groups:
            return 0
        if _inline.get():
            return super().run(instance, effects)
        if self.is_immediate:
            return sum(self._advance_immediately(owner, steps) for owner, steps in groups)
        for owner, steps in groups:
            self._enqueue_steps(owner.pk, steps)
        return 0

    def _advance_immediately(self, instance: Instance, steps: list[ExecuteStep]) -> int:
        token = _handoff.set((instance.pk, instance))
        try:
            result = advance.using(backend=settings.TASK_BACKEND).enqueue(
                instance.pk, [[e.step.registry_name(), e.attempt] for e in steps])
        finally:
            _handoff.reset(token)
        if getattr(result.status, "value", result.status) == TaskResultStatus.FAILED.value:  # either module's enum
            trace = result.errors[-1].traceback if result.errors else ""
            raise DispatchError(f"running the steps of {instance.id} failed:\n{trace}")
        return int(result.return_value or 0)

    def _enqueue_steps(self, instance_pk: Any, steps: Iterable[ExecuteStep]) -> None:
        task = run_step.using(backend=settings.TASK_BACKEND, queue_name=settings.QUEUE_NAME)
        calls = [(instance_pk, e.step.registry_name(), e.attempt) for e in steps]

        def enqueue() -> None:
            for args in calls:
                task.enqueue(*args)

        transaction.on_commit(enqueue)  # never before the state that makes the step runnable commits

    def _schedule(self, instance: Instance, effects: Iterable[Effect]) -> list[Timer]:
        timers = super()._schedule(instance, effects)
        if not timers or _inline.get() or self.is_immediate or not getattr(self.backend, "supports_defer", False):
            return timers
        task = fire_timer.using(backend=settings.TASK_BACKEND, queue_name=settings.QUEUE_NAME)

        def enqueue() -> None:  # deferred fires of the timers just written (the worker fires them too)
            for timer in timers:
                task.using(run_after=timer.due).enqueue(timer.pk)

        transaction.on_commit(enqueue)
        return timers

    # ---- what tasks run --------------------------------------------------------------------------------
    def advance_inline(self, instance_pk: Any, steps: list[list[Any]]) -> int:
        """Run ``steps`` of one instance here, and all they lead to (the ``advance`` task)."""
        handed = _handoff.get()
        instance = handed[1] if handed and handed[0] == instance_pk else self.storage.load_pk(instance_pk)
        graph = engine.graph_of(instance)
        effects: list[Effect] = []
        for name, attempt in steps:
            step = graph.step(name)
            if step is not None:
                effects.append(ExecuteStep(step, int(attempt)))
        token = _inline.set(True)
        try:
            with telemetry_runner("immediate"):
                return super().run(instance, effects)
        finally:
            _inline.reset(token)

    def run_step_task(self, instance_pk: Any, step_name: str, attempt: int) -> str:
        """One step execution, as a queue worker runs it. Never raises for engine reasons."""
        try:
            instance = self.storage.load_pk(instance_pk)
        except InstanceNotFound:
            return "gone"
        except UnknownWorkflow as exc:
            self.fail_unknown(instance_pk, str(exc))
            return "unknown workflow"
        step = engine.graph_of(instance).step(step_name)
        if step is None:
            self.fail_unknown(instance_pk, f"workflow {instance.workflow.name} has no step {step_name!r}")
            return "unknown step"
        if not engine.is_runnable(instance, step):
            return "skipped"
        with telemetry_runner("worker"):
            new_instance, effects = self.run_step(instance, step, attempt)
            if new_instance is not None:
                self.run(new_instance, effects)
        return "ran"

    def fire_timer_pk(self, timer_pk: Any) -> bool:
        row = TimerRow.objects.filter(pk=timer_pk).first()
        if row is None or row.due_at > clock.now():
            return False
        return self.fire_timer(Timer(row.pk, row.instance_id, row.step, row.purpose, row.due_at, row.attempt))

    def fire_timer(self, timer: Timer) -> bool:
        try:
            return super().fire_timer(timer)
        except InstanceNotFound:
            self.storage.claim_timer(timer)
            return False
        except UnknownWorkflow as exc:
            self.storage.claim_timer(timer)
            self.fail_unknown(timer.instance_pk, str(exc))
            return False

    def fail_unknown(self, pk: Any, error: str) -> None:
        """Fail an instance whose workflow (or step) is gone; a parent waiting for it goes on."""
        with transaction.atomic():
            link = self.storage.fail_unknown(pk, error)
            effects = self.child_finished(*link) if link is not None else []
        for effect in effects:  # the parent's (and grandparent's) next steps
            if isinstance(effect, Continue):
                self.run(effect.instance, effect.effects)

    # ---- in-process helpers (test kit, worker) ------------------------------------------------------------
    def run_pending_steps(self, instance_pks: Iterable[Any] | None = None) -> int:
        """Run here every runnable step of running instances (queued on a backend, or lost
        with a worker), except steps whose retry is not due yet; returns how many ran."""
        pending_retries = self.storage.pending_retry_steps()
        if instance_pks is None:
            instance_pks = list(WorkflowInstance.objects.filter(status__in=STEPPING).values_list("pk", flat=True))
        ran = 0
        token = _inline.set(True)
        try:
            for pk in instance_pks:
                try:
                    instance = self.storage.load_pk(pk)
                except UnknownWorkflow as exc:
                    self.fail_unknown(pk, str(exc))
                    continue
                except InstanceNotFound:
                    continue
                graph = engine.graph_of(instance)
                blocked = pending_retries.get(pk, set())
                effects: list[Effect] = [
                    ExecuteStep(s) for s in sorted(instance.running_steps, key=graph.position)
                    if s.registry_name() not in blocked
                ]
                if effects:
                    ran += Runner.run(self, instance, effects)
        finally:
            _inline.reset(token)
        return ran

    def recover_expired(self, now: datetime | None = None) -> int:
        """Re-dispatch the runnable steps of running instances untouched for ``LEASE_SECONDS``:
        their worker died, or the enqueue was lost in a crash after commit. Returns how many."""
        now = now or clock.now()
        cutoff = now - timedelta(seconds=settings.LEASE_SECONDS)
        pending_retries = self.storage.pending_retry_steps()
        recovered = 0
        for pk, revision in WorkflowInstance.objects.filter(status__in=STEPPING, updated_at__lt=cutoff) \
                .values_list("pk", "revision")[:1000]:
            # claim the recovery: only one worker re-dispatches an instance per lease
            if not WorkflowInstance.objects.filter(pk=pk, revision=revision).update(updated_at=now):
                continue
            try:
                instance = self.storage.load_pk(pk)
            except UnknownWorkflow as exc:
                self.fail_unknown(pk, str(exc))
                continue
            blocked = pending_retries.get(pk, set())
            steps = [ExecuteStep(s) for s in instance.running_steps if s.registry_name() not in blocked]
            if not steps:
                continue
            logger.warning("recovering %s: re-running %s after an expired lease", instance.id,
                           ", ".join(e.step.registry_name() for e in steps))
            recovered += len(steps)  # steps re-dispatched (those they lead to are not counted)
            if self.is_immediate:
                token = _inline.set(True)
                try:
                    Runner.run(self, instance, list(steps))
                finally:
                    _inline.reset(token)
            else:
                self._enqueue_steps(pk, steps)
        return recovered


#: The instance handed from the caller to the immediate ``advance`` task (saves one read).
_handoff: contextvars.ContextVar[tuple[Any, Instance] | None] = contextvars.ContextVar("hephaestus_handoff",
                                                                                        default=None)

_runner: DjangoRunner | None = None


def get_runner() -> DjangoRunner:
    global _runner
    if _runner is None:
        _runner = DjangoRunner()
    return _runner
