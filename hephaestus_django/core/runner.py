"""The operations behind the facade and the low-level API, written once against a storage.

:class:`Runner` starts, resumes, cancels, pauses, migrates and retries instances and drives their
steps. Every write that makes steps runnable also writes their *runs* (see ``core.ports``), and
says for each one where it executes — the one explicit dispatch decision, :meth:`Runner._plan`,
per :class:`Mode`:

- ``Mode.everything_here()``: every runnable step runs in this process, one after another
  (iteratively: no recursion however long the workflow). The in-memory runner, Django's immediate
  backend and the test kit work this way.
- ``Mode.queue()``: nothing runs here; every runnable step is handed to a task queue (a caller
  such as ``start()`` under a queue backend).
- ``Mode.chain(budget, routing)``: a worker's task carries its instance forward: the first
  runnable step with the task's routing runs here, written already claimed by this worker in the
  write that applied the previous outcome; the other branches of a fan-out are queued. At most
  ``budget`` steps per task.

Writes may make steps of *other* instances runnable: the children a children step starts, and a
parent whose children step completes when its last child finishes. Their runs are written in the
same transaction, planned with the same mode (children of a worker's task are queued, so that
they run in parallel), and the steps this process runs next carry their instance's key.

Child workflows (``core.children``): the children of a children step are started in the
transaction that pauses it. Whenever a transaction finishes an instance that has a parent, it
then locks the parent's row and reads the statuses of the parent's children; the last child to
finish thus completes the parent's step, exactly once however many finish at the same moment.
Locks are always taken child first, then parent (cancelling a parent locks its active
descendants, deepest first, before the parent itself), so these transactions never deadlock.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hephaestus_django.core import clock, engine, registry, telemetry
from hephaestus_django.core.base import Step, StepOutcome
from hephaestus_django.core.children import Child, Spawn, is_children_step
from hephaestus_django.core.effects import RETRY, Effect, ExecuteStep, ScheduleTimer, StartChildren
from hephaestus_django.core.exceptions import (
    AlreadyRunning,
    HephaestusError,
    InstanceNotFound,
    InvalidContext,
    UnknownWorkflow,
)
from hephaestus_django.core.graph import describe
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.keys import build_id
from hephaestus_django.core.ports import CLAIMED, QUEUED, LostRun, Run, Storage, Timer
from hephaestus_django.core.schedules import Schedule
from hephaestus_django.core.status import DISPATCHABLE, Status
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


_routes: dict[tuple[Any, int, Any], tuple[str, int]] = {}


def routing(instance: Instance, step: type[Step]) -> tuple[str, int]:
    """(queue name, priority) of ``step``'s executions: the step's own, else its workflow's
    (queue "" means the runtime's default queue; priority default 0)."""
    key = (instance.workflow, instance.workflow_version, step)
    found = _routes.get(key)
    if found is None:
        workflow = instance.workflow
        definition = workflow.definition(instance.workflow_version)
        queue = step.queue_name or definition.queue_name or workflow.queue_name or ""
        priority = next((p for p in (step.priority, definition.priority, workflow.priority) if p is not None), 0)
        found = _routes[key] = (queue, priority)
    return found


@dataclass(slots=True)
class Mode:
    """Where the steps that a write makes runnable are executed (see the module docstring)."""

    here: bool
    #: ``chain``: steps this task may still run here; 0 for a caller under a queue backend.
    budget: int = 0
    #: ``chain``: the (queue, priority) of the task; only steps routed the same continue in it.
    routing: tuple[str, int] | None = None

    @classmethod
    def everything_here(cls) -> Mode:
        return cls(here=True)

    @classmethod
    def queue(cls) -> Mode:
        return cls(here=False)

    @classmethod
    def chain(cls, budget: int, routing: tuple[str, int]) -> Mode:
        return cls(here=False, budget=budget, routing=routing)

    def for_children(self) -> Mode:
        """How the first steps of child workflows a write starts are dispatched: here when
        everything runs here, otherwise queued (a worker's task carries its own instance on and
        leaves the children to run in parallel)."""
        return self if self.here else Mode.queue()


@dataclass(frozen=True, slots=True)
class Item:
    """A step execution this process is about to run: already claimed by it, or to claim first."""

    instance_pk: Any
    step: str
    attempt: int
    claimed: bool
    #: The run's dispatch token (what claims it).
    token: str = ""


class Holding:
    """The instances whose claimed runs this process is working on (a heartbeat keeps them alive)."""

    def add(self, instance_pk: Any) -> None:
        """Also keep ``instance_pk``'s claims alive until the end of the ``with`` block."""


class Runner:
    """Start/resume/cancel/retry/get/list over a :class:`Storage`, driving steps in process."""

    runner_name = "memory"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        telemetry.emit("runner_initialized", None, {"system_time": time.time_ns()},
                       {"name": type(self).__name__, "runner": self.runner_name, "storage": storage.name})

    @property
    def worker_id(self) -> str:
        """Who holds the runs this process claims (the Django runtime: one id per process)."""
        return "local"

    @property
    def enqueues_in_transaction(self) -> bool:
        """Whether queued runs are handed to the queue inside the transaction that writes them (so
        they are written already marked ``enqueued``)."""
        return False

    # ---- dispatch: the explicit choices ---------------------------------------------------------------
    def caller_mode(self) -> Mode:
        """How a call from outside a worker's task (start, resume, a timer fired by a worker pass)
        dispatches the steps it makes runnable. In memory: it runs them."""
        return Mode.everything_here()

    def task_mode(self, routing: tuple[str, int]) -> Mode:
        """How a worker's task that started with a step of ``routing`` carries its instance on."""
        return Mode.everything_here()

    def _plan(self, instance: Instance, effects: Iterable[Effect], mode: Mode) -> tuple[list[Run], list[Item]]:
        """The runs to write for the steps ``effects`` make runnable, and those of them this
        process runs next (claimed by it in the same write, except steps with a concurrency
        limit, which take a slot first)."""
        runs: list[Run] = []
        items: list[Item] = []
        chained = False
        for effect in effects:
            if not isinstance(effect, ExecuteStep):
                continue
            step = effect.step
            name = step.registry_name()
            queue, priority = routing(instance, step)
            limit = step.concurrency_limit
            token = str(uuid.uuid4())
            if mode.here:
                state, enqueued = (CLAIMED, True) if limit is None else (QUEUED, False)
                items.append(Item(instance.pk, name, effect.attempt, claimed=limit is None, token=token))
            elif not chained and mode.budget > 0 and limit is None and (queue, priority) == mode.routing:
                chained = True
                state, enqueued = CLAIMED, True
                items.append(Item(instance.pk, name, effect.attempt, claimed=True, token=token))
            else:
                state, enqueued = QUEUED, self.enqueues_in_transaction
            runs.append(Run(instance.pk, name, effect.attempt, state, queue, priority, limit, enqueued,
                            self.worker_id if state == CLAIMED else "", token))
        return runs, items

    def _companions(self, runs: builtins.list[Run], mode: Mode) -> builtins.list[Any]:
        """Rows the storage writes in the same statement as ``runs`` (the Django runtime: the task
        rows of the queued ones, when the task queue is a table of the same database)."""
        return []

    def _after_write(self, instance: Instance, effects: Iterable[Effect], runs: Iterable[Run],
                     released: type[Step] | None, mode: Mode) -> list[Item]:
        """Inside the transaction that wrote ``runs``: write the timers, free the concurrency slot
        of the step whose run ended, and hand the queued runs to the queue. Returns the runs of
        other instances this process now runs (``Mode.here`` only)."""
        self._schedule(instance, effects)
        queued = [] if mode.here else [r for r in runs if r.state == QUEUED]
        extra: list[Item] = []
        if released is not None and released.concurrency_limit:
            promoted = self.storage.promote_throttled(released.registry_name(), 1, enqueued=self.enqueues_in_transaction
                                                      and not mode.here)
            if mode.here:
                extra = [Item(r.instance_pk, r.step, r.attempt, claimed=False, token=r.token) for r in promoted]
            else:
                self._enqueue(instance.pk, promoted, written=False)
        if queued:
            self._enqueue(instance.pk, queued, written=self.enqueues_in_transaction)
        return extra

    def _write_state(self, instance: Instance, effects: builtins.list[Effect], mode: Mode, *,
                     release: type[Step] | None = None) -> list[Item]:
        """Inside the caller's transaction: store ``instance`` (locked by it) with the runs of the
        steps ``effects`` make runnable, then write its timers and send its queued runs. Returns
        the steps this process runs next."""
        runs, items = self._plan(instance, effects, mode)
        self.storage.save(instance, runs, release=release.registry_name() if release is not None else None,
                          extra=self._companions(runs, mode))
        return items + self._after_write(instance, effects, runs, release, mode)

    def _enqueue(self, instance_pk: Any, runs: builtins.list[Run], *, written: bool) -> None:
        """Hand queued runs to the task queue (called inside the transaction that wrote them;
        ``written``: their task rows went in with that write). In memory there is no queue: they
        wait for :meth:`run_pending_steps`."""

    def _run_here(self, instance: Instance | None, items: builtins.list[Item]) -> int:
        """Run, in this process, the steps a caller's write assigned to it (``Mode.here``)."""
        if not items:
            return 0
        return self._drive(instance, items, Mode.everything_here())

    @contextmanager
    def _holding(self) -> Iterator[Holding]:
        """While the block runs, keep alive the claims of the instances added to the holding."""
        yield Holding()

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
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with telemetry.buffered() as events:  # no workflow_started for a start that is refused
                effects = engine.start(instance)
                runs, items = self._plan(instance, effects, mode)
                with self._write_block(effects, runs, None):
                    items = self._create(instance, wf.unique.scope, effects, runs, items, mode)
                events.flush()
            self._run_here(instance, items)
        return self.storage.load_pk(instance.pk) if reload else instance

    def _create(self, instance: Instance, scope: str, effects: builtins.list[Effect], runs: builtins.list[Run],
                items: builtins.list[Item], mode: Mode) -> list[Item]:
        """Insert a new instance with its first runs (planned by :meth:`_plan`), write its timers
        and send its queued runs; returns the steps this process runs next."""
        self.storage.create(instance, scope, runs, self._companions(runs, mode))
        items = [dataclasses.replace(i, instance_pk=instance.pk) for i in items]  # with its key
        return items + self._after_write(instance, effects, runs, None, mode)

    # ---- external events ---------------------------------------------------------------------------
    def resume(self, id: str, event: Any, *, step: Any = None, data: dict[str, Any] | None = None,
               idempotency_key: str | None = None, workflow: Any = None) -> Instance:
        """Complete a waiting step with ``event``; ``data`` goes into its context entry. A resume
        whose ``idempotency_key`` this instance has seen already does nothing (and raises nothing)."""
        check_resume_data(data)
        check_idempotency_key(idempotency_key)
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                if idempotency_key is not None and not self.storage.claim_resume_key(instance, idempotency_key):
                    return self.storage.load_pk(instance.pk)  # a redelivery: as it is
                was_active = instance.status.is_active
                effects = engine.resume(instance, event, step, data=data)
                items = self._write_state(instance, effects, mode)
                items += self._finished_now(instance, was_active, mode)
            self._run_here(instance, items)
        return self.storage.load_pk(instance.pk)

    def cancel(self, id: str, *, workflow: Any = None, compensate: bool = False) -> Instance:
        """Cancel the instance and its active children (and theirs); with ``compensate`` the
        compensations of its completed steps run first. Their queued runs and their timers go in
        the same transaction (a queued task or a deferred fire finds nothing).

        The children are locked before the instance (the order in which a finishing child locks
        itself, then its parent). Children started between that and the instance's lock make the
        transaction start over, so that they are locked first too.
        """
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            for attempt in range(1, _CANCEL_ATTEMPTS + 1):
                try:
                    instance, items = self._cancel_tree(id, workflow, compensate, mode,
                                                        last=attempt == _CANCEL_ATTEMPTS)
                except _StartOver:
                    continue
                break
            self._run_here(instance, items)
        return self.storage.load_pk(instance.pk)

    def _cancel_tree(self, id: str, workflow: Any, compensate: bool, mode: Mode, *,
                     last: bool) -> tuple[Instance, builtins.list[Item]]:
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
            runs, items = self._plan(instance, effects, mode)  # a compensation to run
            self.storage.save(instance, runs, extra=self._companions(runs, mode))
            self._cancel_all(descendants)  # each write drops the child's queued runs and its timers
            if instance.status.is_active:  # compensating: the timers of the steps it left go too
                self.storage.delete_timers(instance)
            items += self._after_write(instance, effects, runs, None, mode)
            return instance, items + self._finished_now(instance, was_active, mode)

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
        """Pause: its runs stay (a worker that takes one puts it back, see :func:`engine.may_run_later`)."""
        with telemetry_runner(self.runner_name), self.storage.atomic():
            instance = self._load_for_update(id, workflow)
            engine.pause(instance)
            self.storage.save(instance)
        return self.storage.load_pk(instance.pk)

    def unpause(self, id: str, *, workflow: Any = None) -> Instance:
        """Unpause, dispatch the steps that became runnable and fire the timers that fell due.

        A step keeps its run and attempt: a run put back while the instance was paused is sent
        again; one still claimed (its step was executing), still in the queue or throttled is
        left as it is; a step made runnable while paused gets its first run; a step waiting for
        its retry timer runs when that timer fires."""
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.unpause(instance)
                retrying = self.storage.retry_timer_steps(instance.pk)
                present = {run.step: run for run in self.storage.runs(instance.pk)}
                wanted: builtins.list[Effect] = []
                for effect in effects:
                    if not isinstance(effect, ExecuteStep):
                        wanted.append(effect)
                        continue
                    run = present.get(effect.step.registry_name())
                    if effect.step.registry_name() in retrying:
                        continue
                    if run is None:
                        wanted.append(effect)
                    elif run.state == QUEUED and not run.enqueued:
                        wanted.append(ExecuteStep(effect.step, run.attempt))
                items = self._write_state(instance, wanted, mode)
                due = self.storage.due_timers(clock.now(), instance_pk=instance.pk)
                for step in [s for s in instance.waiting_steps if is_children_step(s)]:
                    # its children may have finished while the instance was paused
                    items += self._complete_children_step(instance, step, mode)
            self._run_here(instance, items)
            for timer in due:
                self.fire_timer(timer)
        return self.storage.load_pk(instance.pk)

    def migrate(self, id: str, *, to_version: Any, step_map: Any = None, workflow: Any = None) -> Instance:
        """Move an active instance to another version of its workflow (``MigrationError``: nothing changed)."""
        instance = self.storage.load(id, self._workflow_name(workflow), history=False)
        self.migrate_pk(instance.pk, to_version=to_version, step_map=step_map)
        return self.storage.load_pk(instance.pk)

    def migrate_pk(self, pk: Any, *, to_version: Any, step_map: Any = None) -> Instance:
        """:meth:`migrate` of the instance stored under ``pk``; returns it as migrated (no history).
        Its runs and timers follow the steps a ``step_map`` renames."""
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self.storage.load_pk(pk, for_update=True, history=False)
                effects, renamed = engine.migrate(instance, to_version, step_map)
                if renamed:
                    self.storage.rename_steps(instance.pk, renamed)
                items = self._write_state(instance, effects, mode)
            self._run_here(instance, items)
        return instance

    def plan_migration(self, instance: Instance, *, to_version: Any, step_map: Any = None) -> dict[str, str]:
        """What :meth:`migrate` would do to ``instance``: {step now: step after}, or ``MigrationError``."""
        mapping = engine.plan_migration(instance, to_version, step_map)
        return {old.registry_name(): new.registry_name() for old, new in mapping.items()}

    def retry(self, id: str, *, workflow: Any = None) -> Instance:
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.retry(instance)
                items = self._write_state(instance, effects, mode)
                for step in [s for s in instance.waiting_steps if is_children_step(s)]:
                    # its children may have finished while the instance was failed
                    items += self._complete_children_step(instance, step, mode)
            self._run_here(instance, items)
        return self.storage.load_pk(instance.pk)

    def get(self, id: str, *, workflow: Any = None) -> Instance:
        return self.storage.load(id, self._workflow_name(workflow), history=True)

    def list(self, workflow: Any = None, *, limit: int | None = LIST_LIMIT, **filters: Any) -> builtins.list[Instance]:
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
        timers = [e for e in effects if isinstance(e, ScheduleTimer)]
        if not timers:
            return []
        now = clock.now()
        return self.storage.add_timers(instance, [(e, now + timedelta(seconds=e.delay)) for e in timers])

    def _drive(self, instance: Instance | None, items: builtins.list[Item], mode: Mode) -> int:
        """Run ``items`` here, one after another, and every step their outcomes assign to this
        process (of this instance or of others: children, a parent); returns how many steps ran.
        Each outcome is committed before the next step runs."""
        queue = deque(items)
        ran = 0
        with self._holding() as holding:
            for item in items:
                holding.add(item.instance_pk)
            while True:
                if not queue:  # the chain ended: with steps to spare, take waiting work from the queue
                    if mode.here or mode.budget <= 0:
                        break
                    if instance is not None and instance.status in DISPATCHABLE and instance.running_steps:
                        queue.extend(self._take_sibling(instance, mode))  # other branches of this instance
                    if not queue:
                        waiting = self._take_next(mode)  # or the oldest waiting run of another instance
                        if waiting is None:
                            break
                        instance, item = waiting
                        holding.add(instance.pk)
                        queue.append(item)
                item = queue.popleft()
                other = instance is None or item.instance_pk != instance.pk
                if not item.claimed or other:
                    taken = self._take(item, load=other)
                    if taken is None:
                        continue
                    if other:
                        instance = taken
                if instance is None:  # pragma: no cover - _take loads the instance of another one
                    continue
                step = engine.graph_of(instance).step(item.step)
                if step is None or not engine.is_runnable(instance, step):
                    later = step is not None and engine.may_run_later(instance, step)
                    self.storage.release(instance.pk, item.step, worker=self.worker_id, requeue=later)
                    continue
                ran += 1
                mode.budget -= 1
                new_instance, new_items = self._run_step(instance, step, item.attempt, mode)
                if new_instance is not None:
                    instance = new_instance
                for new in new_items:
                    holding.add(new.instance_pk)
                queue.extend(new_items)
        return ran

    def _take_sibling(self, instance: Instance, mode: Mode) -> builtins.list[Item]:
        """Queued runs of ``instance`` (other branches of a fan-out, routed like this task) that no
        worker has taken yet, claimed for this task (at most ``mode.budget``). In memory: none."""
        return []

    def _take_next(self, mode: Mode) -> tuple[Instance, Item] | None:
        """The oldest queued run routed like this task, of any instance, whose task no worker has
        taken yet, claimed for this task, with its instance; or ``None``. In memory: none."""
        return None

    def _take(self, item: Item, *, load: bool) -> Instance | None:
        """Claim ``item``'s run unless this process holds it already, and (with ``load``) read its
        instance. ``None`` when there is nothing to run here: the run is claimed by another
        worker, throttled or gone, or the workflow is no longer known."""
        try:
            if item.claimed:
                return self.storage.load_pk(item.instance_pk)
            state, loaded, _run = self.storage.claim(item.token, self.worker_id, load=load)
        except UnknownWorkflow as exc:
            self._unknown_workflow(item.instance_pk, exc)
            return None
        except InstanceNotFound:  # deleted meanwhile
            return None
        if state != CLAIMED:
            return None
        return loaded if load else _NOT_LOADED

    def _unknown_workflow(self, instance_pk: Any, exc: UnknownWorkflow) -> None:
        """An instance whose workflow (or step) is no longer registered (the ORM storage fails it)."""
        raise exc

    def run_step(self, instance: Instance, step: type[Step], attempt: int,
                 mode: Mode | None = None) -> tuple[Instance | None, builtins.list[Item]]:
        """Execute ``step`` (whose run this process holds) on ``instance`` and apply its outcome;
        returns the instance as written and the steps this process runs next."""
        return self._run_step(instance, step, attempt, mode or self.caller_mode())

    def _run_step(self, instance: Instance, step: type[Step], attempt: int,
                  mode: Mode) -> tuple[Instance | None, builtins.list[Item]]:
        # a snapshot: no lock is held while user code runs; atomic steps run inside the write
        if step.atomic:
            return self._run_atomic(instance, step, attempt, mode)
        outcome = engine.execute_step(instance, step, attempt)
        return self.apply(instance, step, outcome, attempt, mode)

    def apply(self, instance: Instance, step: type[Step], outcome: StepOutcome, attempt: int,
              mode: Mode | None = None) -> tuple[Instance | None, builtins.list[Item]]:
        """Apply a step's outcome exactly once; returns the instance as written (``None`` when
        the outcome was dropped) and the steps this process runs next.

        First optimistically onto the snapshot the step ran on: the write succeeds only if the
        stored revision is still the snapshot's and this worker still holds the step's run (one
        statement, no prior read). Otherwise the outcome is applied again onto the current state,
        read under a row lock — or dropped, when the step is no longer active or its run was
        taken from this worker (recovery counted the attempt lost). An outcome that starts
        children is applied under the lock at once. An outcome that cannot be stored (the write
        fails on its values) is recorded as a failure of the step instead.
        """
        mode = mode or self.caller_mode()
        try:
            return self._apply(instance, step, outcome, attempt, mode)
        except self.storage.unstorable_errors as exc:
            failure = StepOutcome(error=f"{type(exc).__name__}: the outcome of {describe(step)} could not be "
                                        f"stored: {exc}", duration=outcome.duration)
            return self._apply_locked(instance.pk, step, failure, attempt, mode)

    def _apply(self, instance: Instance, step: type[Step], outcome: StepOutcome, attempt: int,
               mode: Mode) -> tuple[Instance | None, builtins.list[Item]]:
        name = step.registry_name()
        with telemetry.buffered() as events:
            spawns = isinstance(outcome.result, Spawn) and outcome.error is None  # children need the lock first
            if not spawns and engine.is_applicable(instance, step):
                was_active = instance.status.is_active
                effects = engine.apply_outcome(instance, step, outcome, attempt) or []
                runs, items = self._plan(instance, effects, mode)
                tells_parent = self._tells_parent(instance, was_active)
                with self._write_block(effects, runs, step, alone=not tells_parent):
                    if self.storage.save_if_unchanged(instance, runs, release=name, holder=(self.worker_id, attempt),
                                                      extra=self._companions(runs, mode)):
                        items += self._after_write(instance, effects, runs, step, mode)
                        if tells_parent:
                            items += self._finished_now(instance, was_active, mode)
                        written = True
                    else:
                        written = False
                if written:
                    events.flush()
                    return instance, items
                events.discard()
            with self.storage.atomic():
                result = self._apply_fresh(instance.pk, step, outcome, attempt, mode, events)
            events.flush()
        return result

    def _write_block(self, effects: builtins.list[Effect], runs: builtins.list[Run], released: type[Step] | None,
                     *, alone: bool = True) -> AbstractContextManager[Any]:
        """The transaction around a write and what follows it, or none when the write is a single
        statement the storage can make on its own (the common step transition on PostgreSQL: one
        round trip instead of BEGIN, the statement and COMMIT): no timer to add, no slot to free,
        no task row to write beside it, no parent to tell (``alone``)."""
        if (not alone or not self.storage.writes_alone()
                or any(isinstance(e, ScheduleTimer) for e in effects)
                or (released is not None and released.concurrency_limit)):
            return self.storage.atomic()
        return nullcontext()

    def _apply_locked(self, instance_pk: Any, step: type[Step], outcome: StepOutcome, attempt: int,
                      mode: Mode) -> tuple[Instance | None, builtins.list[Item]]:
        with telemetry.buffered() as events:
            with self.storage.atomic():
                result = self._apply_fresh(instance_pk, step, outcome, attempt, mode, events)
            events.flush()
        return result

    def _apply_fresh(self, instance_pk: Any, step: type[Step], outcome: StepOutcome, attempt: int,
                     mode: Mode, events: telemetry.buffered) -> tuple[Instance | None, builtins.list[Item]]:
        """Apply onto the instance read under a row lock (inside the caller's transaction)."""
        fresh = self.storage.load_pk(instance_pk, for_update=True, history=False)
        if not self.storage.holds(instance_pk, step.registry_name(), self.worker_id, attempt):
            return None, []  # the attempt was counted lost and re-dispatched: this outcome is not applied
        return self._apply_onto(fresh, step, outcome, attempt, mode, events)

    def _apply_onto(self, fresh: Instance, step: type[Step], outcome: StepOutcome, attempt: int, mode: Mode,
                    events: telemetry.buffered) -> tuple[Instance | None, builtins.list[Item]]:
        """Apply ``outcome`` onto ``fresh`` (its row locked by this transaction, the step's run held
        by this worker) and store it; start the children it asks for (all or none: a child that
        cannot start makes the outcome a failure of the step)."""
        name = step.registry_name()
        was_active = fresh.status.is_active
        effects = engine.apply_outcome(fresh, step, outcome, attempt)
        if effects is None:
            self.storage.release(fresh.pk, name, worker=self.worker_id)
            return None, []
        started: builtins.list[Item] = []
        spawns = [e for e in effects if isinstance(e, StartChildren)]
        if spawns:
            try:
                with self.storage.atomic():  # a savepoint: every child of this attempt, or none
                    for spawn in spawns:
                        started += self._start_children(fresh, spawn, mode.for_children())
            except ChildNotStarted as exc:
                # nothing was stored: apply the attempt again, as a failure of the step
                events.discard()
                failure = StepOutcome(error=str(exc), duration=outcome.duration)
                fresh = self.storage.load_pk(fresh.pk, for_update=True, history=False)
                effects = engine.apply_outcome(fresh, step, failure, attempt) or []
                started = []
            effects = [e for e in effects if not isinstance(e, StartChildren)]
        items = self._write_state(fresh, effects, mode, release=step)
        return fresh, items + started + self._finished_now(fresh, was_active, mode)

    def _run_atomic(self, instance: Instance, step: type[Step], attempt: int,
                    mode: Mode) -> tuple[Instance | None, builtins.list[Item]]:
        name = step.registry_name()
        try:
            with telemetry.buffered() as events:
                with self.storage.atomic():
                    fresh = self.storage.load_pk(instance.pk, for_update=True, history=False)
                    if not self.storage.holds(instance.pk, name, self.worker_id, attempt):
                        return None, []
                    if not engine.is_runnable(fresh, step):
                        self.storage.release(instance.pk, name, worker=self.worker_id,
                                             requeue=engine.may_run_later(fresh, step))
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
                    result = self._apply_onto(fresh, step, outcome, attempt, mode, events)
                events.flush()
        except self.storage.unstorable_errors as exc:  # its writes are rolled back with the outcome's
            failure = StepOutcome(error=f"{type(exc).__name__}: the outcome of {describe(step)} could not be "
                                        f"stored: {exc}")
            return self._apply_locked(instance.pk, step, failure, attempt, mode)
        return result

    # ---- child workflows ------------------------------------------------------------------------------
    def _start_children(self, parent: Instance, spawn: StartChildren, mode: Mode) -> builtins.list[Item]:
        """Start the children of ``spawn`` (in the caller's transaction) with the runs of their
        first steps; returns those this process runs next. Raises what stops any of them from
        starting."""
        started: builtins.list[Item] = []
        for number, child in enumerate(spawn.children, start=1):
            try:
                started += self._start_child(parent, spawn.step, child, mode)
            except (HephaestusError, ValueError, TypeError) as exc:
                workflow = getattr(child.workflow, "name", child.workflow)
                raise ChildNotStarted(f"child {number} of {len(spawn.children)} ({workflow}) could not start: "
                                      f"{type(exc).__name__}: {exc}") from exc
        return started

    def _start_child(self, parent: Instance, step: type[Step], child: Child, mode: Mode) -> builtins.list[Item]:
        wf = resolve_workflow(child.workflow)
        instance = new_instance(wf, child.start_context(), child.instance_id(wf, parent.id), child.version, None)
        instance.parent_id = parent.id
        instance.parent_pk = parent.pk
        instance.parent_step = step.registry_name()
        effects = engine.start(instance)
        runs, items = self._plan(instance, effects, mode)
        return self._create(instance, wf.unique.scope, effects, runs, items, mode)

    @staticmethod
    def _tells_parent(instance: Instance, was_active: bool) -> bool:
        """Whether a write of ``instance`` finishes a child workflow (its parent must be told in
        the same transaction)."""
        return was_active and not instance.status.is_active and instance.parent_pk is not None

    def _finished_now(self, instance: Instance, was_active: bool, mode: Mode) -> builtins.list[Item]:
        """When this transaction finished ``instance`` and it has a parent: lock the parent, and
        complete its children step if this was the last child (the steps to run next)."""
        if not self._tells_parent(instance, was_active):
            return []
        return self.child_finished(instance.parent_pk, instance.parent_step or "", mode)

    def child_finished(self, parent_pk: Any, step_name: str, mode: Mode | None = None) -> builtins.list[Item]:
        """A child of the children step ``step_name`` of instance ``parent_pk`` finished in the
        caller's transaction: lock the parent, complete that step if this was its last child."""
        try:
            parent = self.storage.load_pk(parent_pk, for_update=True, history=False)
        except (InstanceNotFound, UnknownWorkflow):
            return []  # the parent was deleted, or its workflow is gone: nobody waits
        step = engine.graph_of(parent).step(step_name)
        if step is None:
            return []
        return self._complete_children_step(parent, step, mode or self.caller_mode())

    def _complete_children_step(self, parent: Instance, step: type[Step], mode: Mode) -> builtins.list[Item]:
        """Complete ``parent``'s children ``step`` (the row locked) if all its children finished."""
        name = step.registry_name()
        if not engine.waits_for_children(parent, step) or self.storage.has_active_children(parent.pk, name):
            return []
        was_active = parent.status.is_active
        effects = engine.children_finished(parent, step, self.storage.children_of(parent.pk, name))
        if effects is None:
            return []
        items = self._write_state(parent, effects, mode)
        return items + self._finished_now(parent, was_active, mode)

    # ---- timers, queued and lost runs ------------------------------------------------------------------
    def fire_due_timers(self) -> int:
        """Fire every timer due by the engine's clock, once; returns how many changed something."""
        fired = 0
        for timer in self.storage.due_timers(clock.now(), limit=10_000):
            if self.fire_timer(timer):
                fired += 1
        return fired

    def fire_timer(self, timer: Timer, mode: Mode | None = None) -> bool:
        """Fire ``timer``, unless its instance is paused (the timer then waits for ``unpause``).
        ``mode``: a worker's task carries the instance on; default: a caller."""
        in_task = mode is not None
        mode = mode or self.caller_mode()
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self.storage.load_pk(timer.instance_pk, for_update=True, history=False)
                if instance.status == Status.PAUSED or not self.storage.claim_timer(timer):
                    return False
                was_active = instance.status.is_active
                effects = engine.fire_timer(instance, timer.step, timer.purpose, timer.attempt)
                if effects is None:
                    return False
                if timer.purpose == RETRY:  # a retry timer only re-runs the step
                    runs, items = self._plan(instance, effects, mode)
                    self.storage.write_runs(instance, runs, self._companions(runs, mode))
                    items += self._after_write(instance, effects, runs, None, mode)
                else:
                    items = self._write_state(instance, effects, mode)
                items += self._finished_now(instance, was_active, mode)
            if in_task:
                self._drive(instance, items, mode)
            else:
                self._run_here(instance, items)
        return True

    def run_pending_steps(self, instance_pks: Iterable[Any] | None = None) -> int:
        """Run here every queued step execution (of ``instance_pks``, default all) and every step
        they lead to; returns how many ran. Steps waiting for a retry's backoff are not queued."""
        ran = 0
        with telemetry_runner(self.runner_name):
            for run in self.storage.queued_runs(instance_pks):
                ran += self._drive(None, [Item(run.instance_pk, run.step, run.attempt, claimed=False,
                                                token=run.token)], Mode.everything_here())
        return ran

    def recover_run(self, lost: LostRun, reason: str, recovery_attempts: int, *, in_task: bool = False) -> bool:
        """Count a run whose worker was lost as a failed attempt, then go on per the step's retry
        policy (a step without one is re-run until it has run ``recovery_attempts`` times).
        Returns whether this call took the run (another worker may have). ``in_task``: a
        worker's task recovers it, and carries the instance on itself."""
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with telemetry.buffered() as events:
                with self.storage.atomic():
                    instance = self.storage.load_pk(lost.instance_pk, for_update=True, history=False)
                    if not self.storage.take_lost(lost):
                        return False
                    step = engine.graph_of(instance).step(lost.step)
                    if in_task and step is not None:
                        mode = self.task_mode(routing(instance, step))
                    was_active = instance.status.is_active
                    effects = None if step is None else engine.lose_claim(instance, step, lost.attempt, reason,
                                                                          recovery_attempts)
                    if effects is None:
                        if step is not None and engine.may_run_later(instance, step):  # say, paused: kept for later
                            queue, priority = routing(instance, step)
                            self.storage.write_runs(instance, [Run(
                                instance.pk, lost.step, lost.attempt, QUEUED, queue, priority, step.concurrency_limit,
                                token=str(uuid.uuid4()))])
                        return True  # otherwise the instance moved on: the run only had to go
                    items = self._write_state(instance, effects, mode)
                    if step is not None and step.concurrency_limit:  # its slot is free again
                        items += self._after_write(instance, [], [], step, mode)
                    items += self._finished_now(instance, was_active, mode)
                events.flush()
            if in_task:
                self._drive(instance, items, mode)
            else:
                self._run_here(instance, items)
        return True

    # ---- schedules ------------------------------------------------------------------------------------
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
        mode = self.caller_mode()
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
                    runs, items = self._plan(instance, effects, mode)
                    try:
                        items = self._create(instance, workflow.unique.scope, effects, runs, items, mode)
                    except AlreadyRunning as exc:
                        events.discard()
                        logger.warning("schedule %s of %s: tick %s not started: %s", schedule.name, workflow.name,
                                       tick.isoformat(), exc)
                        self.storage.record_tick(workflow.name, schedule.name, tick, following, None, str(exc))
                        return False
                    self.storage.record_tick(workflow.name, schedule.name, tick, following, instance, "")
                events.flush()
            self._run_here(instance, items)
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
        """Run queued steps, fire due timers and start due schedule ticks until nothing is left;
        returns how many ran."""
        total = 0
        for _ in range(max_iterations):
            ran = self.run_pending_steps() + self.fire_due_timers() + self.fire_schedules()
            if not ran:
                break
            total += ran
        return total


#: What :meth:`Runner._take` returns for a claim made without reading the instance.
_NOT_LOADED: Any = object()


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


__all__ = ["MAX_IDEMPOTENCY_KEY", "ChildNotStarted", "Holding", "Item", "Mode", "Runner", "check_idempotency_key",
           "check_resume_data", "new_instance", "resolve_workflow", "routing", "telemetry_runner"]
