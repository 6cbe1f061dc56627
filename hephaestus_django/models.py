"""Django discovers the app's models here; they live in the storage layer."""

from hephaestus_django.storage.models import (
    HistoryEntry,
    InstanceStatus,
    RegisteredWorkflow,
    ScheduleTick,
    StepRun,
    Timer,
    WorkflowInstance,
    WorkflowSchedule,
)

__all__ = ["HistoryEntry", "InstanceStatus", "RegisteredWorkflow", "ScheduleTick", "StepRun", "Timer",
           "WorkflowInstance", "WorkflowSchedule"]
