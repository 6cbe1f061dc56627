"""Latency and query counts of the API's read endpoints with 1,000 and 100,000 instances (PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python bench/api_latency.py [--requests 300]

It creates its own database (``hephaestus_bench_api`` on the server of ``DATABASE_URL``, or ``--database``),
migrates it, bulk-inserts instances with their history through the models, and times
``GET instances/?status=waiting``, ``GET instances/{id}/``, ``GET instances/{id}/history/`` and the first and
the last page of the history of one instance with 10,000 entries through
Django's test ``Client`` (best of ``--rounds`` rounds), authenticated by session as a user with the view
permission (so each request also pays for its session, user and permission queries). The database is dropped at the end
unless ``--keep`` is given. Target: p99 under 50 ms, the same query count at both sizes.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "hephaestus_bench_api"
STATUSES = ["waiting"] * 3 + ["running", "completed", "completed", "completed", "failed", "cancelled", "pending"]
HISTORY_PER_INSTANCE = 4
LONG_HISTORY = 500  # entries of the instances whose history is timed
HUGE_HISTORY = 10_000  # entries of the one instance whose first and last history pages are timed
HUGE_ID = "order::B-HUGE"


def say(text: str = "") -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def server_urls(database_url: str, name: str = BENCH_DB) -> tuple[str, str]:
    """(the bench database's URL, the maintenance database's URL) on the same server."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"DATABASE_URL must point at PostgreSQL, not {parts.scheme!r}")
    return urlunsplit(parts._replace(path=f"/{name}")), urlunsplit(parts._replace(path="/postgres"))


def recreate_database(maintenance_url: str, drop_only: bool = False, name: str = BENCH_DB) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def fill(start: int, stop: int, now: Any, long_history: set[int]) -> None:
    """Instances ``start``..``stop - 1`` and their history, in bulk."""
    from django.db import transaction

    from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
    from tests.api.workflows_api import ApiApprove, ApiCheck, ApiOrderFlow

    check, approve = ApiCheck.registry_name(), ApiApprove.registry_name()
    rng = random.Random(start)
    batch = 5_000
    for low in range(start, stop, batch):
        high = min(low + batch, stop)
        with transaction.atomic():
            rows = []
            for i in range(low, high):
                status = rng.choice(STATUSES)
                created = now - timedelta(seconds=(stop - i) * 7)
                rows.append(WorkflowInstance(
                    instance_id=f"order::B-{i:06d}", workflow=ApiOrderFlow.name, workflow_version=1,
                    status=status, current_step=approve,
                    context={"initial": {"customer": f"c-{i % 977}", "items": [{"sku": "A-1", "qty": 2}],
                                         "total": "49.90"},
                             "steps": {"api_check": {"checked": True}}},
                    step_configs={approve: {}}, active_steps=[approve] if status == "waiting" else [],
                    completed_steps=[check], error="boom" if status == "failed" else "",
                    created_at=created, updated_at=created + timedelta(seconds=3),
                    history_length=LONG_HISTORY if i in long_history else HISTORY_PER_INSTANCE,
                ))
            WorkflowInstance.objects.bulk_create(rows)
            entries = []
            for row, i in zip(rows, range(low, high), strict=True):
                count = LONG_HISTORY if i in long_history else HISTORY_PER_INSTANCE
                for seq in range(1, count + 1):
                    entries.append(HistoryEntry(
                        instance_id=row.pk, seq=seq, kind="completed" if seq % 2 else "paused",
                        step=check if seq == 1 else approve, event="ok" if seq % 2 else "",
                        timestamp=row.created_at + timedelta(milliseconds=seq), attempt=1,
                        duration=0.002, context_updates={"seq": seq} if seq % 2 else None))
            HistoryEntry.objects.bulk_create(entries, batch_size=batch)


def fill_huge_history(now: Any) -> None:
    """One waiting instance with :data:`HUGE_HISTORY` entries."""
    from django.db import transaction

    from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance
    from tests.api.workflows_api import ApiApprove, ApiOrderFlow

    approve = ApiApprove.registry_name()
    with transaction.atomic():
        row = WorkflowInstance.objects.create(
            instance_id=HUGE_ID, workflow=ApiOrderFlow.name, workflow_version=1, status="waiting",
            current_step=approve, context={"initial": {}, "steps": {}}, active_steps=[approve],
            created_at=now, updated_at=now, history_length=HUGE_HISTORY)
        HistoryEntry.objects.bulk_create(
            [HistoryEntry(instance_id=row.pk, seq=seq, kind="retrying" if seq % 3 else "resumed", step=approve,
                          event="" if seq % 3 else "approved", timestamp=now + timedelta(milliseconds=seq),
                          attempt=1 + seq % 3, error="TimeoutError: upstream" if seq % 3 else "",
                          duration=0.002, delay=1.0 if seq % 3 else None,
                          context_updates=None if seq % 3 else {"seq": seq})
             for seq in range(1, HUGE_HISTORY + 1)], batch_size=5_000)


def last_history_page(client: Any, path: str) -> tuple[str, int]:
    """The URL of the last page of a history, found by following ``next`` links, and how many pages."""
    url, pages = path, 1
    while True:
        response = client.get(url)
        check(response, url)
        following = response.json()["next"]
        if following is None:
            return url, pages
        url, pages = following.removeprefix("http://testserver"), pages + 1


def check(response: Any, path: str) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.content[:200]!r}")


def measure(client: Any, paths: list[str], requests: int, rounds: int) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, queries of one request): the best of ``rounds`` rounds of ``requests`` GETs
    cycling through ``paths`` (the best round filters out other processes' bursts, as ``timeit`` does)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for path in paths[:20]:  # warm up connections, caches and plans
        check(client.get(path), path)
    best = (float("inf"), float("inf"))
    for _ in range(rounds):
        timings = []
        for n in range(requests):
            path = paths[n % len(paths)]
            began = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - began) * 1000)
            check(response, path)
        timings.sort()
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        if p99 < best[1]:
            best = (statistics.median(timings), p99)
    with CaptureQueriesContext(connection) as ctx:
        check(client.get(paths[0]), paths[0])
    return best[0], best[1], len(ctx.captured_queries)


def run(requests: int, rounds: int) -> int:
    from django.contrib.auth.models import Permission, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench")  # force_login needs no password
    user.user_permissions.add(Permission.objects.get(codename="view_workflowinstance"))
    client = Client()
    client.force_login(user)

    now = timezone.now()
    sizes = [1_000, 100_000]
    rng = random.Random(7)
    long_history = set(range(0, sizes[-1], 997))
    results: dict[int, dict[str, tuple[float, float, int]]] = {}
    fill_huge_history(now)
    huge_first = reverse("hephaestus:instance-history", args=[HUGE_ID])
    huge_last, pages = last_history_page(client, huge_first)
    say(f"history of {HUGE_ID}: {HUGE_HISTORY:,} entries in {pages} pages")
    filled = 0
    for size in sizes:
        began = time.perf_counter()
        fill(filled, size, now, long_history)
        filled = size
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        say(f"filled {size:,} instances in {time.perf_counter() - began:.1f}s")
        ids = [f"order::B-{i:06d}" for i in rng.sample(range(size), 200)]
        long_ids = [f"order::B-{i:06d}" for i in sorted(long_history) if i < size]
        endpoints = {
            "GET instances/?status=waiting": [reverse("hephaestus:instance-list") + "?status=waiting"],
            "GET instances/{id}/": [reverse("hephaestus:instance-detail", args=[i]) for i in ids],
            "GET instances/{id}/history/": [reverse("hephaestus:instance-history", args=[i]) for i in long_ids],
            "GET history/ 10k entries, page 1": [huge_first],
            f"GET history/ 10k entries, page {pages}": [huge_last],
        }
        results[size] = {name: measure(client, paths, requests, rounds) for name, paths in endpoints.items()}

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    say(f"\n{requests} requests per round, best of {rounds} rounds; {os.cpu_count()} CPUs, load average {load}")
    say(f"{'endpoint':38} {'rows':>8} {'p50 ms':>8} {'p99 ms':>8} {'queries':>8}")
    ok = True
    for name in results[sizes[0]]:
        for size in sizes:
            p50, p99, queries = results[size][name]
            say(f"{name:38} {size:>8,} {p50:8.2f} {p99:8.2f} {queries:>8}")
            ok &= p99 < 50
        ok &= len({results[size][name][2] for size in sizes}) == 1
    say("\ntarget (p99 < 50 ms, same query count at every size): " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per endpoint and size (%(default)r)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per endpoint and size; the best counts "
                        "(%(default)r)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--database", default=BENCH_DB, help="name of the database it creates (%(default)r)")
    args = parser.parse_args()

    bench_url, maintenance_url = server_urls(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"), args.database)
    recreate_database(maintenance_url, name=args.database)
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    sys.path.insert(0, str(ROOT))
    try:
        import django

        django.setup()
        status = run(args.requests, args.rounds)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            recreate_database(maintenance_url, drop_only=True, name=args.database)
    return status


if __name__ == "__main__":
    sys.exit(main())
