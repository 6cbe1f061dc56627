"""The exceptions of hephaestus_django (all subclasses of :class:`HephaestusError`)."""

from hephaestus_django.core.exceptions import (
    AlreadyRunning,
    HephaestusError,
    InstanceNotFound,
    InvalidContext,
    InvalidEvent,
    NotCancellable,
    NotRetryable,
    NotWaiting,
    UnknownWorkflow,
    WorkflowDefinitionError,
)

__all__ = [
    "AlreadyRunning",
    "HephaestusError",
    "InstanceNotFound",
    "InvalidContext",
    "InvalidEvent",
    "NotCancellable",
    "NotRetryable",
    "NotWaiting",
    "UnknownWorkflow",
    "WorkflowDefinitionError",
]
