"""Telemetry events of the engine, sent to whatever listeners the outer layers install.

The names are those of the Elixir library's 11 events (the signals of
:mod:`hephaestus_django.signals`, listed in ``docs/observability.md``). Each listener is called with
``(name, workflow, measurements, metadata)``; a listener that raises is logged and ignored.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("hephaestus")

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


def wanted(name: str) -> bool:
    """Whether any listener wants event ``name`` (so the engine builds its metadata at all).

    A listener may carry a ``wants(name) -> bool`` attribute; one without it wants everything.
    """
    for listener in _listeners:
        wants = getattr(listener, "wants", None)
        if wants is None or wants(name):
            return True
    return False


_buffer: contextvars.ContextVar[list[tuple[str, Any, dict[str, Any], dict[str, Any]]] | None] = \
    contextvars.ContextVar("hephaestus_telemetry_buffer", default=None)


class buffered:  # noqa: N801 - a context manager, reads like one
    """Hold the events emitted inside the block; send them only when :meth:`flush` is called.

    Used around a state change that may be retried or rolled back, so every event is sent
    once, for the change that was stored.
    """

    def __enter__(self) -> buffered:
        self.events: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = []
        self.token = _buffer.set(self.events)
        return self

    def __exit__(self, *exc: object) -> None:
        _buffer.reset(self.token)

    def discard(self) -> None:
        self.events.clear()

    def flush(self) -> None:
        events, self.events[:] = list(self.events), []
        for event in events:
            _send(*event)


def emit(name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    held = _buffer.get()
    if held is not None:
        held.append((name, workflow, measurements, metadata))
        return
    _send(name, workflow, measurements, metadata)


def _send(name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
    for listener in tuple(_listeners):
        try:
            listener(name, workflow, measurements, metadata)
        except Exception:
            logger.exception("telemetry listener %r failed on %s", listener, name)
