"""Telemetry receivers of the Django layer, installed by ``AppConfig.ready()``.

The core emits plain events (``hephaestus_django.core.telemetry``); three listeners turn them into:

- **Django signals** (:mod:`hephaestus_django.signals`), sent with ``send_robust``: a receiver
  that raises is logged on the ``hephaestus`` logger and never breaks a workflow.
- **Log records** on the ``hephaestus`` logger: INFO when a workflow starts or stops, ERROR for
  workflow and step exceptions, DEBUG for everything else (transitions, advances, steps). Each
  record carries ``hephaestus_event``, ``hephaestus_measurements`` and ``hephaestus_metadata``
  attributes for structured handlers.
- **OpenTelemetry spans**, when ``opentelemetry-api`` is importable and a tracer provider is set.

How spans are built. Steps of one instance may run in different processes, hours apart, so no
in-process span could stay open for a whole run. Instead, when an instance finishes
(``workflow_stopped`` or ``workflow_exception``), once the transaction that finished it commits,
its durable history is read back and written as one trace: a ``workflow <name>`` span from the
instance's ``telemetry_start_time`` to its end, with one child span per history entry:
``step <name>`` for each execution (completed, paused, retrying or failed attempt, placed at
``timestamp - duration``), ``compensate <name>`` for each compensation, and ``wait <name>`` for
each wait that a resume or a timer ended; entries of the whole instance (paused, unpaused, migrated,
a deadline) are events of the workflow span. The
trace is a new root (it outlives any request that happened to finish it). A failed instance that
is retried and then finishes produces a second workflow span covering the whole history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from hephaestus_django.core import telemetry as core_telemetry
from hephaestus_django.core.registry import short_name
from hephaestus_django.core.status import EntryKind
from hephaestus_django.signals import SIGNALS

logger = logging.getLogger("hephaestus")

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - the otel extra is not installed
    HAS_OTEL = False
else:
    HAS_OTEL = True

__all__ = ["install", "log_event", "send_signal", "set_tracer_provider", "uninstall"]


# ---- Django signals ------------------------------------------------------------------------------
def send_signal(name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Re-send a core event as its Django signal; log receivers that raise."""
    signal = SIGNALS.get(name)
    if signal is None:
        return
    responses = signal.send_robust(sender=workflow, measurements=measurements, metadata=metadata)
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error("receiver %s of signal %s raised %s: %s (instance %s)",
                         getattr(receiver, "__qualname__", receiver), name, type(response).__name__, response,
                         metadata.get("instance_id"),
                         exc_info=(type(response), response, response.__traceback__))


# ---- logging ------------------------------------------------------------------------------------------
def _describe(name: str, measurements: dict[str, Any],
              metadata: dict[str, Any]) -> tuple[int, str, tuple[Any, ...]]:
    instance = metadata.get("instance_id")
    if name == "workflow_started":
        return logging.INFO, "workflow %s started (instance %s, version %s, runner %s)", (
            metadata.get("workflow"), instance, metadata.get("workflow_version"), metadata.get("runner"))
    if name == "workflow_stopped":
        return logging.INFO, "workflow %s %s (instance %s) after %.3fs, %s steps", (
            metadata.get("workflow"), metadata.get("status"), instance, measurements.get("duration", 0.0),
            measurements.get("step_count"))
    if name == "workflow_exception":
        return logging.ERROR, "workflow %s failed (instance %s) at step %s: %s", (
            metadata.get("workflow"), instance, metadata.get("failed_step"), metadata.get("reason"))
    if name == "step_exception":
        return logging.ERROR, "step %s of instance %s failed (%s): %s", (
            metadata.get("step"), instance, metadata.get("kind"), metadata.get("reason"))
    if name == "workflow_transition":
        return logging.DEBUG, "instance %s: %s --%s--> %s", (
            instance, metadata.get("from_step"), metadata.get("event"),
            ", ".join(metadata.get("targets", ())))
    if name == "engine_advanced":
        return logging.DEBUG, "instance %s advanced: %s -> %s (iteration %s, %s active)", (
            instance, metadata.get("status_before"), metadata.get("status_after"), metadata.get("iteration"),
            measurements.get("active_steps_count"))
    if name == "runner_initialized":
        return logging.DEBUG, "runner %s initialised (%s, storage %s)", (
            metadata.get("name"), metadata.get("runner"), metadata.get("storage"))
    return logging.DEBUG, "instance %s: %s %s", (instance, name.replace("_", " "), metadata.get("step"))


def log_event(name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Write a core event to the ``hephaestus`` logger."""
    level, message, args = _describe(name, measurements, metadata)
    if not logger.isEnabledFor(level):
        return
    traceback = metadata.get("traceback") if level >= logging.ERROR else None
    if traceback:
        message, args = message + "\n%s", (*args, traceback.rstrip())
    extra = {"hephaestus_event": name, "hephaestus_measurements": measurements,
             "hephaestus_metadata": metadata}
    logger.log(level, message, *args, extra=extra)


# ---- OpenTelemetry ---------------------------------------------------------------------------------------
_tracer_provider: Any = None


def set_tracer_provider(provider: Any) -> Any:
    """Use ``provider`` instead of the global OpenTelemetry tracer provider (``None``: the global
    one again); returns the previous one. Handy in tests."""
    global _tracer_provider
    previous, _tracer_provider = _tracer_provider, provider
    return previous


def _tracer() -> Any:
    """The tracer to use, or ``None`` when no real tracer provider is configured."""
    if not HAS_OTEL:
        return None
    provider = _tracer_provider if _tracer_provider is not None else otel_trace.get_tracer_provider()
    # no SDK configured: the global provider is a no-op (or a proxy to nothing), so skip the work
    names = ("NoOpTracerProvider", "ProxyTracerProvider")
    inert = tuple(getattr(otel_trace, n) for n in names if hasattr(otel_trace, n))
    if isinstance(provider, inert):
        return None
    from hephaestus_django import __version__

    return otel_trace.get_tracer("hephaestus_django", __version__, tracer_provider=provider)


def _ns(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000) * 1000


def _attributes(metadata: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, str | bool | int | float) and key != "traceback":
            attributes[f"hephaestus.{key}"] = value
    return attributes


def trace_listener(name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    """On a finished instance, write its trace once the finishing transaction commits."""
    if name not in ("workflow_stopped", "workflow_exception") or _tracer() is None:
        return
    event = (name, dict(measurements), dict(metadata))
    transaction.on_commit(lambda: _export_safely(*event))


def _export_safely(name: str, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    try:
        export_trace(name, measurements, metadata)
    except Exception:
        logger.exception("could not export the OpenTelemetry trace of instance %s",
                         metadata.get("instance_id"))


def export_trace(name: str, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Write the trace of a finished instance from its stored history (see the module docstring)."""
    from hephaestus_django.storage.models import WorkflowInstance

    tracer = _tracer()
    if tracer is None:
        return
    row = WorkflowInstance.objects.newest(metadata.get("instance_id", ""), metadata.get("workflow", ""))
    if row is None:
        return
    history = list(row.history.order_by("seq"))
    start = row.telemetry_start_time
    if start is None:
        start = _ns(row.started_at or row.created_at)
    end = start + int(float(measurements.get("duration") or 0.0) * 1e9)
    attributes = _attributes({**row.telemetry_metadata, **metadata})
    root = tracer.start_span(f"workflow {row.workflow}", context=otel_context.Context(), start_time=start,
                             attributes=attributes)
    parent = otel_trace.set_span_in_context(root)
    for entry in history:
        stamp = max(start, _ns(entry.timestamp))
        end = max(end, stamp)
        if entry.kind == EntryKind.CANCELLED or not entry.step:  # instance level: paused, unpaused, migrated, deadline
            root.add_event(entry.kind, timestamp=stamp, attributes={"hephaestus.error": entry.error} if entry.error
                           else {})
            continue
        waited = entry.kind in (EntryKind.RESUMED, EntryKind.TIMER_FIRED)
        verb = "wait" if waited else "compensate" if entry.kind == EntryKind.COMPENSATED else "step"
        span_name = f"{verb} {short_name(entry.step)}"
        begin = max(start, stamp - int((entry.duration or 0.0) * 1e9))
        step_attributes = {
            "hephaestus.step": entry.step, "hephaestus.kind": entry.kind, "hephaestus.attempt": entry.attempt,
            "hephaestus.instance_id": row.instance_id,
        }
        if entry.event:
            step_attributes["hephaestus.event"] = entry.event
        if waited:
            step_attributes["hephaestus.source"] = "timeout" if entry.kind == EntryKind.TIMER_FIRED else "external"
        span = tracer.start_span(span_name, context=parent, start_time=begin, attributes=step_attributes)
        if entry.error:
            span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, entry.error))
        span.end(end_time=stamp)
    if name == "workflow_exception":
        root.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, str(metadata.get("reason") or "")))
    root.end(end_time=end)


# ---- installation -----------------------------------------------------------------------------------------
# What each listener wants, checked before the engine builds an event's metadata: a signal
# nobody receives, a log level that is off, or a trace without a tracer costs nothing per step.
def _signal_wanted(name: str) -> bool:
    signal = SIGNALS.get(name)
    return bool(signal is not None and signal.receivers)


def _log_wanted(name: str) -> bool:
    return logger.isEnabledFor(_LEVELS.get(name, logging.DEBUG))


def _trace_wanted(name: str) -> bool:
    return name in ("workflow_stopped", "workflow_exception") and _tracer() is not None


_LEVELS = {"workflow_started": logging.INFO, "workflow_stopped": logging.INFO,
           "workflow_exception": logging.ERROR, "step_exception": logging.ERROR}


@dataclass(frozen=True)
class Listener:
    """A listener of the core's events with the events it wants (``core.telemetry.wanted`` asks
    its ``wants``)."""

    receive: Callable[[str, Any, dict[str, Any], dict[str, Any]], None]
    wants: Callable[[str], bool]

    def __call__(self, name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.receive(name, workflow, measurements, metadata)


LISTENERS = (Listener(send_signal, _signal_wanted), Listener(log_event, _log_wanted),
             Listener(trace_listener, _trace_wanted))


def install() -> None:
    """Register the listeners with the core (idempotent)."""
    for listener in LISTENERS:
        core_telemetry.add_listener(listener)


def uninstall() -> None:
    for listener in LISTENERS:
        core_telemetry.remove_listener(listener)
