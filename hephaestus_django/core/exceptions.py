"""Exception hierarchy. Every error the engine raises on purpose is a ``HephaestusError``."""

from __future__ import annotations


class HephaestusError(Exception):
    """Root of every error raised by hephaestus_django.

    ``field`` names the input the error is about (``event``, ``context``, ...), so the
    API can key its 400 answers by field without parsing messages.
    """

    field: str | None = None

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class WorkflowDefinitionError(HephaestusError):
    """A workflow class is malformed; raised when the class is created."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class InstanceNotFound(HephaestusError, LookupError):
    """No instance has that id (in that workflow)."""

    field = "id"


class AlreadyRunning(HephaestusError):
    """An active instance already holds the business key in the workflow's uniqueness scope."""

    field = "id"


class InvalidContext(HephaestusError, ValueError):
    """The context is not a JSON-serialisable dict."""

    field = "context"


class NotWaiting(HephaestusError):
    """Resume of an instance that has no waiting step (or not the chosen one)."""

    field = "step"


class InvalidEvent(HephaestusError, ValueError):
    """The event is not declared by the waiting step, or it is ambiguous."""

    field = "event"


class NotCancellable(HephaestusError):
    """Only pending, running and waiting instances can be cancelled."""


class NotRetryable(HephaestusError):
    """Only failed instances can be retried."""


class UnknownWorkflow(HephaestusError, LookupError):
    """No workflow with that name (or version) is registered."""

    field = "workflow"


class NotPausable(HephaestusError):
    """Only running and waiting instances can be paused."""


class NotPaused(HephaestusError):
    """Unpause of an instance that is not paused."""


class MigrationError(HephaestusError, ValueError):
    """An instance cannot move to the requested version; nothing changed.

    ``unmatched`` lists the registry names of the instance's steps that the target version
    does not have and ``step_map`` does not map.
    """

    field: str | None = "step_map"

    def __init__(self, message: str = "", *, field: str | None = "step_map",
                 unmatched: list[str] | None = None) -> None:
        super().__init__(message)
        self.field = field  # None: not about an input (the instance's state forbids it)
        self.unmatched = list(unmatched or [])
