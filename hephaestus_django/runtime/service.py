"""The engine service over the ORM, dispatching step executions through Django Tasks."""

from __future__ import annotations

from typing import Any

from hephaestus_django.compat import ImmediateBackend, TaskResultStatus, task_backends
from hephaestus_django.conf import settings
from hephaestus_django.core import engine
from hephaestus_django.core.engine import Effect, ExecuteStep
from hephaestus_django.core.exceptions import HephaestusError
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.service import Service
from hephaestus_django.storage.orm import DjangoStorage


class DispatchError(HephaestusError):
    """The task backend could not run the workflow's steps."""


class DjangoService(Service):
    """:class:`Service` whose step executions go through the configured Django Tasks backend.

    With the immediate backend (the default) one ``advance`` task runs every step of the
    instance in the caller, in a loop: no nested enqueues, no recursion limit.
    """

    runner_name = "django_tasks"

    def __init__(self) -> None:
        super().__init__(DjangoStorage())
        self._inline = False

    @property
    def backend(self) -> Any:
        return task_backends[settings.TASK_BACKEND]

    def run(self, instance: Instance, effects: list[Effect]) -> None:
        steps = [[e.step.registry_name(), e.attempt] for e in effects if isinstance(e, ExecuteStep)]
        if not steps:
            return
        if self._inline:
            super().run(instance, effects)
            return
        from hephaestus_django.runtime.tasks import advance

        result = advance.using(backend=settings.TASK_BACKEND).enqueue(instance.pk, steps)
        if isinstance(self.backend, ImmediateBackend) and result.status == TaskResultStatus.FAILED:
            trace = result.errors[-1].traceback if result.errors else ""
            raise DispatchError(f"running the steps of {instance.id} failed:\n{trace}")

    def advance_inline(self, instance_pk: int, steps: list[list[Any]]) -> int:
        instance = self.storage.load_pk(instance_pk, history=False)
        graph = engine.graph_of(instance)
        effects: list[Effect] = []
        for name, attempt in steps:
            step = graph.step(name)
            if step is not None:
                effects.append(ExecuteStep(step, int(attempt)))
        previous, self._inline = self._inline, True
        try:
            super().run(instance, effects)
        finally:
            self._inline = previous
        return len(effects)


    def run_pending_steps(self) -> int:
        """Run here every step that is runnable but not running in this process (queued on a
        backend, or lost with a worker); returns how many ran."""
        from hephaestus_django.storage.models import WorkflowInstance

        ran = 0
        pending_retries = self.storage.pending_retry_steps()
        for pk in WorkflowInstance.objects.filter(status="running").values_list("pk", flat=True):
            instance = self.storage.load_pk(pk, history=False)
            graph = engine.graph_of(instance)
            blocked = pending_retries.get(pk, set())
            effects: list[Effect] = [ExecuteStep(s) for s in sorted(instance.running_steps, key=graph.index.__getitem__)
                                     if s.registry_name() not in blocked]
            if effects:
                previous, self._inline = self._inline, True
                try:
                    Service.run(self, instance, effects)
                finally:
                    self._inline = previous
                ran += len(effects)
        return ran


_service: DjangoService | None = None


def get_service() -> DjangoService:
    global _service
    if _service is None:
        _service = DjangoService()
    return _service
