"""Telemetry events of the engine, sent to whatever listeners the outer layers install.

The names are those of the Elixir library's 11 events. Each listener is called with
``(name, workflow, measurements, metadata)``; a listener that raises is logged and ignored.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("hephaestus")

EVENTS = (
    "workflow_started", "workflow_stopped", "workflow_exception", "workflow_transition",
    "step_started", "step_stopped", "step_exception", "step_async", "step_resumed",
    "engine_advanced", "runner_initialized",
)

Listener = Callable[[str, Any, dict[str, Any], dict[str, Any]], None]
_listeners: list[Listener] = []
#: Name of the runner driving the engine in this context ("memory", "immediate", "worker", ...).
current_runner: contextvars.ContextVar[str] = contextvars.ContextVar("hephaestus_runner", default="memory")


def add_listener(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def has_listeners() -> bool:
    return bool(_listeners)


def emit(name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    for listener in tuple(_listeners):
        try:
            listener(name, workflow, measurements, metadata)
        except Exception:
            logger.exception("telemetry listener %r failed on %s", listener, name)
