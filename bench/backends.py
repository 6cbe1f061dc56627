#!/usr/bin/env python
"""Steps/s of the engine over each queue backend setup, on PostgreSQL.

    python bench/backends.py                                  # every setup, both shapes, n=300
    python bench/backends.py --setups rq-fork rq-simple --n 200 --redis redis://127.0.0.1:6379/9

Setups (worker processes started before the clock starts, warmed with a few instances):

- ``db``: django-tasks-db, ``--workers`` ``manage.py db_worker`` processes
- ``rq-fork``: django-tasks-rq, ``--workers`` ``manage.py rqworker`` (rq's default worker: a fork per job)
- ``rq-simple``: the same with ``--worker-class rq.worker.SimpleWorker`` (jobs run in the worker process)
- ``celery-prefork``: django-tasks-fennel on RabbitMQ, one ``celery worker -P prefork -c <workers>``
- ``celery-threads``: the same with ``-P threads -c <threads>``

For each setup and shape, ``--n`` instances are started from this process (each start commits and
enqueues one task) while the workers run; the time is from the first start to the last completion.
PostgreSQL: ``--pg-url`` names a server where the database ``--db-name`` (default
``hephaestus_bench_backends``) is created and dropped. Each run uses a queue of its own
(``bench-<random>``), deleted afterwards, so the brokers can be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repository root is not on the path

from bench import markdown_table  # noqa: E402

SETUPS = ["db", "rq-fork", "rq-simple", "celery-prefork", "celery-threads"]


def worker_commands(setup: str, queue: str, workers: int, threads: int) -> list[list[str]]:
    django = [sys.executable, "-m", "django"]
    if setup == "db":
        return [[*django, "db_worker", "--queue-name", queue, "--interval", "0.1", "--no-startup-delay",
                 "--no-reload", "-v", "0"] for _ in range(workers)]
    if setup.startswith("rq"):
        extra = ["--worker-class", "rq.worker.SimpleWorker"] if setup == "rq-simple" else []
        return [[*django, "rqworker", queue, "--job-class", "django_tasks_rq.Job", *extra, "-v", "0"]
                for _ in range(workers)]
    pool = ["-P", "prefork", "-c", str(workers)] if setup == "celery-prefork" else ["-P", "threads", "-c", str(threads)]
    return [[sys.executable, "-m", "celery", "-A", "django_tasks_fennel.app", "worker", "-Q", queue, *pool,
             "-n", f"{queue}@%h", "--without-mingle", "--without-gossip", "-l", "WARNING"]]


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh process per setup: set up Django, migrate, start workers, measure, print JSON."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from bench.workflows import SHAPES
    from hephaestus_django.storage.models import WorkflowInstance

    call_command("migrate", verbosity=0)
    queue = os.environ["BENCH_QUEUE"]
    logs = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    procs = [subprocess.Popen(cmd, env=os.environ, cwd=ROOT, stdout=(logs / f"worker-{i}.log").open("wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)
             for i, cmd in enumerate(worker_commands(args.setup, queue, args.workers, args.threads))]

    def completed() -> int:
        return WorkflowInstance.objects.filter(status="completed").count()

    def wait_until(count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while completed() < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                tail = "\n".join(f.read_text()[-2000:] for f in sorted(logs.glob("*.log")))
                raise SystemExit(f"{args.setup}: {completed()} of {count} completed\n{tail}")
            time.sleep(0.02)

    results = []
    try:
        for shape in args.shapes:
            workflow, steps = SHAPES[shape]
            WorkflowInstance.objects.all().delete()
            for i in range(4):  # warm-up: every worker process is up and has its connections
                workflow.start(f"warm{i}", {"i": i})
            wait_until(4, 120)
            WorkflowInstance.objects.all().delete()
            started = time.perf_counter()
            for i in range(args.n):
                with transaction.atomic():
                    workflow.start(f"b{i}", {"i": i})
            wait_until(args.n, args.timeout)
            wall = time.perf_counter() - started
            results.append({"shape": shape, "n": args.n, "completed": completed(), "wall_s": round(wall, 2),
                            "inst_per_s": round(args.n / wall, 1), "steps_per_s": round(args.n * steps / wall, 1)})
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(logs, ignore_errors=True)
    print("RESULT " + json.dumps(results), flush=True)


def delete_queue(setup: str, queue: str, args: argparse.Namespace) -> None:
    if setup.startswith("celery"):
        from kombu import Connection

        with Connection(args.amqp) as conn:
            conn.default_channel.queue_delete(queue)
            conn.default_channel.exchange_delete(queue)
    elif setup.startswith("rq"):
        from redis import Redis
        from rq import Queue

        Queue(queue, connection=Redis.from_url(args.redis)).delete(delete_jobs=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setups", nargs="+", choices=SETUPS, default=SETUPS)
    ap.add_argument("--shapes", nargs="+", default=["linear5", "fanout3"])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2, help="worker processes (celery-prefork: pool processes)")
    ap.add_argument("--threads", type=int, default=4, help="threads of the celery-threads worker")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one shape may take")
    ap.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--db-name", default="hephaestus_bench_backends")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672//")
    ap.add_argument("--setup", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    import psycopg

    rows = []
    for setup in args.setups:
        queue = f"bench-{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{args.db_name}"')
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings_backends", "PYTHONPATH": str(ROOT),
               "DATABASE_URL": args.pg_url.rsplit("/", 1)[0] + f"/{args.db_name}", "BENCH_SETUP": setup,
               "BENCH_QUEUE": queue, "BENCH_REDIS": args.redis, "BENCH_AMQP": args.amqp}
        cmd = [sys.executable, __file__, "--child", "--setup", setup, "--n", str(args.n), "--workers",
               str(args.workers), "--threads", str(args.threads), "--timeout", str(args.timeout),
               "--shapes", *args.shapes]
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        finally:
            delete_queue(setup, queue, args)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{setup} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}", file=sys.stderr)
            continue
        for r in json.loads(line[7:]):
            rows.append({"setup": setup, **r})
            print(f"{setup} {r['shape']}: {r['steps_per_s']} steps/s", file=sys.stderr, flush=True)
    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
    header = ["setup", "shape", "n", "completed", "wall_s", "inst_per_s", "steps_per_s"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
