"""Settings for ``bench/backends.py``: ``bench.settings`` plus the task backend of one setup.

``BENCH_SETUP`` picks it (db, rq-fork, rq-simple, celery-prefork, celery-threads), ``BENCH_QUEUE`` the
queue of this run, ``BENCH_REDIS`` / ``BENCH_AMQP`` the brokers.
"""

import os

from bench.settings import *  # noqa: F403
from bench.settings import INSTALLED_APPS

SETUP = os.environ.get("BENCH_SETUP", "db")
QUEUE = os.environ.get("BENCH_QUEUE", "default")
QUEUES = sorted({"default", QUEUE})  # the engine's tasks are declared on "default", and routed to QUEUE
HEPHAESTUS = {"LEASE_SECONDS": 600, "QUEUE_NAME": QUEUE}

if SETUP == "db":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": QUEUES}}
elif SETUP.startswith("rq"):
    INSTALLED_APPS = [*INSTALLED_APPS, "django_rq"]
    RQ_QUEUES = {name: {"URL": os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")} for name in QUEUES}
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": QUEUES}}
elif SETUP.startswith("celery"):
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_fennel"]
    TASKS = {"default": {"BACKEND": "hephaestus_django.contrib.celery.CeleryBackend", "QUEUES": QUEUES}}
    # the settings of docs/deployment.md
    CELERY_BROKER_URL = os.environ.get("BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
    CELERY_TASK_ACKS_LATE = True
    CELERY_TASK_REJECT_ON_WORKER_LOST = True
    CELERY_WORKER_PREFETCH_MULTIPLIER = int(os.environ.get("BENCH_CELERY_PREFETCH", "1"))
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
else:
    raise ValueError(f"unknown BENCH_SETUP {SETUP!r}")
