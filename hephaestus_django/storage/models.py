"""Database tables: one row per instance, one per history entry, one per pending timer."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from hephaestus_django.core.status import ACTIVE_STATUSES, EntryKind, Status

ACTIVE = [s.value for s in ACTIVE_STATUSES]


class InstanceStatus(models.TextChoices):
    """Mirrors :class:`hephaestus_django.core.Status` (a test asserts the two agree)."""

    PENDING = Status.PENDING.value, _("pending")
    RUNNING = Status.RUNNING.value, _("running")
    WAITING = Status.WAITING.value, _("waiting")
    COMPLETED = Status.COMPLETED.value, _("completed")
    FAILED = Status.FAILED.value, _("failed")
    CANCELLED = Status.CANCELLED.value, _("cancelled")


class EntryKindChoices(models.TextChoices):
    COMPLETED = EntryKind.COMPLETED.value, _("completed")
    PAUSED = EntryKind.PAUSED.value, _("paused")
    RESUMED = EntryKind.RESUMED.value, _("resumed")
    TIMER_FIRED = EntryKind.TIMER_FIRED.value, _("timer fired")
    RETRYING = EntryKind.RETRYING.value, _("retrying")
    FAILED = EntryKind.FAILED.value, _("failed")
    CANCELLED = EntryKind.CANCELLED.value, _("cancelled")


class WorkflowInstanceQuerySet(models.QuerySet["WorkflowInstance"]):
    def active(self) -> WorkflowInstanceQuerySet:
        return self.filter(status__in=ACTIVE)

    def finished(self) -> WorkflowInstanceQuerySet:
        return self.exclude(status__in=ACTIVE)

    def waiting(self) -> WorkflowInstanceQuerySet:
        return self.filter(status=Status.WAITING)

    def failed(self) -> WorkflowInstanceQuerySet:
        return self.filter(status=Status.FAILED)


class WorkflowInstance(models.Model):
    """A workflow instance: every field of the core ``Instance``, by registry names."""

    instance_id = models.CharField(_("instance id"), max_length=255)
    workflow = models.CharField(_("workflow"), max_length=255)
    workflow_version = models.PositiveIntegerField(_("version"), default=1)
    status = models.CharField(_("status"), max_length=16, choices=InstanceStatus.choices,
                              default=InstanceStatus.PENDING)
    current_step = models.CharField(_("current step"), max_length=255, blank=True, default="")
    context = models.JSONField(_("context"), default=dict, encoder=DjangoJSONEncoder,
                               help_text=_('{"initial": ..., "steps": {context_key: ...}}'))
    step_configs = models.JSONField(_("step configs"), default=dict, encoder=DjangoJSONEncoder)
    active_steps = models.JSONField(_("active steps"), default=list)
    completed_steps = models.JSONField(_("completed steps"), default=list)
    waiting_steps = models.JSONField(_("waiting steps"), default=dict, encoder=DjangoJSONEncoder,
                                     help_text=_("step name -> time it paused"))
    pending_joins = models.JSONField(_("pending joins"), default=list)
    runtime_metadata = models.JSONField(_("runtime metadata"), default=dict, encoder=DjangoJSONEncoder)
    telemetry_metadata = models.JSONField(_("telemetry metadata"), default=dict, encoder=DjangoJSONEncoder)
    telemetry_start_time = models.BigIntegerField(_("telemetry start time"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    #: What an active instance reserves under its uniqueness scope; NULL once finished.
    unique_slot = models.CharField(max_length=600, null=True, blank=True, editable=False)  # noqa: DJ001 - NULL frees the slot
    revision = models.PositiveIntegerField(default=0, editable=False)
    history_length = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(_("created"), db_index=True)
    updated_at = models.DateTimeField(_("updated"))
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = WorkflowInstanceQuerySet.as_manager()

    class Meta:
        verbose_name = _("workflow instance")
        verbose_name_plural = _("workflow instances")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["unique_slot"], condition=Q(unique_slot__isnull=False),
                                    name="hephaestus_unique_active_slot"),
            models.CheckConstraint(condition=Q(workflow_version__gte=1), name="hephaestus_version_positive"),
            models.CheckConstraint(condition=Q(status__in=[s.value for s in Status]),
                                   name="hephaestus_status_valid"),
        ]
        indexes = [
            models.Index(fields=["instance_id", "-id"], name="hephaestus_instance_id_idx"),
            models.Index(fields=["status", "-created_at"], name="hephaestus_status_idx"),
            models.Index(fields=["workflow", "-created_at"], name="hephaestus_workflow_idx"),
            models.Index(fields=["updated_at"], name="hephaestus_updated_idx"),
            models.Index(fields=["current_step"], name="hephaestus_current_step_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.status})"


class RegisteredWorkflow(WorkflowInstance):
    """No table of its own: it gives the registered workflows an entry in the admin index.

    Workflows live in code (the registry); the admin's entry for this proxy leads to the page
    that lists them with their graphs.
    """

    class Meta:
        proxy = True
        verbose_name = _("registered workflow")
        verbose_name_plural = _("registered workflows")
        default_permissions: tuple[str, ...] = ()


class HistoryEntry(models.Model):
    """One entry of an instance's execution history (``ExecutionEntry``), ordered by ``seq``."""

    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="history")
    seq = models.PositiveIntegerField(_("#"))
    kind = models.CharField(_("kind"), max_length=16, choices=EntryKindChoices.choices,
                            default=EntryKindChoices.COMPLETED)
    step = models.CharField(_("step"), max_length=255, blank=True, default="")
    event = models.CharField(_("event"), max_length=255, blank=True, default="")
    timestamp = models.DateTimeField(_("time"))
    context_updates = models.JSONField(_("context updates"), null=True, blank=True, encoder=DjangoJSONEncoder)
    attempt = models.PositiveIntegerField(_("attempt"), default=1)
    error = models.TextField(_("error"), blank=True, default="")
    duration = models.FloatField(_("duration (s)"), null=True, blank=True)
    delay = models.FloatField(_("retry delay (s)"), null=True, blank=True)
    #: The Python traceback of a ``failed`` or ``retrying`` entry whose step raised.
    traceback = models.TextField(_("traceback"), blank=True, default="")

    class Meta:
        verbose_name = _("history entry")
        verbose_name_plural = _("history entries")
        ordering = ["instance", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "seq"], name="hephaestus_history_order"),
        ]

    def __str__(self) -> str:
        return f"{self.seq}. {self.kind} {self.step} {self.event}".strip()


class Timer(models.Model):
    """A durable timer: wake a waiting step, or retry a failed attempt, when ``due_at`` passes."""

    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="timers")
    step = models.CharField(max_length=255)
    purpose = models.CharField(max_length=16)
    attempt = models.PositiveIntegerField(default=1)
    due_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("timer")
        verbose_name_plural = _("timers")
        ordering = ["due_at", "pk"]

    def __str__(self) -> str:
        return f"{self.purpose} {self.step} at {self.due_at:%Y-%m-%d %H:%M:%S}"
