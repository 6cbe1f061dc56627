"""Task functions (module level, JSON arguments only: ids, never objects)."""

from __future__ import annotations

from typing import Any

from hephaestus_django.compat import task


@task()
def advance(instance_pk: int, steps: list[list[Any]]) -> int:
    """Run ``steps`` ([[step_name, attempt], ...]) of one instance, and everything they lead to,
    in this process, iteratively. The immediate backend runs this inside ``enqueue()``."""
    from hephaestus_django.runtime.service import get_service

    return get_service().advance_inline(instance_pk, steps)
