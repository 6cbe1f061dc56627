"""Pause/unpause and migration to another version, in the core (SPEC §10)."""

from __future__ import annotations

from typing import Any

import pytest

from hephaestus_django.core import (
    Done,
    Error,
    MigrationError,
    NotPausable,
    NotPaused,
    Ok,
    Retry,
    Status,
    Unique,
    VersionedWorkflow,
    Wait,
    WaitForEvent,
    Workflow,
)
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.ports import CLAIMED
from hephaestus_django.core.runner import Mode, Runner
from tests.core.helpers import CALLS, FrozenClock, history, make_step, stored_timers


def gated() -> tuple[type[Workflow], type, type]:
    gate = type("Gate", (WaitForEvent,), {})
    after = make_step("After")
    flow = type("Gated", (Workflow,), {"unique": Unique(key="gt"), "start_step": gate,
                                       "transitions": {(gate, "received"): after, (after, "ok"): Done}})
    return flow, gate, after


def test_pause_and_unpause_a_waiting_instance(service: Runner) -> None:
    flow, gate, after = gated()
    service.start_instance(flow, {}, id="gt::1")
    instance = service.pause("gt::1")
    assert instance.status == Status.PAUSED
    assert history(instance)[-1] == ("paused", None, None)  # instance level: no step
    # an event is taken while paused, but the next step waits for unpause
    instance = service.resume("gt::1", "received")
    assert instance.status == Status.PAUSED
    assert instance.active_steps == {after}
    assert CALLS == []
    instance = service.unpause("gt::1")
    assert instance.status == Status.COMPLETED
    assert CALLS == ["After"]
    assert [k for k, _, _ in history(instance)] == ["paused", "paused", "resumed", "unpaused", "completed",
                                                    "completed"]


def test_unpause_restores_the_previous_status(service: Runner) -> None:
    flow, gate, after = gated()
    service.start_instance(flow, {}, id="gt::2")
    service.pause("gt::2")
    instance = service.unpause("gt::2")
    assert instance.status == Status.WAITING
    assert history(instance)[-1] == ("unpaused", None, None)


def test_pause_and_unpause_errors(service: Runner) -> None:
    flow, gate, after = gated()
    service.start_instance(flow, {}, id="gt::3")
    with pytest.raises(NotPaused, match="instance gt::3 is waiting, not paused"):
        service.unpause("gt::3")
    service.pause("gt::3")
    with pytest.raises(NotPausable, match="instance gt::3 is paused; only running and waiting instances"):
        service.pause("gt::3")
    service.cancel("gt::3")  # a paused instance can be cancelled
    with pytest.raises(NotPausable, match="is cancelled"):
        service.pause("gt::3")
    assert service.get("gt::3").status == Status.CANCELLED


def test_no_timer_fires_while_paused(service: Runner, storage: MemoryStorage, frozen: FrozenClock) -> None:
    after = make_step("After")
    flow = type("Sleeper", (Workflow,), {"unique": Unique(key="sl"), "start_step": (Wait, {"duration": 60}),
                                         "transitions": {(Wait, "timeout"): after, (after, "ok"): Done}})
    service.start_instance(flow, {}, id="sl::1")
    service.pause("sl::1")
    frozen.advance(3600)
    assert service.fire_due_timers() == 0
    assert len(stored_timers(storage)) == 1  # kept for unpause
    assert service.get("sl::1").status == Status.PAUSED
    instance = service.unpause("sl::1")  # fires the timer that fell due meanwhile
    assert instance.status == Status.COMPLETED
    assert stored_timers(storage) == []
    assert [k for k, _, _ in history(instance)] == ["paused", "paused", "unpaused", "timer_fired", "completed",
                                                    "completed"]


def test_a_retry_falling_due_while_paused_keeps_its_attempt(service: Runner, storage: MemoryStorage,
                                                            frozen: FrozenClock) -> None:
    seen: list[int] = []

    def flaky(self: Any, instance: Any, config: Any, context: Any) -> Any:
        seen.append(1)
        return Error("again") if len(seen) < 3 else "ok"

    step = make_step("Flaky", run=flaky, retry=Retry(max_attempts=3, backoff="constant", base=10))
    flow = type("Flaky", (Workflow,), {"unique": Unique(key="fl"), "start_step": step,
                                       "transitions": {(step, "ok"): Done}})
    service.start_instance(flow, {}, id="fl::1")
    service.pause("fl::1")
    frozen.advance(10)
    assert service.fire_due_timers() == 0
    assert service.unpause("fl::1").status == Status.RUNNING  # attempt 2 ran at unpause and failed
    frozen.advance(10)
    assert service.fire_due_timers() == 1
    instance = service.get("fl::1")
    assert instance.status == Status.COMPLETED
    assert [(e.kind, e.attempt) for e in instance.execution_history if e.step_ref is step] == [
        ("retrying", 1), ("retrying", 2), ("completed", 3)]


# ---- migration ------------------------------------------------------------------------------------------
def versions() -> dict[str, Any]:
    a = make_step("A")
    gate = type("MGate", (WaitForEvent,), {})
    b1 = make_step("B1")
    b2 = make_step("B2", step_key="b1")
    c = make_step("C")
    v1 = type("MigV1", (Workflow,), {"unique": Unique(key="mig"), "version": 1, "start_step": a, "transitions": {
        (a, "ok"): gate, (gate, "received"): b1, (b1, "ok"): Done}})
    v2 = type("MigV2", (Workflow,), {"unique": Unique(key="mig"), "version": 2, "start_step": a, "transitions": {
        (a, "ok"): gate, (gate, "received"): c, (c, "ok"): Done}})
    v3 = type("MigV3", (Workflow,), {"unique": Unique(key="mig"), "version": 3, "start_step": a, "transitions": {
        (a, "ok"): b2, (b2, "ok"): Done}})
    umbrella = type("Mig", (VersionedWorkflow,), {"unique": Unique(key="mig"), "versions": {1: v1, 2: v2, 3: v3},
                                                  "current": 1})
    return {"flow": umbrella, "A": a, "Gate": gate, "B1": b1, "B2": b2, "C": c}


def test_migrate_a_waiting_instance_to_the_new_graph(service: Runner) -> None:
    m = versions()
    service.start_instance(m["flow"], {}, id="mig::1")
    instance = service.migrate("mig::1", to_version=2)
    assert instance.workflow_version == 2
    assert instance.status == Status.WAITING
    entry = instance.execution_history[-1]
    assert (entry.kind, entry.step_ref, entry.context_updates) == ("migrated", None,
                                                                   {"from_version": 1, "to_version": 2})
    instance = service.resume("mig::1", "received")
    assert instance.status == Status.COMPLETED
    assert CALLS == ["A", "C"]  # goes on under version 2's graph


def test_migration_error_lists_unmatched_steps_and_changes_nothing(service: Runner) -> None:
    m = versions()
    service.start_instance(m["flow"], {}, id="mig::2")
    before = service.get("mig::2")
    with pytest.raises(MigrationError) as caught:
        service.migrate("mig::2", to_version=3)
    assert caught.value.unmatched == [m["Gate"].registry_name()]
    assert f"version 3 has no step {m['Gate'].registry_name()}" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    after = service.get("mig::2")
    assert (after.workflow_version, after.status, len(after.execution_history)) == (1, Status.WAITING,
                                                                                   len(before.execution_history))


def test_step_map_maps_missing_steps(service: Runner) -> None:
    m = versions()
    service.start_instance(m["flow"], {}, id="mig::3")
    instance = service.migrate("mig::3", to_version=3, step_map={m["Gate"].registry_name(): m["B2"].registry_name()})
    assert instance.workflow_version == 3
    assert instance.execution_history[-1].context_updates["step_map"] == {
        m["Gate"].registry_name(): m["B2"].registry_name()}
    assert m["B2"] in instance.active_steps


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"to_version": 9}, "has no version 9"),
    ({"to_version": 1}, "already at version 1"),
    ({"to_version": "2"}, "'to_version' must be an int"),
    ({"to_version": 2, "step_map": ["x"]}, "'step_map' must be a dict"),
    ({"to_version": 2, "step_map": {"nope": "x"}}, "'nope' is not a step of version 1"),
])
def test_migrate_argument_errors(service: Runner, kwargs: dict[str, Any], message: str) -> None:
    m = versions()
    service.start_instance(m["flow"], {}, id="mig::4")
    with pytest.raises(MigrationError, match=message):
        service.migrate("mig::4", **kwargs)


def test_only_active_instances_migrate(service: Runner) -> None:
    m = versions()
    service.start_instance(m["flow"], {}, id="mig::5")
    service.cancel("mig::5")
    with pytest.raises(MigrationError, match="is cancelled; only running, waiting and paused"):
        service.migrate("mig::5", to_version=2)
    service.start_instance(m["flow"], {}, id="mig::6")
    service.pause("mig::6")
    assert service.migrate("mig::6", to_version=2).status == Status.PAUSED


def test_migrated_steps_keep_their_results_under_the_new_context_key(service: Runner) -> None:
    a = make_step("KA", run=lambda self, i, c, ctx: Ok("ok", {"x": 1}))
    a2 = make_step("KA2", step_key="renamed")
    gate = type("KGate", (WaitForEvent,), {})
    v1 = type("KV1", (Workflow,), {"unique": Unique(key="kv"), "version": 1, "start_step": a, "transitions": {
        (a, "ok"): gate, (gate, "received"): Done}})
    v2 = type("KV2", (Workflow,), {"unique": Unique(key="kv"), "version": 2, "start_step": a2, "transitions": {
        (a2, "ok"): gate, (gate, "received"): Done}})
    flow = type("KV", (VersionedWorkflow,), {"unique": Unique(key="kv"), "versions": {1: v1, 2: v2}, "current": 1})
    service.start_instance(flow, {}, id="kv::1")
    instance = service.migrate("kv::1", to_version=2, step_map={a: a2})
    assert instance.context.steps == {"renamed": {"x": 1}}
    assert instance.completed_steps == {a2}


def test_a_step_executing_when_paused_records_its_result_and_nothing_starts(service: Runner) -> None:
    from hephaestus_django.core import engine

    first = make_step("First", run=lambda self, i, c, ctx: Ok("ok", {"done": True}))
    second = make_step("Second")
    flow = type("TwoSteps", (Workflow,), {"unique": Unique(key="two"), "start_step": first,
                                          "transitions": {(first, "ok"): second, (second, "ok"): Done}})

    class Holding(Runner):
        def caller_mode(self) -> Mode:  # a queue: nothing runs at start
            return Mode.queue()

    holding = Holding(service.storage)
    holding.start_instance(flow, {}, id="two::1")
    [run] = service.storage.runs()
    assert service.storage.claim(run.token, service.worker_id, load=False)[0] == CLAIMED
    snapshot = service.get("two::1")
    outcome = engine.execute_step(snapshot, first)  # a worker is executing First ...
    service.pause("two::1")  # ... when an operator pauses the instance
    assert [r.state for r in service.storage.runs()] == [CLAIMED]  # a pause keeps the runs
    instance, next_steps = service.apply(snapshot, first, outcome, 1)
    assert instance is not None and next_steps == []  # recorded; Second is not started
    assert service.storage.runs() == []  # First's run ended with its outcome; Second has none yet
    instance = service.get("two::1")
    assert instance.status == Status.PAUSED and instance.paused_from == Status.RUNNING
    assert instance.context.steps["first"] == {"done": True}
    assert instance.active_steps == {second}
    assert CALLS == ["First"]
    assert service.unpause("two::1").status == Status.COMPLETED
    assert CALLS == ["First", "Second"]
    assert service.storage.runs() == []
