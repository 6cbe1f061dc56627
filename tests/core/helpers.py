"""Steps, workflows and small tools shared by the core tests (no Django anywhere).

Steps record every ``execute()`` call in :data:`CALLS` (cleared before each test by an autouse
fixture), so a test can count executions rather than trust the history alone.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hephaestus_django.core import Done, Instance, Ok, Step, Unique, Wait, WaitForEvent, Workflow

#: Names of the steps whose ``execute()`` ran, in order.
CALLS: list[str] = []

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

_counter = itertools.count(1)


def unique_name(prefix: str) -> str:
    """A class name never used before in this process (for classes built with ``type()``)."""
    return f"{prefix}{next(_counter)}"


class FrozenClock:
    """A clock that only moves when told to (``clock.set_clock(frozen.now)``)."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float = 0, **kwargs: Any) -> None:
        self.at += timedelta(seconds=seconds, **kwargs)


class TickingClock(FrozenClock):
    """A clock that moves one second forward every time it is read."""

    def now(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


class Recorded(Step):
    """Records its call in ``CALLS``, then emits its first declared event (override ``run``)."""

    def execute(self, instance: Instance, config: dict[str, Any], context: Any) -> Any:
        CALLS.append(type(self).__name__)
        return self.run(instance, config, context)

    def run(self, instance: Instance, config: dict[str, Any], context: Any) -> Any:
        return self.events[0]


def make_step(name: str, events: tuple[str, ...] = ("ok",), run: Any = None, **attrs: Any) -> type[Step]:
    """A ``Recorded`` step class built with ``type()``; ``run(self, instance, config, context)``."""
    namespace: dict[str, Any] = {"events": events, **attrs}
    if run is not None:
        namespace["run"] = run
    return type(name, (Recorded,), namespace)


# ---- the order workflow of SPEC §1.4 ------------------------------------------------------------
class ValidateOrder(Recorded):
    events = ("valid", "invalid")

    def run(self, instance: Instance, config: dict[str, Any], context: Any) -> Any:
        if context.initial.get("item_count", 0) > 0:
            return Ok("valid", {"item_count": context.initial["item_count"]})
        return "invalid"


class ProcessPayment(Recorded):
    events = ("paid",)

    def run(self, instance: Instance, config: dict[str, Any], context: Any) -> Any:
        return Ok("paid", {"amount": 10}, {"payment": "card"})


class Notify(Recorded):
    events = ("sent",)


class Ship(Recorded):
    events = ("shipped",)


class Pack(Recorded):
    events = ("packed",)


class RejectOrder(Recorded):
    events = ("rejected",)


class OrderFlow(Workflow):
    unique = Unique(key="orderid")
    start_step = ValidateOrder
    transitions = {
        (ValidateOrder, "valid"): ProcessPayment,
        (ValidateOrder, "invalid"): RejectOrder,
        (ProcessPayment, "paid"): [Notify, Ship],
        (Notify, "sent"): Pack,
        (Ship, "shipped"): Pack,
        (Pack, "packed"): (Wait, {"duration": 1, "unit": "day"}),
        (Wait, "timeout"): Done,
        (RejectOrder, "rejected"): Done,
    }


class Approval(WaitForEvent):
    """A ``WaitForEvent`` under its own name, so that one workflow can wait twice."""


# ---- reading an instance ------------------------------------------------------------------------
def short(step_ref: Any) -> str | None:
    if step_ref is None or isinstance(step_ref, str):
        return step_ref
    return str(step_ref.__name__)


def history(instance: Instance) -> list[tuple[str, str | None, str | None]]:
    """``(kind, step class name, event)`` for every history entry."""
    return [(str(e.kind), short(e.step_ref), e.event) for e in instance.execution_history]


def completed(instance: Instance) -> list[str]:
    """Names of the steps that completed (run, resumed or timer-fired), in history order."""
    kinds = ("completed", "resumed", "timer_fired")
    return [str(short(e.step_ref)) for e in instance.execution_history if e.kind in kinds]


def names(steps: Any) -> set[str]:
    return {s.__name__ for s in steps}


def last_failed(instance: Instance) -> Any:
    return [e for e in instance.execution_history if e.kind == "failed"][-1]


def stored_timers(storage: Any) -> list[Any]:
    """Every timer a ``MemoryStorage`` holds, soonest first."""
    return sorted(storage._timers.values(), key=lambda t: (t.due, t.pk))
