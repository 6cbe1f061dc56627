"""Compensation (saga) and deadlines in the core, on the in-memory storage (SPEC §10)."""

from __future__ import annotations

from typing import Any

import pytest

from hephaestus_django.core import (
    Done,
    Error,
    NotCancellable,
    NotRetryable,
    Ok,
    Retry,
    Status,
    Unique,
    WaitForEvent,
    Workflow,
    WorkflowDefinitionError,
)
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner
from tests.core.helpers import CALLS, FrozenClock, history, make_step, stored_timers

Undo = make_step("Undo", ("undone",), run=lambda self, i, config, c: Ok("undone", {"undid": config["compensates"]}))


def saga(fail_with: Any = None, **attrs: Any) -> tuple[type[Workflow], dict[str, type]]:
    """Reserve -> Charge -> Ship (which fails with ``fail_with``) -> Done; Reserve and Charge compensate."""
    release = make_step("Release", ("released",), run=lambda self, i, c, ctx: Ok("released", {"stock": "back"}))
    refund = make_step("Refund", ("refunded",),
                       run=lambda self, i, c, ctx: Ok("refunded", {"amount": ctx.steps["charge"]["amount"]}))
    reserve = make_step("Reserve", ("reserved",), compensate=release)
    charge = make_step("Charge", ("charged",), compensate=refund,
                       run=lambda self, i, c, ctx: Ok("charged", {"amount": 42}))
    ship = make_step("Ship", ("shipped",),
                     run=lambda self, i, c, ctx: fail_with if fail_with is not None else "shipped")
    flow = type("SagaFlow", (Workflow,), {
        "unique": Unique(key="saga"), "start_step": reserve, **attrs,
        "transitions": {(reserve, "reserved"): charge, (charge, "charged"): ship, (ship, "shipped"): Done},
    })
    return flow, {"Release": release, "Refund": refund, "Reserve": reserve, "Charge": charge, "Ship": ship}


def test_final_failure_runs_compensations_in_reverse_order(service: Runner) -> None:
    flow, steps = saga(Error("carrier down"))
    instance = service.start_instance(flow, {}, id="saga::1")
    assert instance.status == Status.FAILED
    assert instance.error == "Error: carrier down"
    assert CALLS == ["Reserve", "Charge", "Ship", "Refund", "Release"]
    assert history(instance)[-3:] == [("failed", "Ship", None), ("compensated", "Refund", "refunded"),
                                      ("compensated", "Release", "released")]
    # each compensation's updates land under its own context key; it saw what the compensated step wrote
    assert instance.context.steps["refund"] == {"amount": 42}
    assert instance.context.steps["release"] == {"stock": "back"}
    assert instance.active_steps == set()
    assert instance.compensation is not None and instance.compensation.pending == []
    assert [s.__name__ for s in instance.compensation.done] == ["Charge", "Reserve"]


def test_no_compensation_without_completed_compensable_steps(service: Runner) -> None:
    Boom = make_step("Boom", ("ok",), run=lambda self, i, c, ctx: Error("no"), compensate=Undo)
    flow = type("NoSagaFlow", (Workflow,), {"unique": Unique(key="nosaga"), "start_step": Boom,
                                            "transitions": {(Boom, "ok"): Done}})
    instance = service.start_instance(flow, {}, id="nosaga::1")
    assert instance.status == Status.FAILED
    assert instance.compensation is None  # the failed step itself did not complete: nothing to undo
    assert [k for k, _, _ in history(instance)] == ["failed"]


def test_compensation_step_sees_what_it_compensates(service: Runner) -> None:
    first = make_step("First", ("ok",), compensate=Undo)
    second = make_step("Second", ("ok",), compensate=Undo)
    boom = make_step("Boom2", ("ok",), run=lambda self, i, c, ctx: Error("x"))
    flow = type("TwiceFlow", (Workflow,), {"unique": Unique(key="twice"), "start_step": first, "transitions": {
        (first, "ok"): second, (second, "ok"): boom, (boom, "ok"): Done}})
    instance = service.start_instance(flow, {}, id="twice::1")
    entries = [e for e in instance.execution_history if e.kind == "compensated"]
    assert [e.context_updates for e in entries] == [{"undid": second.registry_name()},
                                                    {"undid": first.registry_name()}]
    assert instance.context.steps["undo"] == {"undid": first.registry_name()}  # the last one's updates


def test_failing_compensation_leaves_failed_and_retry_resumes(service: Runner) -> None:
    attempts: list[int] = []

    def flaky(self: Any, instance: Any, config: Any, context: Any) -> Any:
        attempts.append(1)
        if len(attempts) <= 2:
            raise ConnectionError("bank unreachable")
        return "refunded"

    flow, steps = saga(Error("carrier down"))
    steps["Refund"].run = flaky
    steps["Refund"].retry = Retry(max_attempts=2, backoff="constant", base=0)
    instance = service.start_instance(flow, {}, id="saga::2")
    assert instance.status == Status.FAILED
    assert instance.error == "ConnectionError: bank unreachable"  # the compensation's error
    assert history(instance)[-3:] == [("failed", "Ship", None), ("retrying", "Refund", None),
                                      ("failed", "Refund", None)]
    assert CALLS.count("Release") == 0
    instance = service.retry("saga::2")
    assert instance.status == Status.FAILED
    assert instance.error == "Error: carrier down"  # compensations done: the original failure again
    assert history(instance)[-3:] == [("retrying", "Refund", None), ("compensated", "Refund", "refunded"),
                                      ("compensated", "Release", "released")]
    assert CALLS.count("Ship") == 1  # the failed step is not re-run
    with pytest.raises(NotRetryable, match="compensations have run"):
        service.retry("saga::2")


def test_compensation_returning_async_or_an_undeclared_event_fails(service: Runner) -> None:
    from hephaestus_django.core import Async

    flow, steps = saga(Error("down"))
    steps["Refund"].run = lambda self, i, c, ctx: Async()
    instance = service.start_instance(flow, {}, id="saga::3")
    assert instance.status == Status.FAILED
    assert "a compensation step cannot pause" in instance.error
    flow2, steps2 = saga(Error("down"))
    steps2["Refund"].run = lambda self, i, c, ctx: "whatever"
    instance = service.start_instance(flow2, {}, id="saga::4")
    assert "emitted undeclared event 'whatever'" in instance.error


def test_cancel_with_compensation(service: Runner) -> None:
    gate = type("Gate", (WaitForEvent,), {})
    reserve = make_step("Reserve", ("reserved",), compensate=Undo)
    flow = type("CancelSaga", (Workflow,), {"unique": Unique(key="cs"), "start_step": reserve, "transitions": {
        (reserve, "reserved"): gate, (gate, "received"): Done}})
    service.start_instance(flow, {}, id="cs::1")
    instance = service.cancel("cs::1", compensate=True)
    assert instance.status == Status.CANCELLED
    assert instance.error is None
    assert history(instance)[-2:] == [("cancelled", "Gate", None), ("compensated", "Undo", "undone")]
    assert instance.active_steps == set()
    # without compensate nothing is undone
    service.start_instance(flow, {}, id="cs::2")
    instance = service.cancel("cs::2")
    assert [k for k, _, _ in history(instance)][-1] == "cancelled"
    assert CALLS.count("Undo") == 1
    with pytest.raises(NotCancellable):
        service.cancel("cs::2", compensate=True)


def test_compensation_steps_are_not_nodes_and_need_no_transitions() -> None:
    node = make_step("Node", ("ok",))
    first = make_step("A", compensate=node)
    with pytest.raises(WorkflowDefinitionError, match="A.compensate is Node, which is a step of the graph"):
        type("BadSaga1", (Workflow,), {"unique": Unique(key="b"), "start_step": first,
                                       "transitions": {(first, "ok"): node, (node, "ok"): Done}})
    a = make_step("A1", compensate="refund")
    with pytest.raises(WorkflowDefinitionError, match="A1.compensate must be a Step subclass, not 'refund'"):
        type("BadSaga2", (Workflow,), {"unique": Unique(key="b"), "start_step": a, "transitions": {(a, "ok"): Done}})
    clash = make_step("Clash", step_key="a2")
    a2 = make_step("A2", compensate=clash)
    with pytest.raises(WorkflowDefinitionError, match="share the context key 'a2'"):
        type("BadSaga3", (Workflow,), {"unique": Unique(key="b"), "start_step": a2,
                                       "transitions": {(a2, "ok"): Done}})
    # declared events of a compensation step need no transition
    many = make_step("Many", ("x", "y", "z"))
    ok = make_step("A3", compensate=many)
    flow = type("GoodSaga", (Workflow,), {"unique": Unique(key="g"), "start_step": ok,
                                          "transitions": {(ok, "ok"): Done}})
    assert flow.graph.compensations == {ok: many}
    assert many not in flow.graph.nodes and flow.graph.by_name[many.registry_name()] is many


def test_deadline_fails_an_active_instance_and_compensates(service: Runner, storage: MemoryStorage,
                                                           frozen: FrozenClock) -> None:
    gate = type("Gate", (WaitForEvent,), {})
    reserve = make_step("Reserve", ("reserved",), compensate=Undo)
    flow = type("Timed", (Workflow,), {"unique": Unique(key="td"), "start_step": reserve, "deadline": 60,
                                       "transitions": {(reserve, "reserved"): gate, (gate, "received"): Done}})
    service.start_instance(flow, {}, id="td::1")
    [timer] = [t for t in stored_timers(storage) if t.purpose == "deadline"]
    assert timer.step == "" and (timer.due - frozen.at).total_seconds() == 60
    frozen.advance(59)
    assert service.fire_due_timers() == 0
    frozen.advance(1)
    assert service.fire_due_timers() == 1
    instance = service.get("td::1")
    assert instance.status == Status.FAILED
    assert instance.error.startswith("DeadlineExceeded")
    assert history(instance)[-2:] == [("failed", None, None), ("compensated", "Undo", "undone")]


def test_deadline_does_nothing_to_a_finished_instance(service: Runner, storage: MemoryStorage,
                                                      frozen: FrozenClock) -> None:
    quick = make_step("Quick")
    flow = type("Quick", (Workflow,), {"unique": Unique(key="q"), "start_step": quick, "deadline": 5,
                                       "transitions": {(quick, "ok"): Done}})
    assert service.start_instance(flow, {}, id="q::1").status == Status.COMPLETED
    frozen.advance(10)
    assert service.fire_due_timers() == 0
    assert service.get("q::1").status == Status.COMPLETED


@pytest.mark.parametrize("deadline", [0, -1, "1h", True, float("inf")])
def test_deadline_must_be_positive_seconds(deadline: Any) -> None:
    a = make_step("DA")
    with pytest.raises(WorkflowDefinitionError, match="deadline must be a positive number of seconds"):
        type("BadDeadline", (Workflow,), {"unique": Unique(key="d"), "start_step": a, "deadline": deadline,
                                          "transitions": {(a, "ok"): Done}})
