"""``manage.py hephaestus_schedules``: the schedules of the registered workflows, with their next tick."""

from __future__ import annotations

from typing import Any

from hephaestus_django import services
from hephaestus_django.management.base import HephaestusCommand, table, when


class Command(HephaestusCommand):
    help = ("List the schedules of the registered workflows: cron, time zone, whether paused, the next tick "
            "(known once a worker pass has seen the schedule) and the last one.")

    def run(self, **options: Any) -> None:
        schedules = services.list_schedules()
        if options["json"]:
            self.print_json([{**s, "next_tick": _iso(s["next_tick"]), "last_tick": _iso(s["last_tick"])}
                             for s in schedules])
            return
        if not schedules:
            self.stdout.write("No workflow declares a schedule.")
            return
        rows = [(s["workflow"], s["name"], s["cron"], s["timezone"], "yes" if s["paused"] else "no",
                 when(s["next_tick"]) if s["next_tick"] else "after the next worker pass",
                 when(s["last_tick"]), s["last_instance"]) for s in schedules]
        self.stdout.write(table(["workflow", "schedule", "cron", "timezone", "paused", "next tick (UTC)",
                                 "last tick (UTC)", "last instance"], rows))


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
