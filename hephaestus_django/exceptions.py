"""The exceptions of hephaestus_django (all subclasses of :class:`HephaestusError`)."""

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

__all__ = [
    "AlreadyRunning",
    "HephaestusError",
    "InstanceNotFound",
    "InvalidContext",
    "InvalidEvent",
    "MigrationError",
    "NotCancellable",
    "NotPausable",
    "NotPaused",
    "NotRetryable",
    "NotWaiting",
    "UnknownWorkflow",
    "WorkflowDefinitionError",
]
