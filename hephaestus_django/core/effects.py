"""What the engine asks its caller to do: run a step, schedule a timer.

The engine (``core.engine``) returns these from every transition; a runner carries them out
(in process, or through a task queue) and a storage writes the timers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hephaestus_django.core.base import Step

__all__ = ["DEADLINE", "RETRY", "WAKE", "Effect", "ExecuteStep", "ScheduleTimer"]


@dataclass(frozen=True, slots=True)
class ExecuteStep:
    """Run ``step`` (attempt number ``attempt``) and apply its outcome."""

    step: type[Step]
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Fire ``purpose`` for ``step`` after ``delay`` seconds: ``wake`` (timeout event), ``retry``,
    or ``deadline`` (the whole instance's, with no step)."""

    step: type[Step] | None
    purpose: str
    delay: float
    attempt: int = 1


Effect = ExecuteStep | ScheduleTimer
WAKE = "wake"
RETRY = "retry"
DEADLINE = "deadline"
