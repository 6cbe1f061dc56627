"""The engine: pure state transitions of an :class:`Instance`.

Each function mutates the instance it is given, appends history entries, and returns the
*effects* the caller must carry out (run a step, schedule a timer). Storage and runners
(in memory here, the database and Django Tasks above) decide where and when.

Joins (``docs/concepts/joins.md``): a step with several predecessors activates once, when each predecessor
has completed or can no longer run (it is not active and no active or pending step reaches
it). Reachability is a per-graph bitset, so one check costs a few integer operations.
"""

from __future__ import annotations

import concurrent.futures
import time
import traceback as tb
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hephaestus_django.core import clock, telemetry
from hephaestus_django.core.base import Async, Error, Ok, Step, StepOutcome
from hephaestus_django.core.children import ChildSummary, Spawn, is_children_step
from hephaestus_django.core.effects import DEADLINE, RETRY, WAKE, Effect, ExecuteStep, ScheduleTimer, StartChildren
from hephaestus_django.core.exceptions import (
    InvalidEvent,
    MigrationError,
    NotCancellable,
    NotPausable,
    NotPaused,
    NotRetryable,
    NotWaiting,
)
from hephaestus_django.core.graph import Graph, RouteSpec, Target, describe, parse_target
from hephaestus_django.core.instance import Compensation, ExecutionEntry, Instance
from hephaestus_django.core.status import DISPATCHABLE, EntryKind, Status
from hephaestus_django.core.values import storable_problem, storable_text


def graph_of(instance: Instance) -> Graph:
    return instance.workflow.definition(instance.workflow_version).graph


# ---- telemetry helpers ---------------------------------------------------------------------
def _base_metadata(instance: Instance) -> dict[str, Any]:
    return {
        **instance.telemetry_metadata,
        "instance_id": instance.id,
        "workflow": instance.workflow.name,
        "workflow_version": instance.workflow_version,
        "runner": telemetry.current_runner.get(),
    }


def _emit(name: str, instance: Instance, measurements: dict[str, Any], **metadata: Any) -> None:
    if telemetry.wanted(name):
        telemetry.emit(name, instance.workflow, measurements, {**_base_metadata(instance), **metadata})


def _system_time() -> int:
    return time.time_ns()


def _elapsed(instance: Instance) -> float:
    if instance.telemetry_start_time is None:
        return 0.0
    return max(0.0, (_clock_ns() - instance.telemetry_start_time) / 1e9)


def _clock_ns() -> int:
    now = clock.now()
    return int(now.timestamp() * 1_000_000) * 1000


def _step_meta(step: type[Step]) -> dict[str, Any]:
    return {"step": step.registry_name(), "step_key": step.context_key()}


def _record(instance: Instance, step: Any, event: str | None, kind: str, *, context_updates: Any = None,
            attempt: int = 1, error: str | None = None, duration: float | None = None,
            delay: float | None = None, traceback: str | None = None) -> ExecutionEntry:
    if error is not None:
        error = storable_text(error)
    entry = ExecutionEntry(step, event, clock.now(), context_updates, kind=kind, attempt=attempt, error=error,
                           duration=duration, delay=delay, traceback=traceback)
    instance.execution_history.append(entry)
    return entry


# ---- lifecycle -------------------------------------------------------------------------------
def start(instance: Instance) -> list[Effect]:
    """Move a pending instance to running with its start step active."""
    if instance.status != Status.PENDING:
        raise ValueError(f"instance {instance.id} is {instance.status}, not pending")
    graph = graph_of(instance)
    now = clock.now()
    instance.status = Status.RUNNING
    instance.started_at = now
    instance.telemetry_start_time = _clock_ns()
    _emit("workflow_started", instance, {"system_time": _system_time()},
          initial_step=graph.start.registry_name(), context_keys=sorted(instance.context.initial))
    effects: list[Effect] = []
    deadline = instance.workflow.deadline_for(instance.workflow_version)
    if deadline is not None:
        effects.append(ScheduleTimer(None, DEADLINE, float(deadline)))
    _activate(instance, graph.start, graph.start_config, effects)
    return effects


def _activate(instance: Instance, step: type[Step], config: dict[str, Any] | None, effects: list[Effect]) -> None:
    instance.active_steps.add(step)
    instance.step_configs[step] = dict(config) if config else instance.step_configs.get(step, {})
    effects.append(ExecuteStep(step, 1))


def execute_step(instance: Instance, step: type[Step], attempt: int = 1, *, threaded: bool = True) -> StepOutcome:
    """Run the step's ``execute`` (user code) and capture what it returned or raised.

    A step with ``timeout`` runs in a helper thread; when it overruns, the outcome is a
    failure (the thread cannot be killed and finishes in the background). With
    ``threaded=False`` (atomic steps, whose work must stay in the caller's transaction) it
    runs inline and an overrun is a failure once it returns.
    """
    config = instance.step_configs.get(step, {})
    instance.current_step = step
    _emit("step_started", instance, {"system_time": _system_time()}, **_step_meta(step),
          concurrent=len(instance.running_steps) > 1, active_steps_count=len(instance.active_steps))
    started = time.perf_counter()
    outcome = StepOutcome()
    try:
        if step.timeout and threaded:
            outcome.result = _run_with_timeout(step, instance, config, float(step.timeout))
        else:
            outcome.result = step().execute(instance, config, instance.context)
    except Exception as exc:
        # the message may hold what the database (or a log stream) cannot store: NUL, lone surrogates
        outcome.error = storable_text(f"{type(exc).__name__}: {exc}")
        outcome.traceback = storable_text(tb.format_exc())
    outcome.duration = time.perf_counter() - started
    if step.timeout and not threaded and outcome.error is None and outcome.duration > step.timeout:
        outcome.error = f"TimeoutError: step {step.__qualname__} exceeded its timeout of {step.timeout:g}s"
    return outcome


class StepThreadHooks(Protocol):
    """What the runtime does around a step that runs in a helper thread (it has a ``timeout``).

    ``started`` and ``finished`` run in the helper thread, before and after ``execute``
    (whatever it returns or raises); ``abandoned`` runs in the caller's thread when the step
    overran its timeout and is left to finish in the background. The Django runtime gives back
    the thread's database connections there.
    """

    def started(self) -> Any: ...

    def finished(self, token: Any) -> None: ...

    def abandoned(self, token: Any) -> None: ...


_thread_hooks: StepThreadHooks | None = None


def set_step_thread_hooks(hooks: StepThreadHooks | None) -> StepThreadHooks | None:
    """Install the hooks run around steps in helper threads; returns the previous ones."""
    global _thread_hooks
    previous, _thread_hooks = _thread_hooks, hooks
    return previous


def _run_with_timeout(step: type[Step], instance: Instance, config: dict[str, Any], timeout: float) -> Any:
    hooks = _thread_hooks
    tokens: list[Any] = []

    def body() -> Any:
        token = hooks.started() if hooks is not None else None
        tokens.append(token)
        try:
            return step().execute(instance, config, instance.context)
        finally:
            if hooks is not None:
                hooks.finished(token)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hephaestus-step")
    try:
        future = pool.submit(body)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            if hooks is not None and tokens:
                hooks.abandoned(tokens[0])
            raise TimeoutError(f"step {step.__qualname__} exceeded its timeout of {timeout:g}s") from None
    finally:
        pool.shutdown(wait=False)


def is_runnable(instance: Instance, step: type[Step]) -> bool:
    """Whether ``step`` may start executing now: not for a paused, cancelled or finished instance.

    This is the one check every dispatcher asks before a step starts (a paused instance's steps
    wait for ``unpause``)."""
    return instance.status in DISPATCHABLE and step in instance.active_steps and step not in instance.waiting_steps


def may_run_later(instance: Instance, step: type[Step]) -> bool:
    """Whether ``step``, not runnable now, is still active in an unfinished instance (a paused
    one): its run is kept for ``unpause`` instead of dropped."""
    return instance.status.is_active and instance.status not in DISPATCHABLE and step in instance.active_steps \
        and step not in instance.waiting_steps


def _is_dict_or_none(value: object) -> bool:
    """Whether ``value`` is ``None`` or a dict: ``Ok(...)`` comes from user code, whatever its annotations say."""
    return value is None or isinstance(value, dict)


def outcome_failed(step: type[Step], outcome: StepOutcome) -> bool:
    """Whether applying ``outcome`` would count as a failure of the step (atomic steps roll back)."""
    if outcome.error is not None:
        return True
    result = outcome.result
    if isinstance(result, str):
        return result not in step.events
    if isinstance(result, Ok):
        return result.event not in step.events or _updates_problem(step, result) is not None
    return not isinstance(result, Async | Spawn)


def _updates_problem(step: type[Step], result: Ok) -> str | None:
    """Why the updates an ``Ok`` carries cannot be applied: not dicts, or values the database
    cannot store (a failure of the step, never a stuck instance)."""
    for name, updates in (("context_updates", result.context_updates), ("metadata_updates", result.metadata_updates)):
        if not _is_dict_or_none(updates):
            return f"{describe(step)} returned {name} that are not a dict: {updates!r}"
        problem = storable_problem(updates, name) if updates else None
        if problem is not None:
            return f"{describe(step)} returned {problem}"
    return None


def is_applicable(instance: Instance, step: type[Step]) -> bool:
    """Whether an outcome of ``step`` would still change the instance (exactly-once guard)."""
    if step not in instance.active_steps or step in instance.waiting_steps:
        return False
    # a step still executing when the instance was paused or cancelled records its result
    return instance.status in (Status.RUNNING, Status.WAITING, Status.CANCELLED, Status.PAUSED,
                               Status.COMPENSATING)


def apply_outcome(instance: Instance, step: type[Step], outcome: StepOutcome, attempt: int = 1) -> list[Effect] | None:
    """Apply what running ``step`` produced. ``None`` when the outcome is stale (already applied,
    or the instance moved on); otherwise the effects to carry out."""
    if not is_applicable(instance, step):
        return None
    started = time.perf_counter()
    status_before = instance.status
    completed_before = len(instance.completed_steps)
    effects: list[Effect] = []
    if outcome.error is not None:
        _emit("step_exception", instance, {"duration": outcome.duration}, **_step_meta(step), kind="exception",
              reason=outcome.error, traceback=outcome.traceback)
        _fail_step(instance, step, outcome.error, attempt, outcome.duration, effects, outcome.traceback)
    elif instance.status == Status.COMPENSATING:
        _apply_compensation(instance, step, outcome.result, attempt, outcome.duration, effects)
    else:
        _apply_result(instance, step, outcome.result, attempt, outcome.duration, effects)
    _emit("engine_advanced", instance, {"duration": time.perf_counter() - started,
                                         "active_steps_count": len(instance.active_steps),
                                         "completed_in_advance": len(instance.completed_steps) - completed_before},
          status_before=str(status_before), status_after=str(instance.status), iteration=instance.revision + 1)
    return effects


def _result_problem(step: type[Step], result: Any) -> str | None:
    """Why ``result`` (not ``Async``) is a failure of ``step``, or ``None`` for a valid ``Ok``."""
    problem = None
    if isinstance(result, Error):
        problem = f"Error: {result.reason}"
    elif not isinstance(result, Ok):
        problem = (f"{describe(step)}.execute() returned {type(result).__name__} {result!r}; "
                   "expected Ok(...), an event str, Async() or Error(...)")
    elif result.event not in step.events:
        problem = (f"{describe(step)} emitted undeclared event {result.event!r} "
                   f"(it declares {', '.join(map(repr, step.events)) or 'none'})")
    else:
        problem = _updates_problem(step, result)
    return problem


def _apply_result(instance: Instance, step: type[Step], result: Any, attempt: int, duration: float,
                  effects: list[Effect]) -> None:
    if isinstance(result, str):
        result = Ok(result)
    if isinstance(result, Async):
        _pause(instance, step, attempt, duration, effects)
        return
    if isinstance(result, Spawn) and is_children_step(step):
        if not result.children:  # nothing to wait for
            _complete(instance, step, "completed", {"children": []}, None, EntryKind.COMPLETED, attempt, duration,
                      effects)
            return
        _pause(instance, step, attempt, duration, effects)
        if instance.status != Status.CANCELLED:
            effects.append(StartChildren(step, result.children, attempt))
        return
    problem = _result_problem(step, result)
    if problem is not None:
        _emit("step_exception", instance, {"duration": duration}, **_step_meta(step),
              kind="error" if isinstance(result, Error) else "invalid_result", reason=problem, traceback=None)
        _fail_step(instance, step, problem, attempt, duration, effects, None)
        return
    if not isinstance(result, Ok):  # pragma: no cover - excluded by the checks above
        raise TypeError(result)
    _complete(instance, step, result.event, result.context_updates, result.metadata_updates, EntryKind.COMPLETED,
              attempt, duration, effects)


def _pause(instance: Instance, step: type[Step], attempt: int, duration: float, effects: list[Effect]) -> None:
    instance.waiting_steps[step] = clock.now()
    instance.current_step = step
    _record(instance, step, None, EntryKind.PAUSED, attempt=attempt, duration=duration)
    if instance.status == Status.CANCELLED:
        return
    _update_status(instance)
    _emit("step_async", instance, {"duration": duration}, **_step_meta(step), instance_status=str(instance.status))
    delay = step.wake_after(instance.step_configs.get(step, {}))
    if delay is not None:
        effects.append(ScheduleTimer(step, WAKE, delay, attempt))


def _resolve_targets(instance: Instance, graph: Graph, step: type[Step], event: str) -> list[Target]:
    """The targets of ``(step, event)``; a route's function may pick one declared target or a list
    of them (a fan-out decided at run time)."""
    targets = graph.targets(step, event)
    if not isinstance(targets, RouteSpec):
        return targets
    spec = targets
    chosen = spec.func(instance.context)
    pairs, problems = parse_target(chosen)
    declared = list(dict.fromkeys(t[0] if isinstance(t, tuple) else t for t in spec.targets))
    undeclared = [target for target, _config in pairs if target not in declared]
    if problems or not pairs or undeclared:
        name, allowed = spec.func.__name__, ", ".join(describe(t) for t in declared)
        if not isinstance(chosen, list):
            raise _RouteError(f"route {name} returned {describe(chosen)}, which is not one of its declared "
                              f"targets ({allowed})")
        if not chosen:
            raise _RouteError(f"route {name} returned an empty list: it must return one of its declared targets "
                              f"({allowed}) or a non-empty list of them")
        wrong = [describe(t) for t in undeclared] or problems
        raise _RouteError(f"route {name} returned [{', '.join(describe(t) for t in chosen)}]: "
                          f"{', '.join(wrong)} not among its declared targets ({allowed})")
    chosen_targets: dict[type[Step], dict[str, Any] | None] = {}
    for target, config in pairs:
        if config is None:
            config = next((t[1] for t in spec.targets if isinstance(t, tuple) and t[0] is target), None)
        chosen_targets.setdefault(target, config)
    return list(chosen_targets.items())


class _RouteError(Exception):
    pass


def _complete(instance: Instance, step: type[Step], event: str, context_updates: dict[str, Any] | None,
              metadata_updates: dict[str, Any] | None, kind: str, attempt: int, duration: float | None,
              effects: list[Effect], *, merge: bool = False) -> None:
    """Complete ``step`` with ``event``: its updates replace its context entry (``merge``: are
    merged into it), the targets activate, joins that can no longer wait are released."""
    graph = graph_of(instance)
    cancelled = instance.status == Status.CANCELLED
    targets: list[Target] = []
    if not cancelled:
        try:
            targets = _resolve_targets(instance, graph, step, event)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, _RouteError) else f"route raised {type(exc).__name__}: {exc}"
            _fail_step(instance, step, reason, attempt, duration, effects, None, retryable=False)
            return
    instance.active_steps.discard(step)
    instance.waiting_steps.pop(step, None)
    if step not in instance.completed_steps:
        instance.completed_steps.add(step)
        instance.completion_order.append(step)
    instance.step_configs.pop(step, None)
    instance.current_step = step
    if context_updates is not None:
        key = step.context_key()
        instance.context.steps[key] = {**instance.context.steps.get(key, {}), **context_updates} if merge \
            else context_updates
    if metadata_updates:
        instance.runtime_metadata.update(metadata_updates)
    _record(instance, step, event, kind, context_updates=context_updates, attempt=attempt, duration=duration)
    if kind == EntryKind.COMPLETED:
        _emit("step_stopped", instance, {"duration": duration or 0.0}, **_step_meta(step), event=event,
              has_context_updates=bool(context_updates), has_metadata_updates=bool(metadata_updates),
              transitions_to=[t.registry_name() for t, _ in targets])
    if cancelled:
        return
    if targets:
        _emit("workflow_transition", instance, {"system_time": _system_time(), "targets_count": len(targets)},
              from_step=step.registry_name(), event=event, targets=[t.registry_name() for t, _ in targets],
              fan_out=len(targets) > 1)
    for target, config in targets:
        if target in instance.completed_steps or target in instance.active_steps:
            continue
        if graph.is_join(target):
            if target not in instance.pending_joins:
                instance.pending_joins.add(target)
                if config:
                    instance.step_configs[target] = dict(config)
        else:
            _activate(instance, target, config, effects)
    _release_joins(instance, graph, effects)
    if instance.status == Status.PAUSED:  # nothing starts, not even Done, until unpause
        effects[:] = [e for e in effects if not isinstance(e, ExecuteStep)]
    for effect in [e for e in effects if isinstance(e, ExecuteStep) and completes_at_once(e.step)]:
        # Done completes at once, in the same state change as the step that led to it
        effects.remove(effect)
        _emit("step_started", instance, {"system_time": _system_time()}, **_step_meta(effect.step),
              concurrent=len(instance.running_steps) > 1, active_steps_count=len(instance.active_steps))
        _complete(instance, effect.step, "done", None, None, EntryKind.COMPLETED, 1, 0.0, effects)
    _update_status(instance)


def completes_at_once(step: type[Step]) -> bool:
    """A terminal step that keeps ``Done``'s ``execute`` needs no execution of its own."""
    from hephaestus_django.core.steps import Done

    return issubclass(step, Done) and step.execute is Done.execute


def _release_joins(instance: Instance, graph: Graph, effects: list[Effect]) -> None:
    if not instance.pending_joins:
        return
    mask = graph.can_run_mask(instance.active_steps | instance.pending_joins)
    index = graph.index
    for join in sorted(instance.pending_joins, key=index.__getitem__):
        if all(p in instance.completed_steps or not (mask >> index[p]) & 1 for p in graph.preds[join]):
            instance.pending_joins.discard(join)
            _activate(instance, join, instance.step_configs.get(join), effects)


def _update_status(instance: Instance) -> None:
    if instance.status == Status.PAUSED:
        if instance.active_steps or instance.pending_joins:
            # what unpause goes back to
            instance.paused_from = Status.RUNNING if instance.running_steps else Status.WAITING
            return
        instance.status = Status.RUNNING  # a step that was executing finished the instance
        instance.paused_from = None
    if instance.status not in (Status.RUNNING, Status.WAITING):
        return
    if not instance.active_steps and not instance.pending_joins:
        instance.status = Status.COMPLETED
        instance.finished_at = clock.now()
        _emit("workflow_stopped", instance,
              {"duration": _elapsed(instance), "step_count": len(instance.completed_steps),
               "advance_count": instance.revision + 1},
              status=str(instance.status), completed_steps=sorted(s.registry_name() for s in instance.completed_steps))
    elif instance.running_steps:
        instance.status = Status.RUNNING
    else:
        instance.status = Status.WAITING


def _fail_step(instance: Instance, step: type[Step], error: str, attempt: int, duration: float | None,
               effects: list[Effect], traceback: str | None, *, retryable: bool = True,
               max_attempts: int | None = None) -> None:
    instance.current_step = step
    error = storable_text(error)  # an exception's message may hold what the database cannot store
    stored_traceback = _storable_traceback(traceback)
    if instance.status == Status.CANCELLED:
        instance.active_steps.discard(step)
        _record(instance, step, None, EntryKind.FAILED, attempt=attempt, error=error, duration=duration,
                traceback=stored_traceback)
        return
    if max_attempts is None:
        max_attempts = step.max_attempts() if step.retry is not None else 1
    if retryable and attempt < max_attempts:
        delay = step.retry.delay(attempt) if step.retry is not None else 0.0
        _record(instance, step, None, EntryKind.RETRYING, attempt=attempt, error=error, duration=duration, delay=delay,
                traceback=stored_traceback)
        if delay > 0 or instance.status == Status.PAUSED:  # a paused instance's retry waits as a timer
            effects.append(ScheduleTimer(step, RETRY, delay, attempt + 1))
        else:
            effects.append(ExecuteStep(step, attempt + 1))
        _update_status(instance)
        return
    _record(instance, step, None, EntryKind.FAILED, attempt=attempt, error=error, duration=duration,
            traceback=stored_traceback)
    if instance.status == Status.COMPENSATING:  # a compensation failed for good: retry() resumes it
        _finish_failed(instance, error, step.registry_name(), traceback)
        return
    _fail_for_good(instance, error, step.registry_name(), traceback, effects)


def _finish_failed(instance: Instance, error: str, failed_step: str | None, traceback: str | None) -> None:
    instance.status = Status.FAILED
    instance.paused_from = None
    instance.error = error
    instance.finished_at = clock.now()
    _emit("workflow_exception", instance, {"duration": _elapsed(instance)}, status=str(instance.status),
          failed_step=failed_step, reason=error, kind="exception" if traceback else "error",
          traceback=traceback)


def _fail_for_good(instance: Instance, error: str, failed_step: str | None, traceback: str | None,
                   effects: list[Effect]) -> None:
    """The instance fails: its compensations run first when completed steps have any."""
    if compensation_plan(instance):
        _begin_compensation(instance, Status.FAILED, error, failed_step, effects)
    else:
        _finish_failed(instance, error, failed_step, traceback)


# ---- compensation (saga) ---------------------------------------------------------------------
def compensation_plan(instance: Instance) -> list[type[Step]]:
    """Completed steps that have a compensation, the last completed first."""
    compensations = graph_of(instance).compensations
    if not compensations:
        return []
    order = list(instance.completion_order)
    known = set(order)
    graph = graph_of(instance)
    # steps completed before the completion order was kept: in graph order
    order[:0] = sorted((s for s in instance.completed_steps if s not in known), key=graph.position)
    return [s for s in reversed(order) if s in compensations]


def _begin_compensation(instance: Instance, outcome: Status, error: str | None, failed_step: str | None,
                        effects: list[Effect]) -> None:
    """Leave the graph (steps still waiting or in flight are dropped) and run the first compensation."""
    for step in instance.active_steps | instance.pending_joins:
        instance.step_configs.pop(step, None)
    instance.active_steps.clear()
    instance.waiting_steps.clear()
    instance.pending_joins.clear()
    effects[:] = [e for e in effects if isinstance(e, ScheduleTimer) and e.purpose == DEADLINE]
    instance.status = Status.COMPENSATING
    instance.paused_from = None
    instance.error = error
    instance.compensation = Compensation(outcome=outcome, error=error, pending=compensation_plan(instance),
                                         failed_step=failed_step)
    _next_compensation(instance, effects)


def _next_compensation(instance: Instance, effects: list[Effect]) -> None:
    """Activate the next compensation, or end the instance when none is left."""
    saga = instance.compensation
    if saga is None:  # pragma: no cover - only called while compensating
        raise RuntimeError("no compensation in progress")
    if saga.pending:
        compensated = saga.pending[0]
        step = graph_of(instance).compensations[compensated]
        instance.active_steps.add(step)
        instance.step_configs[step] = {"compensates": compensated.registry_name()}
        effects.append(ExecuteStep(step, 1))
        return
    if saga.outcome == Status.FAILED:
        _finish_failed(instance, saga.error or "failed", saga.failed_step, None)
        return
    instance.status = Status.CANCELLED
    instance.error = None
    instance.finished_at = clock.now()
    _emit_stopped(instance)


def _apply_compensation(instance: Instance, step: type[Step], result: Any, attempt: int, duration: float,
                        effects: list[Effect]) -> None:
    """A compensation step's result: any declared event means done; anything else is a failure."""
    if isinstance(result, str):
        result = Ok(result)
    problem = (f"{describe(step)} returned Async(): a compensation step cannot pause"
               if isinstance(result, Async) else _result_problem(step, result))
    if problem is not None:
        _emit("step_exception", instance, {"duration": duration}, **_step_meta(step),
              kind="error" if isinstance(result, Error) else "invalid_result", reason=problem, traceback=None)
        _fail_step(instance, step, problem, attempt, duration, effects, None)
        return
    if not isinstance(result, Ok) or instance.compensation is None:  # pragma: no cover - checked above
        raise TypeError(result)
    saga = instance.compensation
    instance.active_steps.discard(step)
    instance.step_configs.pop(step, None)
    instance.current_step = step
    if result.context_updates is not None:
        instance.context.steps[step.context_key()] = result.context_updates
    if result.metadata_updates:
        instance.runtime_metadata.update(result.metadata_updates)
    _record(instance, step, result.event, EntryKind.COMPENSATED, context_updates=result.context_updates,
            attempt=attempt, duration=duration)
    _emit("step_stopped", instance, {"duration": duration or 0.0}, **_step_meta(step), event=result.event,
          has_context_updates=bool(result.context_updates), has_metadata_updates=bool(result.metadata_updates),
          transitions_to=[])
    saga.done.append(saga.pending.pop(0))
    _next_compensation(instance, effects)


def _emit_stopped(instance: Instance) -> None:
    _emit("workflow_stopped", instance, {"duration": _elapsed(instance), "step_count": len(instance.completed_steps),
                                         "advance_count": instance.revision + 1},
          status=str(instance.status), completed_steps=sorted(s.registry_name() for s in instance.completed_steps))


#: Longest traceback kept in a history entry (its end: the innermost frames and the exception).
TRACEBACK_LIMIT = 16_000


def _storable_traceback(traceback: str | None) -> str | None:
    """The traceback as a history entry keeps it: text the database can store, at most
    :data:`TRACEBACK_LIMIT` characters (the first line and the end of a longer one)."""
    if not traceback:
        return None
    text = storable_text(traceback)
    if len(text) > TRACEBACK_LIMIT:
        head = text.split("\n", 1)[0]
        text = f"{head}\n  ...\n{text[-(TRACEBACK_LIMIT - len(head) - 7):]}"
    return text


# ---- external calls --------------------------------------------------------------------------
#: Statuses in which a waiting step may be resumed (a paused instance takes the event: its next
#: steps start at unpause, so an event is never lost).
RESUMABLE_STATUSES = frozenset({Status.RUNNING, Status.WAITING, Status.PAUSED})


def find_waiting_step(instance: Instance, event: Any, step: Any = None, *,
                      source: str = "external") -> tuple[type[Step], str]:
    """The waiting step ``event`` resumes, and the declared event it maps to."""
    if instance.status not in RESUMABLE_STATUSES or not instance.waiting_steps:
        raise NotWaiting(f"instance {instance.id} is {instance.status} and has no waiting step")
    if not isinstance(event, str) or not event:
        raise InvalidEvent(f"'event' must be a non-empty str, not {event!r}", field="event")
    graph = graph_of(instance)
    if step is not None:
        chosen = graph.step(step)
        if chosen is None:
            raise InvalidEvent(f"workflow {instance.workflow.name} has no step {describe(step)}", field="step")
        if chosen not in instance.waiting_steps:
            raise NotWaiting(f"step {chosen.registry_name()} of instance {instance.id} is not waiting")
        if is_children_step(chosen) and source == "external":
            raise NotWaiting(f"step {chosen.registry_name()} of instance {instance.id} waits for its child "
                             "workflows, not for an event: it completes when the last of them finishes")
        mapped = chosen.resume_event(event, instance.step_configs.get(chosen, {}))
        if mapped not in chosen.events:
            raise InvalidEvent(f"step {chosen.registry_name()} does not declare event {event!r} "
                               f"(it declares {', '.join(map(repr, chosen.events))})", field="event")
        return chosen, mapped
    resumable = [w for w in instance.waiting_steps if not is_children_step(w)]
    if not resumable:
        raise NotWaiting(f"instance {instance.id} waits only for its child workflows, not for an event")
    candidates = []
    for waiting in sorted(resumable, key=graph.index.__getitem__):
        mapped = waiting.resume_event(event, instance.step_configs.get(waiting, {}))
        if mapped in waiting.events:
            candidates.append((waiting, mapped))
    if not candidates:
        offered = "; ".join(f"{s.registry_name()}: {', '.join(s.events)}" for s in resumable)
        raise InvalidEvent(f"no waiting step of instance {instance.id} declares event {event!r} ({offered})",
                           field="event")
    if len(candidates) > 1:
        names = ", ".join(s.registry_name() for s, _ in candidates)
        raise InvalidEvent(f"event {event!r} is declared by several waiting steps ({names}); pass step=",
                           field="event")
    return candidates[0]


@dataclass(frozen=True, slots=True)
class ResumeOption:
    """One way to resume a waiting step: ``resume(id, event, step=step)``."""

    #: The waiting step.
    step: type[Step]
    #: An event it declares that leads somewhere in the graph.
    event: str
    #: Another name that resumes it with ``event`` (a ``WaitForEvent``'s configured
    #: ``event_name`` for ``received``), or ``None``.
    alias: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step.registry_name(), "event": self.event, "alias": self.alias}


def resume_options(instance: Instance) -> list[ResumeOption]:
    """What ``instance`` can be resumed with now: for each waiting step (graph order; children
    steps wait for their children, not for an event, and are left out), each event it declares
    that the workflow has a transition for. Empty unless the status takes a resume."""
    if instance.status not in RESUMABLE_STATUSES or not instance.waiting_steps:
        return []
    graph = graph_of(instance)
    options = []
    for step in sorted(instance.waiting_steps, key=graph.index.__getitem__):
        if is_children_step(step):
            continue
        config = instance.step_configs.get(step, {})
        name = config.get("event_name")  # the external name a step may map (see Step.resume_event)
        for event in graph.handled_events(step):
            aliased = isinstance(name, str) and name != event and step.resume_event(name, config) == event
            options.append(ResumeOption(step, event, name if aliased else None))
    return options


def resume(instance: Instance, event: Any, step: Any = None, *, source: str = "external",
           data: dict[str, Any] | None = None) -> list[Effect]:
    """Complete a waiting step with ``event`` (``source``: ``external`` or ``timeout``); ``data``
    is merged into the step's context entry and recorded in the ``resumed`` history entry."""
    chosen, mapped = find_waiting_step(instance, event, step, source=source)
    since = instance.waiting_steps.get(chosen)
    wait = (clock.now() - since).total_seconds() if isinstance(since, datetime) else 0.0
    _emit("step_resumed", instance, {"system_time": _system_time(), "wait_duration": wait}, **_step_meta(chosen),
          resume_event=mapped, source=source)
    effects: list[Effect] = []
    kind = EntryKind.TIMER_FIRED if source == "timeout" else EntryKind.RESUMED
    _complete(instance, chosen, mapped, data, None, kind, 1, wait, effects, merge=True)
    return effects


def waits_for_children(instance: Instance, step: type[Step]) -> bool:
    """Whether the children ``step`` of ``instance`` is waiting (and the instance may go on)."""
    return instance.status in (Status.RUNNING, Status.WAITING) and step in instance.waiting_steps


def children_finished(instance: Instance, step: type[Step], children: list[ChildSummary]) -> list[Effect] | None:
    """The last child of the waiting children ``step`` finished: complete it with ``completed``
    (every child completed) or ``failed``, its context updates summarising the children in
    order. ``None`` when the step no longer waits for them (the instance moved on)."""
    if not waits_for_children(instance, step):
        return None
    wait = (clock.now() - instance.waiting_steps[step]).total_seconds()
    event = "completed" if all(c.status == Status.COMPLETED for c in children) else "failed"
    effects: list[Effect] = []
    _complete(instance, step, event, {"children": [c.to_dict() for c in children]}, None, EntryKind.COMPLETED, 1,
              wait, effects)
    return effects


def fire_timer(instance: Instance, step: Any, purpose: str, attempt: int = 1) -> list[Effect] | None:
    """A due timer: ``None`` when the instance has moved on (the timer does nothing).

    The caller never fires the timers of a paused instance: they wait for ``unpause``."""
    if purpose == DEADLINE:
        if instance.status not in (Status.RUNNING, Status.WAITING):
            return None
        return _deadline_exceeded(instance)
    graph = graph_of(instance)
    chosen = graph.step(step)
    if chosen is None or instance.status not in DISPATCHABLE:
        return None
    if purpose == WAKE:
        if chosen not in instance.waiting_steps or "timeout" not in chosen.events:
            return None
        return resume(instance, "timeout", chosen, source="timeout")
    if purpose == RETRY:
        if chosen not in instance.active_steps or chosen in instance.waiting_steps:
            return None
        return [ExecuteStep(chosen, attempt)]
    return None


def lose_claim(instance: Instance, step: type[Step], attempt: int, reason: str,
               recovery_attempts: int) -> list[Effect] | None:
    """Attempt ``attempt`` of ``step`` was lost with its worker: a failed attempt
    (``docs/deployment.md``: claims and leases).

    Retried per the step's ``retry`` (backoff included); a step without one is re-run until it
    has run ``recovery_attempts`` times. ``None`` when the step is no longer runnable (the
    instance moved on): nothing to recover.
    """
    if not is_runnable(instance, step):
        return None
    error = f"WorkerLost: {reason}"
    _emit("step_exception", instance, {"duration": 0.0}, **_step_meta(step), kind="worker_lost", reason=error,
          traceback=None)
    effects: list[Effect] = []
    limit = step.max_attempts() if step.retry is not None else max(1, recovery_attempts)
    _fail_step(instance, step, error, attempt, None, effects, None, max_attempts=limit)
    return effects


def _deadline_exceeded(instance: Instance) -> list[Effect]:
    deadline = instance.workflow.deadline_for(instance.workflow_version)
    error = f"DeadlineExceeded: instance {instance.id} was still {instance.status} {deadline:g}s after it started"
    status_before = instance.status
    _record(instance, None, None, EntryKind.FAILED, error=error)
    effects: list[Effect] = []
    _fail_for_good(instance, error, None, None, effects)
    _advanced(instance, status_before)
    return effects


def _advanced(instance: Instance, status_before: Status, started: float | None = None) -> None:
    _emit("engine_advanced", instance, {"duration": time.perf_counter() - started if started else 0.0,
                                         "active_steps_count": len(instance.active_steps), "completed_in_advance": 0},
          status_before=str(status_before), status_after=str(instance.status), iteration=instance.revision + 1)


#: Statuses ``cancel`` applies to.
CANCELLABLE_STATUSES = frozenset({Status.PENDING, Status.RUNNING, Status.WAITING, Status.PAUSED})


def cancel(instance: Instance, compensate: bool = False) -> list[Effect]:
    """Stop the instance: nothing new activates; a step already running may still record its result.

    With ``compensate``, the compensations of its completed steps run first (status
    ``compensating``), then it ends ``cancelled``; a step still executing is dropped."""
    if instance.status not in CANCELLABLE_STATUSES:
        raise NotCancellable(f"instance {instance.id} is {instance.status}; only pending, running and waiting "
                             "(or paused) instances can be cancelled")
    if not isinstance(compensate, bool):
        raise TypeError(f"'compensate' must be a bool, not {compensate!r}")
    effects: list[Effect] = []
    _record(instance, instance.current_step, None, EntryKind.CANCELLED)
    if compensate and compensation_plan(instance):
        _begin_compensation(instance, Status.CANCELLED, None, None, effects)
        return effects
    instance.active_steps -= instance.waiting_steps.keys()
    instance.waiting_steps.clear()
    for join in instance.pending_joins:
        instance.step_configs.pop(join, None)
    instance.pending_joins.clear()
    instance.status = Status.CANCELLED
    instance.paused_from = None
    instance.finished_at = clock.now()
    _emit_stopped(instance)
    return effects


def retry(instance: Instance) -> list[Effect]:
    """Re-run the failed step (and any branch that was in flight) of a failed instance; or, when a
    compensation failed, run that compensation again and go on compensating."""
    if instance.status != Status.FAILED:
        raise NotRetryable(f"instance {instance.id} is {instance.status}; only failed instances can be retried")
    saga = instance.compensation
    if saga is not None and not saga.pending:
        raise NotRetryable(f"instance {instance.id} failed and its compensations have run; start a new instance")
    effects: list[Effect] = []
    graph = graph_of(instance)
    instance.finished_at = None
    if saga is not None:
        instance.status = Status.COMPENSATING
        instance.error = saga.error
        current = graph.compensations[saga.pending[0]]
        if current not in instance.active_steps:
            _next_compensation(instance, effects)
            return effects
        _record(instance, current, None, EntryKind.RETRYING, attempt=1)
        effects.append(ExecuteStep(current, 1))
        return effects
    instance.status = Status.RUNNING
    instance.error = None
    now = clock.now()
    for step in sorted(instance.active_steps, key=graph.position):
        if step in instance.waiting_steps:
            delay = step.wake_after(instance.step_configs.get(step, {}))
            if delay is not None:
                remaining = delay - (now - instance.waiting_steps[step]).total_seconds()
                effects.append(ScheduleTimer(step, WAKE, max(0.0, remaining)))
            continue
        _record(instance, step, None, EntryKind.RETRYING, attempt=1)
        effects.append(ExecuteStep(step, 1))
    _update_status(instance)
    return effects


# ---- pause -----------------------------------------------------------------------------------
#: Statuses ``pause`` applies to.
PAUSABLE_STATUSES = frozenset({Status.RUNNING, Status.WAITING})


def pause(instance: Instance) -> None:
    """Hold a running or waiting instance: no step starts and no timer fires until :func:`unpause`."""
    if instance.status not in PAUSABLE_STATUSES:
        raise NotPausable(f"instance {instance.id} is {instance.status}; only running and waiting instances "
                          "can be paused")
    status_before = instance.status
    instance.paused_from = instance.status
    instance.status = Status.PAUSED
    _record(instance, None, None, EntryKind.PAUSED)
    _advanced(instance, status_before)


def unpause(instance: Instance) -> list[Effect]:
    """Restore the status a paused instance had; returns the steps that may run now (the caller
    also fires the instance's timers that fell due meanwhile)."""
    if instance.status != Status.PAUSED:
        raise NotPaused(f"instance {instance.id} is {instance.status}, not paused")
    instance.status = instance.paused_from or Status.RUNNING
    instance.paused_from = None
    _record(instance, None, None, EntryKind.UNPAUSED)
    _update_status(instance)  # steps that finished meanwhile may have changed it
    _advanced(instance, Status.PAUSED)
    graph = graph_of(instance)
    return [ExecuteStep(step, 1) for step in sorted(instance.running_steps, key=graph.position)]


# ---- migration to another version ------------------------------------------------------------
#: Statuses ``migrate`` applies to.
MIGRATABLE_STATUSES = frozenset({Status.RUNNING, Status.WAITING, Status.PAUSED})


def plan_migration(instance: Instance, to_version: Any, step_map: Any = None) -> dict[type[Step], type[Step]]:
    """Where each of the instance's steps goes in version ``to_version`` (old step -> new step).

    Every active, waiting, completed and pending-join step must exist in the target version by
    registry name, or be mapped by ``step_map`` ({old registry name: new registry name}; classes
    are accepted too); otherwise :class:`MigrationError` lists the unmatched steps."""
    if instance.status not in MIGRATABLE_STATUSES:
        raise MigrationError(f"instance {instance.id} is {instance.status}; only running, waiting and paused "
                             "instances can be migrated", field=None)
    workflow = instance.workflow
    if isinstance(to_version, bool) or not isinstance(to_version, int):
        raise MigrationError(f"'to_version' must be an int, not {to_version!r}", field="version")
    if to_version == instance.workflow_version:
        raise MigrationError(f"instance {instance.id} is already at version {to_version}", field="version")
    try:
        target = workflow.definition(to_version).graph
    except ValueError as exc:
        raise MigrationError(str(exc), field="version") from None
    names = _step_map_names(instance, target, step_map)
    current = graph_of(instance)
    steps = instance.active_steps | instance.completed_steps | instance.pending_joins | instance.waiting_steps.keys()
    mapping: dict[type[Step], type[Step]] = {}
    unmatched: list[str] = []
    for step in sorted(steps, key=current.position):
        name = step.registry_name()
        new = target.by_name.get(names.get(name, name))
        if new is None or new not in target.index:
            unmatched.append(name)
        else:
            mapping[step] = new
    if unmatched:
        raise MigrationError(
            f"instance {instance.id} cannot move from version {instance.workflow_version} to {to_version}: "
            f"version {to_version} has no step {', '.join(unmatched)} (map each to a step of version {to_version} "
            "with step_map)", unmatched=unmatched)
    return mapping


def _step_map_names(instance: Instance, target: Graph, step_map: Any) -> dict[str, str]:
    if step_map is None:
        return {}
    if not isinstance(step_map, dict):
        raise MigrationError(f"'step_map' must be a dict {{old step: new step}}, not {type(step_map).__name__}")
    current = graph_of(instance)
    names: dict[str, str] = {}
    problems = []
    for old, new in step_map.items():
        old_name = old.registry_name() if isinstance(old, type) and issubclass(old, Step) else old
        new_name = new.registry_name() if isinstance(new, type) and issubclass(new, Step) else new
        if not isinstance(old_name, str) or old_name not in current.by_name:
            problems.append(f"{describe(old)} is not a step of version {instance.workflow_version}")
        elif not isinstance(new_name, str) or target.by_name.get(new_name) not in target.index:
            problems.append(f"{describe(new)} is not a step of the target version")
        else:
            names[old_name] = new_name
    if problems:
        raise MigrationError("step_map: " + "; ".join(problems))
    return names


def migrate(instance: Instance, to_version: Any, step_map: Any = None) -> tuple[list[Effect], dict[str, str]]:
    """Move an active instance to version ``to_version``; returns the effects and the steps renamed
    ({old registry name: new registry name}, for the caller's timers). Nothing changes on error."""
    mapping = plan_migration(instance, to_version, step_map)
    from_version = instance.workflow_version
    status_before = instance.status

    def moved(steps: Any) -> set[type[Step]]:
        return {mapping[s] for s in steps}

    for old, new in mapping.items():  # a renamed step's results follow it to its new context key
        old_key, new_key = old.context_key(), new.context_key()
        if old_key != new_key and old_key in instance.context.steps and new_key not in instance.context.steps:
            instance.context.steps[new_key] = instance.context.steps.pop(old_key)
    instance.active_steps = moved(instance.active_steps)
    instance.completed_steps = moved(instance.completed_steps)
    instance.completion_order = [mapping[s] for s in instance.completion_order if s in mapping]
    instance.pending_joins = moved(instance.pending_joins)
    instance.waiting_steps = {mapping[s]: t for s, t in instance.waiting_steps.items()}
    instance.step_configs = {mapping.get(s, s): c for s, c in instance.step_configs.items() if s in mapping}
    if instance.current_step is not None:
        instance.current_step = mapping.get(instance.current_step)
    instance.workflow_version = to_version
    renamed = {old.registry_name(): new.registry_name() for old, new in mapping.items()
               if old.registry_name() != new.registry_name()}
    record: dict[str, Any] = {"from_version": from_version, "to_version": to_version}
    if renamed:
        record["step_map"] = renamed
    _record(instance, None, None, EntryKind.MIGRATED, context_updates=record)
    effects: list[Effect] = []
    _release_joins(instance, graph_of(instance), effects)
    if instance.status == Status.PAUSED:
        effects.clear()
    _update_status(instance)
    _advanced(instance, status_before)
    return effects, renamed


def completed_path(instance: Instance) -> list[str]:
    """Registry names of the steps that completed, in history order."""
    kinds = (EntryKind.COMPLETED, EntryKind.RESUMED, EntryKind.TIMER_FIRED)
    return [e.step_name for e in instance.execution_history if e.kind in kinds and e.step_name]
