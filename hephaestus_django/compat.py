"""The one import shim for Django's Tasks framework.

``django.tasks`` ships with Django >= 6.0; on Django 5.2 LTS the ``django-tasks`` backport
provides the same API under ``django_tasks`` (with a few differing exception names).
"""

from __future__ import annotations

import django

# Chosen by Django's version, not by trying imports: an import error inside django.tasks must
# surface, not silently switch a Django 6 project to the backport.
if django.VERSION >= (6, 0):
    from django.tasks import (  # type: ignore[import-not-found,unused-ignore]
        Task,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django.tasks.backends.immediate import ImmediateBackend  # type: ignore[import-not-found,unused-ignore]
    from django.tasks.exceptions import InvalidTask as InvalidTaskError  # type: ignore[import-not-found,unused-ignore]

    TASKS_MODULE = "django.tasks"
else:  # Django 5.2 with the backport
    from django_tasks import TaskResultStatus, default_task_backend, task, task_backends  # type: ignore[no-redef]
    from django_tasks.backends.immediate import ImmediateBackend  # type: ignore[no-redef,assignment]
    from django_tasks.base import Task  # type: ignore[no-redef,assignment]
    from django_tasks.exceptions import InvalidTaskError  # type: ignore[no-redef,assignment]

    TASKS_MODULE = "django_tasks"


def _immediate_backends() -> tuple[type, ...]:
    """The immediate backend classes of both modules (a project may name either in ``TASKS``)."""
    classes: list[type] = [ImmediateBackend]
    try:
        from django_tasks.backends.immediate import ImmediateBackend as Backported
    except ImportError:  # pragma: no cover - the backport is a dependency
        pass
    else:
        classes.append(Backported)
    return tuple(dict.fromkeys(classes))


IMMEDIATE_BACKENDS = _immediate_backends()


def _framework_task_classes() -> tuple[type, ...]:
    """``Task`` of both modules: a backend whose ``task_class`` is neither brings its own."""
    classes: list[type] = [Task]
    try:
        from django_tasks.base import Task as Backported
    except ImportError:  # pragma: no cover - the backport is a dependency
        pass
    else:
        classes.append(Backported)
    return tuple(dict.fromkeys(classes))


FRAMEWORK_TASK_CLASSES = _framework_task_classes()

__all__ = [
    "FRAMEWORK_TASK_CLASSES",
    "IMMEDIATE_BACKENDS",
    "TASKS_MODULE",
    "ImmediateBackend",
    "InvalidTaskError",
    "Task",
    "TaskResultStatus",
    "default_task_backend",
    "task",
    "task_backends",
]
