"""Worker settings for the Celery tests: the test database, RabbitMQ, hephaestus_django.contrib.celery.

The tests pass the test database's name in ``HEPHAESTUS_TEST_DB_NAME``, a queue of their own in
``HEPHAESTUS_TEST_QUEUE`` (parallel runs never take each other's messages) and the broker in
``HEPHAESTUS_TEST_AMQP``. ``HEPHAESTUS_TEST_CELERY_ACKS_LATE=0`` turns the recommended late acks
off (Celery's default), to show that ``hephaestus_worker`` recovers a message lost with its worker.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_fennel"]
DATABASES["default"]["NAME"] = os.environ.get("HEPHAESTUS_TEST_DB_NAME", DATABASES["default"]["NAME"])
DATABASES["default"].pop("TEST", None)

QUEUE = os.environ.get("HEPHAESTUS_TEST_QUEUE", "default")
# the test workflows route some steps to queues of their own (tests.RoutedFlow)
TASKS = {"default": {"BACKEND": "hephaestus_django.contrib.celery.CeleryBackend",
                     "QUEUES": sorted({"default", "flows", "mail", QUEUE})}}
HEPHAESTUS = {"LEASE_SECONDS": float(os.environ.get("HEPHAESTUS_TEST_LEASE", "300")), "WORKER_INTERVAL": 0.2,
              "QUEUE_NAME": QUEUE}

CELERY_BROKER_URL = os.environ.get("HEPHAESTUS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
# The deployment guide's settings: a message is acknowledged after its task ran, and a task whose
# pool process died is handed back to the broker; one message at a time per process.
CELERY_TASK_ACKS_LATE = os.environ.get("HEPHAESTUS_TEST_CELERY_ACKS_LATE", "1") == "1"
CELERY_TASK_REJECT_ON_WORKER_LOST = CELERY_TASK_ACKS_LATE
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
