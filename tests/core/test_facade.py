"""The facade on workflow classes (SPEC §2), served here by an in-memory service."""

from __future__ import annotations

import re
import uuid

import pytest

from hephaestus_django.core import (
    AlreadyRunning,
    Done,
    InstanceNotFound,
    Unique,
    VersionedWorkflow,
    WaitForEvent,
    Workflow,
)
from hephaestus_django.core.runner import Runner
from tests.core.helpers import CALLS, OrderFlow, completed


def test_order_flow_facade(facade_service: Runner) -> None:
    assert OrderFlow.start("123", {"item_count": 2}) == "orderid::123"
    instance = OrderFlow.get("123")
    assert instance.id == "orderid::123"
    assert instance.status == "waiting"
    assert instance.workflow is OrderFlow
    with pytest.raises(AlreadyRunning):
        OrderFlow.start("123", {"item_count": 1})
    assert [i.id for i in OrderFlow.list(status="waiting")] == ["orderid::123"]
    instance = OrderFlow.resume("123", "timeout")
    assert instance.status == "completed"
    assert completed(instance)[-2:] == ["Wait", "Done"]
    assert OrderFlow.list(status="waiting") == []
    assert [i.id for i in OrderFlow.list(status__in=["completed"], workflow_version=1)] == ["orderid::123"]


def test_facade_cancel_and_values(facade_service: Runner) -> None:
    value = uuid.uuid4()
    assert OrderFlow.start(value, {"item_count": 1}) == f"orderid::{value}"
    cancelled = OrderFlow.cancel(value)
    assert cancelled.status == "cancelled"
    assert OrderFlow.get(str(value)).status == "cancelled"
    with pytest.raises(ValueError, match="'value'"):
        OrderFlow.start("not valid!", {})
    with pytest.raises(InstanceNotFound):
        OrderFlow.get("404")


def test_facade_start_arguments(facade_service: Runner) -> None:
    class Waiting(Workflow):
        unique = Unique(key="w")
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    assert Waiting.start("1") == "w::1"  # context defaults to {}
    Waiting.start("2", {"a": 1}, telemetry_metadata={"tenant": "acme"})
    instance = Waiting.get("2")
    assert instance.context.initial == {"a": 1}
    assert instance.telemetry_metadata == {"tenant": "acme"}
    with pytest.raises(ValueError, match="version"):
        Waiting.start("3", {}, version=2)


def test_facade_lookups_are_per_workflow(facade_service: Runner) -> None:
    class First(Workflow):
        unique = Unique(key="same")
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    class Second(Workflow):
        unique = Unique(key="same")
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    First.start("1")
    Second.start("1")
    assert First.resume("1", "received").workflow is First
    assert First.get("1").status == "completed"
    assert Second.get("1").status == "waiting"
    assert [i.workflow for i in Second.list()] == [Second]


def test_scope_none_has_no_keyed_facade(facade_service: Runner) -> None:
    class Free(Workflow):
        unique = Unique(key="free", scope="none")
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    for name in ("get", "resume", "cancel"):
        assert not hasattr(Free, name)
    with pytest.raises(AttributeError, match="scope 'none'"):
        Free.get("1")  # type: ignore[misc]
    first = Free.start("1")
    second = Free.start("1")
    assert re.fullmatch(r"free::1::[0-9a-f]{8}", first)
    assert first != second
    assert {i.id for i in Free.list()} == {first, second}
    assert facade_service.resume(first, "received").status == "completed"
    # the other scopes do have them
    assert all(hasattr(OrderFlow, name) for name in ("start", "get", "resume", "cancel", "list"))


def test_versioned_facade(facade_service: Runner) -> None:
    class V1(Workflow):
        version = 1
        unique = Unique(key="userid")
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    class V2(Workflow):
        version = 2
        unique = Unique(key="userid")
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    class CreateUser(VersionedWorkflow):
        unique = Unique(key="userid")
        versions = {1: V1, 2: V2}
        current = 2

    CreateUser.start("7", {}, version=1)
    CreateUser.start("8", {})
    assert CreateUser.get("7").workflow_version == 1
    assert CreateUser.get("8").workflow_version == 2
    assert [i.id for i in CreateUser.list(workflow_version=2)] == ["userid::8"]
    assert CreateUser.resume("7", "received").status == "completed"
    assert CreateUser.cancel("8").status == "cancelled"
    assert CALLS == []
