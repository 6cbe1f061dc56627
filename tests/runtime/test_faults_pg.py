"""Issues 10 and 11 with real worker processes on PostgreSQL: faults caused for real (kill -9,
stopped workers, hung steps) and counted in the database (executions, history entries, task
rows, connections), never in log lines."""

from __future__ import annotations

import re
import signal
import time

import pytest
from django.db import connection
from django.db.models import Q
from django_tasks_db.models import DBTaskResult

import hephaestus_django as h
from hephaestus_django.core import Status
from hephaestus_django.storage.models import HistoryEntry, StepRun
from tests.models import Execution, Ledger
from tests.runtime.conftest import statuses, wait_for
from tests.workflows_faults import (
    POISONS,
    BackoffFlow,
    ChainKillFlow,
    HighPriorityFlow,
    HungFlow,
    KillRetryFlow,
    LimitedFlow,
    LinearFlow,
    LowPriorityFlow,
    PoisonFlow,
    QuickTimeoutFlow,
    TenFlow,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def history(instance_id: str) -> list[tuple[str, str, int]]:
    return [(e.kind, (e.step_name or "").rsplit(".", 1)[-1], e.attempt)
            for e in h.get_instance(instance_id).execution_history]


def executions(instance_id: str, step: str) -> int:
    return Ledger.objects.filter(instance_id=instance_id, note=step).count()


def run_step_tasks() -> int:
    return DBTaskResult.objects.filter(task_path="hephaestus_django.runtime.tasks.run_step").count()


# ---- attempt numbers survive a kill -9 (issue 10 point 3) ---------------------------------------------------
def test_a_worker_killed_during_attempt_2_of_3_gives_attempts_1_2_3(workers, queue_backend, tmp_path):
    workers.lease = "2"
    victim = workers.db_worker()
    workers.hephaestus_worker()
    KillRetryFlow.start("K1", {"dir": str(tmp_path)})
    wait_for(lambda: (tmp_path / "second-killretry::K1").exists(), 60, workers.logs)  # attempt 2 is running
    workers.stop(victim, signal.SIGKILL)
    workers.db_worker()
    wait_for(lambda: h.get_instance("killretry::K1").status == Status.COMPLETED, 90, workers.logs)
    instance = h.get_instance("killretry::K1")
    assert history("killretry::K1") == [("retrying", "FKillable", 1), ("retrying", "FKillable", 2),
                                        ("completed", "FKillable", 3), ("completed", "Done", 1)]
    first, lost, done = instance.execution_history[:3]
    assert first.error == "ConnectionError: gateway timeout" and first.delay == 0.5
    assert lost.error.startswith("WorkerLost: worker ") and "attempt 2" in lost.error and lost.delay == 0.5
    assert (done.timestamp - lost.timestamp).total_seconds() >= 0.5  # the backoff was not skipped
    assert executions("killretry::K1", "FKillable") == 3  # never more than max_attempts
    assert instance.context.steps["f_killable"] == {"executions": 3}
    assert not StepRun.objects.exists()


def test_workers_stopped_across_a_retry_due_time_keep_attempts_and_backoffs(workers, queue_backend):
    workers.lease = "2"
    first = [workers.db_worker(), workers.hephaestus_worker()]
    for i in range(10):
        BackoffFlow.start(f"R{i}", {})
    ids = [f"backoff::R{i}" for i in range(10)]
    wait_for(lambda: all(executions(i, "FBackoff") == 1 for i in ids) and
             HistoryEntry.objects.filter(kind="retrying").count() == 10, 60, workers.logs)
    for proc in first:
        workers.stop(proc)  # an outage: no worker runs while the retries fall due (3 s) and leases expire (2 s)
    outage_end = time.monotonic() + 6
    while time.monotonic() < outage_end:
        time.sleep(0.5)
    workers.db_worker()
    workers.db_worker()
    workers.hephaestus_worker()
    wait_for(lambda: statuses("backoff::") == {"completed": 10}, 120,
             lambda: f"{statuses('backoff::')}\n{workers.logs()}")
    for instance_id in ids:
        entries = h.get_instance(instance_id).execution_history
        assert [(e.kind, e.attempt) for e in entries[:3]] == [("retrying", 1), ("retrying", 2), ("completed", 3)]
        assert executions(instance_id, "FBackoff") == 3
        gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in zip(entries, entries[1:3], strict=False)]
        assert all(gap >= 3.0 for gap in gaps), (instance_id, gaps)  # no backoff skipped


# ---- continuation and kill -9 in the middle of a chain (issue 11) --------------------------------------------------
def test_a_worker_killed_in_the_middle_of_a_continued_chain(workers, queue_backend, tmp_path):
    workers.lease = "2"
    victim = workers.db_worker()
    workers.hephaestus_worker()
    ChainKillFlow.start("C1", {"dir": str(tmp_path)})
    wait_for(lambda: (tmp_path / "middle-chainkill::C1").exists(), 60, workers.logs)
    # CFirst's outcome is committed, and CMiddle runs in the same task: one task so far
    assert history("chainkill::C1") == [("completed", "CFirst", 1)]
    assert run_step_tasks() == 1
    workers.stop(victim, signal.SIGKILL)
    workers.db_worker()
    wait_for(lambda: h.get_instance("chainkill::C1").status == Status.COMPLETED, 90, workers.logs)
    assert history("chainkill::C1") == [
        ("completed", "CFirst", 1), ("retrying", "CMiddle", 1), ("completed", "CMiddle", 2), ("completed", "CLast", 1),
        ("completed", "Done", 1)]
    assert [executions("chainkill::C1", s) for s in ("CFirst", "CMiddle", "CLast")] == [1, 2, 1]
    assert run_step_tasks() == 2  # the start's task, and the re-dispatch of the lost claim


def test_max_inline_steps_with_real_workers(workers, queue_backend):
    workers.max_inline = "3"
    workers.db_worker()
    workers.db_worker()
    for i in range(5):
        TenFlow.start(f"M{i}", {})
    wait_for(lambda: statuses("ten::") == {"completed": 5}, 90, workers.logs)
    # a task's result is written after its last step's outcome commits: wait for every result
    wait_for(lambda: not DBTaskResult.objects.filter(finished_at__isnull=True).exists(), 30, workers.logs)
    returns = list(DBTaskResult.objects.values_list("return_value", flat=True))
    ran = [int(m[1]) for m in (re.fullmatch(r"ran (\d+) step\(s\)", str(v)) for v in returns) if m]
    # fifty steps, at most three per task (a task with steps to spare takes waiting runs on, retiring
    # their tasks: those read "ran in a task of worker ...")
    assert sum(ran) == 50 and max(ran) == 3 and len(ran) >= 17
    assert len(returns) == run_step_tasks()


# ---- a backlog after an outage drains, with no dispatch storm (issue 10 point 2) -----------------------------
def test_a_400_instance_backlog_after_an_outage_drains_with_a_10s_lease(workers, queue_backend):
    workers.lease = "10"
    running = [workers.db_worker(), workers.db_worker(), workers.hephaestus_worker()]
    for i in range(400):
        LinearFlow.start(f"B{i}", {"i": i})
    wait_for(lambda: statuses("linear::").get("completed", 0) >= 5, 60, workers.logs)
    for proc in running[:2]:
        workers.stop(proc, signal.SIGKILL)  # the outage begins in the middle of tasks
    outage_end = time.monotonic() + 15  # longer than the lease: recovery runs, the backlog waits
    while time.monotonic() < outage_end:
        time.sleep(0.5)
    lost = HistoryEntry.objects.filter(kind="retrying", error__startswith="WorkerLost").count()
    assert lost <= 2  # only the claims the killed workers held were recovered
    # nothing else was dispatched again while the backlog waited (a killed worker may also have taken a
    # task without claiming its run yet: sent again once, after the grace)
    assert run_step_tasks() <= 400 + lost + 2
    workers.db_worker()
    workers.db_worker()
    wait_for(lambda: statuses("linear::") == {"completed": 400}, 150,
             lambda: f"{statuses('linear::')}\n{workers.logs()}")
    lost = HistoryEntry.objects.filter(kind="retrying", error__startswith="WorkerLost").count()
    steps = 400 * 5
    # at most one task per instance (continuation), plus a re-dispatch per lost claim or taken-but-unclaimed task
    assert run_step_tasks() <= 400 + lost + 2 <= steps
    completed = HistoryEntry.objects.filter(kind="completed", instance__instance_id__startswith="linear::")
    assert completed.count() == 400 * 6  # every step applied once, and Done
    assert not StepRun.objects.exists()


# ---- poison values with workers (issue 10 point 1) -------------------------------------------------------------
def test_unstorable_values_fail_their_step_on_a_worker(workers, queue_backend):
    workers.lease = "2"
    workers.db_worker()
    workers.hephaestus_worker()
    ids = []
    for poison in POISONS:
        for where in ("context", "metadata"):
            PoisonFlow.start(f"{poison}-{where}", {"poison": poison, "where": where})
            ids.append(f"poison::{poison}-{where}")
    wait_for(lambda: statuses("poison::") == {"failed": len(ids)}, 90, workers.logs)
    time.sleep(5)  # more than two leases: nothing is recovered or re-run afterwards
    for instance_id in ids:
        instance = h.get_instance(instance_id)
        assert [(e.kind, e.attempt) for e in instance.execution_history] == [("retrying", 1), ("failed", 2)]
        assert instance.error.startswith("PPoison returned ") and "_updates['v']" in instance.error
        assert executions(instance_id, "PPoison") == 2
    assert not StepRun.objects.exists()
    assert not HistoryEntry.objects.filter(error__startswith="WorkerLost").exists()


# ---- timed-out steps give their connections back (issue 10 point 4) --------------------------------------------
def worker_connections(app: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app])
        return int(cursor.fetchone()[0])


def test_hung_timed_out_steps_leave_the_connection_count_where_it_started(workers, queue_backend, tmp_path):
    app = f"hd-hung-{time.monotonic_ns()}"
    workers.db_worker(app_name=app)
    QuickTimeoutFlow.start("warm", {})
    wait_for(lambda: h.get_instance("quick::warm").status == Status.COMPLETED, 60, workers.logs)
    baseline = worker_connections(app)
    assert baseline == 1  # the worker's own connection; the step's thread gave its back when it returned
    for i in range(12):
        HungFlow.start(f"H{i}", {"dir": str(tmp_path)})
    wait_for(lambda: statuses("hung::") == {"failed": 12}, 120, workers.logs)
    assert Ledger.objects.filter(note="HHung").count() == 12  # each used the database, then hung
    wait_for(lambda: worker_connections(app) == baseline, 30,
             lambda: f"{worker_connections(app)} connections of the worker, {baseline} at the start")
    errors = {h.get_instance(f"hung::H{i}").error for i in range(12)}
    assert errors == {"TimeoutError: step HHung exceeded its timeout of 0.5s"}
    (tmp_path / "release").touch()  # let the abandoned threads end
    for i in range(10):
        QuickTimeoutFlow.start(f"Q{i}", {})  # steps with a timeout that return in time
    wait_for(lambda: statuses("quick::") == {"completed": 11}, 60, workers.logs)
    wait_for(lambda: worker_connections(app) == baseline, 30,
             lambda: f"{worker_connections(app)} connections of the worker, {baseline} at the start")


# ---- concurrency limits and priorities (issue 11) --------------------------------------------------------------
def test_a_concurrency_limit_is_never_exceeded_across_workers(workers, queue_backend):
    for _ in range(3):
        workers.db_worker()
    workers.hephaestus_worker()
    for i in range(8):
        LimitedFlow.start(f"L{i}", {"work": 0.3})
    wait_for(lambda: statuses("limited::") == {"completed": 8}, 120, workers.logs)
    spans = list(Execution.objects.filter(step="SLimited").values_list("started_at", "finished_at"))
    assert len(spans) == 8 and all(end is not None for _, end in spans)  # none lost, each ran once
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 1  # SLimited.concurrency_limit
    # the other steps ran in parallel on the three workers meanwhile: the limit throttles one step only
    assert Ledger.objects.filter(note__in=["CFirst", "CLast"]).count() == 16


def test_priorities_are_honoured_by_django_tasks_db(workers, queue_backend):
    for i in range(5):
        LowPriorityFlow.start(f"P{i}", {})  # queued first, priority -50
    for i in range(5):
        HighPriorityFlow.start(f"P{i}", {})  # queued later, priority 50 (the step's own)
    assert set(DBTaskResult.objects.values_list("priority", flat=True)) == {-50, 50}
    workers.db_worker()  # one worker, started after everything was queued
    wait_for(lambda: Ledger.objects.count() == 10, 60, workers.logs)
    order = list(Ledger.objects.order_by("pk").values_list("instance_id", flat=True))
    assert all(i.startswith("high::") for i in order[:5]) and all(i.startswith("low::") for i in order[5:])
    assert Ledger.objects.filter(Q(note="SUrgent") | Q(note="SOrdered")).count() == 10
