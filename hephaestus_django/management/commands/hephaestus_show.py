"""``manage.py hephaestus_show ID``: one instance and its execution history."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from hephaestus_django.core.registry import short_name
from hephaestus_django.management.base import (
    HephaestusCommand,
    instance_row,
    instance_summary,
    instance_with_history,
    one_line,
    table,
    text_argument,
    to_json,
    when,
)


class Command(HephaestusCommand):
    help = "Show instance ID (the newest with that id), its context and its history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", metavar="ID", type=text_argument("ID"), help="Instance id.")
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        row = instance_row(options["id"])
        if options["json"]:
            self.print_json(instance_with_history(row))
            return
        self.stdout.write(instance_summary(row))
        self.stdout.write("\nContext:")
        self.stdout.write(to_json(row.context))
        history = list(row.history.order_by("seq"))
        self.stdout.write(f"\nHistory ({len(history)} entries):")
        if history:
            self.stdout.write(table(
                ["#", "time", "kind", "step", "event", "attempt", "duration", "error"],
                [(h.seq, when(h.timestamp), h.kind, short_name(h.step), h.event, h.attempt,
                  f"{h.duration:.3f}s" if h.duration is not None else "",
                  one_line(h.error) if h.error else "") for h in history],
            ))
