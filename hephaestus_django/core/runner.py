"""The operations behind the facade and the low-level API, written once against a storage.

:class:`Runner` starts, resumes, cancels and retries instances and drives their steps. Every
write that makes steps runnable also writes their *runs* (see ``core.ports``), and says for each
one where it executes — the one explicit dispatch decision, :meth:`Runner._plan`, per
:class:`Mode`:

- ``Mode.here()``: every runnable step runs in this process, one after another (iteratively: no
  recursion however long the workflow). The in-memory runner, Django's immediate backend and the
  test kit work this way.
- ``Mode.queue()``: nothing runs here; every runnable step is handed to a task queue (a caller
  such as ``start()`` under a queue backend).
- ``Mode.chain(budget, routing)``: a worker's task carries its instance forward: the first
  runnable step with the task's routing runs here, written already claimed by this worker in the
  write that applied the previous outcome; the other branches of a fan-out are queued. At most
  ``budget`` steps per task.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from hephaestus_django.core import clock, engine, registry, telemetry
from hephaestus_django.core.base import Step, StepOutcome
from hephaestus_django.core.effects import RETRY, Effect, ExecuteStep, ScheduleTimer
from hephaestus_django.core.exceptions import InvalidContext, UnknownWorkflow
from hephaestus_django.core.graph import describe
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.keys import build_id
from hephaestus_django.core.ports import CLAIMED, QUEUED, LostRun, Run, Storage, Timer
from hephaestus_django.core.values import check_storable
from hephaestus_django.core.workflow import BaseWorkflow


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
    #: Who holds the runs this process claims (the Django runtime: one id per process).
    worker_id = "local"
    #: Whether queued runs are handed to the queue inside the transaction that writes them (so
    #: they are written already marked ``enqueued``).
    enqueues_in_transaction: ClassVar[bool] = False

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        telemetry.emit("runner_initialized", None, {"system_time": time.time_ns()},
                       {"name": type(self).__name__, "runner": self.runner_name, "storage": storage.name})

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

    def _enqueue(self, instance_pk: Any, runs: builtins.list[Run], *, written: bool) -> None:
        """Hand queued runs to the task queue (called inside the transaction that wrote them;
        ``written``: their task rows went in with that write). In memory there is no queue: they
        wait for :meth:`run_pending_steps`."""

    def _run_here(self, instance: Instance, items: builtins.list[Item]) -> int:
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
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with telemetry.buffered() as events:  # no workflow_started for a start that is refused
                effects = engine.start(instance)
                runs, items = self._plan(instance, effects, mode)
                with self._write_block(effects, runs, None):
                    self.storage.create(instance, wf.unique.scope, runs, self._companions(runs, mode))
                    items = [Item(instance.pk, i.step, i.attempt, i.claimed, i.token) for i in items]  # with its pk
                    self._after_write(instance, effects, runs, None, mode)
                events.flush()
            self._run_here(instance, items)
        return self.storage.load_pk(instance.pk, history=True) if reload else instance

    # ---- external events ---------------------------------------------------------------------------
    def resume(self, id: str, event: Any, *, step: Any = None, workflow: Any = None) -> Instance:
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.resume(instance, event, step)
                runs, items = self._plan(instance, effects, mode)
                self.storage.save(instance, runs, extra=self._companions(runs, mode))
                self._after_write(instance, effects, runs, None, mode)
            self._run_here(instance, items)
        return self.storage.load_pk(instance.pk, history=True)

    def cancel(self, id: str, *, workflow: Any = None) -> Instance:
        """Cancel: the instance's queued runs and its timers go in the same write."""
        with telemetry_runner(self.runner_name), self.storage.atomic():
            instance = self._load_for_update(id, workflow)
            engine.cancel(instance)
            self.storage.save(instance)
        return self.storage.load_pk(instance.pk, history=True)

    def retry(self, id: str, *, workflow: Any = None) -> Instance:
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                instance = self._load_for_update(id, workflow)
                effects = engine.retry(instance)
                runs, items = self._plan(instance, effects, mode)
                self.storage.save(instance, runs, extra=self._companions(runs, mode))
                self._after_write(instance, effects, runs, None, mode)
            self._run_here(instance, items)
        return self.storage.load_pk(instance.pk, history=True)

    def get(self, id: str, *, workflow: Any = None) -> Instance:
        return self.storage.load(id, self._workflow_name(workflow), history=True)

    def list(self, workflow: Any = None, **filters: Any) -> builtins.list[Instance]:
        return self.storage.list(self._workflow_name(workflow), **filters)

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
        process; returns how many steps ran. Each outcome is committed before the next step runs."""
        queue = deque(items)
        ran = 0
        with self._holding() as holding:
            for item in items:
                holding.add(item.instance_pk)
            while True:
                if not queue:  # the chain ended: other branches of the instance may wait in the queue
                    if (instance is None or mode.here or mode.budget <= 0 or instance.status not in engine.DISPATCHABLE
                            or not instance.running_steps):
                        break
                    stolen = self._take_sibling(instance, mode)
                    if stolen is None:
                        break
                    queue.append(stolen)
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

    def _take_sibling(self, instance: Instance, mode: Mode) -> Item | None:
        """A queued run of ``instance`` (another branch of a fan-out, routed like this task) that no
        worker has taken yet, claimed for this task, or ``None``. In memory: none."""
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
        taken from this worker (recovery counted the attempt lost). An outcome that cannot be
        stored (the write fails on its values) is recorded as a failure of the step instead.
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
            if engine.is_applicable(instance, step):
                effects = engine.apply_outcome(instance, step, outcome, attempt) or []
                runs, items = self._plan(instance, effects, mode)
                with self._write_block(effects, runs, step):
                    if self.storage.save_if_unchanged(instance, runs, release=name, holder=(self.worker_id, attempt),
                                                      extra=self._companions(runs, mode)):
                        items += self._after_write(instance, effects, runs, step, mode)
                        written = True
                    else:
                        written = False
                if written:
                    events.flush()
                    return instance, items
                events.discard()
            with self.storage.atomic():
                result = self._apply_fresh(instance.pk, step, outcome, attempt, mode)
            events.flush()
        return result

    def _write_block(self, effects: builtins.list[Effect], runs: builtins.list[Run],
                     released: type[Step] | None) -> AbstractContextManager[Any]:
        """The transaction around a write and what follows it, or none when the write is a single
        statement the storage can make on its own (the common step transition on PostgreSQL: one
        round trip instead of BEGIN, the statement and COMMIT): no timer to add, no slot to free,
        no task row to write beside it."""
        if (not self.storage.writes_alone()
                or any(isinstance(e, ScheduleTimer) for e in effects)
                or (released is not None and released.concurrency_limit)):
            return self.storage.atomic()
        return nullcontext()

    def _apply_locked(self, instance_pk: Any, step: type[Step], outcome: StepOutcome, attempt: int,
                      mode: Mode) -> tuple[Instance | None, builtins.list[Item]]:
        with telemetry.buffered() as events:
            with self.storage.atomic():
                result = self._apply_fresh(instance_pk, step, outcome, attempt, mode)
            events.flush()
        return result

    def _apply_fresh(self, instance_pk: Any, step: type[Step], outcome: StepOutcome, attempt: int,
                     mode: Mode) -> tuple[Instance | None, builtins.list[Item]]:
        """Apply onto the instance read under a row lock (inside the caller's transaction)."""
        name = step.registry_name()
        fresh = self.storage.load_pk(instance_pk, for_update=True, history=False)
        if not self.storage.holds(instance_pk, name, self.worker_id, attempt):
            return None, []  # the attempt was counted lost and re-dispatched: this outcome is not applied
        effects = engine.apply_outcome(fresh, step, outcome, attempt)
        if effects is None:
            self.storage.release(instance_pk, name, worker=self.worker_id)
            return None, []
        runs, items = self._plan(fresh, effects, mode)
        self.storage.save(fresh, runs, release=name, extra=self._companions(runs, mode))
        items += self._after_write(fresh, effects, runs, step, mode)
        return fresh, items

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
                    effects = engine.apply_outcome(fresh, step, outcome, attempt) or []
                    runs, items = self._plan(fresh, effects, mode)
                    self.storage.save(fresh, runs, release=name, extra=self._companions(runs, mode))
                    items += self._after_write(fresh, effects, runs, step, mode)
                events.flush()
        except self.storage.unstorable_errors as exc:  # its writes are rolled back with the outcome's
            failure = StepOutcome(error=f"{type(exc).__name__}: the outcome of {describe(step)} could not be "
                                        f"stored: {exc}")
            return self._apply_locked(instance.pk, step, failure, attempt, mode)
        return fresh, items

    # ---- timers, queued and lost runs ------------------------------------------------------------------
    def fire_due_timers(self) -> int:
        """Fire every timer due by the engine's clock, once; returns how many changed something."""
        fired = 0
        for timer in self.storage.due_timers(clock.now(), limit=10_000):
            if self.fire_timer(timer):
                fired += 1
        return fired

    def fire_timer(self, timer: Timer, mode: Mode | None = None) -> bool:
        """Fire ``timer`` (``mode``: a worker's task carries the instance on; default: a caller)."""
        in_task = mode is not None
        mode = mode or self.caller_mode()
        with telemetry_runner(self.runner_name):
            with self.storage.atomic():
                if not self.storage.claim_timer(timer):
                    return False
                instance = self.storage.load_pk(timer.instance_pk, for_update=True, history=False)
                effects = engine.fire_timer(instance, timer.step, timer.purpose, timer.attempt)
                if effects is None:
                    return False
                runs, items = self._plan(instance, effects, mode)
                extra = self._companions(runs, mode)
                if timer.purpose == RETRY:  # a retry timer only re-runs the step
                    self.storage.write_runs(instance, runs, extra)
                else:
                    self.storage.save(instance, runs, extra=extra)
                self._after_write(instance, effects, runs, None, mode)
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

    def recover_run(self, lost: LostRun, reason: str, recovery_attempts: int) -> bool:
        """Count a run whose worker was lost as a failed attempt, then go on per the step's retry
        policy (a step without one is re-run until it has run ``recovery_attempts`` times).
        Returns whether this call took the run (another worker may have)."""
        mode = self.caller_mode()
        with telemetry_runner(self.runner_name):
            with telemetry.buffered() as events:
                with self.storage.atomic():
                    instance = self.storage.load_pk(lost.instance_pk, for_update=True, history=False)
                    if not self.storage.take_lost(lost):
                        return False
                    step = engine.graph_of(instance).step(lost.step)
                    effects = None if step is None else engine.lose_claim(instance, step, lost.attempt, reason,
                                                                          recovery_attempts)
                    if effects is None:
                        if step is not None and engine.may_run_later(instance, step):  # say, paused: kept for later
                            queue, priority = routing(instance, step)
                            self.storage.write_runs(instance, [Run(
                                instance.pk, lost.step, lost.attempt, QUEUED, queue, priority, step.concurrency_limit,
                                token=str(uuid.uuid4()))])
                        return True  # otherwise the instance moved on: the run only had to go
                    runs, items = self._plan(instance, effects, mode)
                    self.storage.save(instance, runs, extra=self._companions(runs, mode))
                    items += self._after_write(instance, effects, runs, step, mode)
                events.flush()
            self._run_here(instance, items)
        return True

    def run_until_idle(self, max_iterations: int = 10_000) -> int:
        """Run queued steps and fire due timers until nothing is left; returns how many ran."""
        total = 0
        for _ in range(max_iterations):
            ran = self.run_pending_steps() + self.fire_due_timers()
            if not ran:
                break
            total += ran
        return total


#: What :meth:`Runner._take` returns for a claim made without reading the instance.
_NOT_LOADED: Any = object()


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


__all__ = ["Holding", "Item", "Mode", "Runner", "resolve_workflow", "routing", "telemetry_runner"]
