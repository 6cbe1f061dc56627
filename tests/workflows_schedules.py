"""Scheduled workflows of the tests. Not autodiscovered, and unregistered again once defined: their
ticks would start instances in every test that runs the worker loop. Tests register them with the ``scheduled`` fixture
(``tests/test_time_schedules.py``); worker processes import this module when
``HEPHAESTUS_TEST_SCHEDULES`` is set (``tests/settings_worker.py``)."""

from __future__ import annotations

import os
from typing import Any

from hephaestus_django.core import Done, Ok, Schedule, Step, Unique, WaitForEvent, Workflow, registry


class SReport(Step):
    events = ("done",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("done", {"for": context.initial["scheduled_for"]})


class NightlyReport(Workflow):
    """Every night at 03:00 in Paris, and every 15 minutes (UTC)."""

    name = "tests.NightlyReport"
    unique = Unique(key="report")
    schedules = [
        Schedule("0 3 * * *", value="nightly-{tick:%Y%m%d}", context={"kind": "full"}, timezone="Europe/Paris",
                 name="nightly"),
        Schedule("*/15 * * * *", name="quarterly"),
    ]
    start_step = SReport
    transitions = {(SReport, "done"): Done}


class SHold(WaitForEvent):
    pass


class ManySchedules(Workflow):
    """100 yearly schedules (the worker race): ids get a random suffix, so only the tick table can
    stop a tick from starting twice."""

    name = "tests.ManySchedules"
    unique = Unique(key="many", scope="none")
    schedules = [Schedule("0 0 1 1 *", name=f"s{i}", value=f"s{i}-{{tick:%Y}}") for i in range(100)]
    start_step = SHold
    transitions = {(SHold, "received"): Done}


WORKFLOWS = (NightlyReport, ManySchedules)

if not os.environ.get("HEPHAESTUS_TEST_SCHEDULES"):  # importing the module must not schedule anything
    for _workflow in WORKFLOWS:
        registry.unregister(_workflow.name)
