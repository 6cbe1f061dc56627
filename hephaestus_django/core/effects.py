"""What the engine asks its caller to do: run a step, schedule a timer, start child workflows.

The engine (``core.engine``) returns these from every transition; a runner carries them out
(in process, or through a task queue) and a storage writes the timers. Steps of *other*
instances that a transition leads to (a child just started, a parent whose children step just
completed) are planned by the runner in the same write (``core.runner``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hephaestus_django.core.base import Step

__all__ = ["DEADLINE", "RETRY", "WAKE", "Effect", "ExecuteStep", "ScheduleTimer", "StartChildren"]


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


@dataclass(frozen=True, slots=True)
class StartChildren:
    """Start ``children`` (``core.children.Child``) of the instance, in the transaction that
    pauses ``step`` on them; a child that cannot start fails ``step`` instead."""

    step: type[Step]
    children: tuple[Any, ...]
    attempt: int = 1


Effect = ExecuteStep | ScheduleTimer | StartChildren


WAKE = "wake"
RETRY = "retry"
DEADLINE = "deadline"
