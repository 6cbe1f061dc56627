"""Failures, retries with backoff, and ``retry()`` of a failed instance (SPEC §1.3, §2.1, §4)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from hephaestus_django.core import Done, Error, NotRetryable, Ok, Retry, Unique, Workflow, route
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner
from tests.core.helpers import CALLS, T0, FrozenClock, completed, history, last_failed, make_step, stored_timers


def _single(step: type, key: str = "f") -> type[Workflow]:
    After = make_step("After")

    class Single(Workflow):
        unique = Unique(key=key)
        start_step = step
        transitions = {(step, "ok"): After, (After, "ok"): Done}

    return Single


def _raise(self: Any, instance: Any, config: Any, context: Any) -> Any:
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (_raise, "RuntimeError: boom"),
        (lambda self, i, c, ctx: Error("card declined"), "card declined"),
        (lambda self, i, c, ctx: "nope", "undeclared event 'nope'"),
        (lambda self, i, c, ctx: Ok("nope"), "undeclared event 'nope'"),
        (lambda self, i, c, ctx: 42, "returned int 42"),
        (lambda self, i, c, ctx: None, "returned NoneType None"),
        (lambda self, i, c, ctx: Ok("ok", ["not", "a", "dict"]), "context_updates that are not a dict"),
        (lambda self, i, c, ctx: Ok("ok", None, "meta"), "metadata_updates that are not a dict"),
    ],
    ids=["exception", "error", "undeclared-str", "undeclared-ok", "bad-type", "none", "bad-updates",
         "bad-meta"],
)
def test_failure_paths(service: Runner, run: Any, expected: str) -> None:
    Boom = make_step("Boom", run=run)
    instance = service.start_instance(_single(Boom), {}, id="f::1")
    assert instance.status == "failed"
    assert expected in instance.error
    entry = last_failed(instance)
    assert entry.error == instance.error
    assert entry.step_ref is Boom
    assert entry.attempt == 1
    assert history(instance) == [("failed", "Boom", None)]
    assert "After" not in CALLS
    assert instance.active_steps == {Boom}  # the failed step is what retry() re-runs
    assert instance.finished_at is not None


def test_route_returning_an_undeclared_target_fails(service: Runner) -> None:
    Triage = make_step("Triage", ("routed",))
    Fast = make_step("Fast")
    Slow = make_step("Slow")
    Elsewhere = make_step("Elsewhere")

    class Routed(Workflow):
        unique = Unique(key="r")
        start_step = Triage
        transitions = {(Fast, "ok"): Done, (Slow, "ok"): Done}

        @route(Triage, "routed", targets=[Fast, Slow])
        def pick(context: Any) -> Any:
            return Elsewhere

    instance = service.start_instance(Routed, {}, id="r::1")
    assert instance.status == "failed"
    assert "route pick returned Elsewhere" in instance.error
    assert "not one of its declared targets" in instance.error
    assert last_failed(instance).error == instance.error
    assert history(instance)[-1] == ("failed", "Triage", None)
    assert CALLS == ["Triage"]


def test_route_raising_fails(service: Runner) -> None:
    Triage = make_step("Triage", ("routed",))
    Fast = make_step("Fast")

    class Routed(Workflow):
        unique = Unique(key="r")
        start_step = Triage
        transitions = {(Fast, "ok"): Done}

        @route(Triage, "routed", targets=[Fast])
        def pick(context: Any) -> Any:
            raise KeyError("priority")

    instance = service.start_instance(Routed, {}, id="r::1")
    assert instance.status == "failed"
    assert "route raised KeyError" in instance.error


def test_step_timeout_is_a_failure(service: Runner) -> None:
    Slow = make_step("Slow", run=lambda self, i, c, ctx: time.sleep(0.5) or "ok", timeout=0.05)
    instance = service.start_instance(_single(Slow), {}, id="f::1")
    assert instance.status == "failed"
    assert "exceeded its timeout" in instance.error


def test_retry_with_backoff(service: Runner, storage: MemoryStorage, frozen: FrozenClock) -> None:
    def flaky(self: Any, instance: Any, config: Any, context: Any) -> Any:
        if CALLS.count("Flaky") < 3:
            raise RuntimeError(f"attempt {CALLS.count('Flaky')}")
        return "ok"

    Flaky = make_step("Flaky", run=flaky, retry=Retry(max_attempts=3, backoff="exponential", base=2.0,
                                                       max_backoff=30.0))
    workflow = _single(Flaky)

    instance = service.start_instance(workflow, {}, id="f::1")
    assert instance.status == "running"
    assert instance.active_steps == {Flaky}
    assert instance.waiting_steps == {}
    retrying = instance.execution_history[-1]
    assert (retrying.kind, retrying.attempt, retrying.error, retrying.delay) == (
        "retrying", 1, "RuntimeError: attempt 1", 2.0)
    [timer] = stored_timers(storage)
    assert (timer.purpose, timer.attempt, timer.due) == ("retry", 2, T0 + timedelta(seconds=2))

    frozen.advance(seconds=1)
    assert service.fire_due_timers() == 0
    assert CALLS == ["Flaky"]
    frozen.advance(seconds=1)
    assert service.fire_due_timers() == 1
    instance = service.get("f::1")
    retrying = instance.execution_history[-1]
    assert (retrying.kind, retrying.attempt, retrying.error, retrying.delay) == (
        "retrying", 2, "RuntimeError: attempt 2", 4.0)
    [timer] = stored_timers(storage)
    assert (timer.attempt, timer.due) == (3, T0 + timedelta(seconds=2 + 4))

    frozen.advance(seconds=3)
    assert service.fire_due_timers() == 0
    frozen.advance(seconds=1)
    assert service.fire_due_timers() == 1
    instance = service.get("f::1")
    assert instance.status == "completed"
    assert CALLS == ["Flaky", "Flaky", "Flaky", "After"]
    assert history(instance) == [("retrying", "Flaky", None), ("retrying", "Flaky", None),
                                 ("completed", "Flaky", "ok"), ("completed", "After", "ok"),
                                 ("completed", "Done", "done")]
    assert [e.attempt for e in instance.execution_history[:3]] == [1, 2, 3]
    assert instance.error is None


def test_retry_exhausted_fails(service: Runner, storage: MemoryStorage, frozen: FrozenClock) -> None:
    Broken = make_step("Broken", run=_raise, retry=Retry(max_attempts=3, backoff="linear", base=5.0,
                                                         max_backoff=7.0))
    service.start_instance(_single(Broken), {}, id="f::1")
    delays = []
    for _ in range(5):
        timers = stored_timers(storage)
        if not timers:
            break
        delays.append((timers[0].due - frozen.now()).total_seconds())
        frozen.advance(seconds=delays[-1])
        service.fire_due_timers()
    assert delays == [5.0, 7.0]  # linear 5, 10 capped at 7
    instance = service.get("f::1")
    assert instance.status == "failed"
    assert CALLS == ["Broken"] * 3
    assert [(e.kind, e.attempt) for e in instance.execution_history] == [("retrying", 1), ("retrying", 2),
                                                                        ("failed", 3)]
    assert instance.error == "RuntimeError: boom" == last_failed(instance).error


def test_retry_with_zero_delay_runs_at_once(service: Runner) -> None:
    def flaky(self: Any, instance: Any, config: Any, context: Any) -> Any:
        return "ok" if CALLS.count("Flaky") > 1 else Error("transient")

    Flaky = make_step("Flaky", run=flaky, retry=Retry(max_attempts=2, backoff="constant", base=0))
    instance = service.start_instance(_single(Flaky), {}, id="f::1")
    assert instance.status == "completed"
    assert CALLS == ["Flaky", "Flaky", "After"]
    assert history(instance)[0] == ("retrying", "Flaky", None)
    assert instance.execution_history[0].delay == 0.0


def test_undeclared_target_of_a_route_is_not_retried(service: Runner, storage: MemoryStorage) -> None:
    Triage = make_step("Triage", ("routed",), retry=Retry(max_attempts=3))
    Fast = make_step("Fast")

    class Routed(Workflow):
        unique = Unique(key="r")
        start_step = Triage
        transitions = {(Fast, "ok"): Done}

        @route(Triage, "routed", targets=[Fast])
        def pick(context: Any) -> Any:
            return Done

    instance = service.start_instance(Routed, {}, id="r::1")
    assert instance.status == "failed"
    assert stored_timers(storage) == []


def test_retry_of_failed_instance_reruns_the_failed_step(service: Runner) -> None:
    def once_broken(self: Any, instance: Any, config: Any, context: Any) -> Any:
        if CALLS.count("Fragile") == 1:
            raise ValueError("first time")
        return Ok("ok", {"second": True})

    First = make_step("First")
    Fragile = make_step("Fragile", run=once_broken)

    class Retried(Workflow):
        unique = Unique(key="r")
        start_step = First
        transitions = {(First, "ok"): Fragile, (Fragile, "ok"): Done}

    failed = service.start_instance(Retried, {}, id="r::1")
    assert failed.status == "failed"
    assert failed.error == "ValueError: first time"
    instance = service.retry("r::1")
    assert instance.status == "completed"
    assert instance.error is None
    assert instance.finished_at is not None
    assert CALLS == ["First", "Fragile", "Fragile"]
    assert history(instance) == [("completed", "First", "ok"), ("failed", "Fragile", None),
                                 ("retrying", "Fragile", None), ("completed", "Fragile", "ok"),
                                 ("completed", "Done", "done")]
    assert instance.context.steps == {"fragile": {"second": True}}


def test_retry_of_a_failed_fan_out_reruns_failed_and_unfinished_branches(service: Runner) -> None:
    def once_broken(self: Any, instance: Any, config: Any, context: Any) -> Any:
        if CALLS.count("Fragile") == 1:
            raise ValueError("first time")
        return "ok"

    Split = make_step("Split", ("go",))
    Fragile = make_step("Fragile", run=once_broken)
    Sibling = make_step("Sibling")
    Join = make_step("Join")

    class FanRetry(Workflow):
        unique = Unique(key="r")
        start_step = Split
        transitions = {(Split, "go"): [Fragile, Sibling], (Fragile, "ok"): Join, (Sibling, "ok"): Join,
                       (Join, "ok"): Done}

    assert service.start_instance(FanRetry, {}, id="r::1").status == "failed"
    instance = service.retry("r::1")
    assert instance.status == "completed"
    assert CALLS.count("Sibling") == 1
    assert CALLS.count("Join") == 1
    assert completed(instance)[-2:] == ["Join", "Done"]


def test_retry_of_a_step_with_a_policy_restarts_its_attempts(service: Runner, frozen: FrozenClock) -> None:
    def broken_until_fixed(self: Any, instance: Any, config: Any, context: Any) -> Any:
        return "ok" if CALLS.count("Policy") > 2 else Error("down")

    Policy = make_step("Policy", run=broken_until_fixed, retry=Retry(max_attempts=2, base=1.0))
    service.start_instance(_single(Policy), {}, id="f::1")
    frozen.advance(seconds=1)
    service.fire_due_timers()
    assert service.get("f::1").status == "failed"
    instance = service.retry("f::1")
    assert instance.status == "completed"
    assert [(e.kind, e.attempt) for e in instance.execution_history][:5] == [
        ("retrying", 1), ("failed", 2), ("retrying", 1), ("completed", 1), ("completed", 1)]


@pytest.mark.parametrize("state", ["completed", "waiting", "cancelled"])
def test_not_retryable(service: Runner, state: str) -> None:
    from hephaestus_django.core import WaitForEvent

    class Retryless(Workflow):
        unique = Unique(key="nr")
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    service.start_instance(Retryless, {}, id="nr::1")
    if state == "completed":
        service.resume("nr::1", "received")
    elif state == "cancelled":
        service.cancel("nr::1")
    before = service.get("nr::1")
    assert before.status == state
    with pytest.raises(NotRetryable, match=state):
        service.retry("nr::1")
    after = service.get("nr::1")
    assert after.status == before.status
    assert history(after) == history(before)
    assert after.active_steps == before.active_steps


def test_exception_in_a_later_step_keeps_earlier_results(service: Runner) -> None:
    Good = make_step("Good", run=lambda self, i, c, ctx: Ok("ok", {"kept": 1}, {"m": 1}))
    Bad = make_step("Bad", run=_raise)

    class Partial(Workflow):
        unique = Unique(key="p")
        start_step = Good
        transitions = {(Good, "ok"): Bad, (Bad, "ok"): Done}

    instance = service.start_instance(Partial, {}, id="p::1")
    assert instance.status == "failed"
    assert instance.context.steps == {"good": {"kept": 1}}
    assert instance.runtime_metadata == {"m": 1}
    assert instance.completed_steps == {Good}
    assert instance.current_step is Bad

