"""System checks: settings (``hephaestus.E00x``), workflows (``E1xx``) and the task backend (``E2xx``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core import checks

from hephaestus_django.conf import DEFAULTS


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    value = getattr(django_settings, "HEPHAESTUS", {})
    if not isinstance(value, dict):
        return [checks.Error("HEPHAESTUS must be a dict.", id="hephaestus.E001")]
    for key in sorted(set(value) - set(DEFAULTS)):
        errors.append(checks.Error(f"Unknown HEPHAESTUS setting {key!r}.",
                                   hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.", id="hephaestus.E001"))
    lease = value.get("LEASE_SECONDS", DEFAULTS["LEASE_SECONDS"])
    if isinstance(lease, bool) or not isinstance(lease, int | float) or lease <= 0:
        errors.append(checks.Error(f"HEPHAESTUS['LEASE_SECONDS'] must be a positive number, not {lease!r}.",
                                   id="hephaestus.E002"))
    interval = value.get("WORKER_INTERVAL", DEFAULTS["WORKER_INTERVAL"])
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        errors.append(checks.Error(f"HEPHAESTUS['WORKER_INTERVAL'] must be a positive number, not {interval!r}.",
                                   id="hephaestus.E003"))
    for key in ("RECOVERY_ATTEMPTS", "MAX_INLINE_STEPS"):
        count = value.get(key, DEFAULTS[key])
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            errors.append(checks.Error(f"HEPHAESTUS[{key!r}] must be a positive int, not {count!r}.",
                                       id="hephaestus.E004"))
    timeout = value.get("DISPATCH_TIMEOUT", DEFAULTS["DISPATCH_TIMEOUT"])
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        errors.append(checks.Error(f"HEPHAESTUS['DISPATCH_TIMEOUT'] must be None or a positive number of seconds, "
                                   f"not {timeout!r}.", id="hephaestus.E005"))
    return errors


@checks.register()
def check_task_backend(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from hephaestus_django.compat import task_backends
    from hephaestus_django.conf import settings

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


@checks.register()
def check_workflows(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every workflow that failed to define, one error each, named with the module that defines it.

    Autodiscovery records the ``WorkflowDefinitionError`` of each broken workflow of a ``workflows``
    module (and goes on with the next class), so ``manage.py check`` lists them all instead of a
    bare traceback for the first one.
    """
    from hephaestus_django.discovery import discovery_errors

    return [checks.Error(f"{module}: {error}", id="hephaestus.E101", obj=module)
            for module, errors in discovery_errors().items() for error in errors]
