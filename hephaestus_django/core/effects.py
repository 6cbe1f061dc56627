"""What the engine asks its caller to do: run a step, schedule a timer, start child workflows.

The engine (``core.engine``) returns these from every transition; a runner carries them out
(in process, or through a task queue) and a storage writes the timers. ``Continue`` is the
runner's own: work on *another* instance that a transition led to (a child just started, a
parent whose children step just completed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hephaestus_django.core.base import Step
    from hephaestus_django.core.instance import Instance

__all__ = ["DEADLINE", "RETRY", "WAKE", "Continue", "Effect", "ExecuteStep", "ScheduleTimer", "StartChildren",
           "by_instance"]


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


@dataclass(frozen=True, slots=True, eq=False)
class Continue:
    """Carry out ``effects`` of ``instance``, another instance than the one whose transition
    returned this (a runner's effect: the engine never returns it)."""

    instance: Instance
    effects: list[Effect] = field(default_factory=list)


Effect = ExecuteStep | ScheduleTimer | StartChildren | Continue


def by_instance(instance: Instance, effects: Iterable[Effect]) -> list[tuple[Instance, list[ExecuteStep]]]:
    """The step executions among ``effects``, grouped by the instance they belong to (``instance``
    first, then each ``Continue``'s, nested ones included), in order; instances without any left out."""
    groups: list[tuple[Instance, list[ExecuteStep]]] = []
    pending: list[tuple[Instance, Iterable[Effect]]] = [(instance, effects)]
    while pending:
        owner, items = pending.pop(0)
        steps: list[ExecuteStep] = []
        for effect in items:
            if isinstance(effect, ExecuteStep):
                steps.append(effect)
            elif isinstance(effect, Continue):
                pending.append((effect.instance, effect.effects))
        if steps:
            groups.append((owner, steps))
    return groups
WAKE = "wake"
RETRY = "retry"
DEADLINE = "deadline"
