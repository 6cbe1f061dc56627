"""Django discovers the app's models here; they live in the storage layer."""

from hephaestus_django.storage.models import HistoryEntry, InstanceStatus, Timer, WorkflowInstance

__all__ = ["HistoryEntry", "InstanceStatus", "Timer", "WorkflowInstance"]
