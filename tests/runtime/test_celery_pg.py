"""Issue 11: steps on real ``celery worker`` processes (hephaestus_django.contrib.celery, over
django-tasks-fennel) on RabbitMQ and PostgreSQL.

Every test has a queue of its own (``hd-<random>``), deleted afterwards, so parallel runs on the same
broker never take each other's messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

pytest.importorskip("django_tasks_fennel", reason="the celery extra is not installed")

import hephaestus_django as h  # noqa: E402
from hephaestus_django.core import Status  # noqa: E402
from hephaestus_django.storage.models import HistoryEntry, StepRun, Timer, WorkflowInstance  # noqa: E402
from tests.models import Ledger  # noqa: E402
from tests.runtime.conftest import ROOT, Workers, wait_for  # noqa: E402
from tests.workflows import CountedFlow, FanOutFlow, RCounted, RJoin, TimerFlow  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]

CELERY_BACKEND = "hephaestus_django.contrib.celery.CeleryBackend"
AMQP = os.environ.get("HEPHAESTUS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


class CeleryWorkers:
    """Starts ``celery worker`` processes (and ``hephaestus_worker``) on one queue of the test's own."""

    def __init__(self, workers: Workers, queue: str) -> None:
        self.workers = workers
        self.queue = queue

    def worker(self, *, concurrency: int = 1, pool: str = "prefork", acks_late: bool = True) -> subprocess.Popen[bytes]:
        workers = self.workers
        number = len(workers.procs)
        log_path = workers.log_dir / f"celery-{number}.log"
        env = {**workers.env(), "HEPHAESTUS_TEST_CELERY_ACKS_LATE": "1" if acks_late else "0"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "django_tasks_fennel.app", "worker", "-Q", self.queue,
             "-P", pool, "-c", str(concurrency), "-n", f"w{number}-{self.queue}@%h", "--without-mingle",
             "--without-gossip", "-l", "INFO"],
            env=env, cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        workers.procs.append(proc)
        # consuming before anything is published: the worker declares the queue
        wait_for(lambda: proc.poll() is not None or " ready." in log_path.read_text(), 60, workers.logs)
        assert proc.poll() is None, workers.logs()
        return proc

    def hephaestus_worker(self) -> subprocess.Popen[bytes]:
        return self.workers.hephaestus_worker()

    def logs(self) -> str:
        return self.workers.logs()


@pytest.fixture
def celery(settings, workers, monkeypatch):
    from django_tasks_fennel.app import app
    from kombu import Connection

    queue = f"hd-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("HEPHAESTUS_TEST_QUEUE", queue)  # every process the test starts uses it
    monkeypatch.setenv("HEPHAESTUS_TEST_AMQP", AMQP)
    app.conf.broker_url = AMQP  # this process publishes through fennel's app (celery.current_app)
    app.set_default()
    settings.TASKS = {"default": {"BACKEND": CELERY_BACKEND, "QUEUES": ["default", queue]}}
    settings.HEPHAESTUS = {"QUEUE_NAME": queue}
    workers.settings = "tests.settings_celery"
    try:
        yield CeleryWorkers(workers, queue)
    finally:
        workers.stop_all()
        with Connection(AMQP) as conn:
            channel = conn.default_channel
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


def executions(instance_id: str) -> int:
    return Ledger.objects.filter(instance_id=instance_id, note__startswith="execution").count()


def executing_pid(instance_id: str) -> int:
    note = Ledger.objects.filter(instance_id=instance_id, note__startswith="execution").get().note
    return int(note.rsplit("pid=", 1)[1])


def assert_applied_once(instance_id: str, lost: str) -> None:
    """Completed; the killed step ran twice at most and its result was applied once; the killed
    execution is a failed attempt whose error says how its claim was found ``lost``."""
    instance = h.get_instance(instance_id)
    assert instance.status == Status.COMPLETED
    assert not StepRun.objects.filter(instance__instance_id=instance_id).exists()  # no work left in flight
    [retrying] = [e for e in instance.execution_history if e.kind == "retrying"]
    assert (retrying.step_name, retrying.attempt) == (RCounted.registry_name(), 1)
    assert retrying.error.startswith("WorkerLost: worker ") and lost in retrying.error, retrying.error
    assert executions(instance_id) == 2  # the killed execution and the one that finished: no third
    counted = [e for e in instance.execution_history if e.step_name == RCounted.registry_name()]
    assert [e.kind for e in counted].count("completed") == 1
    assert instance.context.steps["r_counted"] == {"runs": 2}
    assert instance.context.steps["r_applied"] == {"after_runs": 2}
    assert Ledger.objects.filter(instance_id=instance_id, note="applied").count() == 1  # the atomic step once


@pytest.mark.parametrize(("pool", "concurrency"), [("prefork", 2), ("threads", 4)])
def test_fan_outs_on_two_celery_workers(celery, tmp_path, pool, concurrency):
    celery.worker(pool=pool, concurrency=concurrency)
    celery.worker(pool=pool, concurrency=concurrency)
    for i in range(50):
        FanOutFlow.start(f"C{i}", {"dir": str(tmp_path)})

    def counts() -> dict[str, int]:
        statuses = WorkflowInstance.objects.filter(instance_id__startswith="fan::").values_list("status", flat=True)
        return {s: list(statuses).count(s) for s in set(statuses)}

    wait_for(lambda: counts() == {"completed": 50}, 240, lambda: f"{counts()}\n{celery.logs()}")
    joins = HistoryEntry.objects.filter(instance__instance_id__startswith="fan::", step=RJoin.registry_name(),
                                        kind="completed")
    assert joins.count() == 50  # every join ran once
    assert sorted(p.read_text() for p in tmp_path.glob("join-*")) == ["x\n"] * 50
    for instance in h.list_instances(workflow="tests.FanOutFlow"):
        assert instance.context.steps["r_join"] == {"branches": [1, 2, 3]}  # no branch's result lost
        assert set(instance.context.steps) == {"r_split", "rb1", "rb2", "rb3", "r_join"}


def test_wait_fires_through_hephaestus_worker(celery):
    """The backend sends no ETA task: the timer row is fired by hephaestus_worker when it is due."""
    celery.worker()
    TimerFlow.start("CE", {})
    wait_for(lambda: Timer.objects.filter(instance__instance_id="timer::CE").exists(), 60, celery.logs)
    assert h.get_instance("timer::CE").status == Status.WAITING
    celery.hephaestus_worker()
    wait_for(lambda: h.get_instance("timer::CE").status == Status.COMPLETED, 60, celery.logs)
    instance = h.get_instance("timer::CE")
    kinds = [(e.kind, e.event) for e in instance.execution_history]
    assert kinds == [("paused", None), ("timer_fired", "timeout"), ("completed", "done"), ("completed", "done")]
    assert (instance.finished_at - instance.started_at).total_seconds() >= 2  # not before it was due
    assert not Timer.objects.exists()


def test_pool_process_killed_mid_step_is_redelivered(celery):
    """kill -9 of the prefork process running the step: with late acks and reject_on_worker_lost the
    worker hands the message back to RabbitMQ and runs it again; no lease has to expire (the task
    delivered again finds its run claimed by a process of this host that is gone)."""
    worker = celery.worker()
    CountedFlow.start("CK1", {"sleep": 120})
    wait_for(lambda: executions("counted::CK1") == 1, 60, celery.logs)
    pid = executing_pid("counted::CK1")
    assert pid != worker.pid  # a pool process, not the worker's main process
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: h.get_instance("counted::CK1").status == Status.COMPLETED, 90, celery.logs)
    assert_applied_once("counted::CK1", "(its task was delivered again)")
    assert worker.poll() is None  # the worker itself lived on


def test_worker_killed_mid_step_is_redelivered_by_the_broker(celery):
    """kill -9 of the whole worker (main and pool processes): the message was not acknowledged, so
    RabbitMQ gives it to the next worker; no hephaestus_worker runs and the lease is 300 s."""
    victim = celery.worker()
    CountedFlow.start("CK2", {"sleep": 120})
    wait_for(lambda: executions("counted::CK2") == 1, 60, celery.logs)
    celery.workers.stop(victim, signal.SIGKILL)
    assert h.get_instance("counted::CK2").status == Status.RUNNING
    celery.worker()
    wait_for(lambda: h.get_instance("counted::CK2").status == Status.COMPLETED, 90, celery.logs)
    assert_applied_once("counted::CK2", "(its task was delivered again)")


def test_early_acks_lose_the_message_and_hephaestus_worker_recovers_the_step(celery):
    """Celery's default acknowledges a message before its task runs: kill -9 loses it with the
    worker. The step is recovered from the database once its lease expires."""
    celery.workers.lease = "2"
    victim = celery.worker(acks_late=False)
    CountedFlow.start("CK3", {"sleep": 120})
    wait_for(lambda: executions("counted::CK3") == 1, 60, celery.logs)
    celery.workers.stop(victim, signal.SIGKILL)
    celery.worker(acks_late=False)
    celery.hephaestus_worker()
    wait_for(lambda: h.get_instance("counted::CK3").status == Status.COMPLETED, 90, celery.logs)
    assert_applied_once("counted::CK3", "(no heartbeat since")
