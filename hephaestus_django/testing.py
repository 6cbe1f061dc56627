"""Test kit for projects using hephaestus_django (and for our own tests).

::

    from hephaestus_django.testing import assert_path, fire_due_timers, frozen_clock, run_until_idle

    with frozen_clock() as clock:
        OrderFlow.start("A-1", {"items": [...]})
        clock.advance(days=1)
        run_until_idle()
        assert_path(OrderFlow.get("A-1"), [ValidateOrder, Pay, Wait, Done])
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from hephaestus_django.core import clock as core_clock
from hephaestus_django.core.engine import completed_path
from hephaestus_django.core.instance import Instance

__all__ = ["FrozenClock", "assert_path", "fire_due_timers", "frozen_clock", "run_until_idle"]


class FrozenClock:
    """A clock that stands still until :meth:`advance` moves it."""

    def __init__(self, at: datetime | None = None) -> None:
        if at is None:
            at = datetime.now(UTC)
        if at.tzinfo is None:
            raise ValueError("frozen_clock(at=...) needs an aware datetime")
        self._now = at

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **timedelta_kwargs: Any) -> datetime:
        """Move the clock forward (``seconds`` plus any ``timedelta`` keyword); returns the new now."""
        self._now += timedelta(seconds=seconds, **timedelta_kwargs)
        return self._now


@contextmanager
def frozen_clock(at: datetime | None = None) -> Iterator[FrozenClock]:
    """While active, the engine reads the time from the returned clock (default start: now)."""
    frozen = FrozenClock(at)
    previous = core_clock.set_clock(frozen.now)
    try:
        yield frozen
    finally:
        core_clock.set_clock(previous)


def fire_due_timers() -> int:
    """Fire the timers and schedule ticks due by the engine's clock, once; returns how many fired."""
    from hephaestus_django.runtime.dispatch import get_runner

    runner = get_runner()
    return runner.fire_due_timers() + runner.fire_schedules()


def run_until_idle(max_iterations: int = 10_000) -> int:
    """Run, in this process, every queued step execution, every due timer and every due schedule
    tick, until nothing is runnable; returns how many ran. Works whatever the ``TASKS`` backend."""
    from hephaestus_django.runtime.dispatch import get_runner

    service = get_runner()
    total = 0
    for _ in range(max_iterations):
        ran = service.run_pending_steps() + service.fire_due_timers() + service.fire_schedules()
        if not ran:
            break
        total += ran
    return total


def _name(step: Any) -> str:
    if isinstance(step, str):
        return step
    registry_name = getattr(step, "registry_name", None)
    return str(registry_name()) if callable(registry_name) else repr(step)


def assert_path(instance: Instance, steps: Sequence[Any]) -> None:
    """Assert that the steps that completed, in history order, are ``steps`` (classes or names)."""
    if not isinstance(instance, Instance):
        raise TypeError(f"assert_path needs an Instance, not {type(instance).__name__}")
    actual = completed_path(instance)
    expected = [_name(s) for s in steps]
    if actual != expected:
        diff = "\n".join(difflib.unified_diff(expected, actual, "expected", "actual", lineterm=""))
        raise AssertionError(f"path of {instance.id} differs:\n{diff}")
