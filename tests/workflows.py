"""Test workflows, autodiscovered like a user app's ``workflows.py``.

Steps and workflows that several test modules share are defined here, at module level, so that
workers and the registry can find them by name.
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core import (
    Done,
    Error,
    Ok,
    Retry,
    Step,
    Unique,
    VersionedWorkflow,
    Wait,
    WaitForEvent,
    Workflow,
)

# ---- persistence and facade (tests/test_persistence.py, tests/test_facade.py) ------------------


class PStart(Step):
    events = ("go", "stop")

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if context.initial.get("stop"):
            return "stop"
        return Ok("go", {"seen": context.initial.get("payload")}, {"started_by": "PStart"})


class PLeft(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"side": config.get("side", "left")})


class PRight(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if context.initial.get("explode"):
            raise RuntimeError("right side exploded")
        return Ok("done", {"side": "right"})


class PJoin(Step):
    events = ("joined",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("joined", {"sides": sorted(context.steps)})


class PApproval(WaitForEvent):
    pass


class PersistFlow(Workflow):
    """Fan-out, join, an external event and a branch that stops at once."""

    name = "tests.PersistFlow"
    unique = Unique(key="persist")
    tags = ["tests"]
    metadata = {"owner": "tests"}
    start_step = PStart
    transitions = {
        (PStart, "go"): [(PLeft, {"side": "west"}), PRight],
        (PStart, "stop"): Done,
        (PLeft, "done"): PJoin,
        (PRight, "done"): PJoin,
        (PJoin, "joined"): (PApproval, {"event_name": "approved"}),
        (PApproval, "received"): Done,
    }


class GlobalFlowA(Workflow):
    name = "tests.GlobalFlowA"
    unique = Unique(key="shared", scope="global")
    start_step = PApproval
    transitions = {(PApproval, "received"): Done}


class SharedKeyFlow(Workflow):
    """Same key as GlobalFlowA, scope workflow."""

    name = "tests.SharedKeyFlow"
    unique = Unique(key="shared")
    start_step = PApproval
    transitions = {(PApproval, "received"): Done}


class VersionScopedV1(Workflow):
    name = "tests.VersionScoped.v1"
    version = 1
    unique = Unique(key="vs", scope="version")
    start_step = PApproval
    transitions = {(PApproval, "received"): Done}


class VersionScopedV2(Workflow):
    name = "tests.VersionScoped.v2"
    version = 2
    unique = Unique(key="vs", scope="version")
    start_step = PApproval
    transitions = {(PApproval, "received"): Done}


class VersionScoped(VersionedWorkflow):
    name = "tests.VersionScoped"
    unique = Unique(key="vs", scope="version")
    versions = {1: VersionScopedV1, 2: VersionScopedV2}
    current = 2

    @classmethod
    def version_for(cls, versions: dict[int, Any], context: Any) -> int | None:
        return context.get("want_version")


class NoScopeFlow(Workflow):
    name = "tests.NoScopeFlow"
    unique = Unique(key="job", scope="none")
    start_step = PApproval
    transitions = {(PApproval, "received"): Done}


class PFlaky(Step):
    events = ("ok",)
    retry = Retry(max_attempts=2, backoff="constant", base=5.0)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if context.initial.get("fail"):
            return Error("flaky failure")
        return "ok"


class RetryFlow(Workflow):
    name = "tests.RetryFlow"
    unique = Unique(key="retry")
    start_step = PFlaky
    transitions = {(PFlaky, "ok"): (Wait, {"duration": 10, "unit": "second"}), (Wait, "timeout"): Done}


class PLink(Step):
    events = ("next",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "next"


def _chain(length: int) -> dict[Any, Any]:
    steps = [type(f"Chain{i}", (PLink,), {"__module__": __name__, "__qualname__": f"Chain{i}"}) for i in range(length)]
    globals().update({s.__name__: s for s in steps})
    transitions: dict[Any, Any] = {(a, "next"): b for a, b in zip(steps, steps[1:], strict=False)}
    transitions[(steps[-1], "next")] = Done
    return {"start_step": steps[0], "transitions": transitions}


LongChain = type("LongChain", (Workflow,), {"__module__": __name__, "__qualname__": "LongChain",
                                            "name": "tests.LongChain", "unique": Unique(key="chain"),
                                            **_chain(1000)})


# ---- runtime (tests/runtime/) -------------------------------------------------------------------
# Steps coordinate with the test through files in the directory named by context["dir"].

def _mark(context: Any, name: str) -> None:
    import pathlib

    directory = context.initial.get("dir")
    if directory:
        path = pathlib.Path(directory) / name
        with path.open("a") as f:
            f.write("x\n")


class RBranch(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"branch": config["n"], "instance": instance.id})


class RSplit(Step):
    events = ("split",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("split", {"at": "start"})


class RJoin(Step):
    events = ("joined",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        _mark(context, f"join-{instance.id}")
        return Ok("joined", {"branches": sorted(v["branch"] for k, v in context.steps.items() if k.startswith("rb"))})


RB1 = type("RB1", (RBranch,), {"__module__": __name__, "__qualname__": "RB1"})
RB2 = type("RB2", (RBranch,), {"__module__": __name__, "__qualname__": "RB2"})
RB3 = type("RB3", (RBranch,), {"__module__": __name__, "__qualname__": "RB3"})


class FanOutFlow(Workflow):
    name = "tests.FanOutFlow"
    unique = Unique(key="fan")
    start_step = RSplit
    transitions = {
        (RSplit, "split"): [(RB1, {"n": 1}), (RB2, {"n": 2}), (RB3, {"n": 3})],
        (RB1, "done"): RJoin, (RB2, "done"): RJoin, (RB3, "done"): RJoin,
        (RJoin, "joined"): Done,
    }


class RAfterWait(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "done"


class TimerFlow(Workflow):
    """A 2-second Wait."""

    name = "tests.TimerFlow"
    unique = Unique(key="timer")
    start_step = (Wait, {"duration": 2, "unit": "second"})
    transitions = {(Wait, "timeout"): RAfterWait, (RAfterWait, "done"): Done}


class RGate(WaitForEvent):
    pass


class RTimedOut(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"path": "timeout"})


class RReceived(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"path": "received"})


class EventTimeoutFlow(Workflow):
    name = "tests.EventTimeoutFlow"
    unique = Unique(key="gate")
    start_step = (RGate, {"event_name": "opened", "timeout": 1})
    transitions = {(RGate, "received"): RReceived, (RGate, "timeout"): RTimedOut,
                   (RReceived, "done"): Done, (RTimedOut, "done"): Done}


class RAlwaysFails(Step):
    events = ("ok",)
    retry = Retry(max_attempts=3, backoff="linear", base=0.5, max_backoff=10.0)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        _mark(context, "attempt")
        raise ConnectionError("payment gateway unreachable")


class RetryExhaustFlow(Workflow):
    name = "tests.RetryExhaustFlow"
    unique = Unique(key="exhaust")
    start_step = RAlwaysFails
    transitions = {(RAlwaysFails, "ok"): Done}


class RSlow(Step):
    """Sleeps on its first run (so a worker can be killed in the middle), not on later runs."""

    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        import pathlib
        import time

        directory = pathlib.Path(context.initial["dir"])
        first = not (directory / "slow-started").exists()
        _mark(context, "slow-started")
        if first:
            time.sleep(float(context.initial.get("sleep", 30)))
        return Ok("done", {"runs": len((directory / "slow-started").read_text().splitlines())})


class RTick(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        _mark(context, f"tick-{type(self).__name__}")
        return "done"


RTick1 = type("RTick1", (RTick,), {"__module__": __name__, "__qualname__": "RTick1"})
RTick2 = type("RTick2", (RTick,), {"__module__": __name__, "__qualname__": "RTick2"})


class SlowFlow(Workflow):
    name = "tests.SlowFlow"
    unique = Unique(key="slow")
    start_step = RSlow
    transitions = {(RSlow, "done"): RTick1, (RTick1, "done"): RTick2, (RTick2, "done"): Done}


class RLedger(Step):
    """Atomic: writes a Ledger row, then fails if asked to (the row must roll back with it)."""

    events = ("written",)
    atomic = True

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        from tests.models import Ledger

        Ledger.objects.create(instance_id=instance.id, note="atomic")
        if context.initial.get("fail"):
            raise ValueError("refused after writing")
        return Ok("written", {"ledger": True})


class RPause(Step):
    """Sleeps after the atomic step (so a worker can be killed right after its commit)."""

    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        import pathlib
        import time

        first = not (pathlib.Path(context.initial.get("dir", "/nonexistent")) / "pause-started").exists()
        _mark(context, "pause-started")
        if first:
            time.sleep(float(context.initial.get("pause", 0)))
        return "done"


class AtomicFlow(Workflow):
    name = "tests.AtomicFlow"
    unique = Unique(key="atomic")
    start_step = RLedger
    transitions = {(RLedger, "written"): RPause, (RPause, "done"): Done}


class RCounted(Step):
    """Counts its executions as Ledger rows (committed at once: it is not atomic) and sleeps in its
    first one, so that a worker can be killed in the middle of it."""

    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        import os
        import time

        from tests.models import Ledger

        Ledger.objects.create(instance_id=instance.id, note=f"execution pid={os.getpid()}")
        runs = Ledger.objects.filter(instance_id=instance.id, note__startswith="execution").count()
        if runs == 1:
            time.sleep(float(context.initial.get("sleep", 60)))
        return Ok("done", {"runs": runs})


class RApplied(Step):
    """Atomic: one Ledger row per applied run of the workflow's second step."""

    events = ("done",)
    atomic = True

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        from tests.models import Ledger

        Ledger.objects.create(instance_id=instance.id, note="applied")
        return Ok("done", {"after_runs": context.steps["r_counted"]["runs"]})


class CountedFlow(Workflow):
    name = "tests.CountedFlow"
    unique = Unique(key="counted")
    start_step = RCounted
    transitions = {(RCounted, "done"): RApplied, (RApplied, "done"): Done}


# ---- registered from their own modules: commands, rendering and telemetry (tests/test_commands.py,
# test_render.py, test_telemetry.py); resume data, keys, child workflows and list routes (test_compose*.py);
# the operator's view (tests/test_operator_view.py); faults and scale-out (tests/runtime/test_faults_pg.py ...);
# runs with time and composition (tests/runtime/test_integration.py)
from tests import (  # noqa: E402, F401
    workflows_commands,
    workflows_compose,
    workflows_faults,
    workflows_integration,
    workflows_operator,
)


# ---- time and failure (SPEC §10: tests/test_time_*.py, tests/runtime/test_time_pg.py) -----------------
class TRelease(Step):
    """Compensates TReserve."""

    events = ("released",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        _mark(context, "release")
        return Ok("released", {"stock": "back", "compensates": config["compensates"]})


class TRefund(Step):
    """Compensates TCharge; sleeps on its first run when asked (a worker is killed meanwhile), fails
    while ``refund_fails`` names a file that exists."""

    events = ("refunded",)
    retry = Retry(max_attempts=2, backoff="constant", base=0)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        import pathlib
        import time

        directory = context.initial.get("dir")
        first = directory is None or not (pathlib.Path(directory) / "refund").exists()
        _mark(context, "refund")
        if first and context.initial.get("refund_sleep"):
            time.sleep(float(context.initial["refund_sleep"]))
        flag = context.initial.get("refund_fails")
        if flag and pathlib.Path(flag).exists():
            raise ConnectionError("bank unreachable")
        return Ok("refunded", {"amount": context.steps["t_charge"]["amount"], "status": instance.status.value})


class TReserve(Step):
    events = ("reserved",)
    compensate = TRelease

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("reserved", {"sku": "x"})


class TCharge(Step):
    events = ("charged",)
    compensate = TRefund

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("charged", {"amount": 42})


class TGate(WaitForEvent):
    """Waits for ``go`` (config ``event_name``)."""


class TShip(Step):
    events = ("shipped",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        _mark(context, "ship")
        if context.initial.get("fail"):
            return Error("carrier refused the parcel")
        return "shipped"


class SagaFlow(Workflow):
    """Reserve -> Charge -> (wait for ``go`` when asked) -> Ship -> Done; Reserve and Charge compensate."""

    name = "tests.SagaFlow"
    unique = Unique(key="saga")
    start_step = TReserve
    transitions = {
        (TReserve, "reserved"): TCharge,
        (TCharge, "charged"): (TGate, {"event_name": "go"}),
        (TGate, "received"): TShip,
        (TShip, "shipped"): Done,
    }


class DeadlineFlow(Workflow):
    """Reserve, then wait for ``go``: it must be done within 60 seconds."""

    name = "tests.DeadlineFlow"
    unique = Unique(key="deadline")
    deadline = 60
    start_step = TReserve
    transitions = {(TReserve, "reserved"): TGate, (TGate, "received"): Done}


class MStart(Step):
    events = ("started",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("started", {"v": instance.workflow_version})


class MGate(WaitForEvent):
    pass


class MOtherGate(WaitForEvent):
    pass


class MEndV1(Step):
    events = ("ended",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("ended", {"by": "v1"})


class MEndV2(Step):
    events = ("ended",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("ended", {"by": "v2"})


class MigV1(Workflow):
    name = "tests.MigV1"
    unique = Unique(key="mig")
    version = 1
    start_step = MStart
    transitions = {(MStart, "started"): MGate, (MGate, "received"): MEndV1, (MEndV1, "ended"): Done}


class MigV2(Workflow):
    name = "tests.MigV2"
    unique = Unique(key="mig")
    version = 2
    start_step = MStart
    transitions = {(MStart, "started"): MGate, (MGate, "received"): MEndV2, (MEndV2, "ended"): Done}


class MigV3(Workflow):
    name = "tests.MigV3"
    unique = Unique(key="mig")
    version = 3
    start_step = MStart
    transitions = {(MStart, "started"): MOtherGate, (MOtherGate, "received"): MEndV2, (MEndV2, "ended"): Done}


class MigFlow(VersionedWorkflow):
    """Versions 1 and 2 wait at MGate (then end differently); version 3 waits at MOtherGate."""

    name = "tests.MigFlow"
    unique = Unique(key="mig")
    versions = {1: MigV1, 2: MigV2, 3: MigV3}
    current = 1
