"""The engine's pure state transitions and the effects they return (no storage involved)."""

from __future__ import annotations

import pytest

from hephaestus_django.core import Done, Instance, Unique, Wait, WaitForEvent, Workflow, engine
from hephaestus_django.core.base import StepOutcome
from hephaestus_django.core.effects import RETRY, WAKE, ExecuteStep, ScheduleTimer
from tests.core.helpers import CALLS, history, make_step

J = make_step("J", ("ok",))


def _flow() -> tuple[type[Workflow], type, type]:
    A = make_step("A", ("ok",))
    B = make_step("B", ("ok",))

    class Pure(Workflow):
        unique = Unique(key="p")
        start_step = (A, {"a": 1})
        transitions = {(A, "ok"): [B, (Wait, {"duration": 5})], (B, "ok"): J, (Wait, "timeout"): J,
                       (J, "ok"): Done}

    return Pure, A, B


def test_start_activates_the_start_step() -> None:
    flow, A, _ = _flow()
    instance = Instance.new(flow, 1, {}, "p::1")
    effects = engine.start(instance)
    assert effects == [ExecuteStep(A, 1)]
    assert instance.status == "running"
    assert instance.active_steps == {A}
    assert instance.step_configs == {A: {"a": 1}}
    assert instance.started_at is not None
    with pytest.raises(ValueError, match="not pending"):
        engine.start(instance)


def test_outcomes_produce_effects_and_apply_once() -> None:
    flow, A, B = _flow()
    instance = Instance.new(flow, 1, {}, "p::1")
    engine.start(instance)
    outcome = engine.execute_step(instance, A)
    assert outcome.result == "ok" and outcome.error is None
    assert CALLS == ["A"]
    effects = engine.apply_outcome(instance, A, outcome)
    assert effects == [ExecuteStep(B, 1), ExecuteStep(Wait, 1)]
    assert instance.active_steps == {B, Wait}
    assert instance.step_configs == {B: {}, Wait: {"duration": 5}}
    # the same outcome again (a redelivered task) changes nothing
    before = history(instance)
    assert engine.apply_outcome(instance, A, outcome) is None
    assert history(instance) == before

    wait_effects = engine.apply_outcome(instance, Wait, engine.execute_step(instance, Wait))
    assert wait_effects == [ScheduleTimer(Wait, WAKE, 5.0, 1)]
    assert instance.status == "running"  # B still runs
    assert engine.apply_outcome(instance, B, StepOutcome(result="ok")) == []
    assert instance.status == "waiting"
    assert instance.pending_joins == {J}
    assert engine.fire_timer(instance, Wait.registry_name(), RETRY) is None  # wrong purpose
    assert engine.fire_timer(instance, "no.such.Step", WAKE) is None
    effects = engine.fire_timer(instance, Wait.registry_name(), WAKE)
    assert effects == [ExecuteStep(J, 1)]
    assert instance.pending_joins == set()
    assert engine.fire_timer(instance, Wait.registry_name(), WAKE) is None  # moved on
    # Done completes at once, in the same state change as the step that led to it
    assert engine.apply_outcome(instance, J, engine.execute_step(instance, J)) == []
    assert instance.status == "completed"
    assert engine.apply_outcome(instance, Done, engine.execute_step(instance, Done)) is None
    assert engine.completed_path(instance) == [s.registry_name() for s in (A, B, Wait, J, Done)]


def test_cancel_pending_instance() -> None:
    flow, _, _ = _flow()
    instance = Instance.new(flow, 1, {}, "p::1")
    engine.cancel(instance)
    assert instance.status == "cancelled"
    assert history(instance) == [("cancelled", None, None)]
    assert instance.execution_history[0].step_name is None


def test_outcome_of_a_step_running_when_cancelled_is_recorded_but_goes_nowhere() -> None:
    flow, A, _ = _flow()
    instance = Instance.new(flow, 1, {}, "p::1")
    engine.start(instance)
    engine.cancel(instance)
    effects = engine.apply_outcome(instance, A, StepOutcome(result="ok"))
    assert effects == []
    assert instance.status == "cancelled"
    assert history(instance) == [("cancelled", None, None), ("completed", "A", "ok")]


def test_find_waiting_step() -> None:
    class Pay(Workflow):
        unique = Unique(key="p")
        start_step = (WaitForEvent, {"event_name": "paid"})
        transitions = {(WaitForEvent, "received"): Done}

    instance = Instance.new(Pay, 1, {}, "p::1")
    engine.start(instance)
    engine.apply_outcome(instance, WaitForEvent, engine.execute_step(instance, WaitForEvent))
    assert engine.find_waiting_step(instance, "paid") == (WaitForEvent, "received")
    assert engine.find_waiting_step(instance, "received", WaitForEvent.registry_name()) == (WaitForEvent,
                                                                                           "received")
