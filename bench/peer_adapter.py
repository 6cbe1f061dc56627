"""hephaestus_django in the peer benchmark (``../shared/peer-bench``), same table as the others.

    python run.py --extra ours=bench.peer_adapter --extra-path /path/to/hephaestus_django --repeat 3

Contract (``peers/common.py``): ``run(shape, n, args)`` does the same durable work as the other
engines — every step's ``step_result`` stored in PostgreSQL (in the instance's context, with a
history row per step) through our models before the step counts as done — and verifies the run
in the database. Engine: the embedded default, Django Tasks' immediate backend; ``args.workers``
threads (16, like the baselines) each start instances, and each start runs its workflow's steps
in that thread. Every step is its own transaction (an UPDATE of the instance guarded by its
revision, and one history INSERT).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import Any


def _setup(dsn: str) -> None:
    import django
    from django.conf import settings
    from psycopg.conninfo import conninfo_to_dict

    c = conninfo_to_dict(dsn)
    settings.configure(
        SECRET_KEY="bench-only",  # noqa: S106 - a benchmark
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "hephaestus_django", "bench"],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DATABASES={"default": {
            "ENGINE": "django.db.backends.postgresql", "NAME": c.get("dbname", "bench"),
            "USER": c.get("user", "bench"), "HOST": c.get("host", "127.0.0.1"), "PORT": c.get("port", "55432"),
            "CONN_MAX_AGE": None,  # one persistent connection per thread
            # server-side parameters, and psycopg prepares the repeated per-step statements, as it
            # does for baseline_sql (Django's default binds client-side and never prepares); the
            # deployment guide recommends the same for worker processes
            "OPTIONS": {"server_side_binding": True, "prepare_threshold": 5},
        }},
        LOGGING_CONFIG=None,
    )
    django.setup()


def _run_threads(workflow: Any, first: int, count: int, threads: int, prefix: str) -> float:
    from django.db import connections

    jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while (i := jobs.get()) is not None:
                workflow.start(f"{prefix}{i}", {"i": i})
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    started = time.perf_counter()
    for i in range(first, first + count):
        jobs.put(i)
    for _ in pool:
        jobs.put(None)
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return wall


def verify(workflow: Any, steps: int, n: int, problems: str = "") -> tuple[list[float], int]:
    """Check the run in the database: ``n`` instances ``{key}::run<i>`` completed, each with every
    step's ``step_result`` in its context and a history row per step; returns their latencies
    and the number of history rows (``problems``: more found by the caller, which fail it too)."""
    from bench.workflows import step_result
    from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance

    rows = WorkflowInstance.objects.filter(instance_id__startswith=f"{workflow.unique.key}::run")
    done = rows.filter(status="completed")
    latencies = [(f - c).total_seconds() for c, f in done.values_list("created_at", "finished_at")]
    bad = 0
    for instance_id, context in done.values_list("instance_id", "context"):
        i = int(instance_id.rsplit("run", 1)[1])
        results = context["steps"]
        if len(results) != steps or any(v != step_result(i, k) for k, v in results.items()):
            bad += 1
    history = HistoryEntry.objects.filter(instance__in=rows, kind="completed").count()
    expected = n * (steps + 1)  # every step, and Done
    if not (len(latencies) == n and bad == 0 and history == expected) or problems:
        raise RuntimeError(f"verification failed: {len(latencies)} completed, {bad} bad, {history}/{expected} history"
                           f"{problems}")
    return latencies, history


def run(shape: str, n: int, args: Any) -> dict[str, Any]:
    _setup(args.dsn)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench.workflows import SHAPES

    workflow, steps = SHAPES[shape]
    _run_threads(workflow, 0, args.warmup, args.workers, "warm")
    wall = _run_threads(workflow, 0, n, args.workers, "run")

    latencies, history = verify(workflow, steps, n)
    return {"wall_s": wall, "latencies_s": latencies,
            "verified": f"{n} completed, {steps} step results each checked, {history} history rows",
            "workers": args.workers}


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from peers.common import main

    main(run)
