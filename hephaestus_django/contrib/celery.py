"""Celery workers for step executions, through django-tasks-fennel (``pip install hephaestus-django[celery]``).

Settings (see docs/deployment.md)::

    INSTALLED_APPS += ["django_tasks_fennel"]
    TASKS = {"default": {"BACKEND": "hephaestus_django.contrib.celery.CeleryBackend"}}
    CELERY_BROKER_URL = "amqp://user:password@rabbitmq:5672//"
    CELERY_TASK_ACKS_LATE = True
    CELERY_TASK_REJECT_ON_WORKER_LOST = True
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
"""

from __future__ import annotations

from django_tasks_fennel import CeleryBackend as FennelBackend


class CeleryBackend(FennelBackend):
    """django-tasks-fennel's backend without deferred tasks (``run_after``).

    Celery keeps a task sent with an ETA in a worker's memory, unacknowledged, until it is due;
    RabbitMQ closes the channel of a consumer that holds a delivery longer than its
    ``consumer_timeout`` (30 minutes by default), which stops the worker ("Unrecoverable error:
    PreconditionFailed"). A ``Wait`` of an hour would do that. The engine's timers are rows that
    ``manage.py hephaestus_worker`` fires when they are due, so this backend refuses ``run_after``
    and the engine sends no ETA task through it. Everything else is fennel's: ``queue_name`` is the
    Celery queue, ``priority`` (-100..100) becomes a message priority 0..9.
    """

    supports_defer = False
