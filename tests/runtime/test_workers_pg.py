"""Issue 4: the durable runtime with real worker processes on PostgreSQL."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from django.db import connection

import hephaestus_django as h
from hephaestus_django.core import Status
from hephaestus_django.exceptions import NotWaiting
from hephaestus_django.storage.models import HistoryEntry, Timer, WorkflowInstance
from hephaestus_django.testing import assert_path
from tests.models import Ledger
from tests.runtime.conftest import statuses, wait_for
from tests.workflows import (
    AtomicFlow,
    EventTimeoutFlow,
    FanOutFlow,
    RetryExhaustFlow,
    RJoin,
    SlowFlow,
    TimerFlow,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_hundred_fan_outs_on_two_workers(workers, queue_backend, tmp_path):
    workers.db_worker()
    workers.db_worker()
    for i in range(100):
        FanOutFlow.start(f"F{i}", {"dir": str(tmp_path)})
    wait_for(lambda: statuses("fan::") == {"completed": 100}, 240, lambda: f"{statuses('fan::')}\n{workers.logs()}")
    joins = HistoryEntry.objects.filter(instance__instance_id__startswith="fan::", step=RJoin.registry_name(),
                                        kind="completed")
    assert joins.count() == 100  # every join ran once
    assert len(list(tmp_path.glob("join-*"))) == 100
    assert all(p.read_text() == "x\n" for p in tmp_path.glob("join-*"))
    for instance in h.list_instances(workflow="tests.FanOutFlow"):
        assert instance.context.steps["r_join"] == {"branches": [1, 2, 3]}  # no step result lost
        assert set(instance.context.steps) == {"r_split", "rb1", "rb2", "rb3", "r_join"}
        assert [e.kind for e in instance.execution_history].count("completed") == 6


def test_wait_survives_a_worker_restart(workers, queue_backend):
    worker = workers.db_worker()
    TimerFlow.start("T1", {})
    wait_for(lambda: Timer.objects.count() == 1, 30, workers.logs)  # the Wait ran: its timer is a row
    workers.stop(worker)
    assert h.get_instance("timer::T1").status == Status.WAITING
    time.sleep(2.5)  # the due time passes while no worker runs
    assert h.get_instance("timer::T1").status == Status.WAITING
    workers.hephaestus_worker()
    workers.db_worker()
    wait_for(lambda: h.get_instance("timer::T1").status == Status.COMPLETED, 60, workers.logs)
    kinds = [(e.kind, e.event) for e in h.get_instance("timer::T1").execution_history]
    assert kinds == [("paused", None), ("timer_fired", "timeout"), ("completed", "done"), ("completed", "done")]
    assert Timer.objects.count() == 0


def test_timer_fires_through_run_after_without_hephaestus_worker(workers, queue_backend):
    """django-tasks-db supports run_after: the deferred fire_timer task alone wakes the Wait."""
    workers.db_worker()
    TimerFlow.start("T2", {})
    wait_for(lambda: h.get_instance("timer::T2").status == Status.COMPLETED, 60, workers.logs)


def test_wait_for_event_timeout_takes_its_timeout_path(workers, queue_backend):
    workers.db_worker()
    workers.hephaestus_worker()
    EventTimeoutFlow.start("G1", {})
    wait_for(lambda: h.get_instance("gate::G1").status == Status.COMPLETED, 60, workers.logs)
    assert h.get_instance("gate::G1").context.steps == {"r_timed_out": {"path": "timeout"}}


def test_retries_with_backoff_then_failure(workers, queue_backend, tmp_path):
    workers.db_worker()
    workers.hephaestus_worker()
    RetryExhaustFlow.start("X1", {"dir": str(tmp_path)})
    wait_for(lambda: h.get_instance("exhaust::X1").status == Status.FAILED, 60, workers.logs)
    instance = h.get_instance("exhaust::X1")
    history = [(e.kind, e.attempt, e.delay) for e in instance.execution_history]
    assert history == [("retrying", 1, 0.5), ("retrying", 2, 1.0), ("failed", 3, None)]  # linear, base 0.5
    assert instance.error == "ConnectionError: payment gateway unreachable"
    assert all(e.error == instance.error for e in instance.execution_history)
    gaps = [(b.timestamp - a.timestamp).total_seconds()
            for a, b in zip(instance.execution_history, instance.execution_history[1:], strict=False)]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0
    assert (tmp_path / "attempt").read_text().count("x") == 3


def test_worker_killed_in_the_middle_of_a_step(workers, queue_backend, tmp_path):
    workers.lease = "2"
    victim = workers.db_worker()
    SlowFlow.start("K1", {"dir": str(tmp_path), "sleep": 60})
    wait_for(lambda: (tmp_path / "slow-started").exists(), 60, workers.logs)
    workers.stop(victim, signal.SIGKILL)
    assert h.get_instance("slow::K1").status == Status.RUNNING
    workers.db_worker()
    workers.hephaestus_worker()  # finds the expired lease and re-dispatches the step
    wait_for(lambda: h.get_instance("slow::K1").status == Status.COMPLETED, 90, workers.logs)
    instance = h.get_instance("slow::K1")
    slow = [e for e in instance.execution_history if e.step_name == "tests.workflows.RSlow"]
    # the lost claim is a failed attempt (RSlow has no retry: re-run up to RECOVERY_ATTEMPTS times);
    # the result is recorded once
    assert [(e.kind, e.attempt) for e in slow] == [("retrying", 1), ("completed", 2)]
    assert slow[0].error.startswith("WorkerLost: worker ") and slow[0].delay == 0.0
    assert instance.context.steps["r_slow"] == {"runs": 2}  # executed twice (at least once)
    assert_path(instance, ["tests.workflows.RSlow", "tests.workflows.RTick1", "tests.workflows.RTick2",
                           "hephaestus_django.core.steps.Done"])


def test_ten_threads_resume_the_same_step():
    h.start_instance("tests.PersistFlow", {}, id="persist::race")
    barrier = threading.Barrier(10)
    results: list[object] = []
    lock = threading.Lock()

    def resume() -> None:
        try:
            barrier.wait()
            outcome: object = h.resume("persist::race", "approved").status
        except Exception as exc:
            outcome = exc
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=resume) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results.count(Status.COMPLETED) == 1, results
    assert sum(isinstance(r, NotWaiting) for r in results) == 9, results
    assert HistoryEntry.objects.filter(instance__instance_id="persist::race", kind="resumed").count() == 1


def test_cancel_during_a_running_instance(workers, queue_backend, tmp_path):
    victim = workers.db_worker()
    SlowFlow.start("C1", {"dir": str(tmp_path), "sleep": 3})
    wait_for(lambda: (tmp_path / "slow-started").exists(), 60, workers.logs)
    h.cancel("slow::C1")  # RSlow is executing right now
    wait_for(lambda: h.get_instance("slow::C1").completed_steps, 30, workers.logs)
    time.sleep(2)  # give any wrongly queued step time to run
    instance = h.get_instance("slow::C1")
    assert instance.status == Status.CANCELLED
    assert [e.step_name for e in instance.execution_history if e.kind == "completed"] == ["tests.workflows.RSlow"]
    assert not list(tmp_path.glob("tick-*"))  # nothing after it ran
    workers.stop(victim)


def test_queued_steps_and_timers_of_a_cancelled_instance_never_run(workers, queue_backend, tmp_path):
    # queued while no worker runs, then cancelled: the queued step and the timer stay inert
    SlowFlow.start("C2", {"dir": str(tmp_path), "sleep": 0})
    TimerFlow.start("C3", {})
    h.cancel("slow::C2")
    h.cancel("timer::C3")
    assert Timer.objects.count() == 0
    workers.db_worker()
    workers.hephaestus_worker()
    time.sleep(4)
    assert not (tmp_path / "slow-started").exists()
    assert h.get_instance("slow::C2").status == Status.CANCELLED
    assert h.get_instance("timer::C3").status == Status.CANCELLED
    # its Wait step was still queued: it never ran, so no timer was ever written
    assert [e.kind for e in h.get_instance("timer::C3").execution_history] == ["cancelled"]
    assert Timer.objects.count() == 0


def test_atomic_step_failure_leaves_no_row(workers, queue_backend):
    workers.db_worker()
    AtomicFlow.start("A1", {"fail": True})
    wait_for(lambda: h.get_instance("atomic::A1").status == Status.FAILED, 60, workers.logs)
    assert not Ledger.objects.filter(instance_id="atomic::A1").exists()
    assert h.get_instance("atomic::A1").error == "ValueError: refused after writing"


def test_atomic_step_success_leaves_one_row_even_when_killed_after_commit(workers, queue_backend, tmp_path):
    workers.lease = "2"
    victim = workers.db_worker()
    AtomicFlow.start("A2", {"dir": str(tmp_path), "pause": 60})
    wait_for(lambda: (tmp_path / "pause-started").exists(), 60, workers.logs)  # the atomic step has committed
    workers.stop(victim, signal.SIGKILL)
    workers.db_worker()
    workers.hephaestus_worker()
    wait_for(lambda: h.get_instance("atomic::A2").status == Status.COMPLETED, 90, workers.logs)
    assert Ledger.objects.filter(instance_id="atomic::A2").count() == 1


def test_unknown_workflow_fails_cleanly_without_stopping_the_worker(workers, queue_backend, tmp_path):
    SlowFlow.start("U1", {"dir": str(tmp_path), "sleep": 0})
    WorkflowInstance.objects.filter(instance_id="slow::U1").update(workflow="tests.NoSuchFlow")
    worker = workers.db_worker()
    wait_for(lambda: WorkflowInstance.objects.get(instance_id="slow::U1").status == "failed", 60, workers.logs)
    assert "tests.NoSuchFlow" in WorkflowInstance.objects.get(instance_id="slow::U1").error
    FanOutFlow.start("U2", {"dir": str(tmp_path)})  # the same worker goes on
    wait_for(lambda: h.get_instance("fan::U2").status == Status.COMPLETED, 60, workers.logs)
    assert worker.poll() is None


