"""Test workflows, autodiscovered like a user app's ``workflows.py``.

Steps and workflows that several test modules share are defined here, at module level, so that
workers and the registry can find them by name.
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core import (
    Async,
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
