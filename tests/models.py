"""Models used only by the tests (for example, rows that atomic steps write)."""

from django.db import models


class Ledger(models.Model):
    """A row written by an atomic step: exactly one per successful run."""

    instance_id = models.CharField(max_length=255)
    note = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        app_label = "tests"


class Execution(models.Model):
    """When one execution of a step started and ended (concurrency tests count the overlaps)."""

    step = models.CharField(max_length=255)
    instance_id = models.CharField(max_length=255)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)

    class Meta:
        app_label = "tests"
