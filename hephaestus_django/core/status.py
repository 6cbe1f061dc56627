"""Instance statuses (the single source of truth; the model's choices mirror it)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Lifecycle status of an instance, stored as its lowercase value."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: The compensations of completed steps are running; then ``failed`` or ``cancelled``.
    COMPENSATING = "compensating"
    #: Held by an operator: no step starts and no timer fires until ``unpause``.
    PAUSED = "paused"

    @property
    def is_active(self) -> bool:
        """Pending, running, waiting, compensating and paused instances hold their business key."""
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({Status.PENDING, Status.RUNNING, Status.WAITING, Status.COMPENSATING, Status.PAUSED})
FINISHED_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
#: Statuses in which an instance's active steps may be dispatched and start executing (one place:
#: a status that stops work, such as ``paused``, is simply not listed here).
DISPATCHABLE = frozenset({Status.RUNNING, Status.WAITING, Status.COMPENSATING})


class EntryKind(StrEnum):
    """Kinds of execution-history entries (``docs/api.md``, *Shapes*).

    ``paused`` has two meanings, told apart by the entry's step: with a step, that step
    returned ``Async()`` and waits; with no step (``step`` is ``None``), an operator paused the
    whole instance (``pause(id)``), which ``unpaused`` (never with a step) ends.
    """

    COMPLETED = "completed"
    PAUSED = "paused"
    RESUMED = "resumed"
    TIMER_FIRED = "timer_fired"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: A compensation step ran (its step is the compensation step, its event what it returned).
    COMPENSATED = "compensated"
    #: The instance moved to another version of its workflow (``context_updates`` says which).
    MIGRATED = "migrated"
    #: An operator unpaused the instance (no step).
    UNPAUSED = "unpaused"
