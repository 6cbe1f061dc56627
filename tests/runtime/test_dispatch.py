"""Issues 10 and 11 in process (any database): runs and claims, continuation dispatch,
MAX_INLINE_STEPS, routing, concurrency limits, lost claims and lost dispatches.

Queue workers are played by :func:`drain`, which runs django-tasks-db's task rows here, in order,
as a ``db_worker`` would; the tests with real worker processes are in ``test_faults_pg.py``.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import hephaestus_django as h
from hephaestus_django.compat import task_backends
from hephaestus_django.core import Status
from hephaestus_django.core.ports import CLAIMED, QUEUED, THROTTLED
from hephaestus_django.runtime.dispatch import get_runner
from hephaestus_django.runtime.heartbeat import heartbeat
from hephaestus_django.runtime.worker import run_pass
from hephaestus_django.storage.models import StepRun, Timer
from hephaestus_django.testing import frozen_clock, run_until_idle
from tests.models import Ledger
from tests.runtime.conftest import drain, task_rows
from tests.workflows import FanOutFlow, PersistFlow, RJoin
from tests.workflows_faults import (
    L1,
    L3,
    CFirst,
    FBackoff,
    HighPriorityFlow,
    LimitedFlow,
    LimitedStartFlow,
    LinearFlow,
    LowPriorityFlow,
    RoutedFlow,
    SLimited,
    SMailer,
    TenFlow,
)

pytestmark = pytest.mark.django_db
DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
DB_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}
LEASE = 300


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"][:16] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]


def pk_of(instance_id: str) -> int:
    return h.get_instance(instance_id).pk


@pytest.fixture
def db_queue(settings):
    settings.TASKS = DB_QUEUE
    return settings


@pytest.fixture
def dummy(settings):
    settings.TASKS = DUMMY
    backend = task_backends["default"]
    backend.clear()
    return backend


# ---- continuation (SPEC §11) ---------------------------------------------------------------------------
def test_a_start_enqueues_one_task_and_writes_one_queued_run(db_queue):
    LinearFlow.start("S1", {"i": 1})
    assert task_rows().count() == 1
    run = StepRun.objects.get()
    # django-tasks-db on the same database: the task row is written in the start's transaction
    assert (run.step, run.attempt, run.state, run.enqueued) == (L1.registry_name(), 1, QUEUED, True)
    assert h.get_instance("linear::S1").status == Status.RUNNING


def test_one_task_carries_a_linear_instance_to_its_end(db_queue):
    LinearFlow.start("S2", {"i": 2})
    assert drain() == ["ran 5 step(s)"]
    instance = h.get_instance("linear::S2")
    assert instance.status == Status.COMPLETED
    assert [e.kind for e in instance.execution_history] == ["completed"] * 6
    assert task_rows().count() == 1 and not StepRun.objects.exists()


def test_max_inline_steps_bounds_a_task(db_queue):
    db_queue.HEPHAESTUS = {"MAX_INLINE_STEPS": 3}
    TenFlow.start("M1", {})
    assert drain() == ["ran 3 step(s)", "ran 3 step(s)", "ran 3 step(s)", "ran 1 step(s)"]
    assert h.get_instance("ten::M1").status == Status.COMPLETED
    assert task_rows().count() == 4


def test_a_fan_out_runs_one_branch_inline_and_enqueues_the_others(db_queue):
    FanOutFlow.start("C1", {})
    values = drain(limit=1)
    assert task_rows().count() == 3  # the start's task, and one per branch it did not run inline
    values += drain()
    # split and a branch, then the two other branches (the last one runs the join); on PostgreSQL
    # the first task also runs the two branches nobody took (the next test)
    assert sum(int(v.split()[1]) for v in values) == 5 and values[0] in ("ran 2 step(s)", "ran 5 step(s)")
    instance = h.get_instance("fan::C1")
    assert instance.status == Status.COMPLETED
    assert instance.context.steps["r_join"] == {"branches": [1, 2, 3]}
    assert [e.step_name for e in instance.execution_history].count(RJoin.registry_name()) == 1


@pytest.mark.postgres
def test_a_task_whose_chain_ends_runs_the_branches_still_waiting_in_the_queue(db_queue):
    """django-tasks-db on PostgreSQL: the branches nobody took yet run in the task that carried
    the instance on, and their tasks are retired in the same statement (so a backlog costs one
    task per instance); a branch another worker took is left to it."""
    FanOutFlow.start("C2", {})
    assert drain(limit=1) == ["ran 5 step(s)"]  # C2: split, three branches, join (and Done)
    assert h.get_instance("fan::C2").status == Status.COMPLETED
    retired = task_rows().filter(status="SUCCESSFUL", return_value="ran in the task that carried its instance on")
    assert retired.count() == 2
    from django_tasks_db.models import DBTaskResult

    from hephaestus_django.runtime import dbqueue

    # C3 with MAX_INLINE_STEPS=1: its split's task stops after the split; three branch tasks wait
    FanOutFlow.start("C3", {})
    c3_branches = StepRun.objects.filter(instance__instance_id="fan::C3")
    db_queue.HEPHAESTUS = {"MAX_INLINE_STEPS": 1}
    assert drain(limit=1) == ["ran 1 step(s)"]
    assert DBTaskResult.objects.filter(status="READY").count() == 3
    DBTaskResult.objects.filter(status="READY").first().claim("other-worker")  # another worker took one
    runner = get_runner()
    assert dbqueue.take_sibling(runner.storage, pk_of("fan::C3"), ("", 0), runner.worker_id, 0) == []
    taken = dbqueue.take_sibling(runner.storage, pk_of("fan::C3"), ("", 0), runner.worker_id, 1)
    taken += dbqueue.take_sibling(runner.storage, pk_of("fan::C3"), ("", 0), runner.worker_id, 5)
    assert len(taken) == 2  # at most as many as asked for; the branch another worker took is left to it
    assert dbqueue.take_sibling(runner.storage, pk_of("fan::C3"), ("", 0), runner.worker_id, 5) == []
    assert {r.state for r in taken} == {CLAIMED}
    assert set(c3_branches.filter(state=CLAIMED, worker=runner.worker_id).values_list("token", flat=True)) == \
        {uuid.UUID(r.token) for r in taken}
    assert DBTaskResult.objects.filter(status="SUCCESSFUL", pk__in=[r.token for r in taken]).count() == 2


@pytest.mark.postgres
def test_a_task_with_steps_to_spare_runs_the_oldest_waiting_instances(db_queue):
    """django-tasks-db on PostgreSQL: a task whose instance is done takes the oldest queued run
    routed like it whose task nobody has taken (retiring that task in the same statement), until
    MAX_INLINE_STEPS; then the instance it is on goes on in a task of its own."""
    from django_tasks_db.models import DBTaskResult

    db_queue.HEPHAESTUS = {"MAX_INLINE_STEPS": 12}
    for value in range(1, 5):
        LinearFlow.start(f"N{value}", {"i": value})
    assert drain(limit=1) == ["ran 12 step(s)"]  # N1, N2 and two steps of N3
    assert [h.get_instance(f"linear::N{v}").status for v in range(1, 5)] == \
        [Status.COMPLETED, Status.COMPLETED, Status.RUNNING, Status.RUNNING]
    retired = [r for r in DBTaskResult.objects.filter(status="SUCCESSFUL")
               if str(r.return_value).startswith("ran in a task of worker ")]
    assert len(retired) == 2  # N2's and N3's start tasks, retired when their runs were taken
    n3 = StepRun.objects.get(instance__instance_id="linear::N3")
    assert (n3.state, n3.step) == (QUEUED, L3.registry_name())  # its own task now
    assert drain() == ["ran 8 step(s)"]  # N4's start task carries N4, then takes N3 on (its task waited)
    for value in range(1, 5):
        instance = h.get_instance(f"linear::N{value}")
        assert instance.status == Status.COMPLETED
        assert [e.kind for e in instance.execution_history].count("completed") == 6  # every step once
    assert not StepRun.objects.exists()


@pytest.mark.postgres
def test_a_task_never_takes_work_before_a_task_of_higher_priority(db_queue):
    from hephaestus_django.runtime.tasks import run_step

    LinearFlow.start("P1", {"i": 1})
    LinearFlow.start("P2", {"i": 2})
    HighPriorityFlow.start("P3", {})
    p1 = task_rows().get(args_kwargs__args=[str(StepRun.objects.get(instance__instance_id="linear::P1").token)])
    p1.claim("test-worker")  # a worker took P1's task before P3's arrived
    assert run_step.call(*p1.args_kwargs["args"]) == "ran 5 step(s)"  # P2 waits behind P3's task
    p1.set_successful("ran 5 step(s)")
    assert drain() == ["ran 1 step(s)", "ran 5 step(s)"]  # P3 (priority 50), then P2


@pytest.mark.postgres
def test_a_waiting_run_of_a_gone_workflow_taken_on_fails_its_instance_and_the_task_goes_on(db_queue):
    import datetime as dt

    from django_tasks_db.models import DBTaskResult

    from hephaestus_django.runtime import dbqueue
    from hephaestus_django.runtime.tasks import run_step
    from hephaestus_django.storage.models import WorkflowInstance

    LinearFlow.start("G1", {"i": 1})
    now = dt.datetime.now(dt.UTC)
    gone = WorkflowInstance.objects.create(instance_id="gone::2", workflow="tests.Nowhere", status="running",
                                           created_at=now, updated_at=now, active_steps=["x.Y"],
                                           unique_slot="w|tests.Nowhere|gone::2")
    token = uuid.uuid4()
    StepRun.objects.create(instance=gone, step="x.Y", dispatched_at=now, enqueued=True, token=token)
    dbqueue.insert([dbqueue.task_row(get_runner()._task(run_step, "", 0), str(token))])
    LinearFlow.start("G3", {"i": 3})
    assert drain(limit=1) == ["ran 10 step(s)"]  # G1, then (the gone one failed on the way) G3
    gone.refresh_from_db()
    assert gone.status == "failed" and "tests.Nowhere" in gone.error
    assert h.get_instance("linear::G3").status == Status.COMPLETED
    assert not StepRun.objects.exists() and not DBTaskResult.objects.filter(status="READY").exists()


def test_each_step_is_committed_before_the_next_runs(db_queue):
    """Under continuation every outcome is its own write: one guarded UPDATE per step."""
    LinearFlow.start("S3", {"i": 3})
    with CaptureQueriesContext(connection) as queries:
        drain()
    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].startswith(("UPDATE \"hephaestus_django_workflowinstance\"", "WITH u AS (UPDATE"))]
    assert len(writes) == 5


def test_a_duplicate_delivery_finds_nothing_to_claim(db_queue):
    from hephaestus_django.runtime.tasks import run_step

    LinearFlow.start("S4", {"i": 4})
    token = str(StepRun.objects.get().token)
    assert [r.args_kwargs["args"] for r in task_rows()] == [[token]]  # the task is the run's dispatch token
    assert run_step.call(token) == "ran 5 step(s)"
    assert run_step.call(token) == "skipped"  # delivered twice: nothing runs again
    assert [e.kind for e in h.get_instance("linear::S4").execution_history].count("completed") == 6


def test_queue_name_and_priority_route_each_step(db_queue):
    RoutedFlow.start("R1", {})
    LowPriorityFlow.start("R2", {})
    HighPriorityFlow.start("R3", {})
    assert [(r.queue_name, r.priority) for r in task_rows()] == [("flows", 0), ("default", -50), ("default", 50)]
    drain()
    # the step routed elsewhere leaves the chain: its own task on its own queue, then back
    assert [r.queue_name for r in task_rows()] == ["flows", "default", "default", "mail", "flows"]
    assert h.get_instance("routed::R1").status == Status.COMPLETED
    assert StepRun.objects.filter(step=SMailer.registry_name()).count() == 0


# ---- lost dispatches and backlogs (SPEC §13) ------------------------------------------------------------
def test_a_lost_enqueue_is_sent_again_after_the_grace(dummy, django_capture_on_commit_callbacks):
    runner = get_runner()
    with frozen_clock() as clock:
        with django_capture_on_commit_callbacks(execute=False):
            PersistFlow.start("L1", {})  # the process dies between the commit and the enqueue
        assert dummy.results == []
        assert StepRun.objects.get().enqueued is False
        clock.advance(seconds=29)
        assert runner.redispatch_lost() == 0
        clock.advance(seconds=2)
        with django_capture_on_commit_callbacks(execute=True):
            assert runner.redispatch_lost() == 1
        run = StepRun.objects.get()
        assert [r.args for r in dummy.results] == [[str(run.token)]]  # a new dispatch: a new token
        assert run.enqueued is True and run.task_id == str(dummy.results[0].id)
        clock.advance(hours=1)
        assert runner.redispatch_lost() == 0


def test_a_backlog_is_never_dispatched_twice(dummy, django_capture_on_commit_callbacks):
    with frozen_clock() as clock:
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(5):
                LinearFlow.start(f"B{i}", {"i": i})
        assert len(dummy.results) == 5
        clock.advance(hours=2)  # the queue is stuck behind other work for two hours
        assert run_pass() == (0, 0, 0)
        assert len(dummy.results) == 5
        assert set(StepRun.objects.values_list("state", "enqueued")) == {(QUEUED, True)}


def test_dispatch_timeout_sends_an_unclaimed_step_again(dummy, settings, django_capture_on_commit_callbacks):
    settings.HEPHAESTUS = {"DISPATCH_TIMEOUT": 600}
    with frozen_clock() as clock:
        with django_capture_on_commit_callbacks(execute=True):
            LinearFlow.start("T1", {"i": 1})
        clock.advance(seconds=599)
        assert get_runner().redispatch_lost() == 0
        clock.advance(seconds=2)
        with django_capture_on_commit_callbacks(execute=True):
            assert get_runner().redispatch_lost() == 1
        assert len(dummy.results) == 2
        assert dummy.results[1].args == [str(StepRun.objects.get().token)] != dummy.results[0].args
        assert get_runner().redispatch_lost() == 0  # its dispatch time was renewed


def test_a_task_taken_by_a_worker_that_died_before_claiming_is_sent_again(db_queue):
    """The window between a worker taking a task and claiming its run: the run stays queued, its
    task is no longer waiting. After the grace the run is dispatched again, with a new token."""
    from django_tasks_db.models import DBTaskResult

    runner = get_runner()
    with frozen_clock() as clock:
        LinearFlow.start("D1", {"i": 1})
        LinearFlow.start("D2", {"i": 2})  # its task still waits in the queue: left alone
        taken = DBTaskResult.objects.get(args_kwargs__args__0=str(StepRun.objects.get(
            instance__instance_id="linear::D1").token))
        taken.claim("dead-worker")  # taken... and the worker dies
        DBTaskResult.objects.filter(pk=taken.pk).update(started_at=clock.now())
        clock.advance(seconds=29)
        assert runner.redispatch_lost() == 0
        clock.advance(seconds=2)
        assert runner.redispatch_lost() == 1
        assert runner.redispatch_lost() == 0
    run = StepRun.objects.get(instance__instance_id="linear::D1")
    assert str(run.token) != str(taken.pk)
    # the first task carries on the other waiting instance on PostgreSQL
    assert drain() in (["ran 5 step(s)", "ran 5 step(s)"], ["ran 10 step(s)"])
    from hephaestus_django.runtime.tasks import run_step

    assert run_step.call(str(taken.pk)) == "skipped"  # the old task, if it ever runs, finds nothing
    assert [i.status for i in h.list_instances(workflow="tests.LinearFlow")] == [Status.COMPLETED] * 2


@pytest.mark.postgres
def test_statements_of_a_queued_instance_on_postgresql(db_queue):
    """Under django-tasks-db a start is one statement (the instance, its first run and its task
    row); a worker's task is one claim (which reads the instance), one statement per step, and one
    that takes waiting work on when its instance is done."""
    LinearFlow.start("P0", {"i": 0})
    drain()
    with CaptureQueriesContext(connection) as queries:
        LinearFlow.start("P1", {"i": 1})
    # (the savepoints are the test's transaction; outside one these statements run alone)
    assert statements(queries) == ["WITH i AS (INSER"]
    from hephaestus_django.runtime.tasks import run_step

    token = str(StepRun.objects.get().token)
    with CaptureQueriesContext(connection) as queries:
        assert run_step.call(token) == "ran 5 step(s)"
    ours = statements(queries)
    # and, the instance done, one look for waiting work it could take on (none)
    assert ours == ["WITH c AS (UPDAT"] + ["WITH u AS (UPDAT"] * 5 + ["WITH t AS (SELEC"], ours


# ---- lost claims: failed attempts, never more than max_attempts (SPEC §13) -----------------------------------
def _claim_and_die(instance_id: str, step, attempt: int) -> None:
    """A worker claims the run, then dies (its heartbeat stops)."""
    run = StepRun.objects.get(instance__instance_id=instance_id, step=step.registry_name(), attempt=attempt)
    state, _, _ = get_runner().storage.claim(str(run.token), "dead-host:1:x", load=False)
    assert state == CLAIMED


def test_a_lost_claim_is_a_failed_attempt_with_its_backoff(dummy, django_capture_on_commit_callbacks):
    runner = get_runner()
    with frozen_clock() as clock, django_capture_on_commit_callbacks(execute=True):
        started = h.start_instance("tests.BackoffFlow", {}, id="backoff::W1")
        _claim_and_die("backoff::W1", FBackoff, 1)
        clock.advance(seconds=LEASE - 1)
        assert runner.recover_lost_claims() == 0  # still within its lease
        clock.advance(seconds=2)
        assert runner.recover_lost_claims() == 1
        assert runner.recover_lost_claims() == 0
        instance = h.get_instance("backoff::W1")
        lost = instance.execution_history[-1]
        assert (lost.kind, lost.attempt, lost.delay) == ("retrying", 1, 3.0)
        assert lost.error.startswith("WorkerLost: worker dead-host:1:x stopped while it ran attempt 1 of ")
        assert not StepRun.objects.exists()  # the backoff is a timer: nothing runs before it
        assert Timer.objects.get().attempt == 2
        clock.advance(seconds=3)
        assert runner.fire_due_timers() == 1
        run = StepRun.objects.get()
        assert (run.step, run.attempt, run.state) == (FBackoff.registry_name(), 2, QUEUED)
        _claim_and_die("backoff::W1", FBackoff, 2)
        clock.advance(seconds=LEASE + 1)
        assert runner.recover_lost_claims() == 1
        clock.advance(seconds=3)
        assert runner.fire_due_timers() == 1
        _claim_and_die("backoff::W1", FBackoff, 3)
        clock.advance(seconds=LEASE + 1)
        assert runner.recover_lost_claims() == 1
    instance = h.get_instance("backoff::W1")
    assert [(e.kind, e.attempt) for e in instance.execution_history] == [("retrying", 1), ("retrying", 2),
                                                                         ("failed", 3)]
    assert instance.status == Status.FAILED and instance.error.startswith("WorkerLost: ")
    assert not StepRun.objects.exists() and not Timer.objects.exists()
    assert started.status == Status.RUNNING  # as the start left it: queued


def test_a_step_without_retry_is_re_run_until_recovery_attempts(dummy, settings,
                                                                  django_capture_on_commit_callbacks):
    settings.HEPHAESTUS = {"RECOVERY_ATTEMPTS": 2}
    runner = get_runner()
    with frozen_clock() as clock, django_capture_on_commit_callbacks(execute=True):
        LinearFlow.start("N1", {"i": 1})
        _claim_and_die("linear::N1", L1, 1)
        clock.advance(seconds=LEASE + 1)
        assert runner.recover_lost_claims() == 1
        assert StepRun.objects.get().attempt == 2  # re-run at once: no retry policy, no backoff
        _claim_and_die("linear::N1", L1, 2)
        clock.advance(seconds=LEASE + 1)
        assert runner.recover_lost_claims() == 1
    instance = h.get_instance("linear::N1")
    assert [(e.kind, e.attempt, e.delay) for e in instance.execution_history] == [("retrying", 1, 0.0),
                                                                                  ("failed", 2, None)]
    assert instance.status == Status.FAILED


def test_the_outcome_of_a_claim_taken_away_is_not_applied(dummy, django_capture_on_commit_callbacks):
    """A worker that lost its claim (no heartbeat for a lease: recovery re-ran the step) and then
    finishes anyway does not apply its outcome: the attempt was counted as failed."""
    runner = get_runner()
    with frozen_clock() as clock, django_capture_on_commit_callbacks(execute=True):
        LinearFlow.start("G1", {"i": 1})
        state, instance, _ = runner.storage.claim(str(StepRun.objects.get().token), runner.worker_id)
        assert state == CLAIMED and instance is not None
        clock.advance(seconds=LEASE + 1)
        assert runner.recover_lost_claims() == 1
        new_instance, items = runner.run_step(instance, L1, 1)
    assert new_instance is None and items == []
    assert [e.kind for e in h.get_instance("linear::G1").execution_history] == ["retrying"]
    assert StepRun.objects.get().attempt == 2


def test_the_heartbeat_keeps_a_working_claim_alive(dummy, django_capture_on_commit_callbacks):
    runner = get_runner()
    with frozen_clock() as clock, django_capture_on_commit_callbacks(execute=True):
        LinearFlow.start("H1", {"i": 1})
        LinearFlow.start("H2", {"i": 2})
        runner.storage.claim(str(StepRun.objects.get(instance__instance_id="linear::H1").token), runner.worker_id,
                             load=False)
        _claim_and_die("linear::H2", L1, 1)
        with heartbeat.holding() as holding:
            holding.add(pk_of("linear::H1"))
            clock.advance(seconds=LEASE - 10)
            assert heartbeat.beat() == 1  # only this worker's claims of what it works on
            clock.advance(seconds=20)
            assert runner.recover_lost_claims() == 1  # H2's worker is gone; H1's is alive
        assert heartbeat.beat() == 0  # the task ended: nothing is kept alive any more
    assert [e.kind for e in h.get_instance("linear::H1").execution_history] == []
    assert [e.kind for e in h.get_instance("linear::H2").execution_history] == ["retrying"]


def test_cancel_removes_queued_runs_and_timers_in_its_own_write(dummy, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        LinearFlow.start("X1", {"i": 1})
        h.start_instance("tests.TimerFlow", {}, id="timer::X2")
    assert get_runner().run_pending_steps([pk_of("timer::X2")]) == 1  # its Wait ran: its timer is a row
    assert Timer.objects.count() == 1
    with CaptureQueriesContext(connection) as queries:
        h.cancel("linear::X1")
        h.cancel("timer::X2")
    assert not StepRun.objects.exists() and not Timer.objects.exists()
    if connection.vendor == "postgresql":
        writes = [q for q in queries.captured_queries if q["sql"].startswith("WITH u AS")]
        assert len(writes) == 2 and all("DELETE FROM" in q["sql"] for q in writes)


# ---- concurrency limits (SPEC §11) -------------------------------------------------------------------
def test_a_run_over_the_concurrency_limit_waits_throttled_and_a_released_slot_dispatches_it(db_queue):
    runner = get_runner()
    LimitedFlow.start("A", {"work": 0})
    LimitedFlow.start("B", {"work": 0})
    # CFirst of A, and of B (whose task was waiting) on PostgreSQL; SLimited is never carried on
    assert drain(limit=2 if connection.vendor != "postgresql" else 1) in (["ran 1 step(s)", "ran 1 step(s)"],
                                                                           ["ran 2 step(s)"])
    limited = SLimited.registry_name()
    assert StepRun.objects.filter(step=limited, state=QUEUED).count() == 2
    with frozen_clock() as clock:
        # another worker holds the only slot, then dies
        b_run = StepRun.objects.get(instance__instance_id="limited::B", step=limited)
        runner.storage.claim(str(b_run.token), "dead-host:2:y", load=False)
        assert drain(limit=1) == ["throttled"]  # A's execution waits for the slot, no busy loop
        assert StepRun.objects.get(instance__instance_id="limited::A").state == THROTTLED
        assert runner.release_throttled() == 0  # no free slot
        clock.advance(seconds=LEASE + 1)
        assert runner.recover_lost_claims() == 1  # B's lost claim frees the slot: A is dispatched again
    assert StepRun.objects.get(instance__instance_id="limited::A").state == QUEUED
    drain()
    for value in "AB":
        instance = h.get_instance(f"limited::{value}")
        assert instance.status == Status.COMPLETED, instance.execution_history
    assert Ledger.objects.filter(note=CFirst.__name__).count() == 2


def test_the_worker_pass_releases_throttled_runs_with_a_free_slot(db_queue):
    LimitedFlow.start("C", {"work": 0})
    drain(limit=1)
    StepRun.objects.update(state=THROTTLED, enqueued=False)  # throttled while the slot was taken
    assert get_runner().release_throttled() == 1
    drain()
    assert h.get_instance("limited::C").status == Status.COMPLETED


def test_concurrency_limited_steps_run_under_the_immediate_backend():
    for value in "DE":
        LimitedFlow.start(value, {"work": 0})
        assert h.get_instance(f"limited::{value}").status == Status.COMPLETED
        LimitedStartFlow.start(value, {"work": 0})  # a limited start step: its slot is taken first
        assert h.get_instance(f"limitedstart::{value}").status == Status.COMPLETED
    assert not StepRun.objects.exists()


# ---- the test kit drives queued runs in process whatever the backend -----------------------------------------
def test_run_until_idle_runs_queued_runs(db_queue):
    TenFlow.start("K1", {})
    assert run_until_idle() == 10
    assert h.get_instance("ten::K1").status == Status.COMPLETED
    assert drain() == ["skipped"]  # the worker's task finds its run gone
