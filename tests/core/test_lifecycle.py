"""Cancel, and calls that do not apply: NotCancellable, NotWaiting, InvalidEvent (SPEC §2, §2.1)."""

from __future__ import annotations

from typing import Any

import pytest

from hephaestus_django.core import (
    Done,
    InvalidContext,
    InvalidEvent,
    NotCancellable,
    NotWaiting,
    Retry,
    Unique,
    Wait,
    WaitForEvent,
    Workflow,
    telemetry,
)
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner
from tests.core.helpers import CALLS, FrozenClock, history, make_step


def _waiting_flow() -> type[Workflow]:
    After = make_step("After")

    class Waiting(Workflow):
        unique = Unique(key="w")
        start_step = (WaitForEvent, {"event_name": "go", "timeout": 60})
        transitions = {(WaitForEvent, "received"): After, (WaitForEvent, "timeout"): After,
                       (After, "ok"): Done}

    return Waiting


def _snapshot(instance: Any) -> tuple[Any, ...]:
    return (instance.status, history(instance), set(instance.active_steps), dict(instance.waiting_steps),
            set(instance.completed_steps), dict(instance.step_configs), instance.error)


def test_cancel_waiting_instance(service: Runner, frozen: FrozenClock) -> None:
    service.start_instance(_waiting_flow(), {}, id="w::1")
    instance = service.cancel("w::1")
    assert instance.status == "cancelled"
    assert instance.active_steps == set()
    assert instance.waiting_steps == {}
    assert history(instance) == [("paused", "WaitForEvent", None), ("cancelled", "WaitForEvent", None)]
    assert instance.finished_at is not None
    # its timer fires later and does nothing
    frozen.advance(seconds=120)
    assert service.fire_due_timers() == 0
    assert service.get("w::1").status == "cancelled"
    assert CALLS == []
    with pytest.raises(NotWaiting):
        service.resume("w::1", "go")


def test_cancel_during_retry_backoff_stops_the_retry(service: Runner, frozen: FrozenClock) -> None:
    Broken = make_step("Broken", run=lambda self, i, c, ctx: 1 / 0, retry=Retry(max_attempts=5, base=1.0))

    class Backoff(Workflow):
        unique = Unique(key="b")
        start_step = Broken
        transitions = {(Broken, "ok"): Done}

    assert service.start_instance(Backoff, {}, id="b::1").status == "running"
    assert service.cancel("b::1").status == "cancelled"
    frozen.advance(seconds=60)
    assert service.run_until_idle() == 0
    assert CALLS == ["Broken"]
    assert service.get("b::1").status == "cancelled"


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled"])
def test_not_cancellable(service: Runner, state: str) -> None:
    Boom = make_step("Boom", ("ok",), run=lambda self, i, c, ctx: "ok" if ctx.initial["ok"] else 1 / 0)

    class Finishing(Workflow):
        unique = Unique(key="n")
        start_step = Boom
        transitions = {(Boom, "ok"): Done}

    service.start_instance(Finishing, {"ok": state == "completed"}, id="n::1")
    if state == "cancelled":
        service.start_instance(_waiting_flow(), {}, id="n::2")
        service.cancel("n::2")
    id = "n::2" if state == "cancelled" else "n::1"
    before = service.get(id)
    assert before.status == state
    with pytest.raises(NotCancellable, match=state):
        service.cancel(id)
    assert _snapshot(service.get(id)) == _snapshot(before)


@pytest.mark.parametrize("state", ["completed", "failed", "running"])
def test_resume_without_waiting_step_is_not_waiting(service: Runner, state: str) -> None:
    def run(self: Any, instance: Any, config: Any, context: Any) -> Any:
        if state == "completed":
            return "ok"
        raise RuntimeError("down")

    Step1 = make_step("Step1", run=run, retry=Retry(max_attempts=2, base=5.0) if state == "running" else None)

    class NoWait(Workflow):
        unique = Unique(key="nw")
        start_step = Step1
        transitions = {(Step1, "ok"): Done}

    service.start_instance(NoWait, {}, id="nw::1")
    before = service.get("nw::1")
    assert before.status == state
    with pytest.raises(NotWaiting):
        service.resume("nw::1", "ok")
    assert _snapshot(service.get("nw::1")) == _snapshot(before)


def test_resume_with_undeclared_event_is_invalid_and_changes_nothing(service: Runner) -> None:
    service.start_instance(_waiting_flow(), {}, id="w::1")
    before = service.get("w::1")
    for event in ("nope", "", None, "done"):
        with pytest.raises(InvalidEvent) as excinfo:
            service.resume("w::1", event)
        assert excinfo.value.field == "event"
    with pytest.raises(InvalidEvent):
        service.resume("w::1", "nope", step=WaitForEvent)
    assert _snapshot(service.get("w::1")) == _snapshot(before)
    assert service.resume("w::1", "go").status == "completed"


def test_invalid_event_names_the_event(service: Runner) -> None:
    class Sleepy(Workflow):
        unique = Unique(key="s")
        start_step = (Wait, {"duration": 5})
        transitions = {(Wait, "timeout"): Done}

    service.start_instance(Sleepy, {}, id="s::1")
    with pytest.raises(InvalidEvent, match="'received'"):
        service.resume("s::1", "received")


def test_unknown_id(service: Runner) -> None:
    from hephaestus_django.core import InstanceNotFound

    for call in (lambda: service.resume("x::1", "go"), lambda: service.cancel("x::1"),
                 lambda: service.retry("x::1"), lambda: service.get("x::1")):
        with pytest.raises(InstanceNotFound):
            call()


@pytest.mark.parametrize("context", [{"when": object()}, {"s": {1, 2}}, {"f": float("nan")}, ["not", "dict"]])
def test_non_json_context_is_rejected_and_nothing_is_written(service: Runner, context: Any) -> None:
    with pytest.raises(InvalidContext) as excinfo:
        service.start_instance(_waiting_flow(), context, id="w::1")
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.field == "context"
    assert service.list() == []


def test_start_argument_errors(service: Runner) -> None:
    flow = _waiting_flow()
    with pytest.raises(ValueError, match="'id'"):
        service.start_instance(flow, {}, id="")
    with pytest.raises(ValueError, match="'telemetry_metadata'"):
        service.start_instance(flow, {}, id="w::1", telemetry_metadata=["x"])  # type: ignore[arg-type]
    from hephaestus_django.core import UnknownWorkflow

    with pytest.raises(UnknownWorkflow):
        service.start_instance("no.such.Workflow", {}, id="w::1")
    assert service.list() == []


def test_start_by_registry_name(service: Runner) -> None:
    flow = _waiting_flow()
    instance = service.start_instance(flow.name, {}, id="w::1", telemetry_metadata={"tenant": "acme"})
    assert instance.workflow is flow
    assert instance.telemetry_metadata == {"tenant": "acme"}
    assert instance.started_at is not None and instance.telemetry_start_time is not None


def test_caller_mutating_its_context_after_start_changes_nothing(service: Runner) -> None:
    context = {"order": {"items": [1, 2]}}
    service.start_instance(_waiting_flow(), context, id="w::1")
    context["order"]["items"].append(3)
    context["extra"] = True
    assert service.get("w::1").context.initial == {"order": {"items": [1, 2]}}


def test_telemetry_events_carry_instance_metadata(service: Runner) -> None:
    events: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = []

    def listener(name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        events.append((name, workflow, measurements, metadata))

    def broken(*args: Any) -> None:
        raise RuntimeError("listener bug")

    flow = _waiting_flow()
    telemetry.add_listener(broken)
    telemetry.add_listener(listener)
    try:
        service.start_instance(flow, {"a": 1}, id="w::1", telemetry_metadata={"tenant": "acme"})
        service.resume("w::1", "go")
    finally:
        telemetry.remove_listener(listener)
        telemetry.remove_listener(broken)
    assert service.get("w::1").status == "completed"
    emitted = [name for name, *_ in events]
    for name in ("workflow_started", "step_started", "step_async", "step_resumed", "step_stopped",
                 "workflow_transition", "engine_advanced", "workflow_stopped"):
        assert name in emitted
    for _, workflow, _, metadata in events:
        assert workflow is flow
        assert metadata["instance_id"] == "w::1"
        assert metadata["workflow"] == flow.name
        assert metadata["workflow_version"] == 1
        assert metadata["tenant"] == "acme"
    started = next(m for n, _, _, m in events if n == "workflow_started")
    assert started["context_keys"] == ["a"]
    resumed = next(m for n, _, _, m in events if n == "step_resumed")
    assert (resumed["resume_event"], resumed["source"]) == ("received", "external")


def test_runner_initialized_telemetry() -> None:
    events: list[tuple[str, Any, dict[str, Any]]] = []

    def listener(name: str, workflow: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        events.append((name, workflow, metadata))

    telemetry.add_listener(listener)
    try:
        Runner(MemoryStorage())
    finally:
        telemetry.remove_listener(listener)
    metadata = {"name": "Runner", "runner": "memory", "storage": "memory"}
    assert events == [("runner_initialized", None, metadata)]


def test_cancel_with_a_pending_join(service: Runner) -> None:
    from tests.core.helpers import Approval

    Split = make_step("Split", ("go",))
    Join = make_step("Join")

    class Joined(Workflow):
        unique = Unique(key="j")
        start_step = Split
        transitions = {(Split, "go"): [Approval, (Wait, {"duration": 1})],
                       (Approval, "received"): (Join, {"x": 1}), (Wait, "timeout"): (Join, {"x": 1}),
                       (Join, "ok"): Done}

    service.start_instance(Joined, {}, id="j::1")
    instance = service.resume("j::1", "received")
    assert {s.__name__ for s in instance.pending_joins} == {"Join"}
    instance = service.cancel("j::1")
    assert instance.status == "cancelled"
    assert instance.pending_joins == set()
    assert instance.active_steps == set()
    assert Join not in instance.step_configs
    assert service.run_until_idle() == 0
    assert "Join" not in CALLS


def test_unknown_list_filter(service: Runner) -> None:
    with pytest.raises(TypeError, match="bogus"):
        service.list(bogus=1)
