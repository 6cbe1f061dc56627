"""Running workflows with the in-memory runner: paths, routing, joins, configs, context (SPEC §1.3, §1.4)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hephaestus_django.core import Debug, Done, Ok, Unique, Workflow, route
from hephaestus_django.core.runner import Runner
from tests.core.helpers import (
    CALLS,
    T0,
    Notify,
    OrderFlow,
    Pack,
    ProcessPayment,
    Recorded,
    RejectOrder,
    Ship,
    TickingClock,
    ValidateOrder,
    completed,
    history,
    make_step,
    names,
)


def test_linear(service: Runner) -> None:
    A = make_step("A")
    B = make_step("B", ("next",))
    C = make_step("C", ("fin",))

    class Linear(Workflow):
        unique = Unique(key="lin")
        start_step = A
        transitions = {(A, "ok"): B, (B, "next"): C, (C, "fin"): Done}

    instance = service.start_instance(Linear, {"n": 1}, id="lin::1")
    assert instance.status == "completed"
    assert CALLS == ["A", "B", "C"]
    assert completed(instance) == ["A", "B", "C", "Done"]
    assert names(instance.completed_steps) == {"A", "B", "C", "Done"}
    assert instance.active_steps == set()
    assert instance.current_step is Done
    assert instance.context.initial == {"n": 1}
    assert instance.error is None


@pytest.mark.parametrize(("items", "path"), [
    (3, ["ValidateOrder", "ProcessPayment", "Notify", "Ship", "Pack"]),
    (0, ["ValidateOrder", "RejectOrder"]),
])
def test_branching(service: Runner, items: int, path: list[str]) -> None:
    class Orders(Workflow):  # OrderFlow without the one-day Wait
        unique = Unique(key="order")
        start_step = ValidateOrder
        transitions = {
            (ValidateOrder, "valid"): ProcessPayment,
            (ValidateOrder, "invalid"): RejectOrder,
            (ProcessPayment, "paid"): [Notify, Ship],
            (Notify, "sent"): Pack,
            (Ship, "shipped"): Pack,
            (Pack, "packed"): Done,
            (RejectOrder, "rejected"): Done,
        }

    instance = service.start_instance(Orders, {"item_count": items}, id="order::1")
    assert instance.status == "completed"
    assert CALLS == path
    assert completed(instance) == [*path, "Done"]
    assert instance.context.steps.get("validate_order") == ({"item_count": items} if items else None)


def test_dynamic_route(service: Runner) -> None:
    Triage = make_step("Triage", ("routed",))
    FastTrack = make_step("FastTrack", ("done",))
    Standard = make_step("Standard", ("done",))

    class SupportFlow(Workflow):
        unique = Unique(key="ticket")
        start_step = Triage
        transitions = {(FastTrack, "done"): Done, (Standard, "done"): Done}

        @route(Triage, "routed", targets=[FastTrack, Standard])
        def triage(context: Any) -> Any:
            return FastTrack if context.initial.get("priority") == "high" else Standard

    high = service.start_instance(SupportFlow, {"priority": "high"}, id="ticket::1")
    assert high.status == "completed"
    assert completed(high) == ["Triage", "FastTrack", "Done"]
    CALLS.clear()
    low = service.start_instance(SupportFlow, {"priority": "low"}, id="ticket::2")
    assert completed(low) == ["Triage", "Standard", "Done"]
    assert CALLS == ["Triage", "Standard"]
    # the declared targets are graph edges
    edges = {(e.source.__name__, e.event, e.target.__name__) for e in SupportFlow.graph.edges}
    assert {("Triage", "routed", "FastTrack"), ("Triage", "routed", "Standard")} <= edges


def test_dynamic_route_with_config(service: Runner) -> None:
    Triage = make_step("Triage", ("routed",))

    class Show(Recorded):
        events = ("done",)

        def run(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
            return Ok("done", {"config": dict(config)})

    class Routed(Workflow):
        unique = Unique(key="ticket")
        start_step = Triage
        transitions = {(Show, "done"): Done}

        @route(Triage, "routed", targets=[(Show, {"lane": "declared"})])
        def pick(context: Any) -> Any:
            return Show if context.initial.get("plain") else (Show, {"lane": "returned"})

    declared = service.start_instance(Routed, {"plain": True}, id="ticket::1")
    assert declared.context.steps["show"] == {"config": {"lane": "declared"}}
    returned = service.start_instance(Routed, {}, id="ticket::2")
    assert returned.context.steps["show"] == {"config": {"lane": "returned"}}


def test_fan_out_fan_in_join_runs_once(service: Runner) -> None:
    Split = make_step("Split", ("go",))
    B1 = make_step("B1")
    B2 = make_step("B2")
    B3 = make_step("B3")
    Join = make_step("Join")

    class Fan(Workflow):
        unique = Unique(key="fan")
        start_step = Split
        transitions = {(Split, "go"): [B1, B2, B3], (B1, "ok"): Join, (B2, "ok"): Join, (B3, "ok"): Join,
                       (Join, "ok"): Done}

    instance = service.start_instance(Fan, {}, id="fan::1")
    assert instance.status == "completed"
    assert CALLS.count("Join") == 1
    assert sorted(CALLS) == sorted(["Split", "B1", "B2", "B3", "Join"])
    assert CALLS.index("Join") > max(CALLS.index(b) for b in ("B1", "B2", "B3"))
    assert completed(instance).count("Join") == 1
    assert completed(instance).count("Done") == 1
    assert instance.pending_joins == set()


def test_order_flow_fan_in_waits_for_both_branches(service: Runner) -> None:
    instance = service.start_instance(OrderFlow, {"item_count": 2}, id="orderid::9")
    assert instance.status == "waiting"
    assert CALLS == ["ValidateOrder", "ProcessPayment", "Notify", "Ship", "Pack"]
    assert names(instance.active_steps) == {"Wait"}


@pytest.mark.parametrize("valid", [True, False])
def test_step_after_exclusive_branches_runs_once(service: Runner, valid: bool) -> None:
    Check = make_step("Check", ("valid", "invalid"),
                      run=lambda self, i, c, ctx: "valid" if ctx.initial["valid"] else "invalid")
    Accept = make_step("Accept")
    Reject = make_step("Reject")
    After = make_step("After")

    class Exclusive(Workflow):
        unique = Unique(key="ex")
        start_step = Check
        transitions = {(Check, "valid"): Accept, (Check, "invalid"): Reject, (Accept, "ok"): After,
                       (Reject, "ok"): After, (After, "ok"): Done}

    instance = service.start_instance(Exclusive, {"valid": valid}, id="ex::1")
    taken = "Accept" if valid else "Reject"
    assert instance.status == "completed"
    assert CALLS == ["Check", taken, "After"]
    assert completed(instance) == ["Check", taken, "After", "Done"]


@pytest.mark.parametrize("choice", ["x", "y"])
def test_join_below_fan_out_whose_branches_branch(service: Runner, choice: str) -> None:
    Split = make_step("Split", ("go",))
    Decide = make_step("Decide", ("x", "y"), run=lambda self, i, c, ctx: ctx.initial["choice"])
    X = make_step("X")
    Y = make_step("Y")
    Other = make_step("Other")
    Z = make_step("Z")
    Join = make_step("Join")

    class Nested(Workflow):
        unique = Unique(key="nest")
        start_step = Split
        transitions = {
            (Split, "go"): [Decide, Other],
            (Decide, "x"): X,
            (Decide, "y"): Y,
            (X, "ok"): Join,
            (Y, "ok"): Join,
            (Other, "ok"): Z,
            (Z, "ok"): Join,
            (Join, "ok"): Done,
        }

    instance = service.start_instance(Nested, {"choice": choice}, id="nest::1")
    taken, skipped = ("X", "Y") if choice == "x" else ("Y", "X")
    assert instance.status == "completed"
    assert CALLS.count("Join") == 1
    assert skipped not in CALLS
    assert set(CALLS) == {"Split", "Decide", taken, "Other", "Z", "Join"}
    assert CALLS.index("Join") > max(CALLS.index(taken), CALLS.index("Z"))


def test_join_waits_for_a_waiting_branch(service: Runner) -> None:
    from tests.core.helpers import Approval

    Split = make_step("Split", ("go",))
    Fast = make_step("Fast")
    Join = make_step("Join")

    class Waits(Workflow):
        unique = Unique(key="w")
        start_step = Split
        transitions = {(Split, "go"): [Approval, Fast], (Approval, "received"): Join, (Fast, "ok"): Join,
                       (Join, "ok"): Done}

    instance = service.start_instance(Waits, {}, id="w::1")
    assert instance.status == "waiting"
    assert "Join" not in CALLS
    assert names(instance.pending_joins) == {"Join"}
    instance = service.resume("w::1", "received")
    assert instance.status == "completed"
    assert CALLS == ["Split", "Fast", "Join"]


def test_config_from_start_step_and_targets(service: Runner) -> None:
    class Show(Recorded):
        events = ("ok",)

        def run(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
            return Ok("ok", {"config": dict(config)})

    class First(Show):
        pass

    class Second(Show):
        pass

    class Third(Show):
        pass

    class Configured(Workflow):
        unique = Unique(key="cfg")
        start_step = (First, {"k": 1})
        transitions = {(First, "ok"): (Second, {"k": 2}), (Second, "ok"): [(Third, {"k": 3})],
                       (Third, "ok"): Done}

    instance = service.start_instance(Configured, {}, id="cfg::1")
    assert instance.context.steps == {"first": {"config": {"k": 1}}, "second": {"config": {"k": 2}},
                                      "third": {"config": {"k": 3}}}
    assert instance.step_configs == {}


def test_config_of_waiting_step_kept_then_dropped(service: Runner) -> None:
    from hephaestus_django.core import WaitForEvent

    class WithWait(Workflow):
        unique = Unique(key="cfg")
        start_step = (WaitForEvent, {"event_name": "go"})
        transitions = {(WaitForEvent, "received"): Done}

    instance = service.start_instance(WithWait, {}, id="cfg::1")
    assert instance.step_configs == {WaitForEvent: {"event_name": "go"}}
    instance = service.resume("cfg::1", "go")
    assert instance.status == "completed"
    assert WaitForEvent not in instance.step_configs
    assert instance.step_configs == {}


def test_config_of_a_join_target(service: Runner) -> None:
    class Show(Recorded):
        events = ("ok",)

        def run(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
            return Ok("ok", {"config": dict(config)})

    Split = make_step("Split", ("go",))
    A = make_step("A")
    B = make_step("B")

    class JoinCfg(Workflow):
        unique = Unique(key="cfg")
        start_step = Split
        transitions = {(Split, "go"): [A, B], (A, "ok"): (Show, {"j": 1}), (B, "ok"): (Show, {"j": 1}),
                       (Show, "ok"): Done}

    instance = service.start_instance(JoinCfg, {}, id="cfg::1")
    assert instance.context.steps["show"] == {"config": {"j": 1}}
    assert CALLS.count("Show") == 1


def test_context_namespacing(service: Runner) -> None:
    class ValidateOrder(Recorded):
        events = ("ok",)

        def run(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
            return Ok("ok", {"valid": True})

    class Charge(Recorded):
        events = ("ok",)
        step_key = "payment"

        def run(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
            # earlier results are visible to later steps under their context key
            return Ok("ok", {"saw": context.steps["validate_order"]["valid"], "valid": "charge"})

    Plain = make_step("Plain")

    class Namespaced(Workflow):
        unique = Unique(key="ns")
        start_step = ValidateOrder
        transitions = {(ValidateOrder, "ok"): Charge, (Charge, "ok"): Plain, (Plain, "ok"): Done}

    initial = {"valid": "initial"}
    instance = service.start_instance(Namespaced, initial, id="ns::1")
    assert instance.context.steps == {"validate_order": {"valid": True},
                                      "payment": {"saw": True, "valid": "charge"}}
    assert instance.context.initial == {"valid": "initial"}
    assert initial == {"valid": "initial"}


def test_metadata_merged(service: Runner) -> None:
    A = make_step("A", run=lambda self, i, c, ctx: Ok("ok", None, {"a": 1, "b": 1}))
    B = make_step("B", run=lambda self, i, c, ctx: Ok("ok", {"x": 1}, {"b": 2, "c": 3}))
    C = make_step("C", run=lambda self, i, c, ctx: Ok("ok", None, {}))

    class Meta(Workflow):
        unique = Unique(key="meta")
        start_step = A
        transitions = {(A, "ok"): B, (B, "ok"): C, (C, "ok"): Done}

    instance = service.start_instance(Meta, {}, id="meta::1")
    assert instance.runtime_metadata == {"a": 1, "b": 2, "c": 3}
    assert instance.context.steps == {"b": {"x": 1}}


def test_history_contents_and_order(service: Runner) -> None:
    ticking = TickingClock(T0)
    from hephaestus_django.core import clock

    clock.set_clock(ticking.now)
    instance = service.start_instance(OrderFlow, {"item_count": 2}, id="orderid::1")
    assert history(instance) == [
        ("completed", "ValidateOrder", "valid"),
        ("completed", "ProcessPayment", "paid"),
        ("completed", "Notify", "sent"),
        ("completed", "Ship", "shipped"),
        ("completed", "Pack", "packed"),
        ("paused", "Wait", None),
    ]
    entries = instance.execution_history
    assert [e.attempt for e in entries] == [1] * 6
    assert [e.context_updates for e in entries] == [{"item_count": 2}, {"amount": 10}, None, None, None, None]
    assert all(e.error is None for e in entries)
    stamps = [e.timestamp for e in entries]
    assert stamps == sorted(stamps)
    assert all(s.tzinfo is not None for s in stamps)
    assert all(e.duration is not None and e.duration >= 0 for e in entries)
    assert instance.runtime_metadata == {"payment": "card"}

    ticking.advance(days=2)
    assert service.fire_due_timers() == 1
    instance = service.get("orderid::1")
    assert history(instance)[6:] == [("timer_fired", "Wait", "timeout"), ("completed", "Done", "done")]
    stamps = [e.timestamp for e in instance.execution_history]
    assert stamps == sorted(stamps)


def test_debug_step_logs(service: Runner, caplog: pytest.LogCaptureFixture) -> None:
    class Debugged(Workflow):
        unique = Unique(key="dbg")
        start_step = Debug
        transitions = {(Debug, "completed"): Done}

    with caplog.at_level(logging.INFO, logger="hephaestus"):
        instance = service.start_instance(Debugged, {"secret_sauce": 1}, id="dbg::1")
    assert instance.status == "completed"
    assert completed(instance) == ["Debug", "Done"]
    assert any("secret_sauce" in r.getMessage() and "dbg::1" in r.getMessage() for r in caplog.records)


def test_list_and_get(service: Runner) -> None:
    A = make_step("A")

    class Listed(Workflow):
        unique = Unique(key="l")
        start_step = A
        transitions = {(A, "ok"): Done}

    service.start_instance(Listed, {}, id="l::1")
    service.start_instance(OrderFlow, {"item_count": 1}, id="l::2")
    assert [i.id for i in service.list(Listed)] == ["l::1"]
    assert {i.id for i in service.list()} == {"l::1", "l::2"}
    assert [i.id for i in service.list(status="waiting")] == ["l::2"]
    assert [i.id for i in service.list(status__in=["waiting", "completed"])] == ["l::2", "l::1"]
    assert service.list(OrderFlow.name, workflow_version=2) == []
    assert service.get("l::1").workflow is Listed
    from hephaestus_django.core import InstanceNotFound

    with pytest.raises(InstanceNotFound):
        service.get("l::404")
    with pytest.raises(InstanceNotFound):
        service.get("l::1", workflow=OrderFlow)


def test_fan_out_to_a_join_that_another_branch_also_reaches(service: Runner) -> None:
    Split = make_step("Split", ("go",))
    A = make_step("A")
    B = make_step("B")
    Join = make_step("Join")

    class Shortcut(Workflow):
        unique = Unique(key="sc")
        start_step = Split
        transitions = {(Split, "go"): [A, Join], (A, "ok"): B, (B, "ok"): Join, (Join, "ok"): Done}

    instance = service.start_instance(Shortcut, {}, id="sc::1")
    assert instance.status == "completed"
    assert CALLS == ["Split", "A", "B", "Join"]
