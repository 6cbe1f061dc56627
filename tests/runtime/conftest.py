"""Real worker processes (``db_worker`` of django-tasks-db, ``hephaestus_worker``) on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
QUEUE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}


class Workers:
    """Starts and stops worker processes that share this test's database."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lease = "300"
        self.max_inline = "100"
        self.settings = "tests.settings_worker"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "DJANGO_SETTINGS_MODULE": self.settings, "PYTHONPATH": str(ROOT),
                "HEPHAESTUS_TEST_DB_NAME": connection.settings_dict["NAME"], "HEPHAESTUS_TEST_LEASE": self.lease,
                "HEPHAESTUS_TEST_MAX_INLINE": self.max_inline, **extra}

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "django", *args], env=self.env(**(env or {})), cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def db_worker(self, app_name: str | None = None) -> subprocess.Popen[bytes]:
        """A ``db_worker`` (``app_name``: the PostgreSQL application_name of its connections)."""
        return self._spawn("db_worker", "db_worker", "--no-startup-delay", "--interval", "0.05", "--queue-name", "*",
                           "--no-reload", env={"HEPHAESTUS_TEST_APP": app_name} if app_name else None)

    def hephaestus_worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("hephaestus_worker", "hephaestus_worker", "--interval", "0.2")

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.log_dir.glob("*.log")))


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    logs = tmp_path / "logs"
    logs.mkdir()
    pool = Workers(logs)
    try:
        yield pool
    finally:
        pool.stop_all()
        connection.close()


@pytest.fixture
def queue_backend(settings):
    """Enqueue step executions on django-tasks-db from this process too."""
    settings.TASKS = QUEUE_TASKS
    return settings


def wait_for(condition: Callable[[], object], timeout: float, message: str | Callable[[], str] = "") -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s: {message() if callable(message) else message}")


def statuses(prefix: str) -> dict[str, int]:
    """How many instances whose id starts with ``prefix`` are in each status."""
    from hephaestus_django.storage.models import WorkflowInstance

    counts: dict[str, int] = {}
    for status in WorkflowInstance.objects.filter(instance_id__startswith=prefix).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def task_rows():
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.order_by("enqueued_at", "id")


def drain(limit: int | None = None) -> list[object]:
    """Run the ready django-tasks-db tasks here (all, or the first ``limit``), highest priority
    first, as a worker would; returns their return values in the order they ran."""
    from django_tasks_db.models import DBTaskResult

    values = []
    for _ in range(limit or 1000):
        row = DBTaskResult.objects.ready().first()
        if row is None:
            return values
        row.claim("test-worker")
        value = row.task.call(*row.args_kwargs["args"], **row.args_kwargs["kwargs"])
        row.set_successful(value)
        values.append(value)
    if limit is None:
        raise AssertionError("more than 1000 tasks")
    return values
