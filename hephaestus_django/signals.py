"""Telemetry signals: the 11 events of the Elixir library, as Django signals
(``docs/observability.md``).

Each one is sent with ``sender`` = the workflow class (``None`` for ``runner_initialized``) and
two keyword arguments, ``measurements`` and ``metadata`` (dicts). Durations are in seconds,
``system_time`` is nanoseconds since the epoch. The metadata of every instance event also
carries ``instance_id``, ``workflow`` (registry name), ``workflow_version``, ``runner``, and
the instance's ``telemetry_metadata`` merged in::

    from django.dispatch import receiver
    from hephaestus_django.signals import workflow_exception

    @receiver(workflow_exception)
    def page_someone(sender, measurements, metadata, **kwargs):
        alert(f"{metadata['instance_id']} failed at {metadata['failed_step']}: {metadata['reason']}")

Receivers run synchronously where the engine emits (inside a worker, or in the caller with the
immediate backend). A receiver that raises is logged on the ``hephaestus`` logger and never
breaks a workflow.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = [
    "SIGNALS", "engine_advanced", "runner_initialized", "step_async", "step_exception", "step_resumed",
    "step_started", "step_stopped", "workflow_exception", "workflow_started", "workflow_stopped",
    "workflow_transition",
]

#: An instance started running.
#: measurements: ``system_time``; metadata: ``initial_step``, ``context_keys``, ``runner``.
workflow_started = Signal()

#: An instance finished without failing (``status`` is ``completed`` or ``cancelled``).
#: measurements: ``duration``, ``step_count``, ``advance_count``;
#: metadata: ``status``, ``completed_steps``, ``runner``.
workflow_stopped = Signal()

#: An instance failed.
#: measurements: ``duration``; metadata: ``status``, ``failed_step``, ``reason``, ``kind``
#: (``exception`` or ``error``), ``traceback`` (str or None), ``runner``.
workflow_exception = Signal()

#: A step's event led to other steps.
#: measurements: ``system_time``, ``targets_count``;
#: metadata: ``from_step``, ``event``, ``targets`` (registry names), ``fan_out`` (bool).
workflow_transition = Signal()

#: A step's ``execute()`` is about to run.
#: measurements: ``system_time``;
#: metadata: ``step``, ``step_key``, ``concurrent`` (other steps running), ``active_steps_count``.
step_started = Signal()

#: A step completed with an event.
#: measurements: ``duration``; metadata: ``step``, ``step_key``, ``event``, ``has_context_updates``,
#: ``has_metadata_updates``, ``transitions_to`` (registry names).
step_stopped = Signal()

#: A step raised, returned ``Error`` or returned something invalid (it may still be retried).
#: measurements: ``duration``; metadata: ``step``, ``step_key``, ``kind`` (``exception``, ``error``
#: or ``invalid_result``), ``reason``, ``traceback`` (str or None).
step_exception = Signal()

#: A step paused (``Async``): it waits for an event or a timer.
#: measurements: ``duration``; metadata: ``step``, ``step_key``, ``instance_status``.
step_async = Signal()

#: A waiting step was resumed.
#: measurements: ``system_time``, ``wait_duration``;
#: metadata: ``step``, ``step_key``, ``resume_event``, ``source`` (``external`` or ``timeout``).
step_resumed = Signal()

#: The engine applied one step outcome.
#: measurements: ``duration``, ``active_steps_count``, ``completed_in_advance``;
#: metadata: ``status_before``, ``status_after``, ``iteration``.
engine_advanced = Signal()

#: A runner (engine service) was created; ``sender`` is ``None``.
#: measurements: ``system_time``; metadata: ``name``, ``runner``, ``storage``.
runner_initialized = Signal()

#: Core event name -> signal.
SIGNALS: dict[str, Signal] = {
    "workflow_started": workflow_started,
    "workflow_stopped": workflow_stopped,
    "workflow_exception": workflow_exception,
    "workflow_transition": workflow_transition,
    "step_started": step_started,
    "step_stopped": step_stopped,
    "step_exception": step_exception,
    "step_async": step_async,
    "step_resumed": step_resumed,
    "engine_advanced": engine_advanced,
    "runner_initialized": runner_initialized,
}
