"""SPEC §10 with real processes on PostgreSQL: three ``hephaestus_worker`` processes racing over 100
due schedule ticks, a compensation whose worker is killed, and a bulk migration of 1,000 instances."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import hephaestus_django as h
from hephaestus_django.core import Status, clock, registry
from hephaestus_django.storage.models import HistoryEntry, ScheduleTick, StepRun, WorkflowInstance, WorkflowSchedule
from tests import workflows as w
from tests import workflows_schedules as ws
from tests.runtime.conftest import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def many_schedules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ManySchedules registered here and in the worker processes (HEPHAESTUS_TEST_SCHEDULES)."""
    monkeypatch.setenv("HEPHAESTUS_TEST_SCHEDULES", "1")
    registry.register(ws.ManySchedules)
    try:
        yield
    finally:
        for workflow in ws.WORKFLOWS:
            registry.unregister(workflow.name)


def test_three_workers_start_each_of_100_due_ticks_once(workers: Any, many_schedules: None) -> None:
    now = clock.now()
    tick = ws.ManySchedules.schedules[0].latest_tick(now)  # Jan 1 of this year, 00:00 UTC
    # as if a worker had seen the schedules before: every one is due now
    WorkflowSchedule.objects.bulk_create([WorkflowSchedule(workflow=ws.ManySchedules.name, name=s.name,
                                                           next_tick=tick) for s in ws.ManySchedules.schedules])
    for _ in range(3):
        workers.hephaestus_worker()

    def all_fired() -> bool:
        return not WorkflowSchedule.objects.filter(next_tick__lte=now).exists()

    wait_for(all_fired, 120, workers.logs)
    time.sleep(1.5)  # several more passes of every worker: nothing may start again
    workers.stop_all()
    assert ScheduleTick.objects.count() == 100
    ids = list(WorkflowInstance.objects.filter(workflow=ws.ManySchedules.name).values_list("instance_id", flat=True))
    assert len(ids) == 100  # ids have a random suffix: only the tick table prevents a second start
    per_schedule = Counter(i.split("::")[1] for i in ids)
    assert per_schedule == Counter({f"s{n}-{tick:%Y}": 1 for n in range(100)})
    assert set(ScheduleTick.objects.values_list("tick", flat=True)) == {tick}
    assert not ScheduleTick.objects.filter(instance__isnull=True).exists()
    started = [line for line in workers.logs().splitlines() if "Started" in line]
    assert started, workers.logs()
    # the workers' backend is django-tasks-db: each started instance's first step waits in the queue, its
    # task written in the tick's transaction
    from django_tasks_db.models import DBTaskResult

    runs = StepRun.objects.filter(instance__workflow=ws.ManySchedules.name)
    assert set(runs.values_list("state", "enqueued")) == {("queued", True)} and runs.count() == 100
    assert {str(t) for t in runs.values_list("token", flat=True)} == \
        {str(t) for t in DBTaskResult.objects.filter(status="READY").values_list("id", flat=True)}


def test_compensation_interrupted_by_a_killed_worker_completes_once(workers: Any, queue_backend: Any,
                                                                     tmp_path: Path) -> None:
    workers.lease = "2"
    victim = workers.db_worker()
    w.SagaFlow.start("K-1", {"fail": True, "dir": str(tmp_path), "refund_sleep": 60})
    wait_for(lambda: h.get_instance("saga::K-1").status == Status.WAITING, 60, workers.logs)
    h.resume("saga::K-1", "go")  # TShip fails: the compensations start, TRefund sleeps in the worker
    wait_for(lambda: (tmp_path / "refund").exists(), 60, workers.logs)
    # the compensation is the instance's one run, claimed by the worker about to be killed
    [run] = StepRun.objects.filter(instance__instance_id="saga::K-1")
    assert (run.step, run.attempt, run.state) == (w.TRefund.registry_name(), 1, "claimed")
    workers.stop(victim, signal.SIGKILL)
    assert h.get_instance("saga::K-1").status == Status.COMPENSATING
    workers.db_worker()
    workers.hephaestus_worker()  # finds the lost claim: a failed attempt, the compensation runs again
    wait_for(lambda: h.get_instance("saga::K-1").status == Status.FAILED, 90, workers.logs)
    instance = h.get_instance("saga::K-1")
    assert instance.error == "Error: carrier refused the parcel"
    assert not StepRun.objects.filter(instance__instance_id="saga::K-1").exists()
    refunds = [(e.kind, e.attempt) for e in instance.execution_history if e.step_name == w.TRefund.registry_name()]
    assert refunds == [("retrying", 1), ("compensated", 2)]
    [lost] = [e for e in instance.execution_history if e.kind == "retrying"]
    assert lost.error.startswith("WorkerLost: worker ") and "(no heartbeat since" in lost.error
    compensated = HistoryEntry.objects.filter(instance__instance_id="saga::K-1", kind="compensated")
    assert list(compensated.values_list("step", flat=True)) == [w.TRefund.registry_name(),
                                                                w.TRelease.registry_name()]
    assert (tmp_path / "refund").read_text().count("x") == 2  # executed again after the kill ...
    assert (tmp_path / "release").read_text().count("x") == 1  # ... but recorded once, and went on once
    assert instance.active_steps == set()


def test_bulk_migration_of_1000_waiting_instances(capsys: Any) -> None:
    w.MigFlow.start("BULK-0", {})
    template = WorkflowInstance.objects.get(instance_id="mig::BULK-0")
    fields = {f.attname: getattr(template, f.attname) for f in WorkflowInstance._meta.concrete_fields
              if f.attname != "id"}
    rows = []
    for n in range(1, 1000):
        rows.append(WorkflowInstance(**{**fields, "instance_id": f"mig::BULK-{n}",
                                        "unique_slot": f"w|tests.MigFlow|mig::BULK-{n}"}))
    for n in range(10):  # stuck at a step version 2 does not have
        rows.append(WorkflowInstance(**{**fields, "instance_id": f"mig::STUCK-{n}", "status": "running",
                                        "unique_slot": f"w|tests.MigFlow|mig::STUCK-{n}", "waiting_steps": {},
                                        "active_steps": [w.MEndV1.registry_name()]}))
    WorkflowInstance.objects.bulk_create(rows)
    out = StringIO()
    started = time.perf_counter()
    with pytest.raises(CommandError, match="10 instance\\(s\\) could not be migrated"):
        call_command("hephaestus_migrate", "tests.MigFlow", "--from-version", "1", "--to-version", "2", "--json",
                     stdout=out)
    elapsed = time.perf_counter() - started
    report = json.loads(out.getvalue())
    assert len(report["migrated"]) == 1000
    assert sorted(f["id"] for f in report["failed"]) == [f"mig::STUCK-{n}" for n in range(10)]
    assert all(f["unmatched"] == [w.MEndV1.registry_name()] for f in report["failed"])
    assert WorkflowInstance.objects.filter(workflow_version=2).count() == 1000
    assert HistoryEntry.objects.filter(kind="migrated").count() == 1000
    with capsys.disabled():
        print(f"\nbulk migration: 1000 waiting instances (and 10 refused) in {elapsed:.2f}s")  # noqa: T201
    assert elapsed < 60
    assert h.resume("mig::BULK-500", "received").context.steps["m_end_v2"] == {"by": "v2"}
