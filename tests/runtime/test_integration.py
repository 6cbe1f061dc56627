"""Runs (issues 10, 11) together with time and composition (SPEC §9, §10), in process on any database.

Every write that makes steps runnable writes their runs (and, with django-tasks-db on the same
database, their task rows) and every write that ends work removes them: children started by a
children step, a parent carried on by its last child, compensations, pause and unpause, migration,
deadlines, schedule ticks, resumes with data, retries and cancels. Queue workers are played by
:func:`drain`; the tests with real worker processes are in ``test_*_pg.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import connection

import hephaestus_django as h
from hephaestus_django.core import Status, registry
from hephaestus_django.core.ports import CLAIMED, QUEUED
from hephaestus_django.exceptions import NotRetryable
from hephaestus_django.runtime.dispatch import get_runner
from hephaestus_django.runtime.heartbeat import heartbeat, is_gone
from hephaestus_django.storage.models import HistoryEntry, ScheduleTick, StepRun, Timer, WorkflowInstance
from hephaestus_django.testing import frozen_clock
from tests import workflows as w
from tests import workflows_integration as wi
from tests import workflows_schedules as ws
from tests.runtime.conftest import drain, task_rows
from tests.workflows_compose import QCheck, QFan, QSum, QuickParent, QWork

pytestmark = pytest.mark.django_db
DB_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}


@pytest.fixture
def db_queue(settings):
    settings.TASKS = DB_QUEUE
    return settings


def runs(instance_id: str | None = None) -> list[tuple[str, int, str]]:
    """(step, attempt, state) of the runs (of one instance), oldest first."""
    qs = StepRun.objects.order_by("dispatched_at", "pk")
    if instance_id is not None:
        qs = qs.filter(instance__instance_id=instance_id)
    return list(qs.values_list("step", "attempt", "state"))


def ready_tasks() -> list[str]:
    """The tokens of the step tasks still waiting in django-tasks-db's queue (not the deferred timer fires)."""
    return [str(t.id) for t in task_rows().filter(status="READY", task_path__endswith=".run_step")]


def token_of(instance_id: str) -> str:
    return str(StepRun.objects.get(instance__instance_id=instance_id).token)


# ---- child workflows (SPEC §9) ----------------------------------------------------------------------
def test_children_under_a_queue_backend_get_queued_runs_and_the_last_one_carries_the_parent_on(db_queue):
    QuickParent.start("I1", {"children": 3})
    assert runs("qparent::I1") == [(QFan.registry_name(), 1, QUEUED)]
    assert ready_tasks() == [token_of("qparent::I1")]  # the start's one task, written with its run
    db_queue.HEPHAESTUS = {"MAX_INLINE_STEPS": 1}  # (a task with steps to spare would take the children on)
    assert drain(limit=1) == ["ran 1 step(s)"]  # the children step: it starts 3 children and waits
    db_queue.HEPHAESTUS = {}
    parent = WorkflowInstance.objects.get(instance_id="qparent::I1")
    assert parent.status == "waiting" and runs("qparent::I1") == []  # waiting on its children: no run
    children = [f"qchild::I1-{n}" for n in range(3)]
    for child in children:  # each child's first step queued, with its own task (they run in parallel)
        assert runs(child) == [(QWork.registry_name(), 1, QUEUED)]
    assert sorted(ready_tasks()) == sorted(token_of(c) for c in children)
    if connection.vendor == "postgresql":  # the first child's task takes the other children on
        assert drain() == ["ran 7 step(s)"]  # (and the last child's outcome carries the parent: QSum)
    else:
        assert drain() == ["ran 2 step(s)", "ran 2 step(s)", "ran 3 step(s)"]  # the last child also ran QSum
    assert h.get_instance("qparent::I1").status == Status.COMPLETED
    assert h.get_instance("qparent::I1").context.steps["q_sum"] == {"total": 6}
    assert task_rows().count() == 4  # one per start: the parent went on in its last child's task
    assert StepRun.objects.count() == 0
    done = HistoryEntry.objects.filter(instance__instance_id__startswith="qchild::I1", step=QCheck.registry_name(),
                                       kind="completed")
    assert done.count() == 3
    assert HistoryEntry.objects.filter(instance=parent, step=QSum.registry_name(), kind="completed").count() == 1


def test_cancelling_a_parent_removes_the_queued_runs_of_its_children(db_queue):
    QuickParent.start("I2", {"children": 2})
    db_queue.HEPHAESTUS = {"MAX_INLINE_STEPS": 1}
    drain(limit=1)
    assert StepRun.objects.filter(instance__parent__instance_id="qparent::I2", state=QUEUED).count() == 2
    h.cancel("qparent::I2")
    assert StepRun.objects.count() == 0  # the tree's runs went in the cancel's transaction
    assert drain() == ["skipped", "skipped"]  # the children's tasks find nothing to claim
    assert set(WorkflowInstance.objects.filter(instance_id__startswith="qchild::I2")
               .values_list("status", flat=True)) == {"cancelled"}


# ---- compensation (SPEC §10) --------------------------------------------------------------------------
def test_a_failure_while_a_branch_waits_in_the_queue_drops_its_run_and_compensates(db_queue):
    db_queue.HEPHAESTUS = {"MAX_INLINE_STEPS": 2}
    wi.SplitFailFlow.start("I3", {})
    # the split's task runs ISplit, then IBoom (chained), which fails: the write that starts
    # compensating drops ISlow's queued run (lowest priority: its task has not run) and queues IUndo
    assert drain(limit=1) == ["ran 2 step(s)"]
    assert h.get_instance("splitfail::I3").status == Status.COMPENSATING
    assert runs("splitfail::I3") == [(wi.IUndo.registry_name(), 1, QUEUED)]
    assert len(ready_tasks()) == 2  # IUndo's, and ISlow's still in the queue ...
    assert drain() == ["ran 1 step(s)", "skipped"]  # ... which finds nothing to run
    instance = h.get_instance("splitfail::I3")
    assert instance.status == Status.FAILED and instance.error == "Error: the branch failed"
    assert [e.kind for e in instance.execution_history if e.step_name == wi.IUndo.registry_name()] == ["compensated"]
    assert StepRun.objects.count() == 0
    assert not HistoryEntry.objects.filter(step=wi.ISlow.registry_name()).exists()


def test_cancel_with_compensation_queues_the_compensation_and_drops_the_deadline(db_queue):
    w.DeadlineFlow.start("I4", {})
    drain()
    assert h.get_instance("deadline::I4").status == Status.WAITING
    assert list(Timer.objects.values_list("purpose", flat=True)) == ["deadline"]
    h.cancel("deadline::I4", compensate=True)
    assert h.get_instance("deadline::I4").status == Status.COMPENSATING
    assert runs("deadline::I4") == [(w.TRelease.registry_name(), 1, QUEUED)]
    assert ready_tasks() == [token_of("deadline::I4")]
    assert not Timer.objects.exists()  # the deadline went with the cancel
    assert drain() == ["ran 1 step(s)"]
    assert h.get_instance("deadline::I4").status == Status.CANCELLED
    assert StepRun.objects.count() == 0


def test_a_deadline_fails_an_instance_whose_step_waits_in_the_queue(db_queue):
    with frozen_clock() as clock:
        w.DeadlineFlow.start("I5", {})
        assert runs("deadline::I5") == [(w.TReserve.registry_name(), 1, QUEUED)]
        clock.advance(seconds=61)
        assert get_runner().fire_due_timers() == 1
    instance = h.get_instance("deadline::I5")
    assert instance.status == Status.FAILED and instance.error.startswith("DeadlineExceeded")
    assert StepRun.objects.count() == 0  # the failing write removed the queued run
    assert drain() == ["skipped"]


# ---- pause and unpause (SPEC §10) ---------------------------------------------------------------------
def test_a_run_taken_while_paused_is_put_back_and_sent_again_at_unpause_with_its_attempt(db_queue):
    db_queue.HEPHAESTUS = {"MAX_INLINE_STEPS": 1}  # attempt 2 gets a task of its own
    runner = get_runner()
    with frozen_clock() as clock:
        wi.FlakyFlow.start("I6", {})
        assert drain(limit=1) == ["ran 1 step(s)"]  # attempt 1 fails; attempt 2 is queued
        assert runs("flaky::I6") == [(wi.IFlaky.registry_name(), 2, QUEUED)]
        first_token = token_of("flaky::I6")
        h.pause("flaky::I6")
        assert runs("flaky::I6") == [(wi.IFlaky.registry_name(), 2, QUEUED)]  # a pause keeps the run
        assert drain() == ["ran 0 step(s)"]  # a worker takes the task and puts the run back
        run = StepRun.objects.get()
        assert (run.state, run.attempt, run.enqueued, run.worker, str(run.token)) == (QUEUED, 2, False, "", first_token)
        clock.advance(minutes=10)
        assert runner.redispatch_lost() == 0  # never sent while paused, however long
        h.unpause("flaky::I6")
        run = StepRun.objects.get()
        assert (run.state, run.attempt, run.enqueued) == (QUEUED, 2, True)
        assert str(run.token) != first_token and ready_tasks() == [str(run.token)]  # a new dispatch
        assert drain() == ["ran 1 step(s)", "ran 1 step(s)"]
    instance = h.get_instance("flaky::I6")
    assert instance.status == Status.COMPLETED
    assert instance.context.steps["i_flaky"] == {"attempt": 2}
    assert [(e.kind, e.attempt) for e in instance.execution_history if e.step_name == wi.IFlaky.registry_name()] \
        == [("retrying", 1), ("completed", 2)]
    assert StepRun.objects.count() == 0


def test_a_step_made_runnable_while_paused_gets_its_first_run_at_unpause(db_queue):
    db_queue.HEPHAESTUS = {"MAX_INLINE_STEPS": 1}
    w.SagaFlow.start("I7", {})
    drain()
    assert h.get_instance("saga::I7").status == Status.WAITING
    h.pause("saga::I7")
    h.resume("saga::I7", "go", data={"note": "paused"})  # TGate completes; TShip waits for unpause
    assert runs("saga::I7") == []
    assert ready_tasks() == []
    h.unpause("saga::I7")
    assert runs("saga::I7") == [(w.TShip.registry_name(), 1, QUEUED)]
    assert ready_tasks() == [token_of("saga::I7")]
    drain()
    instance = h.get_instance("saga::I7")
    assert instance.status == Status.COMPLETED
    assert instance.context.steps["t_gate"] == {"note": "paused"}


def test_a_step_executing_at_pause_keeps_its_claim_and_unpause_leaves_it_alone(db_queue):
    from hephaestus_django.runtime.tasks import run_step

    runner = get_runner()
    wi.FlakyFlow.start("I8", {})
    token = token_of("flaky::I8")
    state, _instance, _run = runner.storage.claim(token, "another-worker")  # a worker is executing IFlaky
    assert state == CLAIMED
    h.pause("flaky::I8")
    h.unpause("flaky::I8")
    run = StepRun.objects.get()
    assert (run.state, run.worker, str(run.token)) == (CLAIMED, "another-worker", token)  # not sent twice
    assert run_step.call(token) == "skipped"  # a second delivery of its task finds it claimed


# ---- migration (SPEC §10) -----------------------------------------------------------------------------
def test_migrate_renames_a_queued_run_and_a_retry_timer(db_queue):
    old, new = wi.IOld.registry_name(), wi.INew.registry_name()
    with frozen_clock() as clock:
        wi.RenameFlow.start("I9", {"fail": True})
        assert drain() == ["ran 1 step(s)"]  # attempt 1 fails: attempt 2 in 60 s
        wi.RenameFlow.start("I10", {})  # a queued run, not taken yet
        token = token_of("rename::I10")
        assert list(Timer.objects.values_list("instance__instance_id", "step", "purpose", "attempt")) == [
            ("rename::I9", old, "retry", 2)]
        for instance_id in ("rename::I9", "rename::I10"):
            h.migrate(instance_id, to_version=2, step_map={old: new})
        assert runs("rename::I10") == [(new, 1, QUEUED)] and token_of("rename::I10") == token  # the same dispatch
        assert list(Timer.objects.values_list("instance__instance_id", "step", "purpose", "attempt")) == [
            ("rename::I9", new, "retry", 2)]
        assert drain() == ["ran 1 step(s)"]  # its task claims the renamed run and runs the new step
        assert h.get_instance("rename::I10").context.steps == {"i_new": {"by": "new"}}
        clock.advance(seconds=61)
        assert get_runner().fire_due_timers() == 1  # the renamed retry timer: attempt 2 of the new step
        assert runs("rename::I9") == [(new, 2, QUEUED)]
        assert drain() == ["ran 1 step(s)"]
    instance = h.get_instance("rename::I9")
    assert instance.status == Status.COMPLETED and instance.context.steps["i_new"] == {"by": "new"}
    assert [(e.kind, e.attempt) for e in instance.execution_history if e.step_name == new] == [("completed", 2)]
    assert StepRun.objects.count() == 0


# ---- schedules (SPEC §10) -----------------------------------------------------------------------------
@pytest.fixture
def nightly() -> Iterator[None]:
    registry.register(ws.NightlyReport)
    try:
        yield
    finally:
        registry.unregister(ws.NightlyReport.name)


def test_a_schedule_tick_under_a_queue_backend_writes_the_run_and_its_task_with_the_tick(db_queue, nightly):
    runner = get_runner()
    with frozen_clock(datetime(2024, 5, 6, 0, 5, tzinfo=UTC)) as clock:
        assert runner.fire_schedules() == 0  # first seen: noted, no backfill
        clock.advance(minutes=10)
        assert runner.fire_schedules() == 1
    tick = ScheduleTick.objects.get()
    instance = WorkflowInstance.objects.get(pk=tick.instance_id)
    assert (instance.instance_id, instance.status) == ("report::quarterly-202405060015", "running")
    assert runs(instance.instance_id) == [(ws.SReport.registry_name(), 1, QUEUED)]
    assert ready_tasks() == [token_of(instance.instance_id)]  # nothing ran in the worker pass
    assert drain() == ["ran 1 step(s)"]
    assert h.get_instance(instance.instance_id).status == Status.COMPLETED
    assert StepRun.objects.count() == 0


# ---- resume with data, retry ------------------------------------------------------------------------
def test_resume_with_data_and_retry_write_queued_runs(db_queue):
    w.SagaFlow.start("I12", {"fail": True})
    drain()
    h.resume("saga::I12", "go", data={"by": "ops"}, idempotency_key="k-1")
    assert runs("saga::I12") == [(w.TShip.registry_name(), 1, QUEUED)]
    h.resume("saga::I12", "go", idempotency_key="k-1")  # a redelivery: nothing written
    assert runs("saga::I12") == [(w.TShip.registry_name(), 1, QUEUED)] and len(ready_tasks()) == 1
    drain()  # TShip fails: TRefund and TRelease compensate, in the same task
    instance = h.get_instance("saga::I12")
    assert instance.status == Status.FAILED and StepRun.objects.count() == 0
    with pytest.raises(NotRetryable):
        h.retry("saga::I12")  # compensated: nothing left to retry


def test_retry_of_a_failed_compensation_writes_its_run(db_queue, tmp_path):
    flag = tmp_path / "refund-fails"
    flag.write_text("x")
    w.SagaFlow.start("I13", {"fail": True, "refund_fails": str(flag)})
    drain()
    h.resume("saga::I13", "go")
    drain()
    instance = h.get_instance("saga::I13")
    assert instance.status == Status.FAILED and "bank unreachable" in instance.error
    assert StepRun.objects.count() == 0
    flag.unlink()
    h.retry("saga::I13")
    assert runs("saga::I13") == [(w.TRefund.registry_name(), 1, QUEUED)]
    drain()
    instance = h.get_instance("saga::I13")
    assert instance.status == Status.FAILED and instance.error == "Error: carrier refused the parcel"
    assert [e.step_name for e in instance.execution_history if e.kind == "compensated"] == [
        w.TRefund.registry_name(), w.TRelease.registry_name()]
    assert StepRun.objects.count() == 0


# ---- a task delivered again after its worker died -----------------------------------------------------
def test_is_gone_tells_a_dead_process_of_this_host_only() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    place = heartbeat.worker_id.rsplit(":", 2)[0]
    alive = f"{place}:{proc.pid}:0000"
    assert is_gone(alive) is False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert is_gone(alive) is True
    assert is_gone(heartbeat.worker_id) is False  # this process
    assert is_gone(f"elsewhere/1:{proc.pid}:0000") is False  # another host: only its lease can tell
    assert is_gone("garbage") is False and is_gone("a:b:c") is False


def test_a_redelivered_task_recovers_a_claim_of_a_dead_process_at_once(db_queue):
    from hephaestus_django.runtime.tasks import run_step

    wi.FlakyFlow.start("I14", {})
    token = token_of("flaky::I14")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a process of this host that has died
    dead = f"{heartbeat.worker_id.rsplit(':', 2)[0]}:{proc.pid}:dead"
    assert get_runner().storage.claim(token, dead)[0] == CLAIMED  # it claimed the run, then was killed
    assert run_step.call(token) == "recovered"
    instance = h.get_instance("flaky::I14")
    assert instance.status == Status.COMPLETED
    lost = [e for e in instance.execution_history if e.kind == "retrying"]
    assert [(e.attempt, e.error.split(" (")[-1]) for e in lost][0] == (1, "its task was delivered again)")
    assert StepRun.objects.count() == 0
