"""Settings for the benchmarks: SQLite file by default, PostgreSQL with DATABASE_URL."""

import os
from importlib.util import find_spec

import dj_database_url

SECRET_KEY = "bench-not-secret"  # noqa: S105
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    *(["django_tasks_db"] if find_spec("django_tasks_db") else []),
    "hephaestus_django",
    "bench",
]
DATABASES = {"default": dj_database_url.config(default="sqlite:////tmp/hephaestus-bench.sqlite3")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # several worker processes write: take the write lock when a transaction begins (no read-then-
    # write upgrade to fail with "database is locked"), and wait for it
    DATABASES["default"].setdefault("OPTIONS", {}).update(init_command="PRAGMA journal_mode=WAL;",
                                                          transaction_mode="IMMEDIATE", timeout=30)
else:  # PostgreSQL: statements prepared by psycopg, as the deployment guide recommends for workers
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TASKS = {"default": {"BACKEND": os.environ.get("BENCH_TASKS_BACKEND",
                                               "django_tasks.backends.immediate.ImmediateBackend")}}
HEPHAESTUS = {"LEASE_SECONDS": 600}
