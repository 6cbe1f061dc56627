"""The engine: pure state transitions of an :class:`Instance`.

Each function mutates the instance it is given, appends history entries, and returns the
*effects* the caller must carry out (run a step, schedule a timer). Storage and runners
(in memory here, the database and Django Tasks above) decide where and when.

Joins (SPEC §1.4): a step with several predecessors activates once, when each predecessor
has completed or can no longer run (it is not active and no active or pending step reaches
it). Reachability is a per-graph bitset, so one check costs a few integer operations.
"""

from __future__ import annotations

import concurrent.futures
import time
import traceback as tb
from datetime import datetime
from typing import Any

from hephaestus_django.core import clock, telemetry
from hephaestus_django.core.base import Async, Error, Ok, Step, StepOutcome
from hephaestus_django.core.effects import RETRY, WAKE, Effect, ExecuteStep, ScheduleTimer
from hephaestus_django.core.exceptions import InvalidEvent, NotCancellable, NotRetryable, NotWaiting
from hephaestus_django.core.graph import Graph, RouteSpec, Target, describe, parse_target
from hephaestus_django.core.instance import ExecutionEntry, Instance
from hephaestus_django.core.status import EntryKind, Status
from hephaestus_django.core.values import storable_text


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
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.traceback = tb.format_exc()
    outcome.duration = time.perf_counter() - started
    if step.timeout and not threaded and outcome.error is None and outcome.duration > step.timeout:
        outcome.error = f"TimeoutError: step {step.__qualname__} exceeded its timeout of {step.timeout:g}s"
    return outcome


def _run_with_timeout(step: type[Step], instance: Instance, config: dict[str, Any], timeout: float) -> Any:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hephaestus-step")
    try:
        future = pool.submit(step().execute, instance, config, instance.context)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"step {step.__qualname__} exceeded its timeout of {timeout:g}s") from None
    finally:
        pool.shutdown(wait=False)


def is_runnable(instance: Instance, step: type[Step]) -> bool:
    """Whether ``step`` may start executing now (not for a cancelled or finished instance)."""
    return instance.status in (Status.RUNNING, Status.WAITING) and step in instance.active_steps \
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
        return result.event not in step.events or not _is_dict_or_none(result.context_updates) \
            or not _is_dict_or_none(result.metadata_updates)
    return not isinstance(result, Async)


def is_applicable(instance: Instance, step: type[Step]) -> bool:
    """Whether an outcome of ``step`` would still change the instance (exactly-once guard)."""
    if step not in instance.active_steps or step in instance.waiting_steps:
        return False
    return instance.status in (Status.RUNNING, Status.WAITING, Status.CANCELLED)


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
    else:
        _apply_result(instance, step, outcome.result, attempt, outcome.duration, effects)
    _emit("engine_advanced", instance, {"duration": time.perf_counter() - started,
                                         "active_steps_count": len(instance.active_steps),
                                         "completed_in_advance": len(instance.completed_steps) - completed_before},
          status_before=str(status_before), status_after=str(instance.status), iteration=instance.revision + 1)
    return effects


def _apply_result(instance: Instance, step: type[Step], result: Any, attempt: int, duration: float,
                  effects: list[Effect]) -> None:
    if isinstance(result, str):
        result = Ok(result)
    if isinstance(result, Async):
        _pause(instance, step, attempt, duration, effects)
        return
    problem = None
    if isinstance(result, Error):
        problem = f"Error: {result.reason}"
    elif not isinstance(result, Ok):
        problem = (f"{describe(step)}.execute() returned {type(result).__name__} {result!r}; "
                   "expected Ok(...), an event str, Async() or Error(...)")
    elif result.event not in step.events:
        problem = (f"{describe(step)} emitted undeclared event {result.event!r} "
                   f"(it declares {', '.join(map(repr, step.events)) or 'none'})")
    elif not _is_dict_or_none(result.context_updates):
        problem = f"{describe(step)} returned context_updates that are not a dict: {result.context_updates!r}"
    elif not _is_dict_or_none(result.metadata_updates):
        problem = f"{describe(step)} returned metadata_updates that are not a dict: {result.metadata_updates!r}"
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
    targets = graph.targets(step, event)
    if not isinstance(targets, RouteSpec):
        return targets
    spec = targets
    chosen = spec.func(instance.context)
    pairs, problems = parse_target(chosen)
    declared = {t[0] if isinstance(t, tuple) else t for t in spec.targets}
    if problems or len(pairs) != 1 or pairs[0][0] not in declared:
        raise _RouteError(f"route {spec.func.__name__} returned {describe(chosen)}, which is not one of its "
                          f"declared targets ({', '.join(describe(t) for t in declared)})")
    target, config = pairs[0]
    if config is None:
        config = next((t[1] for t in spec.targets if isinstance(t, tuple) and t[0] is target), None)
    return [(target, config)]


class _RouteError(Exception):
    pass


def _complete(instance: Instance, step: type[Step], event: str, context_updates: dict[str, Any] | None,
              metadata_updates: dict[str, Any] | None, kind: str, attempt: int, duration: float | None,
              effects: list[Effect]) -> None:
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
    instance.completed_steps.add(step)
    instance.step_configs.pop(step, None)
    instance.current_step = step
    if context_updates is not None:
        instance.context.steps[step.context_key()] = context_updates
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
               effects: list[Effect], traceback: str | None, *, retryable: bool = True) -> None:
    instance.current_step = step
    error = storable_text(error)  # an exception's message may hold a NUL: the database cannot store one
    stored_traceback = _storable_traceback(traceback)
    if instance.status == Status.CANCELLED:
        instance.active_steps.discard(step)
        _record(instance, step, None, EntryKind.FAILED, attempt=attempt, error=error, duration=duration,
                traceback=stored_traceback)
        return
    if retryable and step.retry is not None and attempt < step.max_attempts():
        delay = step.retry.delay(attempt)
        _record(instance, step, None, EntryKind.RETRYING, attempt=attempt, error=error, duration=duration, delay=delay,
                traceback=stored_traceback)
        if delay > 0:
            effects.append(ScheduleTimer(step, RETRY, delay, attempt + 1))
        else:
            effects.append(ExecuteStep(step, attempt + 1))
        _update_status(instance)
        return
    _record(instance, step, None, EntryKind.FAILED, attempt=attempt, error=error, duration=duration,
            traceback=stored_traceback)
    instance.status = Status.FAILED
    instance.error = error
    instance.finished_at = clock.now()
    _emit("workflow_exception", instance, {"duration": _elapsed(instance)}, status=str(instance.status),
          failed_step=step.registry_name(), reason=error, kind="exception" if traceback else "error",
          traceback=traceback)


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
def find_waiting_step(instance: Instance, event: Any, step: Any = None) -> tuple[type[Step], str]:
    """The waiting step ``event`` resumes, and the declared event it maps to (SPEC §2)."""
    if instance.status not in (Status.RUNNING, Status.WAITING) or not instance.waiting_steps:
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
        mapped = chosen.resume_event(event, instance.step_configs.get(chosen, {}))
        if mapped not in chosen.events:
            raise InvalidEvent(f"step {chosen.registry_name()} does not declare event {event!r} "
                               f"(it declares {', '.join(map(repr, chosen.events))})", field="event")
        return chosen, mapped
    candidates = []
    for waiting in sorted(instance.waiting_steps, key=graph.index.__getitem__):
        mapped = waiting.resume_event(event, instance.step_configs.get(waiting, {}))
        if mapped in waiting.events:
            candidates.append((waiting, mapped))
    if not candidates:
        offered = "; ".join(f"{s.registry_name()}: {', '.join(s.events)}" for s in instance.waiting_steps)
        raise InvalidEvent(f"no waiting step of instance {instance.id} declares event {event!r} ({offered})",
                           field="event")
    if len(candidates) > 1:
        names = ", ".join(s.registry_name() for s, _ in candidates)
        raise InvalidEvent(f"event {event!r} is declared by several waiting steps ({names}); pass step=",
                           field="event")
    return candidates[0]


def resume(instance: Instance, event: Any, step: Any = None, *, source: str = "external") -> list[Effect]:
    """Complete a waiting step with ``event`` (``source``: ``external`` or ``timeout``)."""
    chosen, mapped = find_waiting_step(instance, event, step)
    since = instance.waiting_steps.get(chosen)
    wait = (clock.now() - since).total_seconds() if isinstance(since, datetime) else 0.0
    _emit("step_resumed", instance, {"system_time": _system_time(), "wait_duration": wait}, **_step_meta(chosen),
          resume_event=mapped, source=source)
    effects: list[Effect] = []
    kind = EntryKind.TIMER_FIRED if source == "timeout" else EntryKind.RESUMED
    _complete(instance, chosen, mapped, None, None, kind, 1, wait, effects)
    return effects


def fire_timer(instance: Instance, step: Any, purpose: str, attempt: int = 1) -> list[Effect] | None:
    """A due timer: ``None`` when the instance has moved on (the timer does nothing)."""
    graph = graph_of(instance)
    chosen = graph.step(step)
    if chosen is None or instance.status not in (Status.RUNNING, Status.WAITING):
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


def cancel(instance: Instance) -> None:
    """Stop the instance: nothing new activates; a step already running may still record its result."""
    if instance.status not in (Status.PENDING, Status.RUNNING, Status.WAITING):
        raise NotCancellable(f"instance {instance.id} is {instance.status}; only pending, running and "
                             "waiting instances can be cancelled")
    instance.active_steps -= instance.waiting_steps.keys()
    instance.waiting_steps.clear()
    for join in instance.pending_joins:
        instance.step_configs.pop(join, None)
    instance.pending_joins.clear()
    instance.status = Status.CANCELLED
    instance.finished_at = clock.now()
    _record(instance, instance.current_step, None, EntryKind.CANCELLED)
    _emit("workflow_stopped", instance, {"duration": _elapsed(instance), "step_count": len(instance.completed_steps),
                                         "advance_count": instance.revision + 1},
          status=str(instance.status), completed_steps=sorted(s.registry_name() for s in instance.completed_steps))


def retry(instance: Instance) -> list[Effect]:
    """Re-run the failed step (and any branch that was in flight) of a failed instance."""
    if instance.status != Status.FAILED:
        raise NotRetryable(f"instance {instance.id} is {instance.status}; only failed instances can be retried")
    instance.status = Status.RUNNING
    instance.error = None
    instance.finished_at = None
    effects: list[Effect] = []
    now = clock.now()
    for step in sorted(instance.active_steps, key=graph_of(instance).index.__getitem__):
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


def completed_path(instance: Instance) -> list[str]:
    """Registry names of the steps that completed, in history order."""
    kinds = (EntryKind.COMPLETED, EntryKind.RESUMED, EntryKind.TIMER_FIRED)
    return [e.step_name for e in instance.execution_history if e.kind in kinds and e.step_name]
