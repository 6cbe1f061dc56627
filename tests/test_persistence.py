"""Issue 3: instances, history and uniqueness in the database, through the Python API."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import uuid

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.test.utils import CaptureQueriesContext

import hephaestus_django as h
from hephaestus_django.core import Context, Instance, Status
from hephaestus_django.core.status import ACTIVE_STATUSES
from hephaestus_django.exceptions import (
    AlreadyRunning,
    HephaestusError,
    InstanceNotFound,
    InvalidContext,
    InvalidEvent,
    NotCancellable,
    NotRetryable,
    NotWaiting,
    UnknownWorkflow,
)
from hephaestus_django.storage.models import HistoryEntry, InstanceStatus, Timer, WorkflowInstance
from hephaestus_django.storage.orm import DjangoStorage
from hephaestus_django.testing import assert_path, frozen_clock, run_until_idle
from tests.workflows import (
    GlobalFlowA,
    NoScopeFlow,
    PApproval,
    PersistFlow,
    PJoin,
    PLeft,
    PRight,
    PStart,
    RetryFlow,
    SharedKeyFlow,
    VersionScoped,
)

pytestmark = pytest.mark.django_db


def snapshot(instance_id: str) -> list[tuple]:
    """Everything stored about an id: rows, history and timers (to prove nothing changed)."""
    rows = list(WorkflowInstance.objects.filter(instance_id=instance_id).order_by("pk").values())
    history = list(HistoryEntry.objects.filter(instance__instance_id=instance_id).order_by("pk").values())
    timers = list(Timer.objects.filter(instance__instance_id=instance_id).order_by("pk").values())
    return [rows, history, timers]


RICH = {
    "name": "Zoë 東京 🚀",
    "nested": {"a": [1, 2, {"b": None, "c": [True, False]}], "deep": {"x": {"y": {"z": 1.5}}}},
    "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "day": dt.date(2026, 2, 3),
    "price": decimal.Decimal("12.30"),
    "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "payload": "ok",
}


def test_status_choices_mirror_the_core():
    assert {c.value for c in InstanceStatus} == {s.value for s in Status}


def test_round_trip_of_every_field():
    started = h.start_instance(PersistFlow, RICH, id="persist::rich-1", telemetry_metadata={"tenant": "acme"})
    loaded = h.get_instance("persist::rich-1")
    encoded = json.loads(json.dumps(RICH, cls=DjangoJSONEncoder))
    assert isinstance(loaded, Instance)
    assert loaded.id == "persist::rich-1"
    assert loaded.workflow is PersistFlow
    assert loaded.workflow_version == 1
    assert loaded.status == Status.WAITING
    assert loaded.current_step is PApproval
    assert isinstance(loaded.context, Context)
    assert loaded.context.initial == encoded  # dates, decimals and UUIDs as Django's encoder writes them
    assert loaded.context.initial["name"] == "Zoë 東京 🚀"
    assert loaded.context.steps == {
        "p_start": {"seen": "ok"},
        "p_left": {"side": "west"},
        "p_right": {"side": "right"},
        "p_join": {"sides": ["p_left", "p_right", "p_start"]},
    }
    assert loaded.step_configs == {PApproval: {"event_name": "approved"}}
    assert loaded.active_steps == {PApproval}
    assert set(loaded.waiting_steps) == {PApproval}
    assert loaded.completed_steps == {PStart, PLeft, PRight, PJoin}
    assert loaded.runtime_metadata == {"started_by": "PStart"}
    assert loaded.telemetry_metadata == {"tenant": "acme"}
    assert isinstance(loaded.telemetry_start_time, int)
    assert loaded.error is None
    assert loaded.created_at is not None and loaded.updated_at >= loaded.created_at
    assert [(e.step_ref, e.event, e.kind) for e in loaded.execution_history] == [
        (PStart, "go", "completed"), (PLeft, "done", "completed"), (PRight, "done", "completed"),
        (PJoin, "joined", "completed"), (PApproval, None, "paused"),
    ]
    first = loaded.execution_history[0]
    assert first.context_updates == {"seen": "ok"} and first.attempt == 1 and first.duration >= 0
    assert started.id == loaded.id
    row = WorkflowInstance.objects.get(instance_id="persist::rich-1")
    assert row.status == "waiting"  # stored as its lowercase value
    assert row.context["initial"]["price"] == "12.30"
    assert list(row.history.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]


def test_history_is_its_own_ordered_table_and_appends():
    h.start_instance(PersistFlow, {"payload": 1}, id="persist::h1")
    h.resume("persist::h1", "approved")
    row = WorkflowInstance.objects.get(instance_id="persist::h1")
    kinds = list(row.history.order_by("seq").values_list("kind", "step", "event"))
    assert kinds[-2:] == [("resumed", PApproval.registry_name(), "received"),
                          ("completed", "hephaestus_django.core.steps.Done", "done")]
    assert row.history_length == len(kinds) == 7
    assert row.status == "completed" and row.unique_slot is None and row.finished_at is not None


def test_facade_happy_path():
    instance_id = PersistFlow.start("F-1", {"payload": "x"})
    assert instance_id == "persist::F-1"
    assert PersistFlow.get("F-1").status == Status.WAITING
    assert [i.id for i in PersistFlow.list(status="waiting")] == ["persist::F-1"]
    done = PersistFlow.resume("F-1", "received")
    assert done.status == Status.COMPLETED
    assert_path(done, [PStart, PLeft, PRight, PJoin, PApproval, "hephaestus_django.core.steps.Done"])
    PersistFlow.start("F-2", {"payload": "y"})
    cancelled = PersistFlow.cancel("F-2")
    assert cancelled.status == Status.CANCELLED
    assert {i.id for i in PersistFlow.list(status__in=["completed", "cancelled"])} == {"persist::F-1", "persist::F-2"}
    assert PersistFlow.list(workflow_version=2) == []


def test_low_level_api_retry_after_failure():
    with frozen_clock() as clock:
        failed = h.start_instance(RetryFlow, {"fail": True}, id="retry::1")
        assert failed.status == Status.RUNNING  # attempt 1 failed, attempt 2 scheduled
        clock.advance(seconds=5)
        assert run_until_idle() == 1
        failed = h.get_instance("retry::1")
        assert failed.status == Status.FAILED and failed.error == "Error: flaky failure"
        assert [(e.kind, e.attempt) for e in failed.execution_history] == [("retrying", 1), ("failed", 2)]
        assert failed.execution_history[0].delay == 5.0
        WorkflowInstance.objects.filter(pk=failed.pk).update(context={"initial": {}, "steps": {}})  # fix the cause
        retried = h.retry("retry::1")
        assert retried.status == Status.WAITING  # now in the Wait step
        clock.advance(seconds=10)
        run_until_idle()
        assert h.get_instance("retry::1").status == Status.COMPLETED


def test_list_instances_filters():
    h.start_instance(PersistFlow, {"stop": True}, id="persist::L1")
    h.start_instance(PersistFlow, {}, id="persist::L2")
    assert [i.id for i in h.list_instances(workflow="tests.PersistFlow", status="completed")] == ["persist::L1"]
    assert {i.id for i in h.list_instances(status__in=["completed", "waiting"])} == {"persist::L1", "persist::L2"}
    with pytest.raises(TypeError, match="unknown filter"):
        h.list_instances(colour="red")


# ---- errors leave the stored state unchanged ---------------------------------------------------

def test_already_running_leaves_state_unchanged():
    PersistFlow.start("E-1", {})
    before = snapshot("persist::E-1")
    with pytest.raises(AlreadyRunning, match="persist::E-1"):
        PersistFlow.start("E-1", {"other": 1})
    assert snapshot("persist::E-1") == before


@pytest.mark.parametrize("context", [
    {"when": {1, 2}}, {"obj": object()}, {"f": lambda: 1}, {"b": b"bytes"}, {"nan": float("nan")},
    {"inf": float("-inf")}, {"nul": "a\x00b"}, {"a\x00": 1},
    {"deep": functools.reduce(lambda v, _: [v], range(500), 1)},
])
def test_invalid_context_rejected_before_anything_is_written(context):
    """Everything PostgreSQL (or JSON) cannot hold is refused on every database, before any write."""
    with pytest.raises(InvalidContext, match="cannot|nested more than|NUL|JSON") as info:
        PersistFlow.start("E-2", context)
    assert isinstance(info.value, ValueError) and isinstance(info.value, HephaestusError)
    assert not WorkflowInstance.objects.exists() and not HistoryEntry.objects.exists()


def test_context_must_be_a_dict():
    with pytest.raises(InvalidContext, match="'context' must be a dict"):
        h.start_instance(PersistFlow, ["x"], id="persist::E-3")  # type: ignore[arg-type]
    assert not WorkflowInstance.objects.exists()


def test_instance_not_found():
    for call in (lambda: h.get_instance("persist::nope"), lambda: h.resume("persist::nope", "x"),
                 lambda: h.cancel("persist::nope"), lambda: h.retry("persist::nope"),
                 lambda: PersistFlow.get("nope")):
        with pytest.raises(InstanceNotFound, match="persist::nope"):
            call()


def test_not_waiting_invalid_event_not_cancellable_not_retryable():
    PersistFlow.start("E-4", {"stop": True})  # completes at once
    before = snapshot("persist::E-4")
    with pytest.raises(NotWaiting, match="completed"):
        PersistFlow.resume("E-4", "received")
    with pytest.raises(NotCancellable, match="completed"):
        PersistFlow.cancel("E-4")
    with pytest.raises(NotRetryable, match="completed"):
        h.retry("persist::E-4")
    assert snapshot("persist::E-4") == before

    PersistFlow.start("E-5", {})
    before = snapshot("persist::E-5")
    with pytest.raises(InvalidEvent, match="'nonsense'"):
        PersistFlow.resume("E-5", "nonsense")
    with pytest.raises(InvalidEvent, match="no step"):
        PersistFlow.resume("E-5", "received", step="tests.workflows.Nope")
    with pytest.raises(NotWaiting, match="not waiting"):
        PersistFlow.resume("E-5", "received", step=PStart)
    with pytest.raises(NotRetryable, match="waiting"):
        h.retry("persist::E-5")
    assert snapshot("persist::E-5") == before


def test_unknown_workflow():
    with pytest.raises(UnknownWorkflow, match="tests.Missing"):
        h.start_instance("tests.Missing", {}, id="x::1")
    with pytest.raises(UnknownWorkflow, match="os.system"):
        h.start_instance("os.system", {}, id="x::1")  # names are looked up, never imported
    PersistFlow.start("U-1", {})
    WorkflowInstance.objects.filter(instance_id="persist::U-1").update(workflow="tests.Gone")
    before = snapshot("persist::U-1")
    with pytest.raises(UnknownWorkflow, match="tests.Gone"):
        h.get_instance("persist::U-1")
    with pytest.raises(UnknownWorkflow):
        h.resume("persist::U-1", "received")
    assert snapshot("persist::U-1") == before
    assert not WorkflowInstance.objects.filter(instance_id="x::1").exists()


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="'value'"):
        PersistFlow.start("bad value!", {})
    with pytest.raises(ValueError, match="no version 7"):
        VersionScoped.start("v", {}, version=7)
    with pytest.raises(ValueError, match="'telemetry_metadata'"):
        PersistFlow.start("T-1", {}, telemetry_metadata="nope")  # type: ignore[arg-type]
    assert not WorkflowInstance.objects.exists()


# ---- uniqueness and restarts ------------------------------------------------------------------

def test_restart_after_completion_keeps_both_runs_and_histories():
    PersistFlow.start("R-1", {"stop": True, "run": 1})
    PersistFlow.start("R-1", {"stop": True, "run": 2})
    rows = WorkflowInstance.objects.filter(instance_id="persist::R-1").order_by("pk")
    assert [r.context["initial"]["run"] for r in rows] == [1, 2]
    assert [r.history.count() for r in rows] == [2, 2]
    assert PersistFlow.get("R-1").context.initial["run"] == 2  # lookups return the newest
    assert h.get_instance("persist::R-1").context.initial["run"] == 2


def test_scopes():
    # workflow scope: the same id in two workflows is fine
    SharedKeyFlow.start("S-1", {})
    with pytest.raises(AlreadyRunning):
        SharedKeyFlow.start("S-1", {})
    # global scope conflicts with any active instance with the id, whatever its workflow
    with pytest.raises(AlreadyRunning, match="tests.SharedKeyFlow"):
        GlobalFlowA.start("S-1", {})
    GlobalFlowA.start("S-2", {})
    with pytest.raises(AlreadyRunning):
        GlobalFlowA.start("S-2", {})
    # version scope: one active per id and version
    VersionScoped.start("V-1", {})
    VersionScoped.start("V-1", {}, version=1)
    with pytest.raises(AlreadyRunning):
        VersionScoped.start("V-1", {"want_version": 1})
    with pytest.raises(AlreadyRunning):
        VersionScoped.start("V-1", {}, version=2)
    assert sorted(i.workflow_version for i in VersionScoped.list()) == [1, 2]
    # scope none: random suffix, no limit; no get/resume/cancel on the facade
    a, b = NoScopeFlow.start("N-1", {}), NoScopeFlow.start("N-1", {})
    assert a != b and a.startswith("job::N-1::") and len(a.split("::")[2]) == 8
    assert not hasattr(NoScopeFlow, "get") and not hasattr(NoScopeFlow, "resume")
    assert len(NoScopeFlow.list()) == 2
    assert h.resume(a, "received").status == Status.COMPLETED


def test_versions_resolve_explicit_then_version_for_then_current():
    assert h.get_instance(VersionScoped.start("V-2", {})).workflow_version == 2
    assert h.get_instance(VersionScoped.start("V-3", {"want_version": 1})).workflow_version == 1
    assert h.get_instance(VersionScoped.start("V-4", {"want_version": 1}, version=2)).workflow_version == 2


def test_a_running_instance_keeps_its_version(monkeypatch):
    VersionScoped.start("V-5", {})
    monkeypatch.setattr(VersionScoped, "current", 1)
    assert VersionScoped.resume("V-5", "received").workflow_version == 2


def test_thousand_step_chain_runs_without_recursion():
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        instance = h.start_instance("tests.LongChain", {}, id="chain::1")
    finally:
        sys.setrecursionlimit(limit)
    assert instance.status == Status.COMPLETED
    assert len(instance.execution_history) == 1001


def test_sql_per_step_transition():
    storage = DjangoStorage()
    PersistFlow.start("Q-1", {})
    row = WorkflowInstance.objects.get(instance_id="persist::Q-1")
    instance = storage.load_pk(row.pk)
    from hephaestus_django.runtime.dispatch import get_runner

    service = get_runner()
    with CaptureQueriesContext(connection) as queries:
        h.resume("persist::Q-1", "received")
    statements = [q["sql"] for q in queries.captured_queries
                  if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))]
    # resume: lock + update + history; Done: lock + update + history; reads: load before run, final load
    assert len(statements) <= 9, statements
    assert instance.status == Status.WAITING and service is get_runner()


def test_active_statuses_hold_the_slot():
    PersistFlow.start("A-1", {})
    row = WorkflowInstance.objects.get(instance_id="persist::A-1")
    assert row.status in {s.value for s in ACTIVE_STATUSES} and row.unique_slot == "w|tests.PersistFlow|persist::A-1"
