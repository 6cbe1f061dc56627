"""Task functions (module level, JSON arguments only: ids and names, never objects).

A task never raises for an engine reason (a failing step is recorded on its instance), so
the backend's own result says only whether the task infrastructure worked.
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.compat import task


@task()
def advance(instance_pk: int, steps: list[list[Any]]) -> int:
    """Immediate backend: run ``steps`` ([[step_name, attempt, claimed, token], ...]) of one instance and
    everything they lead to, in the caller, iteratively; returns how many steps ran."""
    from hephaestus_django.runtime.dispatch import get_runner

    return get_runner().advance_inline(instance_pk, steps)


@task()
def run_step(token: str) -> str:
    """Queue backends: claim the run dispatched with ``token``, execute its step, then carry the
    instance on (its next steps, up to ``MAX_INLINE_STEPS`` per task)."""
    from hephaestus_django.runtime.dispatch import get_runner

    return get_runner().run_step_task(token)


@task()
def fire_timer(timer_pk: int) -> bool:
    """Fire one durable timer if it is still there and due (deferred with ``run_after``)."""
    from hephaestus_django.runtime.dispatch import get_runner

    return get_runner().fire_timer_pk(timer_pk)
