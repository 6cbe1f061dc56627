"""SPEC §9 in the core (in memory): resume data and idempotency keys, child workflows, routes
that fan out to a list of targets."""

from __future__ import annotations

import re
from typing import Any

import pytest

import hephaestus_django
from hephaestus_django.core import (
    Child,
    ChildrenStep,
    Done,
    InvalidContext,
    InvalidEvent,
    NotWaiting,
    Retry,
    Status,
    Unique,
    WaitForEvent,
    Workflow,
    WorkflowDefinitionError,
    route,
)
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner
from tests.core.helpers import CALLS, Approval, completed, history, make_step


# ---- resume data ---------------------------------------------------------------------------------
class Gate(WaitForEvent):
    pass


class Second(WaitForEvent):
    pass


def gate_flow() -> type[Workflow]:
    class GateFlow(Workflow):
        unique = Unique(key="gate")
        start_step = (Gate, {"event_name": "ping"})
        transitions = {(Gate, "received"): (Second, {"event_name": "ping"}), (Second, "received"): Done}

    return GateFlow


def test_resume_data_lands_in_the_step_context_and_the_history(service: Runner) -> None:
    flow = gate_flow()
    service.start_instance(flow, {}, id="gate::1")
    instance = service.resume("gate::1", "ping", data={"charge": "ch_1", "amount": 12.5})
    assert instance.context.steps == {"gate": {"charge": "ch_1", "amount": 12.5}}
    resumed = [e for e in instance.execution_history if e.kind == "resumed"]
    assert [(e.step_name, e.context_updates) for e in resumed] == [(Gate.registry_name(),
                                                                   {"charge": "ch_1", "amount": 12.5})]
    instance = service.resume("gate::1", "ping")  # no data: nothing recorded for Second
    assert instance.status == Status.COMPLETED
    assert "second" not in instance.context.steps
    assert instance.execution_history[-2].context_updates is None


def test_resume_data_is_merged_into_what_the_step_holds(service: Runner) -> None:
    class Holder(WaitForEvent):
        pass

    class Flow(Workflow):
        unique = Unique(key="m")
        start_step = Holder
        transitions = {(Holder, "received"): Done}

    service.start_instance(Flow, {}, id="m::1")
    stored = service.storage.load("m::1", for_update=True)
    stored.context.steps["holder"] = {"kept": 1, "replaced": "old"}
    service.storage.save(stored)
    instance = service.resume("m::1", "received", data={"replaced": "new"})
    assert instance.context.steps["holder"] == {"kept": 1, "replaced": "new"}
    assert instance.execution_history[-2].context_updates == {"replaced": "new"}


@pytest.mark.parametrize(("data", "message"), [
    (["a"], "'data' must be a JSON object (a dict) or None, not list"),
    ("text", "'data' must be a JSON object (a dict) or None, not str"),
    ({"tags": {"a"}}, "data['tags'] is a set, which cannot be stored as JSON"),
    ({"n": float("nan")}, "data['n'] is nan, which JSON cannot represent"),
    ({"s": "a\x00b"}, "data['s'] contains a NUL character"),
])
def test_bad_resume_data_is_refused_and_changes_nothing(service: Runner, data: Any, message: str) -> None:
    service.start_instance(gate_flow(), {}, id="gate::1")
    before = service.get("gate::1")
    with pytest.raises(InvalidContext, match="^" + re.escape(message)) as caught:
        service.resume("gate::1", "ping", data=data)
    assert caught.value.field == "data"
    after = service.get("gate::1")
    assert (after.status, len(after.execution_history), after.revision) == (before.status,
                                                                           len(before.execution_history),
                                                                           before.revision)


# ---- idempotency keys ------------------------------------------------------------------------------
def test_a_redelivered_event_never_resumes_a_later_wait(service: Runner) -> None:
    """The issue's two-wait flow: a duplicate ``ping`` used to complete the second wait."""
    service.start_instance(gate_flow(), {}, id="gate::1")
    first = service.resume("gate::1", "ping", idempotency_key="evt-1")
    assert first.active_steps == {Second}
    again = service.resume("gate::1", "ping", idempotency_key="evt-1")  # the webhook, redelivered
    assert again.status == Status.WAITING
    assert again.active_steps == {Second}
    assert len(again.execution_history) == len(first.execution_history)
    done = service.resume("gate::1", "ping", idempotency_key="evt-2")
    assert done.status == Status.COMPLETED
    # a key already used is a no-op whatever the status now (no NotWaiting for a finished instance)
    late = service.resume("gate::1", "ping", idempotency_key="evt-1")
    assert late.status == Status.COMPLETED
    assert len(late.execution_history) == len(done.execution_history)
    with pytest.raises(NotWaiting):
        service.resume("gate::1", "ping", idempotency_key="evt-3")


def test_a_resume_that_fails_does_not_use_up_its_key(service: Runner) -> None:
    service.start_instance(gate_flow(), {}, id="gate::1")
    with pytest.raises(InvalidEvent):
        service.resume("gate::1", "pong", idempotency_key="evt-1")
    instance = service.resume("gate::1", "ping", idempotency_key="evt-1")
    assert instance.active_steps == {Second}


def test_keys_are_per_instance(service: Runner) -> None:
    flow = gate_flow()
    service.start_instance(flow, {}, id="gate::1")
    service.start_instance(flow, {}, id="gate::2")
    service.resume("gate::1", "ping", idempotency_key="evt-1")
    assert service.resume("gate::2", "ping", idempotency_key="evt-1").active_steps == {Second}


@pytest.mark.parametrize(("key", "message"), [
    (42, "'idempotency_key' must be a str, not int"),
    ("", "'idempotency_key' must be 1 to 255 characters long, not 0"),
    ("k" * 256, "'idempotency_key' must be 1 to 255 characters long, not 256"),
    ("a\x00b", "idempotency_key contains a NUL character"),
])
def test_bad_idempotency_keys_are_refused(service: Runner, key: Any, message: str) -> None:
    service.start_instance(gate_flow(), {}, id="gate::1")
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        service.resume("gate::1", "ping", idempotency_key=key)
    assert service.get("gate::1").active_steps == {Gate}


def test_a_key_of_255_characters_is_fine(service: Runner) -> None:
    service.start_instance(gate_flow(), {}, id="gate::1")
    assert service.resume("gate::1", "ping", idempotency_key="k" * 255).active_steps == {Second}


def test_the_facade_takes_data_and_a_key(facade_service: Runner) -> None:
    flow = gate_flow()
    flow.start("7", {})
    flow.resume("7", "ping", data={"by": "ann"}, idempotency_key="k")
    instance = flow.resume("7", "ping", data={"by": "bob"}, idempotency_key="k")
    assert instance.context.steps == {"gate": {"by": "ann"}}
    assert instance.active_steps == {Second}


# ---- child workflows ----------------------------------------------------------------------------------
class ChildGate(WaitForEvent):
    pass


class ChildWork(WaitForEvent):
    pass


class Parcel(Workflow):
    unique = Unique(key="parcel")
    start_step = ChildGate
    transitions = {(ChildGate, "received"): Done}


class ShipAll(ChildrenStep):
    def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
        CALLS.append("ShipAll")
        return [Child(Parcel, p, context={"parcel": p}) for p in context.initial.get("parcels", [])]


Invoice = make_step("Invoice")
Refund = make_step("Refund")


class OrderWithParcels(Workflow):
    unique = Unique(key="order")
    start_step = ShipAll
    transitions = {(ShipAll, "completed"): Invoice, (ShipAll, "failed"): Refund,
                   (Invoice, "ok"): Done, (Refund, "ok"): Done}


@pytest.fixture
def registered() -> None:
    """Module-level workflows go back into the registry the isolation fixture empties."""
    from hephaestus_django.core import registry

    for workflow in (Parcel, OrderWithParcels):
        registry.register(workflow)


pytestmark = pytest.mark.usefixtures("registered")


def test_children_start_with_the_pause_and_complete_the_step(service: Runner) -> None:
    parent = service.start_instance(OrderWithParcels, {"parcels": ["P1", "P2", "P3"]}, id="order::1")
    assert parent.status == Status.WAITING
    assert parent.active_steps == {ShipAll}
    assert history(parent) == [("paused", "ShipAll", None)]
    kids = [service.get(f"parcel::P{i}") for i in (1, 2, 3)]
    assert [(k.status, k.parent_id, k.context.initial) for k in kids] == [
        (Status.WAITING, "order::1", {"parcel": f"P{i}"}) for i in (1, 2, 3)]
    assert parent.parent_id is None

    service.resume("parcel::P2", "received", data={"tracking": "T2"})
    service.resume("parcel::P3", "received")
    assert service.get("order::1").status == Status.WAITING
    service.resume("parcel::P1", "received", data={"tracking": "T1"})
    parent = service.get("order::1")
    assert parent.status == Status.COMPLETED
    assert completed(parent) == ["ShipAll", "Invoice", "Done"]
    entry = next(e for e in parent.execution_history if e.kind == "completed" and e.step_ref is ShipAll)
    assert entry.event == "completed"
    summary = {"children": [
        {"id": "parcel::P1", "workflow": Parcel.name, "status": "completed", "error": None,
         "steps": {"child_gate": {"tracking": "T1"}}},
        {"id": "parcel::P2", "workflow": Parcel.name, "status": "completed", "error": None,
         "steps": {"child_gate": {"tracking": "T2"}}},
        {"id": "parcel::P3", "workflow": Parcel.name, "status": "completed", "error": None, "steps": {}},
    ]}
    assert entry.context_updates == summary
    assert parent.context.steps["ship_all"] == summary
    assert CALLS.count("ShipAll") == 1 and CALLS.count("Invoice") == 1


def test_a_child_that_fails_makes_the_step_emit_failed(service: Runner) -> None:
    service.start_instance(OrderWithParcels, {"parcels": ["P1", "P2"]}, id="order::1")
    service.resume("parcel::P1", "received")
    service.cancel("parcel::P2")  # a cancelled child is not a completed one
    parent = service.get("order::1")
    assert parent.status == Status.COMPLETED
    assert completed(parent) == ["ShipAll", "Refund", "Done"]
    statuses = [c["status"] for c in parent.context.steps["ship_all"]["children"]]
    assert statuses == ["completed", "cancelled"]


def test_no_children_completes_at_once(service: Runner) -> None:
    parent = service.start_instance(OrderWithParcels, {"parcels": []}, id="order::1")
    assert parent.status == Status.COMPLETED
    assert completed(parent) == ["ShipAll", "Invoice", "Done"]
    assert parent.context.steps["ship_all"] == {"children": []}
    assert parent.execution_history[0].event == "completed"


def test_children_that_finish_at_once_complete_the_parent_in_the_same_call(service: Runner) -> None:
    Quick = make_step("Quick")

    class QuickChild(Workflow):
        unique = Unique(key="quick")
        start_step = Quick
        transitions = {(Quick, "ok"): Done}

    class Spawner(ChildrenStep):
        def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
            return [Child(QuickChild, "a"), Child(QuickChild.name, "b")]  # a class or a registry name

    class QuickParent(Workflow):
        unique = Unique(key="qp")
        start_step = Spawner
        transitions = {(Spawner, "completed"): Done, (Spawner, "failed"): Done}

    parent = service.start_instance(QuickParent, {}, id="qp::1")
    assert parent.status == Status.COMPLETED
    assert [c["id"] for c in parent.context.steps["spawner"]["children"]] == ["quick::a", "quick::b"]
    assert CALLS == ["Quick", "Quick"]


#: What ``Retrying`` starts (set by each test).
SPECS: list[dict[str, Any]] = []


class Retrying(ChildrenStep):
    retry = Retry(max_attempts=2, backoff="constant", base=0)

    def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
        return [Child(**spec) for spec in SPECS]


@pytest.fixture
def retrying_flow() -> type[Workflow]:
    class RetryingFlow(Workflow):
        unique = Unique(key="rf")
        start_step = Retrying
        transitions = {(Retrying, "completed"): Done, (Retrying, "failed"): Done}

    return RetryingFlow


@pytest.mark.parametrize(("spec", "message"), [
    ({"workflow": "no.such.Flow", "value": "x"},
     "child 2 of 2 (no.such.Flow) could not start: UnknownWorkflow: no workflow named 'no.such.Flow' is registered"),
    ({"workflow": Parcel, "value": "P9", "context": {"bad": {1, 2}}},
     "child 2 of 2 (" + Parcel.name + ") could not start: InvalidContext: context['bad'] is a set"),
    ({"workflow": Parcel, "value": "not valid!"},
     "child 2 of 2 (" + Parcel.name + ") could not start: ValueError: invalid business value 'not valid!'"),
    ({"workflow": Parcel, "value": "P9", "version": 3},
     "child 2 of 2 (" + Parcel.name + ") could not start: ValueError: workflow " + Parcel.name + " has no version 3"),
])
def test_a_child_that_cannot_start_fails_the_step_and_leaves_no_child(
        service: Runner, storage: MemoryStorage, retrying_flow: type[Workflow], spec: dict[str, Any],
        message: str) -> None:
    SPECS[:] = [{"workflow": Parcel, "value": "P1"}, spec]
    parent = service.start_instance(retrying_flow, {}, id="rf::1")
    assert parent.status == Status.FAILED
    assert [(e.kind, e.attempt) for e in parent.execution_history] == [("retrying", 1), ("failed", 2)]
    assert parent.error.startswith(message), parent.error
    assert all(e.error == parent.error for e in parent.execution_history)
    assert [i.id for i in storage.list()] == ["rf::1"]  # no child of either attempt is left


def test_an_already_running_child_fails_the_step_then_a_retry_starts_them(
        service: Runner, storage: MemoryStorage, retrying_flow: type[Workflow]) -> None:
    service.start_instance(Parcel, {}, id="parcel::P2")
    SPECS[:] = [{"workflow": Parcel, "value": "P1"}, {"workflow": Parcel, "value": "P2"}]
    parent = service.start_instance(retrying_flow, {}, id="rf::1")
    assert parent.status == Status.FAILED
    assert parent.error.startswith(f"child 2 of 2 ({Parcel.name}) could not start: AlreadyRunning: instance "
                                   "parcel::P2 is already active")
    assert sorted(i.id for i in storage.list()) == ["parcel::P2", "rf::1"]
    service.resume("parcel::P2", "received")
    parent = service.retry("rf::1")
    assert parent.status == Status.WAITING
    assert sorted(i.id for i in storage.list(status="waiting")) == ["parcel::P1", "parcel::P2", "rf::1"]


def test_cancelling_a_parent_cancels_its_active_children_and_theirs(service: Runner, storage: MemoryStorage) -> None:
    class Fleet(ChildrenStep):
        def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
            return [Child(OrderWithParcels, "O1", context={"parcels": ["P1", "P2"]})]

    class FleetFlow(Workflow):
        unique = Unique(key="fleet")
        start_step = Fleet
        transitions = {(Fleet, "completed"): Done, (Fleet, "failed"): Done}

    service.start_instance(FleetFlow, {}, id="fleet::1")
    service.resume("parcel::P1", "received")
    assert service.get("parcel::P1").status == Status.COMPLETED
    cancelled = service.cancel("fleet::1")
    assert cancelled.status == Status.CANCELLED
    assert {i.id: i.status for i in storage.list()} == {
        "fleet::1": Status.CANCELLED, "order::O1": Status.CANCELLED,
        "parcel::P1": Status.COMPLETED, "parcel::P2": Status.CANCELLED}
    assert history(service.get("parcel::P2"))[-1] == ("cancelled", "ChildGate", None)


def test_a_children_step_cannot_be_resumed_from_outside(service: Runner) -> None:
    service.start_instance(OrderWithParcels, {"parcels": ["P1"]}, id="order::1")
    with pytest.raises(NotWaiting, match="waits only for its child workflows"):
        service.resume("order::1", "completed")
    with pytest.raises(NotWaiting, match="waits for its child workflows, not for an event"):
        service.resume("order::1", "completed", step=ShipAll)
    assert service.get("order::1").status == Status.WAITING


def test_a_failed_parent_retried_after_its_children_finished_goes_on(service: Runner) -> None:
    Boom = make_step("Boom", run=lambda self, i, c, x: 1 / 0)

    class Both(Workflow):
        unique = Unique(key="both")
        start_step = make_step("Split")
        transitions = {(start_step, "ok"): [ShipAll, Boom],
                       (ShipAll, "completed"): Invoice, (ShipAll, "failed"): Invoice,
                       (Boom, "ok"): Invoice, (Invoice, "ok"): Done}

    service.start_instance(Both, {"parcels": ["P1"]}, id="both::1")
    assert service.get("both::1").status == Status.FAILED
    service.resume("parcel::P1", "received")  # the parent is failed: nothing to complete yet
    assert ShipAll in service.get("both::1").waiting_steps
    instance = service.retry("both::1")  # Boom fails again, but ShipAll completes now
    assert ShipAll in instance.completed_steps


def test_children_step_definition_rules() -> None:
    with pytest.raises(WorkflowDefinitionError, match=r"events are fixed to \('completed', 'failed'\)"):
        type("Odd", (ChildrenStep,), {"events": ("done",)})
    with pytest.raises(WorkflowDefinitionError, match=r"implements children\(\), not execute\(\)"):
        type("Odd", (ChildrenStep,), {"execute": lambda self, i, c, x: "completed"})


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"value": "a", "id": "parcel::a"}, ValueError, "Child: give the business 'value' or the full 'id', not both"),
    ({"id": ""}, ValueError, "Child: 'id' must be a non-empty str, not ''"),
    ({"value": "a", "context": [1]}, InvalidContext, "Child: 'context' must be a dict, not list"),
    ({"value": "a", "version": 0}, ValueError, "Child: 'version' must be a positive int, not 0"),
])
def test_child_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match="^" + re.escape(message)):
        Child(Parcel, **kwargs)


def test_children_returning_something_else_fails_the_step(service: Runner) -> None:
    class Wrong(ChildrenStep):
        def children(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
            return ["parcel::1"]

    class WrongFlow(Workflow):
        unique = Unique(key="wrong")
        start_step = Wrong
        transitions = {(Wrong, "completed"): Done, (Wrong, "failed"): Done}

    instance = service.start_instance(WrongFlow, {}, id="wrong::1")
    assert instance.status == Status.FAILED
    assert instance.error.startswith("TypeError: ")
    assert instance.error.endswith("Wrong.children() returned 'parcel::1', which is not a Child")


def test_scope_none_children_may_omit_value_and_id(service: Runner) -> None:
    Job = make_step("Job")

    class Batch(Workflow):
        unique = Unique(key="batch", scope="none")
        start_step = Job
        transitions = {(Job, "ok"): Done}

    class Fan(ChildrenStep):
        def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
            return [Child(Batch), Child(Batch), Child(Batch, "named"), Child(Batch, id="batch::given")]

    class FanFlow(Workflow):
        unique = Unique(key="fan")
        start_step = Fan
        transitions = {(Fan, "completed"): Done, (Fan, "failed"): Done}

    parent = service.start_instance(FanFlow, {}, id="fan::ORD-1")
    ids = [c["id"] for c in parent.context.steps["fan"]["children"]]
    assert ids[0].startswith("batch::ORD-1::") and ids[1].startswith("batch::ORD-1::") and ids[0] != ids[1]
    assert ids[2].startswith("batch::named::")
    assert ids[3] == "batch::given"


def test_a_workflow_scoped_child_needs_a_value(service: Runner) -> None:
    class NoValue(ChildrenStep):
        def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
            return [Child(Parcel)]

    class NoValueFlow(Workflow):
        unique = Unique(key="nv")
        start_step = NoValue
        transitions = {(NoValue, "completed"): Done, (NoValue, "failed"): Done}

    instance = service.start_instance(NoValueFlow, {}, id="nv::1")
    assert instance.error == (f"child 1 of 1 ({Parcel.name}) could not start: ValueError: Child of {Parcel.name}: "
                              "give its business 'value' (or its full 'id'); only workflows with scope 'none' may "
                              "omit both")


def test_child_and_children_step_are_exported_lazily() -> None:
    assert hephaestus_django.ChildrenStep is ChildrenStep
    assert hephaestus_django.Child is Child
    assert {"Child", "ChildrenStep"} <= set(dir(hephaestus_django))


# ---- dynamic fan-out ------------------------------------------------------------------------------------------
A = make_step("A")
B = make_step("B")
C = make_step("C")
Join = make_step("Join")


def fan_flow(choice: Any) -> type[Workflow]:
    Triage = make_step("Triage", ("routed",))

    class FanRoute(Workflow):
        unique = Unique(key="fr")
        start_step = Triage
        transitions = {(A, "ok"): Join, (B, "ok"): Join, (C, "ok"): Join, (Join, "ok"): Done}

        @route(Triage, "routed", targets=[A, B, (C, {"speed": "slow"})])
        def pick(context: Any) -> Any:
            return choice(context)

    return FanRoute


def test_a_route_may_fan_out_to_a_list_and_the_join_waits_for_the_branches_taken(service: Runner) -> None:
    flow = fan_flow(lambda context: [A, C])
    instance = service.start_instance(flow, {}, id="fr::1")
    assert instance.status == Status.COMPLETED
    assert sorted(CALLS[1:3]) == ["A", "C"] and CALLS[3:] == ["Join"]
    assert "B" not in CALLS
    assert [e for e in instance.execution_history if e.step_name == Join.registry_name()][0].kind == "completed"


def test_a_list_route_with_a_waiting_branch(service: Runner) -> None:
    Triage = make_step("Triage", ("routed",))

    class Waiting(Workflow):
        unique = Unique(key="wr")
        start_step = Triage
        transitions = {(A, "ok"): Join, (Approval, "received"): Join, (B, "ok"): Join, (Join, "ok"): Done}

        @route(Triage, "routed", targets=[A, Approval, B])
        def pick(context: Any) -> Any:
            return [A, Approval]

    instance = service.start_instance(Waiting, {}, id="wr::1")
    assert instance.status == Status.WAITING
    assert "Join" not in CALLS
    instance = service.resume("wr::1", "received")
    assert instance.status == Status.COMPLETED and CALLS.count("Join") == 1


def test_a_single_target_and_config_defaults_still_work(service: Runner) -> None:
    seen: list[Any] = []
    Slow = make_step("Slow", run=lambda self, i, config, x: seen.append(config) or "ok")
    Triage = make_step("Triage", ("routed",))

    class One(Workflow):
        unique = Unique(key="one")
        start_step = Triage
        transitions = {(A, "ok"): Done, (Slow, "ok"): Done}

        @route(Triage, "routed", targets=[A, (Slow, {"speed": "slow"})])
        def pick(context: Any) -> Any:
            return [Slow, Slow]  # a duplicate runs once

    assert service.start_instance(One, {}, id="one::1").status == Status.COMPLETED
    assert seen == [{"speed": "slow"}]


@pytest.mark.parametrize(("choice", "message"), [
    (lambda context: [A, Done], "route pick returned [A, Done]: Done not among its declared targets (A, B, C)"),
    (lambda context: [A, "B"], "route pick returned [A, 'B']: target 'B' is not a Step subclass not among its "
                               "declared targets (A, B, C)"),
    (lambda context: [], "route pick returned an empty list: it must return one of its declared targets (A, B, C) "
                         "or a non-empty list of them"),
    (lambda context: Done, "route pick returned Done, which is not one of its declared targets (A, B, C)"),
])
def test_a_route_returning_undeclared_targets_fails(service: Runner, choice: Any, message: str) -> None:
    instance = service.start_instance(fan_flow(choice), {}, id="fr::1")
    assert instance.status == Status.FAILED
    assert instance.error.startswith(message), instance.error
    assert CALLS == ["Triage"]


def test_an_atomic_children_step_starts_its_children_too(service: Runner) -> None:
    class AtomicShip(ChildrenStep):
        atomic = True

        def children(self, instance: Any, config: dict[str, Any], context: Any) -> list[Child]:
            return [Child(Parcel, "A1")]

    class AtomicParent(Workflow):
        unique = Unique(key="ap")
        start_step = AtomicShip
        transitions = {(AtomicShip, "completed"): Done, (AtomicShip, "failed"): Done}

    assert service.start_instance(AtomicParent, {}, id="ap::1").status == Status.WAITING
    assert service.get("parcel::A1").parent_id == "ap::1"
    service.resume("parcel::A1", "received")
    assert service.get("ap::1").status == Status.COMPLETED
