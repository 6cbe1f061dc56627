"""Django discovers the app's models here; they live in the storage layer."""

from hephaestus_django.storage.models import (
    HistoryEntry,
    InstanceStatus,
    RegisteredWorkflow,
    StepRun,
    Timer,
    WorkflowInstance,
)

__all__ = ["HistoryEntry", "InstanceStatus", "RegisteredWorkflow", "StepRun", "Timer", "WorkflowInstance"]
