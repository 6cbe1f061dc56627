"""``manage.py hephaestus_prune --older-than DAYS``: delete old finished instances, in batches."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction
from django.db.models import Q, QuerySet

from hephaestus_django.core import clock
from hephaestus_django.management.base import FINISHED, HephaestusCommand, days_argument, positive_int
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance


def finished_status(text: str) -> str:
    value = text.strip().lower()
    if value not in FINISHED:
        raise argparse.ArgumentTypeError(
            f"invalid status {text!r}: only finished instances can be pruned "
            f"(choose from {', '.join(FINISHED)})")
    return value


def prunable(older_than_days: float, statuses: list[str]) -> QuerySet[WorkflowInstance]:
    """Finished instances with one of ``statuses`` that finished more than ``older_than_days`` ago."""
    cutoff = clock.now() - timedelta(days=older_than_days)
    statuses = [s for s in statuses if s in FINISHED]  # never an active instance, whatever the caller says
    return WorkflowInstance.objects.filter(status__in=statuses).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, updated_at__lt=cutoff))


class Command(HephaestusCommand):
    help = "Delete finished (completed, failed, cancelled) instances older than DAYS, with their history."
    json_option = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", metavar="DAYS", type=days_argument, required=True,
                            help="Only instances that finished more than DAYS days ago (fractions allowed).")
        parser.add_argument("--status", metavar="S", nargs="+", action="extend", type=finished_status,
                            help=f"Only these statuses (default: all finished ones: {', '.join(FINISHED)}).")
        parser.add_argument("--dry-run", action="store_true",
                            help="Count what would be deleted; delete nothing.")
        parser.add_argument("--batch-size", metavar="N", type=positive_int, default=1000,
                            help="Instances deleted per transaction (default: %(default)r).")

    def run(self, **options: Any) -> None:
        statuses = list(dict.fromkeys(options["status"] or FINISHED))
        days = options["older_than"]
        qs = prunable(days, statuses)
        what = f"{', '.join(statuses)} instances older than {days:g} days"
        if options["dry_run"]:
            count = qs.count()
            entries = HistoryEntry.objects.filter(instance__in=qs).count()
            self.stdout.write(f"Would delete {count} {what} ({entries} history entries).")
            return
        instances = entries = batches = 0
        label, entry_label = WorkflowInstance._meta.label, HistoryEntry._meta.label
        while True:
            with transaction.atomic():
                pks = list(qs.order_by("pk").values_list("pk", flat=True)[: options["batch_size"]])
                if not pks:
                    break
                # lock the rows and check them again: an instance retried meanwhile is no longer finished
                locked = list(qs.filter(pk__in=pks).select_for_update().values_list("pk", flat=True))
                _, counts = WorkflowInstance.objects.filter(pk__in=locked).delete()
            batches += 1
            instances += counts.get(label, 0)
            entries += counts.get(entry_label, 0)
            if options["verbosity"] >= 2:
                self.stdout.write(f"batch {batches}: deleted {counts.get(label, 0)} instances")
            if not locked:
                break
        self.stdout.write(f"Deleted {instances} {what} ({entries} history entries) in {batches} batch(es).")
