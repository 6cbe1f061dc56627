"""Database tables: one row per instance, one per history entry, one per pending timer, one per
runnable step execution (its run), one per idempotency key a resume used; one per schedule and
one per schedule tick that started (or tried to start) an instance."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from hephaestus_django.core.ports import CLAIMED, QUEUED, THROTTLED
from hephaestus_django.core.status import ACTIVE_STATUSES, EntryKind, Status

ACTIVE = [s.value for s in Status if s in ACTIVE_STATUSES]  # in declaration order


class InstanceStatus(models.TextChoices):
    """Mirrors :class:`hephaestus_django.core.Status` (a test asserts the two agree)."""

    PENDING = Status.PENDING.value, _("pending")
    RUNNING = Status.RUNNING.value, _("running")
    WAITING = Status.WAITING.value, _("waiting")
    COMPLETED = Status.COMPLETED.value, _("completed")
    FAILED = Status.FAILED.value, _("failed")
    CANCELLED = Status.CANCELLED.value, _("cancelled")
    COMPENSATING = Status.COMPENSATING.value, _("compensating")
    PAUSED = Status.PAUSED.value, _("paused")


class EntryKindChoices(models.TextChoices):
    COMPLETED = EntryKind.COMPLETED.value, _("completed")
    PAUSED = EntryKind.PAUSED.value, _("paused")
    RESUMED = EntryKind.RESUMED.value, _("resumed")
    TIMER_FIRED = EntryKind.TIMER_FIRED.value, _("timer fired")
    RETRYING = EntryKind.RETRYING.value, _("retrying")
    FAILED = EntryKind.FAILED.value, _("failed")
    CANCELLED = EntryKind.CANCELLED.value, _("cancelled")
    COMPENSATED = EntryKind.COMPENSATED.value, _("compensated")
    MIGRATED = EntryKind.MIGRATED.value, _("migrated")
    UNPAUSED = EntryKind.UNPAUSED.value, _("unpaused")


class WorkflowInstanceQuerySet(models.QuerySet["WorkflowInstance"]):
    def active(self) -> WorkflowInstanceQuerySet:
        return self.filter(status__in=ACTIVE)

    def finished(self) -> WorkflowInstanceQuerySet:
        return self.exclude(status__in=ACTIVE)

    def waiting(self) -> WorkflowInstanceQuerySet:
        return self.filter(status=Status.WAITING)

    def failed(self) -> WorkflowInstanceQuerySet:
        return self.filter(status=Status.FAILED)

    def newest_first(self, instance_id: str, workflow: str | None = None) -> WorkflowInstanceQuerySet:
        """The rows with ``instance_id`` (of ``workflow``, if given), newest first: an id is not
        unique across history, and every lookup by id means the newest row."""
        rows = self.filter(instance_id=instance_id)
        if workflow is not None:
            rows = rows.filter(workflow=workflow)
        return rows.order_by("-pk")

    def newest(self, instance_id: str, workflow: str | None = None) -> WorkflowInstance | None:
        """The newest row with ``instance_id`` (of ``workflow``, if given), or ``None``."""
        return self.newest_first(instance_id, workflow).first()


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
    #: While paused: the status to go back to.
    paused_from = models.CharField(_("paused from"), max_length=16, blank=True, default="",
                                   choices=InstanceStatus.choices)
    compensation = models.JSONField(
        _("compensation"), null=True, blank=True,
        help_text=_('{"outcome", "error", "pending": [steps left, next first], "done": [...], "failed_step"}'))
    #: The instance whose children step started this one (a child workflow), if any.
    parent = models.ForeignKey("self", verbose_name=_("parent"), null=True, blank=True, editable=False,
                               on_delete=models.SET_NULL, related_name="children")
    #: The parent's id (``key::value``), kept with the row: shapes show it without a join.
    parent_instance_id = models.CharField(_("parent id"), max_length=255, blank=True, default="", editable=False)
    #: Registry name of the parent's children step that started this one.
    parent_step = models.CharField(_("parent step"), max_length=255, blank=True, default="", editable=False)
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
        default_permissions = ()


class HistoryEntry(models.Model):
    """One entry of an instance's execution history (``ExecutionEntry``), ordered by ``seq``."""

    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="history",
                                 db_index=False)  # the (instance, seq) constraint's index starts with it
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


class ResumeKey(models.Model):
    """An idempotency key a resume of ``instance`` used: the same key again does nothing.

    Kept for the instance's lifetime (deleted with it); the unique constraint is what makes a
    redelivered resume a no-op, however many arrive at once.
    """

    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="resume_keys",
                                 db_index=False)  # the constraint's index starts with it
    key = models.CharField(_("idempotency key"), max_length=255)
    created_at = models.DateTimeField(_("used"))

    class Meta:
        verbose_name = _("resume idempotency key")
        verbose_name_plural = _("resume idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["instance", "key"], name="hephaestus_resume_key_once"),
        ]

    def __str__(self) -> str:
        return self.key


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


class RunState(models.TextChoices):
    """Mirrors the run states of :mod:`hephaestus_django.core.ports`."""

    QUEUED = QUEUED, _("queued")
    CLAIMED = CLAIMED, _("claimed")
    THROTTLED = THROTTLED, _("throttled")


class StepRun(models.Model):
    """A runnable step execution: queued for a worker, claimed by one, or throttled (waiting for a
    concurrency slot).

    Written in the same statement that makes the step runnable and removed by the one that
    applies its outcome, so the table holds exactly the work in flight. A worker claims the run
    before executing the step (a duplicate delivery finds nothing to claim) and keeps
    ``heartbeat_at`` fresh while it works: a claim whose heartbeat is older than
    ``LEASE_SECONDS`` was lost with its worker, and recovery counts it as a failed attempt.
    """

    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="runs",
                                 db_index=False)  # the (instance, step) constraint's index starts with it
    step = models.CharField(_("step"), max_length=255)
    attempt = models.PositiveIntegerField(_("attempt"), default=1)
    state = models.CharField(_("state"), max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    queue_name = models.CharField(_("queue name"), max_length=255, blank=True, default="",
                                  help_text=_("empty: HEPHAESTUS['QUEUE_NAME']"))
    priority = models.SmallIntegerField(_("priority"), default=0)
    concurrency_limit = models.PositiveIntegerField(_("concurrency limit"), null=True, blank=True)
    #: The task that runs it reached the queue (or the process that wrote it runs it itself).
    enqueued = models.BooleanField(_("enqueued"), default=False)
    worker = models.CharField(_("worker"), max_length=255, blank=True, default="")
    #: Identifies this dispatch: the task claims the run by it; a new attempt or a re-dispatch gets
    #: a new one. With django-tasks-db on the same database it is the task's id too.
    token = models.UUIDField(_("token"), unique=True)
    #: The task backend's id of the task that runs it (other backends, once enqueued).
    task_id = models.CharField(_("task id"), max_length=255, blank=True, default="")
    dispatched_at = models.DateTimeField(_("dispatched"))
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat"), null=True, blank=True)

    class Meta:
        verbose_name = _("step run")
        verbose_name_plural = _("step runs")
        ordering = ["dispatched_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "step"], name="hephaestus_one_run_per_step"),
            models.CheckConstraint(condition=Q(state__in=RunState.values), name="hephaestus_run_state_valid"),
        ]
        indexes = [
            # what recovery scans: lost claims, dispatches that never reached the queue, waiting
            # throttled runs; and the claims a concurrency limit counts
            models.Index(fields=["heartbeat_at"], condition=Q(state=CLAIMED), name="hephaestus_run_claimed_idx"),
            models.Index(fields=["dispatched_at"], condition=Q(state=QUEUED, enqueued=False),
                         name="hephaestus_run_unsent_idx"),
            models.Index(fields=["step", "dispatched_at"], condition=Q(state=THROTTLED),
                         name="hephaestus_run_throttle_idx"),
            models.Index(fields=["step"], condition=Q(state=CLAIMED, concurrency_limit__isnull=False),
                         name="hephaestus_run_limited_idx"),
            # the oldest waiting runs of a queue, which a task with steps to spare takes
            models.Index(fields=["queue_name", "priority", "dispatched_at"],
                         condition=Q(state=QUEUED, concurrency_limit__isnull=True), name="hephaestus_run_waiting_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.step} #{self.attempt} ({self.state})"


class WorkflowSchedule(models.Model):
    """A workflow's schedule (declared in code, ``Schedule(...)``) as the workers see it: its next
    tick, and whether an operator paused it. Created when a worker pass first sees the schedule."""

    workflow = models.CharField(_("workflow"), max_length=255)
    name = models.CharField(_("schedule"), max_length=64)
    paused = models.BooleanField(_("paused"), default=False)
    #: The next tick to start; NULL until a worker pass has seen the schedule.
    next_tick = models.DateTimeField(_("next tick"), null=True, blank=True)
    last_tick = models.DateTimeField(_("last tick"), null=True, blank=True)
    last_instance = models.CharField(_("last instance"), max_length=255, blank=True, default="")
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ["workflow", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="hephaestus_schedule_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow}: {self.name}"


class ScheduleTick(models.Model):
    """One tick of a schedule that fired. Unique per (schedule, tick), and written in the
    transaction that starts its instance: however many workers race, a tick starts once."""

    schedule = models.ForeignKey(WorkflowSchedule, on_delete=models.CASCADE, related_name="ticks")
    tick = models.DateTimeField(_("tick"))
    instance = models.ForeignKey(WorkflowInstance, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+")
    #: Why the tick started nothing (e.g. an active instance already holds its business value).
    error = models.TextField(_("error"), blank=True, default="")
    created_at = models.DateTimeField(_("fired"), auto_now_add=True)

    class Meta:
        verbose_name = _("schedule tick")
        verbose_name_plural = _("schedule ticks")
        ordering = ["schedule", "-tick"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tick"], name="hephaestus_schedule_tick_once"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule} at {self.tick:%Y-%m-%d %H:%M}"
