"""The engine runner over the ORM, dispatching step executions through Django Tasks.

One explicit path per backend kind (:meth:`DjangoRunner.caller_mode`):

- **Immediate backend** (the default): a call that makes steps runnable writes their runs
  claimed by this process and enqueues one ``advance`` task, which the backend runs in the
  caller: every step of the instance, one after another (fan-out branches too), in a loop.
- **Queue backends** (django-tasks-db, django-tasks-rq, ...): a call writes the runs queued and
  enqueues one ``run_step`` task per runnable step (a start: one task). The worker that runs it
  claims the run, executes the step and, in the write that applies its outcome, claims the
  instance's next step for itself (``Mode.chain``): up to ``MAX_INLINE_STEPS`` steps per task,
  the other branches of a fan-out enqueued. Tasks are enqueued inside the writing transaction
  when the queue is django-tasks-db on the same database (no dispatch can be lost), otherwise on
  commit, after which their runs are marked enqueued.

``manage.py hephaestus_worker`` (``runtime/worker.py``) fires due timers, recovers lost work
(claims whose worker stopped heartbeating, dispatches that never reached the queue or whose task
a worker took and never claimed), releases throttled runs that have a free slot and starts due
schedule ticks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from hephaestus_django.compat import IMMEDIATE_BACKENDS, TaskResultStatus, task_backends
from hephaestus_django.conf import settings
from hephaestus_django.core import clock, engine
from hephaestus_django.core.effects import Effect
from hephaestus_django.core.exceptions import HephaestusError, InstanceNotFound, UnknownWorkflow
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.ports import MISSING, QUEUED, THROTTLED, Run, Timer
from hephaestus_django.core.runner import Holding, Item, Mode, Runner, routing, telemetry_runner

# tasks: imported when the app is ready, not at the first enqueue (on Django 6 the task class is
# taken from the configured backend when the tasks are defined); bound to get_runner() below
from hephaestus_django.runtime import dbqueue, stepthreads, tasks
from hephaestus_django.runtime.heartbeat import heartbeat, is_gone
from hephaestus_django.runtime.tasks import advance, fire_timer, run_step
from hephaestus_django.storage.orm import DjangoStorage

logger = logging.getLogger("hephaestus")

#: A queued run not marked enqueued this long after it was written lost its enqueue (a crash
#: between commit and enqueue); at most ``LEASE_SECONDS``.
DISPATCH_GRACE_SECONDS = 30.0


class DispatchError(HephaestusError):
    """The task backend could not run the workflow's steps."""


class DjangoRunner(Runner):
    """:class:`Runner` whose step executions go through the configured Django Tasks backend."""

    runner_name = "django_tasks"
    storage: DjangoStorage

    def __init__(self) -> None:
        super().__init__(DjangoStorage())
        stepthreads.install()
        #: The instance a caller hands to the immediate ``advance`` task it enqueues (saves a read).
        self._handed = threading.local()

    @property
    def worker_id(self) -> str:
        return heartbeat.worker_id

    @property
    def backend(self) -> Any:
        return task_backends[settings.TASK_BACKEND]

    def _kind(self) -> tuple[bool, bool]:
        """(immediate, enqueues in the transaction) of the configured backend, worked out once per
        backend object (``TASKS`` may change in tests; backends are per thread)."""
        backend = self.backend
        known = getattr(self._handed, "kind", None)
        if known is None or known[0] is not backend:
            known = (backend, isinstance(backend, IMMEDIATE_BACKENDS), dbqueue.is_same_database_queue(backend))
            self._handed.kind = known
        return known[1], known[2]

    @property
    def is_immediate(self) -> bool:
        return self._kind()[0]

    @property
    def enqueues_in_transaction(self) -> bool:
        """django-tasks-db on our own database: a task row is written in the same transaction."""
        return self._kind()[1]

    # ---- the explicit paths ------------------------------------------------------------------------
    def caller_mode(self) -> Mode:
        return Mode.everything_here() if self.is_immediate else Mode.queue()

    def task_mode(self, routing: tuple[str, int]) -> Mode:
        if self.is_immediate:
            return Mode.everything_here()
        return Mode.chain(int(settings.MAX_INLINE_STEPS), routing)

    @contextmanager
    def _holding(self) -> Iterator[Holding]:
        with heartbeat.holding() as holding:
            yield holding

    def _run_here(self, instance: Instance | None, items: list[Item]) -> int:
        """Immediate backend: one ``advance`` task, which the backend runs right here (``instance``:
        the one written last, whose steps come first; items of other instances name theirs)."""
        if not items:
            return 0
        pk = instance.pk if instance is not None else items[0].instance_pk
        self._handed.instance = instance
        try:
            result = advance.using(backend=settings.TASK_BACKEND).enqueue(
                pk, [[i.step, i.attempt, i.claimed, i.token] + ([] if i.instance_pk == pk else [i.instance_pk])
                     for i in items])
        finally:
            self._handed.instance = None
        if getattr(result.status, "value", result.status) == TaskResultStatus.FAILED.value:  # either module's enum
            trace = result.errors[-1].traceback if result.errors else ""
            name = instance.id if instance is not None else f"instance {pk}"
            raise DispatchError(f"running the steps of {name} failed:\n{trace}")
        return int(result.return_value or 0)

    def _task(self, task: Any, queue_name: str, priority: int) -> Any:
        """``task`` bound to the backend, queue and priority of a run (checked by the backend once)."""
        backend = self.backend
        key = (task, queue_name, priority, id(backend))
        bound = self._handed.__dict__.setdefault("tasks", {}).get(key)
        if bound is None or bound.backend != settings.TASK_BACKEND:
            options: dict[str, Any] = {"backend": settings.TASK_BACKEND,
                                       "queue_name": queue_name or settings.QUEUE_NAME}
            if priority and getattr(backend, "supports_priority", False):
                options["priority"] = priority
            bound = task.using(**options)
            backend.validate_task(bound)
            self._handed.tasks[key] = bound
        return bound

    def _companions(self, runs: list[Run], mode: Mode) -> list[Any]:
        if mode.here or not self.enqueues_in_transaction:
            return []
        return [dbqueue.task_row(self._task(run_step, r.queue_name, r.priority), r.token)
                for r in runs if r.state == QUEUED]

    def _enqueue(self, instance_pk: Any, runs: list[Run], *, written: bool) -> None:
        if self.enqueues_in_transaction:  # task rows of our own database, in this transaction
            rows = [dbqueue.task_row(self._task(run_step, r.queue_name, r.priority), r.token) for r in runs]
            if not written:
                dbqueue.insert(rows)
            dbqueue.announce(self.backend, rows)
            return
        storage = self.storage
        calls = [(self._task(run_step, r.queue_name, r.priority), r) for r in runs]

        def enqueue() -> None:  # never before the state that makes the step runnable commits
            sent = [(run, str(task.enqueue(run.token).id)) for task, run in calls]
            storage.mark_enqueued(sent)

        transaction.on_commit(enqueue)

    def _schedule(self, instance: Instance, effects: Iterable[Effect]) -> list[Timer]:
        timers = super()._schedule(instance, effects)
        if not timers or self.is_immediate or not getattr(self.backend, "supports_defer", False):
            return timers
        graph = engine.graph_of(instance)
        calls = []
        for timer in timers:
            step = graph.step(timer.step)
            queue, priority = routing(instance, step) if step is not None else ("", 0)
            calls.append((self._task(fire_timer, queue, priority).using(run_after=timer.due), timer.pk))

        def enqueue() -> None:  # deferred fires of the timers just written (the worker fires them too)
            for task, pk in calls:
                task.enqueue(pk)

        if self.enqueues_in_transaction:
            enqueue()
        else:
            transaction.on_commit(enqueue)
        return timers

    def _take_sibling(self, instance: Instance, mode: Mode) -> list[Item]:
        """With django-tasks-db on our database: when a task's chain ends while other branches of
        its instance still wait in the queue (a backlog keeps the other workers busy), the task
        runs them too (as many as it has steps to spare), retiring their task rows in the same
        statement; a branch another worker already took is left to it."""
        if not self.enqueues_in_transaction or mode.routing is None:
            return []
        runs = dbqueue.take_sibling(self.storage, instance.pk, mode.routing, self.worker_id, mode.budget)
        return [Item(instance.pk, run.step, run.attempt, claimed=True, token=run.token) for run in runs]

    def _take_next(self, mode: Mode) -> tuple[Instance, Item] | None:
        """With django-tasks-db on our database: when a task's chain ends with steps to spare, it
        runs the oldest queued run routed like it whose task no worker has taken yet (a backlog
        then costs one task per ``MAX_INLINE_STEPS`` steps, not one per instance), retiring that
        task in the same statement; never before a task of a higher priority waiting on its queue."""
        if not self.enqueues_in_transaction or mode.routing is None:
            return None
        while True:
            taken = dbqueue.take_next(self.storage, mode.routing, self._task(run_step, *mode.routing), self.worker_id)
            if taken is None:
                return None
            run, instance = taken
            if not isinstance(instance, UnknownWorkflow):
                return instance, Item(instance.pk, run.step, run.attempt, claimed=True, token=run.token)
            self.fail_unknown(run.instance_pk, str(instance))

    def _unknown_workflow(self, instance_pk: Any, exc: UnknownWorkflow) -> None:
        self.fail_unknown(instance_pk, str(exc))

    def fail_unknown(self, pk: Any, error: str) -> None:
        """Fail an instance whose workflow (or step) is gone; a parent waiting for it goes on (its
        runs written in the same transaction, dispatched like a caller's)."""
        mode = self.caller_mode()
        with transaction.atomic():
            link = self.storage.fail_unknown(pk, error)
            items = self.child_finished(*link, mode) if link is not None else []
        if items:
            self._run_here(None, items)

    # ---- what tasks run --------------------------------------------------------------------------------
    def advance_inline(self, instance_pk: Any, items: list[list[Any]]) -> int:
        """The immediate ``advance`` task: run ``items`` ([step, attempt, claimed, token], plus the
        instance's key for a step of another instance than ``instance_pk``'s: a child, a parent)
        here, and everything they lead to."""
        handed = getattr(self._handed, "instance", None)
        instance = handed if handed is not None and handed.pk == instance_pk else None
        work = [Item(item[4] if len(item) > 4 else instance_pk, str(item[0]), int(item[1]), bool(item[2]),
                     str(item[3])) for item in items]
        if instance is None and work and work[0].claimed and work[0].instance_pk == instance_pk:
            try:
                instance = self.storage.load_pk(instance_pk)
            except InstanceNotFound:
                return 0
        with telemetry_runner("immediate"):
            return self._drive(instance, work, Mode.everything_here())

    def run_step_task(self, token: str) -> str:
        """A queue worker's task: claim the run dispatched with ``token``, execute its step and
        carry the instance on. Never raises for engine reasons."""
        try:
            state, instance, run = self.storage.claim(str(token), self.worker_id)
        except UnknownWorkflow as exc:
            pk = self.storage.run_instance_pk(str(token))
            if pk is not None:
                self.fail_unknown(pk, str(exc))
            return "unknown workflow"
        if instance is None or run is None:
            if state == MISSING and self._recover_redelivered(str(token)):
                return "recovered"
            return THROTTLED if state == THROTTLED else "skipped"
        step = engine.graph_of(instance).step(run.step)
        mode = self.task_mode(routing(instance, step) if step is not None else ("", 0))
        with telemetry_runner("worker"):
            ran = self._drive(instance, [Item(instance.pk, run.step, run.attempt, claimed=True, token=run.token)],
                              mode)
        return f"ran {ran} step(s)"

    def _recover_redelivered(self, token: str) -> bool:
        """A task delivered again (Celery's late acks hand a message back when its worker dies)
        whose run is still claimed by a process of this host that no longer exists: that claim
        is lost now, not after ``LEASE_SECONDS``; the attempt counts as failed and this task goes
        on. Whether it recovered the run."""
        lost = self.storage.claimed_run(token)
        if lost is None or lost.worker == self.worker_id or not is_gone(lost.worker):
            return False
        reason = (f"worker {lost.worker} died while it ran attempt {lost.attempt} of {lost.step} "
                  "(its task was delivered again)")
        try:
            took = self.recover_run(lost, reason, int(settings.RECOVERY_ATTEMPTS), in_task=True)
        except InstanceNotFound:
            return False
        except UnknownWorkflow as exc:
            self.fail_unknown(lost.instance_pk, str(exc))
            return False
        if took:
            logger.warning("recovered %s", reason)
        return took

    def fire_timer_pk(self, timer_pk: Any) -> bool:
        """The deferred ``fire_timer`` task: fire the timer if it is still there and due, and
        carry the instance on in this task."""
        timer = self.storage.timer(timer_pk)
        if timer is None or timer.due > clock.now():
            return False
        return self.fire_timer(timer, in_task=True)

    def fire_timer(self, timer: Timer, mode: Mode | None = None, *, in_task: bool = False) -> bool:
        if in_task and mode is None:
            try:
                instance = self.storage.load_pk(timer.instance_pk)
            except (InstanceNotFound, UnknownWorkflow):
                instance = None
            step = engine.graph_of(instance).step(timer.step) if instance is not None else None
            mode = self.task_mode(routing(instance, step)) if instance is not None and step is not None else None
        try:
            return super().fire_timer(timer, mode)
        except InstanceNotFound:
            self.storage.claim_timer(timer)
            return False
        except UnknownWorkflow as exc:
            self.storage.claim_timer(timer)
            self.fail_unknown(timer.instance_pk, str(exc))
            return False

    # ---- the worker's jobs (runtime/worker.py) ------------------------------------------------------------
    def recover_lost_claims(self, now: datetime | None = None) -> int:
        """Count the claims whose worker stopped heartbeating ``LEASE_SECONDS`` ago as failed
        attempts, and go on per each step's retry policy; returns how many were recovered."""
        now = now or clock.now()
        cutoff = now - timedelta(seconds=settings.LEASE_SECONDS)
        recovered = 0
        for lost in self.storage.lost_runs(cutoff, limit=1000):
            since = f"since {lost.heartbeat:%Y-%m-%d %H:%M:%S}" if lost.heartbeat else "ever"
            reason = (f"worker {lost.worker} stopped while it ran attempt {lost.attempt} of {lost.step} "
                      f"(no heartbeat {since}, LEASE_SECONDS={settings.LEASE_SECONDS:g})")
            try:
                took = self.recover_run(lost, reason, int(settings.RECOVERY_ATTEMPTS))
            except InstanceNotFound:
                continue
            except UnknownWorkflow as exc:
                self.fail_unknown(lost.instance_pk, str(exc))
                continue
            if took:
                logger.warning("recovered %s", reason)
                recovered += 1
        return recovered

    def redispatch_lost(self, now: datetime | None = None) -> int:
        """Send again the runs whose dispatch was lost: never marked as having reached the queue
        (a crash between commit and enqueue) ``DISPATCH_GRACE_SECONDS`` after they were written,
        or whose task a worker took but never claimed the run with (it died in between). With
        ``DISPATCH_TIMEOUT``, also those enqueued that long ago and still unclaimed. A run merely
        waiting in a queue backlog is never sent twice otherwise. Returns how many were sent."""
        now = now or clock.now()
        cutoff = now - timedelta(seconds=min(DISPATCH_GRACE_SECONDS, settings.LEASE_SECONDS))
        sent = self._send_again(lambda: self.storage.undispatched(cutoff, enqueued=False))
        if self.enqueues_in_transaction:
            sent += self._send_again(lambda: self.storage.undispatched(
                cutoff, enqueued=True, where=dbqueue.still_coming(cutoff)))
        elif not self.is_immediate and getattr(self.backend, "supports_get_result", False):
            sent += self._send_again(lambda: self._taken_but_unclaimed(now))
        timeout = settings.DISPATCH_TIMEOUT
        if timeout is not None:
            sent += self._send_again(lambda: self.storage.undispatched(
                now - timedelta(seconds=float(timeout)), enqueued=True))
        return sent

    def _taken_but_unclaimed(self, now: datetime) -> list[Any]:
        """Runs enqueued ``LEASE_SECONDS`` ago whose task the backend no longer has waiting, and
        which a worker took more than the grace ago (or finished) without claiming the run."""
        cutoff = now - timedelta(seconds=min(DISPATCH_GRACE_SECONDS, settings.LEASE_SECONDS))
        found = []
        for pk, task_id in self.storage.enqueued_runs(now - timedelta(seconds=settings.LEASE_SECONDS)):
            try:
                result = self.backend.get_result(task_id)
            except Exception:  # unknown to the backend (expired, pruned): it will never run
                found.append(pk)
                continue
            status = getattr(result.status, "value", result.status)
            started = getattr(result, "started_at", None)
            if status in ("SUCCESSFUL", "FAILED") or (status == "RUNNING" and started is not None and started < cutoff):
                found.append(pk)
        return found

    def release_throttled(self) -> int:
        """Dispatch throttled runs of steps with a free concurrency slot (the releasing write
        normally does it; this is the safety net)."""
        sent = 0
        for step, _limit, free in self.storage.throttled_steps():
            sent += self._send_again(lambda step=step, free=free: self.storage.promote_throttled(
                step, free, enqueued=self._enqueued_at_once()), promoted=True)
        return sent

    def _enqueued_at_once(self) -> bool:
        return self.enqueues_in_transaction and not self.is_immediate

    def _send_again(self, take: Any, *, promoted: bool = False) -> int:
        """In one transaction, take runs (``take()``: pks, or runs already re-dispatched with
        ``promoted``), give them a new dispatch and send it: enqueued (marked as such once they
        reached the queue), or run here under the immediate backend."""
        immediate = self.is_immediate
        with transaction.atomic():
            taken = take()
            runs: list[Run] = taken if promoted else self.storage.redispatch(
                taken, mark_enqueued=self._enqueued_at_once())
            if runs and not immediate:
                self._enqueue(None, runs, written=False)
        if runs and immediate:
            self.run_pending_steps({r.instance_pk for r in runs})
        return len(runs)


_runner: DjangoRunner | None = None


def get_runner() -> DjangoRunner:
    global _runner
    if _runner is None:
        _runner = DjangoRunner()
    return _runner


tasks.bind(get_runner)
