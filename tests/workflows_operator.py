"""Workflows of the operator's-view tests (SPEC §12): steps that look at their instance's history.

``SeenFlow``: ``SeenStart`` -> ``SeenGate`` (waits for ``go``) -> ``SeenPlain`` -> ``SeenAtomic``
(``atomic = True``) -> ``SeenTimed`` (``timeout``: runs in a helper thread) -> ``Debug`` -> ``Done``.
Each ``Seen*`` step after the gate returns what it saw of ``instance.execution_history``.
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core import Debug, Done, Ok, Step, Unique, WaitForEvent, Workflow


def _seen(instance: Any) -> dict[str, Any]:
    history = instance.execution_history
    return {"count": len(history), "kinds": [e.kind for e in history],
            "steps": [e.step_name.rsplit(".", 1)[-1] if e.step_name else None for e in history]}


class SeenStart(Step):
    events = ("started",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "started"


class SeenGate(WaitForEvent):
    pass


class SeenPlain(Step):
    events = ("seen",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("seen", _seen(instance))


class SeenAtomic(Step):
    events = ("seen",)
    atomic = True

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("seen", _seen(instance))


class SeenTimed(Step):
    events = ("seen",)
    timeout = 30.0

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        try:
            return Ok("seen", _seen(instance))
        finally:  # this step ran in a helper thread: give its database connection back
            from django.db import connection

            connection.close()


class SeenFlow(Workflow):
    name = "tests.SeenFlow"
    unique = Unique(key="seen")
    start_step = SeenStart
    transitions = {
        (SeenStart, "started"): (SeenGate, {"event_name": "go"}),
        (SeenGate, "received"): SeenPlain,
        (SeenPlain, "seen"): SeenAtomic,
        (SeenAtomic, "seen"): SeenTimed,
        (SeenTimed, "seen"): Debug,
        (Debug, "completed"): Done,
    }
