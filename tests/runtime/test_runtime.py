"""Issue 4: the runtime in process (any database): dispatch, timers, retries, recovery, test kit."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import hephaestus_django as h
from hephaestus_django.compat import task_backends
from hephaestus_django.core import Status
from hephaestus_django.runtime.dispatch import get_runner
from hephaestus_django.storage.models import StepRun, Timer, WorkflowInstance
from hephaestus_django.testing import FrozenClock, assert_path, fire_due_timers, frozen_clock, run_until_idle
from tests.models import Ledger
from tests.workflows import AtomicFlow, EventTimeoutFlow, FanOutFlow, PersistFlow, RetryExhaustFlow, TimerFlow

pytestmark = pytest.mark.django_db
DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
DB_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def engine_statements(queries: list[dict]) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))]


def test_immediate_backend_runs_whole_workflows_in_the_caller():
    instance = FanOutFlow.start("I1", {})
    assert h.get_instance(instance).status == Status.COMPLETED


def test_statements_per_step_transition_on_the_hot_path():
    """Immediate backend: a completed step costs one statement on PostgreSQL (the guarded UPDATE,
    the history INSERT and the changes to its runs in one CTE); no read, no lock on the
    uncontended path. Elsewhere one statement per table touched."""
    FanOutFlow.start("Q0", {})  # warm up
    with CaptureQueriesContext(connection) as queries:
        FanOutFlow.start("Q1", {})
    statements = engine_statements(queries.captured_queries)
    steps = 5  # split, 3 branches, join (Done completes in the join's state change)
    writes = [s for s in statements if s.startswith(('UPDATE "hephaestus_django_workflowinstance"',
                                                     "WITH u AS (UPDATE"))]
    assert len(writes) == steps
    if connection.vendor == "postgresql":
        # the start is one statement too: the instance and its first run
        assert len(statements) == 1 + steps, statements
        assert statements[0].startswith("WITH i AS (INSERT") and all("INSERT INTO" in s for s in writes)
        assert not any("FOR UPDATE" in s or s.startswith("SELECT") for s in statements)
    else:
        inserts = [s for s in statements if s.startswith("INSERT") and "historyentry" in s]
        assert len(inserts) == steps
        # the instance and its first run; per step: its UPDATE, its history and its run (moved on to the
        # next step, or removed; a fan-out adds the others; the finishing write also clears the timers)
        assert len(statements) <= 2 + 3 * steps + 3, statements
        assert not any(s.startswith("SELECT") for s in statements)


def test_frozen_clock_and_timers():
    with frozen_clock(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)) as clock:
        assert isinstance(clock, FrozenClock)
        TimerFlow.start("W1", {})
        timer = Timer.objects.get()
        assert timer.due_at == dt.datetime(2030, 1, 1, 0, 0, 2, tzinfo=dt.UTC)
        assert fire_due_timers() == 0  # not due yet: nothing fires by itself
        clock.advance(seconds=1)
        assert run_until_idle() == 0
        clock.advance(seconds=1)
        assert fire_due_timers() == 1
    instance = h.get_instance("timer::W1")
    assert instance.status == Status.COMPLETED
    assert_path(instance, ["hephaestus_django.core.steps.Wait", "tests.workflows.RAfterWait",
                           "hephaestus_django.core.steps.Done"])


def test_frozen_clock_needs_an_aware_datetime():
    with pytest.raises(ValueError, match="aware"), frozen_clock(dt.datetime(2030, 1, 1)):
        pass


def test_assert_path_shows_a_diff():
    instance = h.get_instance(FanOutFlow.start("P1", {}))
    with pytest.raises(AssertionError, match=r"(?s)path of fan::P1 differs.*\+tests.workflows.RSplit"):
        assert_path(instance, ["tests.workflows.Nope"])
    with pytest.raises(TypeError, match="needs an Instance"):
        assert_path("fan::P1", [])  # type: ignore[arg-type]


def test_timer_of_an_instance_that_moved_on_does_nothing():
    with frozen_clock() as clock:
        EventTimeoutFlow.start("M1", {})
        h.resume("gate::M1", "opened")  # resumed before its timeout
        assert h.get_instance("gate::M1").status == Status.COMPLETED
        clock.advance(seconds=5)
        assert fire_due_timers() == 0
        assert Timer.objects.count() == 0  # claimed and dropped
    assert h.get_instance("gate::M1").context.steps == {"r_received": {"path": "received"}}


def test_wait_for_event_timeout_path_in_process():
    with frozen_clock() as clock:
        EventTimeoutFlow.start("M2", {})
        clock.advance(seconds=1)
        assert run_until_idle() == 1
    instance = h.get_instance("gate::M2")
    assert instance.status == Status.COMPLETED
    assert [e.kind for e in instance.execution_history] == ["paused", "timer_fired", "completed", "completed"]


@pytest.mark.parametrize(("backoff", "delays"), [("linear", [0.5, 1.0])])
def test_retry_backoff_timers(backoff, delays):
    with frozen_clock() as clock:
        RetryExhaustFlow.start("B1", {})
        instance = h.get_instance("exhaust::B1")
        assert instance.status == Status.RUNNING and instance.execution_history[-1].kind == "retrying"
        due = Timer.objects.get()
        assert due.purpose == "retry" and due.attempt == 2
        assert (due.due_at - clock.now()).total_seconds() == delays[0]
        clock.advance(seconds=0.5)
        assert fire_due_timers() == 1
        clock.advance(seconds=1.0)
        assert fire_due_timers() == 1
    instance = h.get_instance("exhaust::B1")
    assert instance.status == Status.FAILED
    assert [(e.kind, e.attempt, e.delay) for e in instance.execution_history] == [
        ("retrying", 1, 0.5), ("retrying", 2, 1.0), ("failed", 3, None)]


def test_atomic_step_rolls_back_its_writes_in_process():
    AtomicFlow.start("A1", {"fail": True})
    assert h.get_instance("atomic::A1").status == Status.FAILED
    assert not Ledger.objects.exists()
    AtomicFlow.start("A2", {})
    assert h.get_instance("atomic::A2").status == Status.COMPLETED
    assert Ledger.objects.filter(instance_id="atomic::A2").count() == 1


def test_run_until_idle_with_a_queue_backend(settings):
    """Steps queued on django-tasks-db run in this process through the test kit."""
    settings.TASKS = DB_QUEUE
    FanOutFlow.start("D1", {})
    assert h.get_instance("fan::D1").status == Status.RUNNING  # only queued
    assert run_until_idle() == 5
    assert h.get_instance("fan::D1").status == Status.COMPLETED
    assert run_until_idle() == 0


def test_run_until_idle_with_the_dummy_backend(settings, django_capture_on_commit_callbacks):
    settings.TASKS = DUMMY
    backend = task_backends["default"]
    backend.clear()
    with django_capture_on_commit_callbacks(execute=True):
        PersistFlow.start("D2", {})
    assert [r.args for r in backend.results] == [[str(StepRun.objects.get().token)]]
    assert StepRun.objects.get().step == "tests.workflows.PStart"
    assert run_until_idle() == 5  # PStart, both branches, the join, and the wait that pauses
    instance = PersistFlow.get("D2")
    assert instance.status == Status.WAITING  # at the external event
    PersistFlow.resume("D2", "approved")
    run_until_idle()
    assert PersistFlow.get("D2").status == Status.COMPLETED


def test_enqueue_happens_on_commit(settings, django_capture_on_commit_callbacks):
    settings.TASKS = DUMMY
    backend = task_backends["default"]
    backend.clear()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        PersistFlow.start("D3", {})
        assert backend.results == []  # not before the transaction that wrote the instance commits
    assert len(callbacks) == 1 and len(backend.results) == 1


def test_unknown_workflow_fails_cleanly_in_a_task():
    from hephaestus_django.runtime.tasks import run_step

    now = dt.datetime.now(dt.UTC)
    row = WorkflowInstance.objects.create(instance_id="gone::1", workflow="tests.Nowhere", status="running",
                                          created_at=now, updated_at=now,
                                          active_steps=["x.Y"], unique_slot="w|tests.Nowhere|gone::1")
    run = StepRun.objects.create(instance=row, step="x.Y", dispatched_at=now, enqueued=True, token=uuid.uuid4())
    assert run_step.call(str(run.token)) == "unknown workflow"
    row.refresh_from_db()
    assert row.status == "failed" and "tests.Nowhere" in row.error and row.unique_slot is None
    assert list(row.history.values_list("kind", flat=True)) == ["failed"]
    assert not StepRun.objects.exists()  # its runs go with it


def test_infrastructure_error_inside_the_immediate_task_is_raised(monkeypatch):
    """The immediate backend swallows a task's exception; the service re-raises it."""
    from hephaestus_django.runtime.dispatch import DispatchError

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(get_runner(), "advance_inline", broken)
    with pytest.raises(DispatchError, match="database went away"):
        FanOutFlow.start("E1", {})
