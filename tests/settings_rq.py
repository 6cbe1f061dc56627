"""Worker and test settings for the django-tasks-rq backend (Redis from ``HEPHAESTUS_TEST_REDIS``).

The tests pass a queue of their own in ``HEPHAESTUS_TEST_QUEUE``, so that parallel runs sharing one
Redis database never take each other's jobs.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_rq"]
DATABASES["default"]["NAME"] = os.environ.get("HEPHAESTUS_TEST_DB_NAME", DATABASES["default"]["NAME"])
DATABASES["default"].pop("TEST", None)
QUEUE = os.environ.get("HEPHAESTUS_TEST_QUEUE", "default")
# the engine's tasks are declared on "default", routed to QUEUE; some test workflows route steps to queues of
# their own (tests.RoutedFlow)
QUEUES = sorted({"default", "flows", "mail", QUEUE})
RQ_QUEUES = {name: {"URL": os.environ.get("HEPHAESTUS_TEST_REDIS", "redis://127.0.0.1:6379/7")} for name in QUEUES}
TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": QUEUES}}
HEPHAESTUS = {"LEASE_SECONDS": float(os.environ.get("HEPHAESTUS_TEST_LEASE", "300")), "WORKER_INTERVAL": 0.2,
              "QUEUE_NAME": QUEUE}
