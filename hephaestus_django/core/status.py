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

    @property
    def is_active(self) -> bool:
        """Pending, running and waiting instances hold their business key."""
        return self in ACTIVE_STATUSES

    @property
    def is_finished(self) -> bool:
        return not self.is_active


ACTIVE_STATUSES = frozenset({Status.PENDING, Status.RUNNING, Status.WAITING})
FINISHED_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class EntryKind(StrEnum):
    """Kinds of execution-history entries (SPEC §2.1)."""

    COMPLETED = "completed"
    PAUSED = "paused"
    RESUMED = "resumed"
    TIMER_FIRED = "timer_fired"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"
