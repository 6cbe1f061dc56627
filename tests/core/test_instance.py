"""Instance, Context and ExecutionEntry (SPEC §1.1, §1.2, §2.1)."""

from __future__ import annotations

import dataclasses

import pytest

import hephaestus_django
from hephaestus_django import core
from hephaestus_django.core import Context, ExecutionEntry, Instance, Status
from hephaestus_django.core.base import snake_case
from tests.core.helpers import T0, OrderFlow, ValidateOrder


def test_seed_example() -> None:
    instance = Instance.new(OrderFlow, 1, {"order_id": 123}, "orderid::123")
    assert instance.status == "pending"
    assert instance.status is Status.PENDING
    assert instance.context.initial == {"order_id": 123}
    assert instance.workflow_version == 1


def test_new_instance_fields() -> None:
    instance = Instance.new(OrderFlow, 2, {"a": 1}, "orderid::1")
    assert instance.id == "orderid::1"
    assert instance.workflow is OrderFlow
    assert instance.workflow_version == 2
    assert instance.current_step is None
    assert instance.context.steps == {}
    assert instance.step_configs == {}
    assert instance.active_steps == set()
    assert instance.completed_steps == set()
    assert instance.runtime_metadata == {}
    assert instance.telemetry_metadata == {}
    assert instance.telemetry_start_time is None
    assert instance.execution_history == []
    assert instance.error is None


def test_seed_fields_exist_in_order() -> None:
    seed_fields = ["id", "workflow", "workflow_version", "current_step", "status", "context", "step_configs",
                   "active_steps", "completed_steps", "runtime_metadata", "telemetry_metadata",
                   "telemetry_start_time", "execution_history"]
    fields = [f.name for f in dataclasses.fields(Instance)]
    assert fields[: len(seed_fields)] == seed_fields
    assert Instance(id="x", workflow=OrderFlow).workflow_version == 1


@pytest.mark.parametrize("version", [0, -1])
def test_new_rejects_non_positive_version(version: int) -> None:
    with pytest.raises(ValueError, match="'version'"):
        Instance.new(OrderFlow, version, {}, "orderid::1")


@pytest.mark.parametrize("version", [1.0, "1", None, True])
def test_new_rejects_non_int_version(version: object) -> None:
    with pytest.raises(TypeError, match="'version'"):
        Instance.new(OrderFlow, version, {}, "orderid::1")  # type: ignore[arg-type]


@pytest.mark.parametrize("context", [None, [], "order", [("a", 1)]])
def test_new_rejects_non_dict_context(context: object) -> None:
    with pytest.raises(TypeError, match="'context'"):
        Instance.new(OrderFlow, 1, context, "orderid::1")  # type: ignore[arg-type]


def test_new_rejects_empty_id() -> None:
    with pytest.raises(ValueError, match="'id'"):
        Instance.new(OrderFlow, 1, {}, "")


@pytest.mark.parametrize("id", [None, 123, b"orderid::1"])
def test_new_rejects_non_str_id(id: object) -> None:
    with pytest.raises(TypeError, match="'id'"):
        Instance.new(OrderFlow, 1, {}, id)  # type: ignore[arg-type]


def test_new_rejects_missing_workflow() -> None:
    with pytest.raises(TypeError, match="'workflow'"):
        Instance.new(None, 1, {}, "orderid::1")  # type: ignore[arg-type]


def test_context_fields() -> None:
    context = Context({"a": 1}, {"validate_order": {"ok": True}})
    assert context.initial == {"a": 1}
    assert context.steps == {"validate_order": {"ok": True}}
    assert context.to_dict() == {"initial": {"a": 1}, "steps": {"validate_order": {"ok": True}}}
    assert Context().initial == {} and Context().steps == {}


def test_execution_entry_positional_and_defaults() -> None:
    entry = ExecutionEntry(ValidateOrder, "valid", T0, {"item_count": 2})
    assert entry.step_ref is ValidateOrder
    assert entry.event == "valid"
    assert entry.timestamp == T0
    assert entry.context_updates == {"item_count": 2}
    assert entry.kind == "completed"
    assert entry.attempt == 1
    assert entry.error is None
    assert entry.duration is None
    assert entry.step_name == "tests.core.helpers.ValidateOrder"
    assert ExecutionEntry("some.Step", None, T0).step_name == "some.Step"
    assert ExecutionEntry(None, None, T0).context_updates is None


@pytest.mark.parametrize(("name", "key"), [("ValidateOrder", "validate_order"), ("HTTPCall", "http_call"),
                                           ("Step2Go", "step2_go"), ("done", "done")])
def test_snake_case(name: str, key: str) -> None:
    assert snake_case(name) == key


def test_public_names_importable_from_core_and_top_level() -> None:
    public = ["Step", "Workflow", "VersionedWorkflow", "Ok", "Async", "Error", "Retry", "Unique", "route",
              "Done", "Wait", "WaitForEvent", "Debug", "Instance", "Context", "ExecutionEntry"]
    for name in public:
        assert getattr(hephaestus_django, name) is getattr(core, name)
    with pytest.raises(AttributeError):
        hephaestus_django.NoSuchName  # noqa: B018


def test_exceptions_hierarchy() -> None:
    from hephaestus_django import exceptions

    names = ["WorkflowDefinitionError", "InstanceNotFound", "AlreadyRunning", "InvalidContext", "NotWaiting",
             "InvalidEvent", "NotCancellable", "NotRetryable", "UnknownWorkflow"]
    for name in names:
        assert issubclass(getattr(exceptions, name), exceptions.HephaestusError)
    assert issubclass(exceptions.InvalidContext, ValueError)
