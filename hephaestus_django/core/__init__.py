"""The pure-Python core of hephaestus_django: it imports nothing from Django.

Everything a workflow author needs is here (and re-exported by ``hephaestus_django``).
"""

from hephaestus_django.core.base import Async, Error, Ok, Retry, Step
from hephaestus_django.core.children import Child, ChildrenStep
from hephaestus_django.core.exceptions import (
    AlreadyRunning,
    HephaestusError,
    InstanceNotFound,
    InvalidContext,
    InvalidEvent,
    MigrationError,
    NotCancellable,
    NotPausable,
    NotPaused,
    NotRetryable,
    NotWaiting,
    UnknownWorkflow,
    WorkflowDefinitionError,
)
from hephaestus_django.core.graph import route
from hephaestus_django.core.instance import Context, ExecutionEntry, Instance
from hephaestus_django.core.schedules import Schedule
from hephaestus_django.core.status import EntryKind, Status
from hephaestus_django.core.steps import Debug, Done, Wait, WaitForEvent
from hephaestus_django.core.workflow import Unique, VersionedWorkflow, Workflow

__all__ = [
    "AlreadyRunning", "Async", "Child", "ChildrenStep", "Context", "Debug", "Done", "EntryKind", "Error",
    "ExecutionEntry", "HephaestusError", "Instance", "InstanceNotFound", "InvalidContext", "InvalidEvent",
    "MigrationError", "NotCancellable", "NotPausable", "NotPaused", "NotRetryable", "NotWaiting", "Ok", "Retry",
    "Schedule", "Status", "Step", "Unique", "UnknownWorkflow", "VersionedWorkflow", "Wait", "WaitForEvent",
    "Workflow", "WorkflowDefinitionError", "route",
]
