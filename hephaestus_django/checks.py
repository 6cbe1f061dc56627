"""System checks, registered by ``AppConfig.ready()``: settings (``hephaestus.E0xx``), workflows
(``E1xx``) and the task backend (``E2xx``). Each distinct problem has its own id:

====================  ============================================================================
id                    problem
====================  ============================================================================
``hephaestus.E001``   ``HEPHAESTUS`` has an unknown key
``hephaestus.E002``   ``LEASE_SECONDS`` is not a positive number (of seconds, at most ``MAX_SECONDS``)
``hephaestus.E003``   ``WORKER_INTERVAL`` is not a positive number (of seconds, at most ``MAX_SECONDS``)
``hephaestus.E004``   ``RECOVERY_ATTEMPTS`` is not a positive int
``hephaestus.E005``   ``DISPATCH_TIMEOUT`` is neither ``None`` nor a positive number of seconds
``hephaestus.E006``   ``HEPHAESTUS`` is not a dict
``hephaestus.E007``   ``MAX_INLINE_STEPS`` is not a positive int
``hephaestus.E008``   ``TASK_BACKEND`` is not a non-empty string
``hephaestus.E009``   ``QUEUE_NAME`` is not a non-empty string
``hephaestus.E010``   ``API_PERMISSION_CLASSES`` is neither ``None`` nor a list of dotted paths (or classes)
``hephaestus.E011``   ``API_PERMISSION_CLASSES`` has a dotted path that does not import a permission class
``hephaestus.E012``   ``ADMIN_COUNT_LIMIT`` is not an int, 0 or more
``hephaestus.E101``   a workflow of an app's ``workflows`` module is invalid (one error per workflow)
``hephaestus.E201``   ``TASK_BACKEND`` names a task backend that cannot be loaded
``hephaestus.E202``   ``TASK_BACKEND`` is not ``"default"`` for a backend whose tasks are of its own class
``hephaestus.W202``   django-tasks-fennel's own backend would send timers to Celery as ETA tasks
``hephaestus.E203``   a step (or a compensation step) is routed to a queue the task backend does not accept
====================  ============================================================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.utils.module_loading import import_string

from hephaestus_django import conf


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Everything wrong with the ``HEPHAESTUS`` setting (:func:`hephaestus_django.conf.problems`),
    then the permission classes it names that cannot be imported."""
    value = getattr(django_settings, "HEPHAESTUS", {})
    found = conf.problems(value)
    errors: list[checks.CheckMessage] = [checks.Error(problem.message, hint=problem.hint or None, id=problem.check_id)
                                         for problem in found]
    if isinstance(value, dict) and not any(problem.key == "API_PERMISSION_CLASSES" for problem in found):
        errors += _permission_class_problems(value.get("API_PERMISSION_CLASSES"))
    return errors


def _permission_class_problems(configured: Any) -> list[checks.CheckMessage]:
    """The dotted paths of ``API_PERMISSION_CLASSES`` that do not import a permission class (or a
    composition such as ``IsAuthenticated & IsAdminUser``: anything the API can call)."""
    errors: list[checks.CheckMessage] = []
    for item in configured or ():
        if not isinstance(item, str):
            continue
        try:
            if callable(import_string(item)):
                continue
            problem = "is not a permission class"
        except ImportError as exc:
            problem = f"cannot be imported ({exc})"
        errors.append(checks.Error(f"HEPHAESTUS['API_PERMISSION_CLASSES'] names {item!r}, which {problem}.",
                                   id="hephaestus.E011"))
    return errors


def check_task_backend(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The task backend ``TASK_BACKEND`` names can be loaded, runs the engine's tasks and accepts
    every queue a step is routed to (nothing to say while the settings themselves are wrong)."""
    from hephaestus_django.compat import task_backends
    from hephaestus_django.conf import settings

    value = getattr(django_settings, "HEPHAESTUS", {})
    if any(problem.check_id != "hephaestus.E001" for problem in conf.problems(value)):
        return []  # a wrong value: check_settings reports it
    alias = settings.TASK_BACKEND
    try:
        backend = task_backends[alias]
    except Exception as exc:
        return [checks.Error(f"HEPHAESTUS['TASK_BACKEND'] names task backend {alias!r}, which cannot be loaded: "
                             f"{exc}", hint="Add it to the TASKS setting.", id="hephaestus.E201")]
    return _check_task_class(alias, backend) + _check_celery_eta(alias, backend) + _queue_problems(backend, alias)


def _check_celery_eta(alias: str, backend: Any) -> list[checks.CheckMessage]:
    """Timers sent as Celery ETA tasks stop RabbitMQ consumers that hold them past consumer_timeout."""
    if not getattr(backend, "supports_defer", False):
        return []
    try:
        from django_tasks_fennel import CeleryBackend as FennelBackend
    except ImportError:
        return []
    if not isinstance(backend, FennelBackend):
        return []
    return [checks.Warning(
        f"TASKS[{alias!r}] sends the engine's timers to Celery as ETA tasks: a worker holds each one "
        "unacknowledged until it is due, and RabbitMQ stops a consumer that holds a message longer than its "
        "consumer_timeout (30 minutes by default).",
        hint="Use 'hephaestus_django.contrib.celery.CeleryBackend' (timers fire through hephaestus_worker).",
        id="hephaestus.W202")]


def _check_task_class(alias: str, backend: Any) -> list[checks.CheckMessage]:
    """A backend with a task class of its own (django-tasks-fennel registers each task with Celery
    when it is created) only knows tasks created on it; the engine's are created on TASKS['default']."""
    from hephaestus_django.compat import FRAMEWORK_TASK_CLASSES
    from hephaestus_django.runtime.tasks import run_step

    task_class = getattr(backend, "task_class", None)
    if task_class is None or task_class in FRAMEWORK_TASK_CLASSES or isinstance(run_step, task_class):
        return []
    if alias == run_step.backend:  # settings changed since the tasks were created (tests): nothing to say
        return []
    backend_path = f"{type(backend).__module__}.{type(backend).__qualname__}"
    return [checks.Error(
        f"HEPHAESTUS['TASK_BACKEND'] is {alias!r}, whose backend {backend_path} runs only tasks of its own class "
        f"({task_class.__module__}.{task_class.__qualname__}); the engine's tasks are created on "
        f"TASKS[{run_step.backend!r}], so its workers would discard them as unregistered.",
        hint=f"Make this backend TASKS[{run_step.backend!r}] and remove HEPHAESTUS['TASK_BACKEND'].",
        id="hephaestus.E202")]


def _queue_problems(backend: Any, alias: str) -> list[checks.CheckMessage]:
    """Every queue a step is routed to must be one the backend accepts (queue backends only: the
    immediate backend runs everything in the caller)."""
    from hephaestus_django.compat import IMMEDIATE_BACKENDS
    from hephaestus_django.conf import settings
    from hephaestus_django.core import registry
    from hephaestus_django.core.engine import completes_at_once

    queues = getattr(backend, "queues", None)
    if isinstance(backend, IMMEDIATE_BACKENDS) or not queues:
        return []
    errors = []
    for workflow in registry.all_workflows():
        for version in workflow.all_versions():
            definition = workflow.definition(version)
            graph = definition.graph
            for step in dict.fromkeys([*graph.nodes, *graph.compensations.values()]):
                if completes_at_once(step):  # never dispatched
                    continue
                queue = step.queue_name or definition.queue_name or workflow.queue_name or settings.QUEUE_NAME
                if queue not in queues:
                    errors.append(checks.Error(
                        f"step {step.registry_name()} of workflow {workflow.name} (version {version}) is routed to "
                        f"queue {queue!r}, which task backend {alias!r} does not accept ({', '.join(sorted(queues))}).",
                        hint="Add the queue to the backend's QUEUES in the TASKS setting.", id="hephaestus.E203",
                        obj=workflow.name))
    return list({e.msg: e for e in errors}.values())


def check_workflows(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every workflow that failed to define, one error each, named with the module that defines it.

    Autodiscovery records the ``WorkflowDefinitionError`` of each broken workflow of a ``workflows``
    module (and goes on with the next class), so ``manage.py check`` lists them all instead of a
    bare traceback for the first one.
    """
    from hephaestus_django.discovery import discovery_errors

    return [checks.Error(f"{module}: {error}", id="hephaestus.E101", obj=module)
            for module, errors in discovery_errors().items() for error in errors]
