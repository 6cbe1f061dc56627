#!/usr/bin/env python
"""Runtime throughput and SQL statements per step transition.

    python bench/runtime.py                      # SQLite and PostgreSQL, immediate and django-tasks-db
    python bench/runtime.py --db postgres --backend db --n 1000

For each (database, backend, shape) it starts ``--n`` instances and prints instances/s,
steps/s and the SQL statements per step transition (the engine's own, without the task
backend's). PostgreSQL: ``--pg-url`` (default postgres://postgres@127.0.0.1:5432/postgres); a
database ``hephaestus_bench`` is created and dropped. django-tasks-db runs ``--workers``
``db_worker`` processes after enqueuing every start.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root is not on the path

from bench import markdown_table  # noqa: E402

BACKENDS = {"immediate": "django_tasks.backends.immediate.ImmediateBackend",
            "db": "django_tasks_db.DatabaseBackend"}


def _run_tasks_here() -> None:
    """Run the ready django-tasks-db tasks in this process, as a ``db_worker`` would."""
    from django_tasks_db.models import DBTaskResult

    while (row := DBTaskResult.objects.ready().first()) is not None:
        row.claim("bench")
        row.set_successful(row.task.call(*row.args_kwargs["args"], **row.args_kwargs["kwargs"]))


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh process per (db, backend): set up Django, migrate, measure, print JSON."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from bench.workflows import SHAPES
    from hephaestus_django.storage.models import WorkflowInstance

    call_command("migrate", verbosity=0)
    results = []
    for shape in args.shapes:
        workflow, steps = SHAPES[shape]
        WorkflowInstance.objects.all().delete()
        if args.backend == "db":
            from django_tasks_db.models import DBTaskResult

            DBTaskResult.objects.all().delete()
        # SQL statements of one instance, outside the timed run
        with CaptureQueriesContext(connection) as queries:
            workflow.start("probe", {"i": 0})
            if args.backend == "db":
                _run_tasks_here()  # what the workers would do, here
        # ours: the engine's statements (the task queue's own claim/complete ones are not counted)
        ours = [q["sql"] for q in queries.captured_queries
                if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))
                and "hephaestus_django_" in q["sql"]]
        # the writes of step transitions (each one statement on PostgreSQL: UPDATE + history + runs)
        hot = [s for s in ours if s.startswith(("UPDATE \"hephaestus_django_workflowinstance", "WITH u AS"))]
        WorkflowInstance.objects.all().delete()
        started = time.perf_counter()
        for i in range(args.n):
            with transaction.atomic():
                workflow.start(f"b{i}", {"i": i})
        if args.backend == "db":
            procs = [subprocess.Popen([sys.executable, "-m", "django", "db_worker", "--batch", "--no-startup-delay",
                                       "--queue-name", "*", "--no-reload", "-v", "0"], env=os.environ, cwd=ROOT)
                     for _ in range(args.workers)]
            while WorkflowInstance.objects.filter(status="completed").count() < args.n:
                time.sleep(0.05)
                if all(p.poll() is not None for p in procs):
                    procs = [subprocess.Popen(p.args, env=os.environ, cwd=ROOT) for p in procs]
            for p in procs:
                p.terminate()
                p.wait()
        wall = time.perf_counter() - started
        done = WorkflowInstance.objects.filter(status="completed").count()
        results.append({"shape": shape, "n": args.n, "completed": done, "wall_s": round(wall, 2),
                        "inst_per_s": round(args.n / wall, 1), "steps_per_s": round(args.n * steps / wall, 1),
                        "statements_per_instance": len(ours), "statements_per_step": round(len(ours) / steps, 2),
                        "hot_path_per_step": round(len(hot) / steps, 2)})
    print("RESULT " + json.dumps(results), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres", "all"], default="all")
    ap.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    ap.add_argument("--shapes", nargs="+", default=["linear5", "fanout3"])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    dbs = ["sqlite", "postgres"] if args.db == "all" else [args.db]
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    rows = []
    for db in dbs:
        for backend in backends:
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "PYTHONPATH": str(ROOT),
                   "BENCH_TASKS_BACKEND": BACKENDS[backend]}
            if db == "postgres":
                import psycopg

                admin = args.pg_url
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute("DROP DATABASE IF EXISTS hephaestus_bench WITH (FORCE)")
                    conn.execute("CREATE DATABASE hephaestus_bench")
                env["DATABASE_URL"] = admin.rsplit("/", 1)[0] + "/hephaestus_bench"
            else:
                Path("/tmp/hephaestus-bench.sqlite3").unlink(missing_ok=True)
                env.pop("DATABASE_URL", None)
            cmd = [sys.executable, __file__, "--child", "--db", db, "--backend", backend, "--n", str(args.n),
                   "--workers", str(args.workers), "--shapes", *args.shapes]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
                continue
            for r in json.loads(line[7:]):
                rows.append({"db": db, "backend": backend, **r})
    header = ["db", "backend", "shape", "n", "completed", "wall_s", "inst_per_s", "steps_per_s",
              "statements_per_step", "hot_path_per_step"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
