"""django-tasks-db on the workflows' own database: task rows written by the engine's own statements.

When the task queue is a table of the same database, the task that runs a queued step is a row
written in the very statement that makes the step runnable (the storage's "extra" rows): no
dispatch can be lost between a commit and an enqueue, and a start or a fan-out costs one round
trip. The row is what ``DatabaseBackend.enqueue`` would write — same columns, the backend's
checks, the ``task_enqueued`` signal after the write — with the run's token as the task's id,
which also lets recovery see a task that a worker took but never claimed (it died in between).
Everything this module knows about django-tasks-db's table is here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import router
from django.db.models import Exists, OuterRef, Q

from hephaestus_django.storage.models import WorkflowInstance


def is_same_database_queue(backend: Any) -> bool:
    """Whether ``backend`` is django-tasks-db writing its tasks to our database."""
    try:
        from django_tasks_db.backend import DatabaseBackend
    except ImportError:  # pragma: no cover - the worker extra is not installed
        return False
    if not isinstance(backend, DatabaseBackend):
        return False
    from django_tasks_db.models import DBTaskResult

    return bool(router.db_for_write(DBTaskResult) == router.db_for_write(WorkflowInstance))


def task_row(task: Any, token: str) -> Any:
    """The unsaved task row of ``task`` (a ``run_step`` bound to its queue and priority) for the
    run dispatched with ``token``."""
    from django_tasks_db.models import DBTaskResult, get_date_max

    return DBTaskResult(id=token, args_kwargs={"args": [token], "kwargs": {}}, priority=task.priority,
                        task_path=task.module_path, queue_name=task.queue_name, run_after=get_date_max(),
                        backend_name=task.backend)


def insert(rows: list[Any]) -> None:
    """Write task rows (inside the caller's transaction) when no state change carries them."""
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.bulk_create(rows)


def announce(backend: Any, rows: Iterable[Any]) -> None:
    """Send ``task_enqueued`` for written task rows, as the backend's own ``enqueue`` does."""
    from django_tasks_db.compat import task_enqueued

    for row in rows:
        task_enqueued.send(type(backend), task_result=row.task_result)


def still_coming(cutoff: datetime) -> Any:
    """A condition on runs (``~Exists``): true when the run's task no longer waits in the queue and
    was taken before ``cutoff`` (or is gone): a worker took it and died before claiming the run."""
    from django_tasks_db.models import DBTaskResult

    coming = DBTaskResult.objects.filter(Q(status="READY") | Q(started_at__gte=cutoff), id=OuterRef("token"))
    return ~Exists(coming)


def take_sibling(storage: Any, instance_pk: Any, routing: tuple[str, int], worker: str, limit: int) -> Any:
    """Claim up to ``limit`` queued runs of the instance whose tasks nobody has taken, retiring the tasks."""
    from django_tasks_db.models import DBTaskResult

    return storage.steal(instance_pk, routing, worker, DBTaskResult, "READY", "SUCCESSFUL",
                         "ran in the task that carried its instance on", limit)


def take_next(storage: Any, routing: tuple[str, int], task: Any, worker: str) -> Any:
    """Claim one of the oldest queued runs with ``routing`` (any instance) whose task nobody has
    taken, retiring the task (``task``: ``run_step`` bound as this routing's tasks are)."""
    from django_tasks_db.models import DBTaskResult, get_date_max

    return storage.take_next(routing, worker, DBTaskResult, (task.backend, task.queue_name, task.priority),
                             "READY", "SUCCESSFUL", f"ran in a task of worker {worker} that had steps to spare",
                             get_date_max())
