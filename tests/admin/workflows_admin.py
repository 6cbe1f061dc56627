"""Workflows of the admin tests (imported by ``tests/admin/conftest.py``, so registered by name).

- ``AdmApprovalFlow``: a step that waits for ``approved`` or ``rejected`` (a custom waiter).
- ``AdmGateFlow``: a ``WaitForEvent`` (event name ``signed``) then a step.
- ``AdmParallelFlow``: two branches waiting at once, then a join.
- ``AdmFlakyFlow``: fails while :data:`FLAKY` says so (retry then succeeds).
- ``AdmVersioned``: two versions.
- ``AdmRetryFlow``: a step that always raises, retried after 2.5 s (its retry timer can be overdue).
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core import (
    Async,
    Done,
    Ok,
    Retry,
    Step,
    Unique,
    VersionedWorkflow,
    WaitForEvent,
    Workflow,
)

#: ``AdmFlaky`` raises while ``FLAKY["fail"]`` is true.
FLAKY = {"fail": True}


class AdmPrepare(Step):
    events = ("ready",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("ready", {"greeting": f"héllo {context.initial.get('name', '')}".strip()})


class AdmApprove(Step):
    """Pauses; resumed from outside with ``approved`` or ``rejected``."""

    events = ("approved", "rejected")

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Async()


class AdmShip(Step):
    events = ("shipped",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("shipped", {"carrier": "Øresund Post"})


class AdmReject(Step):
    events = ("rejected",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "rejected"


class AdmApprovalFlow(Workflow):
    name = "tests.admin.AdmApprovalFlow"
    unique = Unique(key="adm")
    tags = ["admin", "tests"]
    metadata = {"owner": "ops", "description": "approval before shipping"}
    start_step = AdmPrepare
    transitions = {
        (AdmPrepare, "ready"): AdmApprove,
        (AdmApprove, "approved"): AdmShip,
        (AdmApprove, "rejected"): AdmReject,
        (AdmShip, "shipped"): Done,
        (AdmReject, "rejected"): Done,
    }


class AdmGate(WaitForEvent):
    pass


class AdmAfterGate(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "done"


class AdmGateFlow(Workflow):
    name = "tests.admin.AdmGateFlow"
    unique = Unique(key="gate")
    start_step = (AdmGate, {"event_name": "signed"})
    transitions = {(AdmGate, "received"): AdmAfterGate, (AdmAfterGate, "done"): Done}


class AdmSplit(Step):
    events = ("split",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "split"


class AdmLeft(Step):
    events = ("ok",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Async()


class AdmRight(Step):
    events = ("ok", "skip")

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Async()


class AdmJoin(Step):
    events = ("joined",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "joined"


class AdmParallelFlow(Workflow):
    name = "tests.admin.AdmParallelFlow"
    unique = Unique(key="par")
    start_step = AdmSplit
    transitions = {
        (AdmSplit, "split"): [AdmLeft, AdmRight],
        (AdmLeft, "ok"): AdmJoin,
        (AdmRight, "ok"): AdmJoin,
        (AdmRight, "skip"): AdmJoin,
        (AdmJoin, "joined"): Done,
    }


class AdmFlaky(Step):
    events = ("ok",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if FLAKY["fail"]:
            raise ConnectionError("payment gateway unreachable — réessayez")
        return Ok("ok", {"paid": True})


class AdmFlakyFlow(Workflow):
    name = "tests.admin.AdmFlakyFlow"
    unique = Unique(key="flaky")
    start_step = AdmPrepare
    transitions = {(AdmPrepare, "ready"): AdmFlaky, (AdmFlaky, "ok"): Done}


class AdmV1(Workflow):
    name = "tests.admin.AdmVersioned.v1"
    version = 1
    unique = Unique(key="ver")
    start_step = AdmPrepare
    transitions = {(AdmPrepare, "ready"): Done}


class AdmV2(Workflow):
    name = "tests.admin.AdmVersioned.v2"
    version = 2
    unique = Unique(key="ver")
    start_step = AdmPrepare
    transitions = {(AdmPrepare, "ready"): AdmApprove, (AdmApprove, "approved"): Done,
                   (AdmApprove, "rejected"): Done}


class AdmVersioned(VersionedWorkflow):
    name = "tests.admin.AdmVersioned"
    unique = Unique(key="ver")
    versions = {1: AdmV1, 2: AdmV2}
    current = 2


class AdmAlwaysFails(Step):
    events = ("ok",)
    retry = Retry(max_attempts=3, backoff="constant", base=2.5)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        raise KeyError("missing_key_5")


class AdmRetryFlow(Workflow):
    name = "tests.admin.AdmRetryFlow"
    unique = Unique(key="retry")
    start_step = AdmAlwaysFails
    transitions = {(AdmAlwaysFails, "ok"): Done}


class AdmWideMerge(AdmJoin):
    pass


def _wide() -> dict[Any, Any]:
    """Twelve parallel branches with long names, joined again: a graph much wider than a page."""
    branches = [type(f"AdmWideBranchWithALongName{n:02d}", (AdmJoin,), {"__module__": __name__})
                for n in range(12)]
    globals().update({b.__name__: b for b in branches})
    transitions: dict[Any, Any] = {(AdmSplit, "split"): branches, (AdmWideMerge, "joined"): Done}
    for branch in branches:
        transitions[(branch, "joined")] = AdmWideMerge
    return transitions


class AdmWideFlow(Workflow):
    name = "tests.admin.AdmWideFlow"
    unique = Unique(key="wide")
    start_step = AdmSplit
    transitions = _wide()
