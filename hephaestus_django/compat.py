"""The one import shim for Django's Tasks framework.

``django.tasks`` ships with Django >= 6.0; on Django 5.2 LTS the ``django-tasks`` backport
provides the same API under ``django_tasks`` (with a few differing exception names).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import django

# Chosen by Django's version, not by trying imports: an import error inside django.tasks must
# surface, not silently switch a Django 6 project to the backport. Type checkers see django.tasks
# (django-stubs' types, on every Django version): the backport has the same API under other classes.
if TYPE_CHECKING or django.VERSION >= (6, 0):
    from django.tasks import Task, TaskResultStatus, default_task_backend, task, task_backends
    from django.tasks.backends.immediate import ImmediateBackend
    from django.tasks.exceptions import InvalidTask as InvalidTaskError

    TASKS_MODULE = "django.tasks"
else:  # Django 5.2 with the backport
    from django_tasks import TaskResultStatus, default_task_backend, task, task_backends
    from django_tasks.backends.immediate import ImmediateBackend
    from django_tasks.base import Task
    from django_tasks.exceptions import InvalidTaskError

    TASKS_MODULE = "django_tasks"


def _with_backport(cls: type, module: str) -> tuple[type, ...]:
    """``cls`` and the backport's class of the same name from ``module`` (one class on Django 5.2):
    a project may name either module's backends in ``TASKS``."""
    classes: list[type] = [cls]
    try:
        classes.append(getattr(importlib.import_module(module), cls.__name__))
    except ImportError:  # pragma: no cover - the backport is a dependency
        pass
    return tuple(dict.fromkeys(classes))


#: The immediate backend classes of both modules.
IMMEDIATE_BACKENDS = _with_backport(ImmediateBackend, "django_tasks.backends.immediate")
#: ``Task`` of both modules: a backend whose ``task_class`` is neither brings its own.
FRAMEWORK_TASK_CLASSES = _with_backport(Task, "django_tasks.base")

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
