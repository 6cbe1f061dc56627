"""Workflows of the integration tests of runs with time and composition (tests/runtime/test_integration.py):
a retried step paused between its attempts, a fan-out that fails while a branch waits in the queue,
a migration that renames a runnable step."""

from __future__ import annotations

from typing import Any

from hephaestus_django.core import Done, Error, Ok, Retry, Step, Unique, VersionedWorkflow, Workflow


class IFlaky(Step):
    """Fails its first attempt (retried at once), then succeeds with its attempt number."""

    events = ("done",)
    retry = Retry(max_attempts=3, backoff="constant", base=0)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        attempts = [e for e in instance.execution_history if e.step_name == IFlaky.registry_name()
                    and e.kind == "retrying"]
        if not attempts:
            raise ConnectionError("first attempt fails")
        return Ok("done", {"attempt": len(attempts) + 1})


class IAfter(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "done"


class FlakyFlow(Workflow):
    name = "tests.FlakyFlow"
    unique = Unique(key="flaky")
    start_step = IFlaky
    transitions = {(IFlaky, "done"): IAfter, (IAfter, "done"): Done}


class IUndo(Step):
    events = ("undone",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("undone", {"compensates": config["compensates"]})


class ISplit(Step):
    events = ("split",)
    compensate = IUndo

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "split"


class IBoom(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Error("the branch failed")


class ISlow(Step):
    """Waits in the queue behind everything else (lowest priority)."""

    events = ("done",)
    priority = -100

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "done"


class IJoin(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "done"


class SplitFailFlow(Workflow):
    """ISplit (compensated by IUndo) -> [IBoom, ISlow] -> IJoin: IBoom fails while ISlow waits in the queue."""

    name = "tests.SplitFailFlow"
    unique = Unique(key="splitfail")
    start_step = ISplit
    transitions = {(ISplit, "split"): [IBoom, ISlow], (IBoom, "done"): IJoin, (ISlow, "done"): IJoin,
                   (IJoin, "done"): Done}


class IOld(Step):
    """Version 1's only step; fails (a retry timer 60 s later) when the context says so."""

    events = ("done",)
    retry = Retry(max_attempts=2, backoff="constant", base=60)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if context.initial.get("fail"):
            raise ConnectionError("not yet")
        return Ok("done", {"by": "old"})


class INew(Step):
    events = ("done",)
    retry = Retry(max_attempts=2, backoff="constant", base=60)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"by": "new"})


class RenameV1(Workflow):
    name = "tests.RenameV1"
    unique = Unique(key="rename")
    version = 1
    start_step = IOld
    transitions = {(IOld, "done"): Done}


class RenameV2(Workflow):
    name = "tests.RenameV2"
    unique = Unique(key="rename")
    version = 2
    start_step = INew
    transitions = {(INew, "done"): Done}


class RenameFlow(VersionedWorkflow):
    """Version 2 renames version 1's step (``step_map`` needed to migrate)."""

    name = "tests.RenameFlow"
    unique = Unique(key="rename")
    versions = {1: RenameV1, 2: RenameV2}
    current = 1
