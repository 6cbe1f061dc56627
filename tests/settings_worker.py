"""Settings of the worker processes the runtime tests start: the test database, and
django-tasks-db as the task backend.

The tests pass the test database's name in ``HEPHAESTUS_TEST_DB_NAME``, and may set the lease
(``HEPHAESTUS_TEST_LEASE``), ``MAX_INLINE_STEPS`` (``HEPHAESTUS_TEST_MAX_INLINE``) and the
PostgreSQL ``application_name`` of the process's connections (``HEPHAESTUS_TEST_APP``, which
also keeps the worker's own connection open between tasks, so that its count is stable).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ.get("HEPHAESTUS_TEST_DB_NAME", DATABASES["default"]["NAME"])
DATABASES["default"].pop("TEST", None)
if "HEPHAESTUS_TEST_APP" in os.environ:  # to count this process's connections; kept open between tasks
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = os.environ["HEPHAESTUS_TEST_APP"]
    DATABASES["default"]["CONN_MAX_AGE"] = None
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}
HEPHAESTUS = {"LEASE_SECONDS": float(os.environ.get("HEPHAESTUS_TEST_LEASE", "300")), "WORKER_INTERVAL": 0.2,
              "MAX_INLINE_STEPS": int(os.environ.get("HEPHAESTUS_TEST_MAX_INLINE", "100"))}

if os.environ.get("HEPHAESTUS_TEST_SCHEDULES"):
    import tests.workflows_schedules  # noqa: F401 - registers the scheduled test workflows
