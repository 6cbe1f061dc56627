"""Workflows of the API tests (module level, so the registry and workers find them by name).

- ``ApiOrderFlow``: ``ApiCheck`` (fails while ``SWITCHES["broken"]`` and the context asks for it)
  -> ``ApiApprove`` (waits for ``approved``/``rejected``) -> ``Done``.
- ``ApiParallelFlow``: fan-out to two waiting steps that both declare ``go``, then a join.
- ``ApiVersioned``: two versions under one name.
- ``ApiGlobalFlow``: scope ``global``; ``ApiNoScopeFlow``: scope ``none`` (random id suffix).
- ``ApiMovable``: two versions that both wait at ``ApiApprove`` (migration between them).
- ``ApiPoisonFlow``: its step returns context updates the database cannot store (a set).
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core import Async, Done, Ok, Step, Unique, VersionedWorkflow, Workflow

#: Switches the tests flip (``monkeypatch.setitem``).
SWITCHES = {"broken": True}


class ApiCheck(Step):
    events = ("ok", "bad")

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        if context.initial.get("fail") and SWITCHES["broken"]:
            raise RuntimeError("ApiCheck is broken")
        if context.initial.get("bad"):
            return "bad"
        return Ok("ok", {"checked": True})


class ApiApprove(Step):
    events = ("approved", "rejected")

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Async()


class ApiOrderFlow(Workflow):
    unique = Unique(key="order")
    tags = ["api", "orders"]
    metadata = {"team": "api"}
    start_step = ApiCheck
    transitions = {
        (ApiCheck, "ok"): ApiApprove,
        (ApiCheck, "bad"): Done,
        (ApiApprove, "approved"): Done,
        (ApiApprove, "rejected"): Done,
    }


class ApiFork(Step):
    events = ("forked",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "forked"


class ApiLeft(Step):
    events = ("go",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Async()


class ApiRight(Step):
    events = ("go",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Async()


class ApiJoin(Step):
    events = ("joined",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "joined"


class ApiParallelFlow(Workflow):
    unique = Unique(key="par")
    start_step = ApiFork
    transitions = {
        (ApiFork, "forked"): [ApiLeft, ApiRight],
        (ApiLeft, "go"): ApiJoin,
        (ApiRight, "go"): ApiJoin,
        (ApiJoin, "joined"): Done,
    }


class ApiStepOne(Step):
    events = ("next",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "next"


class ApiVersionedV1(Workflow):
    unique = Unique(key="ver")
    version = 1
    start_step = ApiStepOne
    transitions = {(ApiStepOne, "next"): Done}


class ApiVersionedV2(Workflow):
    unique = Unique(key="ver")
    version = 2
    start_step = ApiStepOne
    transitions = {(ApiStepOne, "next"): ApiApprove, (ApiApprove, "approved"): Done,
                   (ApiApprove, "rejected"): Done}


class ApiVersioned(VersionedWorkflow):
    unique = Unique(key="ver")
    versions = {1: ApiVersionedV1, 2: ApiVersionedV2}
    current = 2


class ApiGlobalFlow(Workflow):
    unique = Unique(key="order", scope="global")
    start_step = ApiApprove
    transitions = {(ApiApprove, "approved"): Done, (ApiApprove, "rejected"): Done}


class ApiNoScopeFlow(Workflow):
    unique = Unique(key="job", scope="none")
    start_step = ApiStepOne
    transitions = {(ApiStepOne, "next"): Done}


class ApiMovableV1(Workflow):
    unique = Unique(key="mov")
    version = 1
    start_step = ApiApprove
    transitions = {(ApiApprove, "approved"): Done, (ApiApprove, "rejected"): Done}


class ApiMovableV2(Workflow):
    unique = Unique(key="mov")
    version = 2
    start_step = ApiStepOne
    transitions = {(ApiStepOne, "next"): ApiApprove, (ApiApprove, "approved"): Done,
                   (ApiApprove, "rejected"): Done}


class ApiMovable(VersionedWorkflow):
    """Waiting instances of either version can move to the other (both have ``ApiApprove``)."""

    unique = Unique(key="mov")
    versions = {1: ApiMovableV1, 2: ApiMovableV2}
    current = 1


class ApiPoison(Step):
    events = ("ok",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("ok", {"v": {1, 2}})


class ApiPoisonFlow(Workflow):
    unique = Unique(key="poison")
    start_step = ApiPoison
    transitions = {(ApiPoison, "ok"): Done}
