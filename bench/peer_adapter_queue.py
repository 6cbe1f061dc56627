"""hephaestus_django over django-tasks-db with 2 ``db_worker`` processes, in the peer benchmark.

    python run.py --engines baseline_sql,celery,ours_queue --extra ours_queue=bench.peer_adapter_queue \\
        --extra-path /path/to/hephaestus_django --repeat 3 --n 500

Same durable work and verification as ``bench/peer_adapter.py`` (every step's ``step_result``
stored in the instance's context, with a history row per step, before the step counts as done),
but the steps run in worker processes, as a user would deploy it: ``args.workers`` threads start
the instances (a start writes the instance, its first run and one django-tasks-db task, in one
transaction), and 2 ``manage.py db_worker`` processes run the tasks. Each task carries its
instance forward (continuation dispatch, up to ``MAX_INLINE_STEPS`` steps; fan-out branches are
tasks of their own), then, with steps to spare, takes on the branches and instances whose tasks
still wait untaken. Wall time: first start to last completion (the workers are started, and
warmed up on ``args.warmup`` instances, before the clock starts). As the deployment guide
recommends for workers, psycopg prepares the repeated statements (``prepare_threshold``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

WORKERS = 2
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup(dsn: str) -> None:
    import django
    from django.conf import settings
    from psycopg.conninfo import conninfo_to_dict

    c = conninfo_to_dict(dsn)
    settings.configure(
        SECRET_KEY="bench-only",  # noqa: S106 - a benchmark
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_tasks_db", "hephaestus_django",
                        "bench"],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={"default": {
            "ENGINE": "django.db.backends.postgresql", "NAME": c.get("dbname", "bench"),
            "USER": c.get("user", "bench"), "HOST": c.get("host", "127.0.0.1"), "PORT": c.get("port", "55432"),
            "CONN_MAX_AGE": None,  # a worker keeps its connection between tasks
            "OPTIONS": {"server_side_binding": True, "prepare_threshold": 5},  # as bench/peer_adapter.py
        }},
        TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
        HEPHAESTUS={"LEASE_SECONDS": 600},
        LOGGING_CONFIG=None,
    )
    django.setup()


def _worker_main(dsn: str) -> None:
    """A ``db_worker`` process configured like the adapter (``python -m bench.peer_adapter_queue --worker``)."""
    _setup(dsn)
    from django.core.management import call_command

    call_command("db_worker", "--queue-name", "*", "--interval", "0.05", "--no-startup-delay", "--no-reload",
                 verbosity=0)


def _start_workers(dsn: str) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    return [subprocess.Popen([sys.executable, "-m", "bench.peer_adapter_queue", "--worker", dsn], env=env,
                             cwd=ROOT, start_new_session=True) for _ in range(WORKERS)]


def _wait_completed(rows: Any, count: int, procs: list[subprocess.Popen[bytes]], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while rows.filter(status="completed").count() < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {rows.filter(status='completed').count()}/{count} completed")
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a db_worker process exited")
        time.sleep(0.05)


def run(shape: str, n: int, args: Any) -> dict[str, Any]:
    _setup(args.dsn)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    connection.close()  # the threads and the workers open their own
    from django_tasks_db.models import DBTaskResult

    from bench.peer_adapter import _run_threads, verify
    from bench.workflows import SHAPES
    from hephaestus_django.storage.models import StepRun, WorkflowInstance

    workflow, steps = SHAPES[shape]
    key = workflow.unique.key
    procs = _start_workers(args.dsn)
    try:
        _run_threads(workflow, 0, args.warmup, args.workers, "warm")
        _wait_completed(WorkflowInstance.objects.filter(instance_id__startswith=f"{key}::warm"), args.warmup, procs)
        tasks_before = DBTaskResult.objects.count()
        started = time.perf_counter()
        _run_threads(workflow, 0, n, args.workers, "run")
        rows = WorkflowInstance.objects.filter(instance_id__startswith=f"{key}::run")
        _wait_completed(rows, n, procs)
        wall = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)

    tasks = DBTaskResult.objects.count() - tasks_before
    failed_tasks = DBTaskResult.objects.filter(status="FAILED").count()
    left = StepRun.objects.count()
    problems = f", {failed_tasks} failed tasks, {left} runs left" if failed_tasks or left else ""
    latencies, history = verify(workflow, steps, n, problems)
    return {"wall_s": wall, "latencies_s": latencies,
            "verified": f"{n} completed, {steps} step results each checked, {history} history rows, "
                        f"{tasks} tasks ({tasks / n:g} per instance)",
            "workers": f"{WORKERS} db_worker processes, {args.workers} starting threads"}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker_main(sys.argv[2])
        sys.exit(0)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from peers.common import main

    main(run)
