"""Task functions (module level, JSON arguments only: ids and names, never objects).

A task never raises for an engine reason (a failing step is recorded on its instance), so
the backend's own result says only whether the task infrastructure worked.

The tasks run on the runner that ``runtime.dispatch`` binds here when it is imported (the app
imports it in ``ready()``): dispatch enqueues these tasks, so this module does not import it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from hephaestus_django.compat import task

if TYPE_CHECKING:
    from hephaestus_django.runtime.dispatch import DjangoRunner

_get_runner: Callable[[], DjangoRunner] | None = None


def bind(get_runner: Callable[[], DjangoRunner]) -> None:
    """Run the tasks on ``get_runner()`` (called by ``runtime.dispatch`` when it is imported)."""
    global _get_runner
    _get_runner = get_runner


def get_runner() -> DjangoRunner:
    if _get_runner is None:
        raise ImproperlyConfigured(
            "hephaestus_django's tasks ran before the app was ready: add 'hephaestus_django' to INSTALLED_APPS "
            "of the worker's settings")
    return _get_runner()


@task()
def advance(instance_pk: int, steps: list[list[Any]]) -> int:
    """Immediate backend: run ``steps`` ([[step_name, attempt, claimed, token], ...]) of one instance and
    everything they lead to, in the caller, iteratively; returns how many steps ran."""
    return get_runner().advance_inline(instance_pk, steps)


@task()
def run_step(token: str) -> str:
    """Queue backends: claim the run dispatched with ``token``, execute its step, then carry the
    instance on (its next steps, up to ``MAX_INLINE_STEPS`` per task)."""
    return get_runner().run_step_task(token)


@task()
def fire_timer(timer_pk: int) -> bool:
    """Fire one durable timer if it is still there and due (deferred with ``run_after``)."""
    return get_runner().fire_timer_pk(timer_pk)
