"""Wait and WaitForEvent: pausing, timers, external events, parallel waits (SPEC §1.3, §2, §2.1, §4)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hephaestus_django.core import Done, InvalidEvent, NotWaiting, Unique, Wait, WaitForEvent, Workflow
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner
from tests.core.helpers import CALLS, T0, Approval, FrozenClock, completed, history, make_step, names, stored_timers


def test_wait_pauses_then_timer_fires(service: Runner, storage: MemoryStorage, frozen: FrozenClock) -> None:
    After = make_step("After")

    class Sleepy(Workflow):
        unique = Unique(key="s")
        start_step = (Wait, {"duration": 2, "unit": "hour"})
        transitions = {(Wait, "timeout"): After, (After, "ok"): Done}

    instance = service.start_instance(Sleepy, {}, id="s::1")
    assert instance.status == "waiting"
    assert instance.active_steps == {Wait}
    assert instance.current_step is Wait
    assert history(instance) == [("paused", "Wait", None)]
    [timer] = stored_timers(storage)
    assert timer.due == T0 + timedelta(hours=2)
    assert timer.purpose == "wake"
    assert timer.step == Wait.registry_name()

    assert service.fire_due_timers() == 0
    frozen.advance(hours=2, seconds=-1)
    assert service.fire_due_timers() == 0
    assert service.get("s::1").status == "waiting"
    frozen.advance(seconds=1)
    assert service.fire_due_timers() == 1
    instance = service.get("s::1")
    assert instance.status == "completed"
    assert CALLS == ["After"]
    assert history(instance)[1:] == [("timer_fired", "Wait", "timeout"), ("completed", "After", "ok"),
                                     ("completed", "Done", "done")]
    assert instance.execution_history[1].timestamp == T0 + timedelta(hours=2)
    assert instance.execution_history[1].duration == pytest.approx(7200)
    assert stored_timers(storage) == []
    assert service.fire_due_timers() == 0


def test_wait_can_be_resumed_early_and_the_timer_then_does_nothing(service: Runner, storage: MemoryStorage,
                                                                  frozen: FrozenClock) -> None:
    class Sleepy(Workflow):
        unique = Unique(key="s")
        start_step = (Wait, {"duration": 1, "unit": "minute"})
        transitions = {(Wait, "timeout"): Done}

    service.start_instance(Sleepy, {}, id="s::1")
    instance = service.resume("s::1", "timeout")
    assert instance.status == "completed"
    assert history(instance)[1] == ("resumed", "Wait", "timeout")
    frozen.advance(minutes=5)
    assert service.fire_due_timers() == 0
    after = service.get("s::1")
    assert len(after.execution_history) == len(instance.execution_history)


@pytest.mark.parametrize("event", ["received", "payment_confirmed"])
def test_wait_for_event_resumed(service: Runner, event: str) -> None:
    Confirmed = make_step("Confirmed")

    class Pay(Workflow):
        unique = Unique(key="p")
        start_step = (WaitForEvent, {"event_name": "payment_confirmed"})
        transitions = {(WaitForEvent, "received"): Confirmed, (Confirmed, "ok"): Done}

    instance = service.start_instance(Pay, {}, id="p::1")
    assert instance.status == "waiting"
    assert instance.active_steps == {WaitForEvent}
    assert instance.waiting_steps.keys() == {WaitForEvent}
    instance = service.resume("p::1", event)
    assert instance.status == "completed"
    assert history(instance) == [("paused", "WaitForEvent", None), ("resumed", "WaitForEvent", "received"),
                                 ("completed", "Confirmed", "ok"), ("completed", "Done", "done")]


def test_wait_for_event_timeout_takes_the_timeout_path(service: Runner, storage: MemoryStorage,
                                                       frozen: FrozenClock) -> None:
    Got = make_step("Got")
    Expired = make_step("Expired")

    class Pay(Workflow):
        unique = Unique(key="p")
        start_step = (WaitForEvent, {"event_name": "paid", "timeout": 60})
        transitions = {(WaitForEvent, "received"): Got, (WaitForEvent, "timeout"): Expired,
                       (Got, "ok"): Done, (Expired, "ok"): Done}

    service.start_instance(Pay, {}, id="p::1")
    [timer] = stored_timers(storage)
    assert timer.due == T0 + timedelta(seconds=60)
    frozen.advance(seconds=59)
    assert service.fire_due_timers() == 0
    frozen.advance(seconds=1)
    assert service.fire_due_timers() == 1
    instance = service.get("p::1")
    assert instance.status == "completed"
    assert CALLS == ["Expired"]
    assert history(instance)[1] == ("timer_fired", "WaitForEvent", "timeout")

    # resumed in time: the timeout path is not taken, and the timer later does nothing
    CALLS.clear()
    service.start_instance(Pay, {}, id="p::2")
    frozen.advance(seconds=30)
    assert service.resume("p::2", "paid").status == "completed"
    frozen.advance(seconds=60)
    assert service.fire_due_timers() == 0
    assert CALLS == ["Got"]
    assert completed(service.get("p::2")) == ["WaitForEvent", "Got", "Done"]


def test_wait_for_event_without_timeout_schedules_no_timer(service: Runner, storage: MemoryStorage) -> None:
    class Pay(Workflow):
        unique = Unique(key="p")
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    service.start_instance(Pay, {}, id="p::1")
    assert stored_timers(storage) == []
    assert service.resume("p::1", "received").status == "completed"


class Shipment(WaitForEvent):
    pass


def _two_waits() -> type[Workflow]:
    Split = make_step("Split", ("go",))
    Join = make_step("Join")

    class TwoWaits(Workflow):
        unique = Unique(key="tw")
        start_step = Split
        transitions = {
            (Split, "go"): [(Approval, {"event_name": "approved"}), (Shipment, {"event_name": "shipped"})],
            (Approval, "received"): Join,
            (Shipment, "received"): Join,
            (Join, "ok"): Done,
        }

    return TwoWaits


@pytest.mark.parametrize("by", ["class", "name"])
def test_two_branches_waiting_resumed_one_by_one(service: Runner, by: str) -> None:
    workflow = _two_waits()
    instance = service.start_instance(workflow, {}, id="tw::1")
    assert instance.status == "waiting"
    assert names(instance.active_steps) == {"Approval", "Shipment"}
    assert names(instance.waiting_steps) == {"Approval", "Shipment"}
    assert instance.current_step is Shipment  # the step that paused last

    with pytest.raises(InvalidEvent) as excinfo:
        service.resume("tw::1", "received")
    assert "Approval" in str(excinfo.value) and "Shipment" in str(excinfo.value)
    assert excinfo.value.field == "event"
    unchanged = service.get("tw::1")
    assert names(unchanged.waiting_steps) == {"Approval", "Shipment"}
    assert len(unchanged.execution_history) == len(instance.execution_history)

    first = Approval if by == "class" else Approval.registry_name()
    instance = service.resume("tw::1", "received", step=first)
    assert instance.status == "waiting"
    assert names(instance.waiting_steps) == {"Shipment"}
    assert "Join" not in CALLS

    with pytest.raises(NotWaiting):
        service.resume("tw::1", "received", step=first)

    second = Shipment if by == "class" else Shipment.registry_name()
    instance = service.resume("tw::1", "received", step=second)
    assert instance.status == "completed"
    assert CALLS == ["Split", "Join"]
    assert completed(instance) == ["Split", "Approval", "Shipment", "Join", "Done"]


def test_two_branches_resumed_by_their_event_names(service: Runner) -> None:
    workflow = _two_waits()
    service.start_instance(workflow, {}, id="tw::1")
    instance = service.resume("tw::1", "shipped")
    assert names(instance.waiting_steps) == {"Approval"}
    instance = service.resume("tw::1", "approved")
    assert instance.status == "completed"
    assert [h for h in history(instance) if h[0] == "resumed"] == [("resumed", "Shipment", "received"),
                                                                  ("resumed", "Approval", "received")]


def test_step_that_is_not_in_the_workflow(service: Runner) -> None:
    workflow = _two_waits()
    service.start_instance(workflow, {}, id="tw::1")
    with pytest.raises(InvalidEvent) as excinfo:
        service.resume("tw::1", "received", step="no.such.Step")
    assert excinfo.value.field == "step"
    with pytest.raises(InvalidEvent):
        service.resume("tw::1", "received", step=WaitForEvent)


def test_status_running_while_a_branch_runs_and_another_waits() -> None:
    """``waiting`` only when no step runs: seen from inside the running branch."""
    seen: list[str] = []
    storage = MemoryStorage()
    service = Runner(storage)
    Split = make_step("Split", ("go",))

    def look(self, instance, config, context):  # type: ignore[no-untyped-def]
        seen.append(str(storage.load(instance.id).status))
        return "ok"

    Look = make_step("Look", run=look)
    Join = make_step("Join")

    class Mixed(Workflow):
        unique = Unique(key="m")
        start_step = Split
        transitions = {(Split, "go"): [Approval, Look], (Approval, "received"): Join, (Look, "ok"): Join,
                       (Join, "ok"): Done}

    instance = service.start_instance(Mixed, {}, id="m::1")
    assert seen == ["running"]
    assert instance.status == "waiting"


def test_timers_follow_the_engine_clock() -> None:
    """Timers are due by the engine's clock, not the wall clock."""
    from hephaestus_django.core import clock

    frozen = FrozenClock(T0 - timedelta(days=3650))
    clock.set_clock(frozen.now)
    service = Runner(MemoryStorage())

    class Sleepy(Workflow):
        unique = Unique(key="s")
        start_step = (Wait, {"duration": 1, "unit": "day"})
        transitions = {(Wait, "timeout"): Done}

    service.start_instance(Sleepy, {}, id="s::1")
    assert service.fire_due_timers() == 0  # ten years in the past: not due although the real now is later
    frozen.advance(days=1)
    assert service.run_until_idle() == 1
    assert service.get("s::1").status == "completed"
