"""Built-in steps: ``Done``, ``Wait``, ``WaitForEvent`` and ``Debug``."""

from __future__ import annotations

import difflib
import json
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from hephaestus_django.core.base import Async, Step, StepResult

if TYPE_CHECKING:
    from hephaestus_django.core.instance import Context, Instance

logger = logging.getLogger("hephaestus")

_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def unknown_key_problems(step: type[Step], config: dict[str, Any], allowed: tuple[str, ...]) -> list[str]:
    """One problem per key of ``config`` that ``step`` does not take (with a suggestion when a
    known key is close: ``timeout_ms`` -> ``timeout``)."""
    problems = []
    for key in sorted((k for k in config if k not in allowed), key=str):
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(f"config has unknown key {key!r} ({step.__name__} takes {', '.join(allowed)}){hint}")
    return problems


class Done(Step):
    """Terminal step: completes at once with ``done``. Every leaf of a workflow is a ``Done``."""

    events = ("done",)
    is_terminal = True

    def execute(self, instance: Instance, config: dict[str, Any], context: Context) -> StepResult:
        return "done"

    @classmethod
    def required_events(cls, config: dict[str, Any]) -> tuple[str, ...]:
        return ()


class Wait(Step):
    """Pause for ``{"duration": int, "unit": "second|minute|hour|day"}``, then emit ``timeout``.

    Any other config key is a definition error (a subclass may widen ``config_keys``).
    """

    events = ("timeout",)
    #: The config keys this step takes.
    config_keys: ClassVar[tuple[str, ...]] = ("duration", "unit")

    def execute(self, instance: Instance, config: dict[str, Any], context: Context) -> StepResult:
        return Async()

    @staticmethod
    def seconds(config: dict[str, Any]) -> float:
        """The wait in seconds for a config (``unit`` defaults to ``second``)."""
        problems = Wait.config_problems({k: v for k, v in config.items() if k in Wait.config_keys})
        if problems:
            raise ValueError("; ".join(problems))
        return float(config["duration"] * _UNIT_SECONDS[config.get("unit", "second")])

    @classmethod
    def wake_after(cls, config: dict[str, Any]) -> float | None:
        return cls.seconds(config)

    @classmethod
    def config_problems(cls, config: dict[str, Any]) -> list[str]:
        problems = unknown_key_problems(cls, config, cls.config_keys)
        duration = config.get("duration")
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            problems.append(f"Wait config 'duration' must be a non-negative int, not {duration!r}")
        unit = config.get("unit", "second")
        if unit not in _UNIT_SECONDS:
            problems.append(f"Wait config 'unit' must be one of {', '.join(_UNIT_SECONDS)}, not {unit!r}")
        return problems


class WaitForEvent(Step):
    """Pause until an external event (``received``) or the optional ``timeout`` (seconds).

    Config: ``{"event_name": "payment_confirmed", "timeout": 3600}``. Resuming with the
    configured ``event_name`` counts as ``received``. Any other config key (``timeout_ms``...)
    is a definition error (a subclass may widen ``config_keys``).
    """

    events = ("received", "timeout")
    #: The config keys this step takes.
    config_keys: ClassVar[tuple[str, ...]] = ("event_name", "timeout")

    def execute(self, instance: Instance, config: dict[str, Any], context: Context) -> StepResult:
        return Async()

    @classmethod
    def wake_after(cls, config: dict[str, Any]) -> float | None:
        timeout = config.get("timeout")
        return None if timeout is None else float(timeout)

    @classmethod
    def resume_event(cls, event: str, config: dict[str, Any]) -> str:
        if event == config.get("event_name") and event not in cls.events:
            return "received"
        return event

    @classmethod
    def required_events(cls, config: dict[str, Any]) -> tuple[str, ...]:
        if config.get("timeout") is None:
            return tuple(e for e in cls.events if e != "timeout")
        return tuple(cls.events)

    @classmethod
    def config_problems(cls, config: dict[str, Any]) -> list[str]:
        problems = unknown_key_problems(cls, config, cls.config_keys)
        name = config.get("event_name")
        if name is not None and (not isinstance(name, str) or not name):
            problems.append(f"WaitForEvent config 'event_name' must be a non-empty str, not {name!r}")
        timeout = config.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0):
            problems.append(f"WaitForEvent config 'timeout' must be non-negative seconds, not {timeout!r}")
        return problems


class Debug(Step):
    """Log the context and the history on the ``hephaestus`` logger, then emit ``completed``."""

    events: ClassVar[tuple[str, ...]] = ("completed",)

    def execute(self, instance: Instance, config: dict[str, Any], context: Context) -> StepResult:
        logger.info(
            "Debug %s: context=%s history=%s",
            instance.id,
            json.dumps({"initial": context.initial, "steps": context.steps}, default=str),
            [(e.step_name, e.event, str(e.kind)) for e in instance.execution_history],
        )
        return "completed"
