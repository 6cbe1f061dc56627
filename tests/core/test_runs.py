"""Runs, dispatch modes, routing and lost claims in the core, over the in-memory storage
(SPEC §11, §13). The database runtime's side is in ``tests/runtime``."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from hephaestus_django.core import Done, Ok, Retry, Unique, VersionedWorkflow, Workflow, engine
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.ports import CLAIMED, QUEUED, THROTTLED, Run
from hephaestus_django.core.runner import Mode, Runner, routing
from hephaestus_django.core.status import Status
from tests.core.helpers import CALLS, history, make_step


def _linear(*steps: type, key: str = "k", **attrs: Any) -> type[Workflow]:
    transitions: dict[Any, Any] = {(a, "ok"): b for a, b in zip(steps, steps[1:], strict=False)}
    transitions[(steps[-1], "ok")] = Done
    return type("Linear", (Workflow,), {"__module__": __name__, "__qualname__": "Linear", "unique": Unique(key=key),
                                        "start_step": steps[0], "transitions": transitions, **attrs})


def test_routing_takes_the_step_then_the_workflow_then_the_default() -> None:
    own = make_step("Own", queue_name="mail", priority=-5)
    inherits = make_step("Inherits")
    plain = make_step("Plain")
    routed = _linear(own, inherits, key="r", queue_name="flows", priority=7)
    unrouted = _linear(plain, key="u")
    instance = Runner(MemoryStorage()).start_instance(routed, {}, id="r::1")
    assert routing(instance, own) == ("mail", -5)
    assert routing(instance, inherits) == ("flows", 7)
    other = Runner(MemoryStorage()).start_instance(unrouted, {}, id="u::1")
    assert routing(other, plain) == ("", 0)  # "": the runtime's QUEUE_NAME


def test_a_version_inherits_the_umbrellas_routing() -> None:
    step = make_step("Versioned")
    v1 = _linear(step, key="v", version=1)

    class Umbrella(VersionedWorkflow):
        unique = Unique(key="v")
        versions = {1: v1}
        current = 1
        queue_name = "umbrella"
        priority = 3

    instance = Runner(MemoryStorage()).start_instance(Umbrella, {}, id="v::1")
    assert routing(instance, step) == ("umbrella", 3)


def test_no_run_is_left_once_an_instance_completes() -> None:
    storage = MemoryStorage()
    a, b = make_step("A"), make_step("B")
    instance = Runner(storage).start_instance(_linear(a, b), {}, id="k::1")
    assert instance.status == Status.COMPLETED
    assert storage.runs() == []


def test_a_caller_under_a_queue_only_writes_queued_runs() -> None:
    class QueueRunner(Runner):
        def caller_mode(self) -> Mode:
            return Mode.queue()

    storage = MemoryStorage()
    a = make_step("A")
    QueueRunner(storage).start_instance(_linear(a), {}, id="k::1")
    [run] = storage.runs()
    assert (run.step, run.attempt, run.state, run.worker) == (a.registry_name(), 1, QUEUED, "")
    assert CALLS == []  # nothing ran in the caller
    assert Runner(storage).run_pending_steps() == 1  # the test kit runs it here
    assert storage.runs() == []


def test_chain_mode_runs_one_branch_here_and_queues_the_others() -> None:
    split, b1, b2, join = (make_step(n) for n in ("Split", "B1", "B2", "Join"))

    class Fan(Workflow):
        unique = Unique(key="fan")
        start_step = split
        transitions = {(split, "ok"): [b1, b2], (b1, "ok"): join, (b2, "ok"): join, (join, "ok"): Done}

    storage = MemoryStorage()
    runner = Runner(storage)
    instance = engine_start(runner, Fan)
    runs, items = runner._plan(instance, [engine_execute(b1), engine_execute(b2)], Mode.chain(5, ("", 0)))
    assert [(r.step, r.state) for r in runs] == [(b1.registry_name(), CLAIMED), (b2.registry_name(), QUEUED)]
    assert [i.step for i in items] == [b1.registry_name()]
    runs, items = runner._plan(instance, [engine_execute(b1)], Mode.chain(0, ("", 0)))  # budget spent
    assert [r.state for r in runs] == [QUEUED] and items == []
    runs, items = runner._plan(instance, [engine_execute(b1)], Mode.chain(5, ("other", 0)))  # routed elsewhere
    assert [r.state for r in runs] == [QUEUED] and items == []


def engine_start(runner: Runner, workflow: type[Workflow]) -> Any:
    from hephaestus_django.core.instance import Instance

    instance = Instance.new(workflow, 1, {}, "fan::1")
    engine.start(instance)
    instance.pk = 1
    return instance


def engine_execute(step: type) -> Any:
    from hephaestus_django.core.effects import ExecuteStep

    return ExecuteStep(step, 1)


def test_a_limited_step_takes_a_slot_first() -> None:
    storage = MemoryStorage()
    limited = make_step("Limited", concurrency_limit=1)
    workflow = _linear(limited, key="lim")
    runner = Runner(storage)
    assert runner.start_instance(workflow, {}, id="lim::1").status == Status.COMPLETED
    # a slot held by another worker: the next execution waits, throttled, and runs once it is free
    busy = Run(99, limited.registry_name(), 1, CLAIMED, limit=1, worker="elsewhere", token="busy")
    storage._runs[(99, limited.registry_name())] = busy

    class QueueRunner(Runner):
        def caller_mode(self) -> Mode:
            return Mode.queue()

    QueueRunner(storage).start_instance(workflow, {}, id="lim::2")
    [queued] = [r for r in storage.runs() if r.instance_pk != 99]
    assert storage.claim(queued.token, "me")[0] == THROTTLED
    del storage._runs[(99, limited.registry_name())]
    [promoted] = storage.promote_throttled(limited.registry_name(), 1)
    assert promoted.state == QUEUED and promoted.token != queued.token  # a new dispatch
    assert Runner(storage).run_pending_steps() == 1
    assert storage.load("lim::2").status == Status.COMPLETED


# ---- lost claims (engine.lose_claim) ------------------------------------------------------------------
def _running(step: type) -> Any:
    storage = MemoryStorage()

    class QueueRunner(Runner):
        def caller_mode(self) -> Mode:
            return Mode.queue()

    return QueueRunner(storage).start_instance(_linear(step, key="lost"), {}, id="lost::1")


def test_a_lost_claim_is_a_failed_attempt_retried_with_its_backoff() -> None:
    step = make_step("Charge", retry=Retry(max_attempts=3, backoff="constant", base=2.0))
    instance = _running(step)
    effects = engine.lose_claim(instance, step, 1, "worker w1 stopped", recovery_attempts=3)
    assert [(type(e).__name__, e.attempt, getattr(e, "delay", None)) for e in effects] == [("ScheduleTimer", 2, 2.0)]
    entry = instance.execution_history[-1]
    assert (entry.kind, entry.attempt, entry.delay) == ("retrying", 1, 2.0)
    assert entry.error == "WorkerLost: worker w1 stopped"
    effects = engine.lose_claim(instance, step, 3, "again", recovery_attempts=10)
    assert effects == [] and instance.status == Status.FAILED  # max_attempts is never exceeded
    assert instance.error == "WorkerLost: again"


def test_a_lost_claim_of_a_step_without_retry_is_re_run_up_to_recovery_attempts() -> None:
    step = make_step("Plain")
    instance = _running(step)
    effects = engine.lose_claim(instance, step, 1, "gone", recovery_attempts=2)
    assert [(type(e).__name__, e.attempt) for e in effects] == [("ExecuteStep", 2)]  # at once: no backoff
    assert engine.lose_claim(instance, step, 2, "gone", recovery_attempts=2) == []
    assert history(instance) == [("retrying", "Plain", None), ("failed", "Plain", None)]
    assert [e.attempt for e in instance.execution_history] == [1, 2]


def test_a_lost_claim_of_an_instance_that_moved_on_does_nothing() -> None:
    step = make_step("Plain")
    instance = _running(step)
    engine.cancel(instance)
    assert engine.lose_claim(instance, step, 1, "gone", recovery_attempts=3) is None
    assert [e.kind for e in instance.execution_history] == ["cancelled"]


# ---- values the database cannot store, and timed-out steps' threads --------------------------------------
@pytest.mark.parametrize("value", [{1}, math.nan, "a\x00", b"x", object()])
def test_an_unstorable_update_is_a_failure_of_the_step(value: Any) -> None:
    step = make_step("Poison", run=lambda self, i, c, ctx: Ok("ok", {"v": value}))
    instance = Runner(MemoryStorage()).start_instance(_linear(step, key="p"), {}, id="p::1")
    assert instance.status == Status.FAILED
    assert instance.error.startswith("Poison returned context_updates['v'] ")


def test_an_error_message_is_made_storable() -> None:
    def boom(self: Any, instance: Any, config: Any, context: Any) -> Any:
        raise ValueError("bad \x00 byte \ud800")

    step = make_step("Boom", run=boom)
    instance = Runner(MemoryStorage()).start_instance(_linear(step, key="b"), {}, id="b::1")
    assert instance.error == "ValueError: bad \\x00 byte \\ud800"


def test_thread_hooks_run_around_a_timed_step_and_at_abandonment() -> None:
    calls: list[tuple[str, Any]] = []
    release = threading.Event()

    class Hooks:
        def started(self) -> Any:
            calls.append(("started", threading.current_thread().name))
            return "token"

        def finished(self, token: Any) -> None:
            calls.append(("finished", token))

        def abandoned(self, token: Any) -> None:
            calls.append(("abandoned", token))

    quick = make_step("Quick", timeout=5.0)
    hung = make_step("Hung", run=lambda self, i, c, ctx: release.wait(10) and "ok", timeout=0.05)
    previous = engine.set_step_thread_hooks(Hooks())
    try:
        Runner(MemoryStorage()).start_instance(_linear(quick, key="q"), {}, id="q::1")
        assert [c[0] for c in calls] == ["started", "finished"] and calls[0][1].startswith("hephaestus-step")
        calls.clear()
        instance = Runner(MemoryStorage()).start_instance(_linear(hung, key="h"), {}, id="h::1")
        assert instance.status == Status.FAILED
        assert calls == [("started", calls[0][1]), ("abandoned", "token")]  # given back at once
        release.set()
        for _ in range(100):
            if len(calls) == 3:
                break
            threading.Event().wait(0.05)
        assert calls[-1] == ("finished", "token")  # and once more when it returns
    finally:
        engine.set_step_thread_hooks(previous)
