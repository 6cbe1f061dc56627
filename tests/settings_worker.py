"""Settings of the worker processes the runtime tests start: the test database, and
django-tasks-db as the task backend.

The tests pass the test database's name in ``HEPHAESTUS_TEST_DB_NAME``.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ.get("HEPHAESTUS_TEST_DB_NAME", DATABASES["default"]["NAME"])
DATABASES["default"].pop("TEST", None)
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
HEPHAESTUS = {"LEASE_SECONDS": float(os.environ.get("HEPHAESTUS_TEST_LEASE", "300")), "WORKER_INTERVAL": 0.2}

if os.environ.get("HEPHAESTUS_TEST_SCHEDULES"):
    import tests.workflows_schedules  # noqa: F401 - registers the scheduled test workflows
