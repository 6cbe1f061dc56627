"""Worker and test settings for the django-tasks-rq backend (Redis on 127.0.0.1:6379, db 7)."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_rq"]
DATABASES["default"]["NAME"] = os.environ.get("HEPHAESTUS_TEST_DB_NAME", DATABASES["default"]["NAME"])
DATABASES["default"].pop("TEST", None)
_REDIS = {"URL": os.environ.get("HEPHAESTUS_TEST_REDIS", "redis://127.0.0.1:6379/7")}
# the test workflows route some steps to queues of their own (tests.RoutedFlow)
RQ_QUEUES = {"default": _REDIS, "flows": _REDIS, "mail": _REDIS}
TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default", "flows", "mail"]}}
HEPHAESTUS = {"LEASE_SECONDS": float(os.environ.get("HEPHAESTUS_TEST_LEASE", "300")), "WORKER_INTERVAL": 0.2}
