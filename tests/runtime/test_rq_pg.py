"""Issues 4 and 11: the django-tasks-rq backend (Redis) with real ``rqworker`` processes.

rq's default worker forks a process per job; ``rq.worker.SimpleWorker`` runs jobs in the worker
process and is several times faster for steps (bench/backends.py), so docs/deployment.md recommends
it: both are tested.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest

pytest.importorskip("django_tasks_rq", reason="the rq extra is not installed")

import hephaestus_django as h  # noqa: E402
from hephaestus_django.core import Status  # noqa: E402
from hephaestus_django.storage.models import StepRun  # noqa: E402
from tests.models import Ledger  # noqa: E402
from tests.runtime.conftest import wait_for  # noqa: E402
from tests.workflows import CountedFlow, FanOutFlow, RCounted, TimerFlow  # noqa: E402
from tests.workflows_faults import HighPriorityFlow  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]

SIMPLE = "rq.worker.SimpleWorker"


@pytest.fixture
def rq(settings, workers, monkeypatch):
    """A queue of this test's own (parallel runs share the Redis database), deleted afterwards."""
    import django_rq

    queue = f"hd-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("HEPHAESTUS_TEST_QUEUE", queue)  # every process the test starts uses it
    url = os.environ.get("HEPHAESTUS_TEST_REDIS", "redis://127.0.0.1:6379/7")
    settings.RQ_QUEUES = {"default": {"URL": url}, queue: {"URL": url}}
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default", queue]}}
    settings.HEPHAESTUS = {"QUEUE_NAME": queue}
    workers.settings = "tests.settings_rq"

    def rqworker(worker_class: str = SIMPLE):
        return workers._spawn("rqworker", "rqworker", queue, "--job-class", "django_tasks_rq.Job",
                              "--worker-class", worker_class, "--with-scheduler")

    workers.rqworker = rqworker
    try:
        yield workers
    finally:
        workers.stop_all()
        django_rq.get_queue(queue).delete(delete_jobs=True)


@pytest.mark.parametrize("worker_class", [SIMPLE, "rq.worker.Worker"])
def test_fan_outs_and_a_timer_on_rq(rq, worker_class):
    rq.rqworker(worker_class)
    for i in range(10):
        FanOutFlow.start(f"Q{i}", {})
    TimerFlow.start("Q", {})
    HighPriorityFlow.start("Q", {})  # priority 50: rq has no priorities, so the engine passes none
    rq.hephaestus_worker()
    wait_for(lambda: all(i.status == Status.COMPLETED for i in h.list_instances()) and len(h.list_instances()) == 12,
             90, rq.logs)
    assert not StepRun.objects.exists()
    for instance in h.list_instances(workflow="tests.FanOutFlow"):
        assert instance.context.steps["r_join"] == {"branches": [1, 2, 3]}


def test_simple_worker_killed_mid_step(rq):
    """kill -9 of a SimpleWorker in the middle of a step: rq loses the job with its process, and
    hephaestus_worker re-dispatches the step once its lease expires; its result is applied once."""
    rq.lease = "2"
    victim = rq.rqworker()
    CountedFlow.start("RK", {"sleep": 120})
    execution = Ledger.objects.filter(instance_id="counted::RK", note__startswith="execution")
    wait_for(lambda: execution.count() == 1, 60, rq.logs)
    assert execution.get().note == f"execution pid={victim.pid}"  # the step runs in the worker process itself
    rq.stop(victim, signal.SIGKILL)
    rq.rqworker()
    rq.hephaestus_worker()
    wait_for(lambda: h.get_instance("counted::RK").status == Status.COMPLETED, 90, rq.logs)
    instance = h.get_instance("counted::RK")
    assert execution.count() == 2  # the killed execution and the one that finished
    assert [e.kind for e in instance.execution_history if e.step_name == RCounted.registry_name()].count(
        "completed") == 1
    assert instance.context.steps["r_applied"] == {"after_runs": 2}
    assert Ledger.objects.filter(instance_id="counted::RK", note="applied").count() == 1
