"""Workflows of the fault and scale-out tests (issues 10 and 11), imported by ``tests/workflows.py``.

Steps count their executions in the database (a ``Ledger`` row per execution, ``note`` = the
step), so that a test counts what really ran, not what the history says. They coordinate with
the test through files in the directory named by ``context["dir"]``.
"""

from __future__ import annotations

import decimal
import math
import pathlib
import time
from typing import Any

from hephaestus_django.core import Done, Ok, Retry, Step, Unique, Workflow


def executed(instance: Any, step: Step) -> int:
    """Record one execution of ``step`` on ``instance``; returns how many it has had, this one included."""
    from tests.models import Ledger

    note = type(step).__name__
    Ledger.objects.create(instance_id=instance.id, note=note)
    return Ledger.objects.filter(instance_id=instance.id, note=note).count()


def _touch(context: Any, name: str) -> None:
    directory = context.initial.get("dir")
    if directory:
        (pathlib.Path(directory) / name).touch()


# ---- attempt numbers through a kill -9 (issue 10 point 3) --------------------------------------------
class FKillable(Step):
    """Attempt 1 raises; attempt 2 hangs (the test kills its worker); attempt 3 succeeds."""

    events = ("done",)
    retry = Retry(max_attempts=3, backoff="constant", base=0.5)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        runs = executed(instance, self)
        if runs == 1:
            raise ConnectionError("gateway timeout")
        if runs == 2:
            _touch(context, f"second-{instance.id}")
            time.sleep(120)
        return Ok("done", {"executions": runs})


class KillRetryFlow(Workflow):
    name = "tests.KillRetryFlow"
    unique = Unique(key="killretry")
    start_step = FKillable
    transitions = {(FKillable, "done"): Done}


class FBackoff(Step):
    """Fails its first two attempts, with a 3 s backoff between attempts."""

    events = ("done",)
    retry = Retry(max_attempts=3, backoff="constant", base=3.0)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        runs = executed(instance, self)
        if runs < 3:
            raise ConnectionError(f"attempt {runs} refused")
        return Ok("done", {"executions": runs})


class BackoffFlow(Workflow):
    name = "tests.BackoffFlow"
    unique = Unique(key="backoff")
    start_step = FBackoff
    transitions = {(FBackoff, "done"): Done}


# ---- a chain carried on by one task, killed in its middle ------------------------------------------
class CFirst(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"executions": executed(instance, self)})


class CMiddle(Step):
    """Hangs on its first execution (the test kills the worker), then succeeds."""

    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        runs = executed(instance, self)
        if runs == 1:
            _touch(context, f"middle-{instance.id}")
            time.sleep(120)
        return Ok("done", {"executions": runs})


class CLast(CFirst):
    pass


class ChainKillFlow(Workflow):
    name = "tests.ChainKillFlow"
    unique = Unique(key="chainkill")
    start_step = CFirst
    transitions = {(CFirst, "done"): CMiddle, (CMiddle, "done"): CLast, (CLast, "done"): Done}


# ---- a backlog of linear instances --------------------------------------------------------------------
class LStep(Step):
    events = ("ok",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("ok", {"i": context.initial.get("i"), "step": type(self).__name__})


L1, L2, L3, L4, L5 = (type(f"L{n}", (LStep,), {"__module__": __name__, "__qualname__": f"L{n}"}) for n in range(1, 6))


class LinearFlow(Workflow):
    """Five steps in a row (the peer bench's linear5)."""

    name = "tests.LinearFlow"
    unique = Unique(key="linear")
    start_step = L1
    transitions = {(L1, "ok"): L2, (L2, "ok"): L3, (L3, "ok"): L4, (L4, "ok"): L5, (L5, "ok"): Done}


K = [type(f"K{n}", (LStep,), {"__module__": __name__, "__qualname__": f"K{n}"}) for n in range(10)]


class TenFlow(Workflow):
    """Ten steps in a row (MAX_INLINE_STEPS tests)."""

    name = "tests.TenFlow"
    unique = Unique(key="ten")
    start_step = K[0]
    transitions = {**{(a, "ok"): b for a, b in zip(K, K[1:], strict=False)}, (K[-1], "ok"): Done}


# ---- poison values (issue 10 point 1) ------------------------------------------------------------------
class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


POISONS: dict[str, Any] = {
    "set": {1, 2},
    "nan": math.nan,
    "inf": math.inf,
    "nul": "a\x00b",
    "bytes": b"\x00\x01",
    "object": _Opaque(),
    "decimal_nan": decimal.Decimal("NaN"),
}


class PPoison(Step):
    """Returns ``{"v": <poison>}`` in its context updates or its metadata updates; retried once."""

    events = ("done",)
    retry = Retry(max_attempts=2, backoff="constant", base=0)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        executed(instance, self)
        value = POISONS[context.initial["poison"]]
        if context.initial.get("where") == "metadata":
            return Ok("done", {"fine": True}, {"v": value})
        return Ok("done", {"v": value})


class PoisonFlow(Workflow):
    name = "tests.PoisonFlow"
    unique = Unique(key="poison")
    start_step = PPoison
    transitions = {(PPoison, "done"): Done}


class PHuge(Step):
    """Returns an integer that passes the value check but that no JSON encoder can write (more
    than 4,300 digits): the database write fails, and becomes a failure of this step."""

    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        executed(instance, self)
        return Ok("done", {"v": 10 ** 5000})


class HugeFlow(Workflow):
    name = "tests.HugeFlow"
    unique = Unique(key="huge")
    start_step = PHuge
    transitions = {(PHuge, "done"): Done}


LONG_EVENT = "e" * 300  # longer than the history's event column: PostgreSQL refuses the write


class PLongEvent(Step):
    events = (LONG_EVENT,)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        executed(instance, self)
        return LONG_EVENT


class LongEventFlow(Workflow):
    name = "tests.LongEventFlow"
    unique = Unique(key="longevent")
    start_step = PLongEvent
    transitions = {(PLongEvent, LONG_EVENT): Done}


# ---- timeouts that hang with a database connection (issue 10 point 4) ---------------------------------
class HHung(Step):
    """Uses the database, then hangs far beyond its timeout (until a file appears, at most 60 s)."""

    events = ("done",)
    timeout = 0.5

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        executed(instance, self)
        release = pathlib.Path(context.initial["dir"]) / "release"
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return "done"


class HungFlow(Workflow):
    name = "tests.HungFlow"
    unique = Unique(key="hung")
    start_step = HHung
    transitions = {(HHung, "done"): Done}


class HQuick(Step):
    """Uses the database and returns well within its timeout."""

    events = ("done",)
    timeout = 5.0

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        executed(instance, self)
        return "done"


class QuickTimeoutFlow(Workflow):
    name = "tests.QuickTimeoutFlow"
    unique = Unique(key="quick")
    start_step = HQuick
    transitions = {(HQuick, "done"): Done}


# ---- concurrency limits and priorities (issue 11) -------------------------------------------------------
class SLimited(Step):
    """At most one at a time: records when each execution started and ended."""

    events = ("done",)
    concurrency_limit = 1

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        from django.utils import timezone

        from tests.models import Execution

        row = Execution.objects.create(step="SLimited", instance_id=instance.id, started_at=timezone.now())
        time.sleep(float(context.initial.get("work", 0.3)))
        Execution.objects.filter(pk=row.pk).update(finished_at=timezone.now())
        return "done"


class LimitedFlow(Workflow):
    name = "tests.LimitedFlow"
    unique = Unique(key="limited")
    start_step = CFirst
    transitions = {(CFirst, "done"): SLimited, (SLimited, "done"): CLast, (CLast, "done"): Done}


class LimitedStartFlow(Workflow):
    """Its start step has a concurrency limit."""

    name = "tests.LimitedStartFlow"
    unique = Unique(key="limitedstart")
    start_step = SLimited
    transitions = {(SLimited, "done"): Done}


class SOrdered(Step):
    """Records the order in which executions run (the Ledger's ids increase)."""

    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        executed(instance, self)
        return "done"


class SUrgent(SOrdered):
    priority = 50


class LowPriorityFlow(Workflow):
    name = "tests.LowPriorityFlow"
    unique = Unique(key="low")
    priority = -50
    start_step = SOrdered
    transitions = {(SOrdered, "done"): Done}


class HighPriorityFlow(Workflow):
    """Its step's own priority (50) wins over the workflow's default (-50)."""

    name = "tests.HighPriorityFlow"
    unique = Unique(key="high")
    priority = -50
    start_step = SUrgent
    transitions = {(SUrgent, "done"): Done}


class SMailer(SOrdered):
    queue_name = "mail"


class RoutedFlow(Workflow):
    """Steps routed to a queue of their own, the rest to the workflow's."""

    name = "tests.RoutedFlow"
    unique = Unique(key="routed")
    queue_name = "flows"
    start_step = CFirst
    transitions = {(CFirst, "done"): SMailer, (SMailer, "done"): CLast, (CLast, "done"): Done}


class PAtomicPoison(Step):
    """Atomic: writes a row, then returns an unstorable value (its row must roll back with it)."""

    events = ("done",)
    atomic = True

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        executed(instance, self)
        return Ok("done", {"v": {1, 2}})


class AtomicPoisonFlow(Workflow):
    name = "tests.AtomicPoisonFlow"
    unique = Unique(key="atomicpoison")
    start_step = PAtomicPoison
    transitions = {(PAtomicPoison, "done"): Done}
