"""Workflows of the command, rendering and telemetry tests (imported by ``tests/workflows.py``).

Registry names are fixed (``tests.Cmd...``) so that golden files and command lines stay stable.
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core import Async, Done, Error, Ok, Retry, Step, Unique, Wait, Workflow

#: Ids of instances whose ``CmdSigCheck`` fails (a test adds an id, then removes it and retries).
FAIL_IDS: set[str] = set()
#: Attempts of ``CmdSigFlaky`` per instance id: its first attempt raises.
FLAKY_ATTEMPTS: dict[str, int] = {}


# ---- a fan-out/fan-in workflow for the commands and the golden renderings ---------------------------
class CmdPrepare(Step):
    events = ("ready", "skip")

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if context.initial.get("skip"):
            return "skip"
        return Ok("ready", {"items": context.initial.get("items", 0)})


class CmdBranchA(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"branch": "a"})


class CmdBranchB(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"branch": "b"})


class CmdMerge(Step):
    events = ("merged",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("merged", {"from": sorted(context.steps)})


class CmdApprove(Step):
    """Waits for an external ``approved`` or ``rejected``."""

    events = ("approved", "rejected")

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Async()


class CmdFanFlow(Workflow):
    """Fan-out to two branches, a join, then an external approval."""

    name = "tests.CmdFanFlow"
    unique = Unique(key="cmd")
    tags = ["tests", "commands"]
    start_step = CmdPrepare
    transitions = {
        (CmdPrepare, "ready"): [CmdBranchA, CmdBranchB],
        (CmdPrepare, "skip"): Done,
        (CmdBranchA, "done"): CmdMerge,
        (CmdBranchB, "done"): CmdMerge,
        (CmdMerge, "merged"): CmdApprove,
        (CmdApprove, "approved"): Done,
        (CmdApprove, "rejected"): Done,
    }


class CmdBoom(Step):
    events = ("ok",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if instance.id in FAIL_IDS:
            return Error("boom")
        return "ok"


class CmdFailFlow(Workflow):
    """One step that fails while its instance id is in ``FAIL_IDS`` (for retry and prune)."""

    name = "tests.CmdFailFlow"
    unique = Unique(key="cmdfail")
    start_step = CmdBoom
    transitions = {(CmdBoom, "ok"): Done}


# ---- telemetry: fan-out, a wait for an event, a retry, a timer and a failure ---------------------------
class CmdSigStart(Step):
    events = ("go",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("go", {"started": True}, {"origin": "signals"})


class CmdSigApproval(Step):
    events = ("approved",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Async()


class CmdSigFlaky(Step):
    events = ("ok",)
    retry = Retry(max_attempts=2, backoff="constant", base=0.0)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        FLAKY_ATTEMPTS[instance.id] = FLAKY_ATTEMPTS.get(instance.id, 0) + 1
        if FLAKY_ATTEMPTS[instance.id] == 1:
            raise RuntimeError("flaky first attempt")
        return "ok"


class CmdSigCheck(Step):
    events = ("ok",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if instance.id in FAIL_IDS:
            return Error("check failed")
        return "ok"


class CmdSignalFlow(Workflow):
    name = "tests.CmdSignalFlow"
    unique = Unique(key="cmdsig")
    start_step = CmdSigStart
    transitions = {
        (CmdSigStart, "go"): [CmdSigApproval, CmdSigFlaky],
        (CmdSigApproval, "approved"): CmdSigCheck,
        (CmdSigFlaky, "ok"): CmdSigCheck,
        (CmdSigCheck, "ok"): (Wait, {"duration": 5, "unit": "second"}),
        (Wait, "timeout"): Done,
    }
