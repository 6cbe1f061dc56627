"""The contract a storage implements (in memory here, the ORM in the storage layer). How steps
are dispatched is a :class:`~hephaestus_django.core.runner.Runner` subclass's ``run``."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from hephaestus_django.core.effects import ScheduleTimer
from hephaestus_django.core.instance import Instance


@dataclass(frozen=True, slots=True)
class Timer:
    """A durable timer: fire ``purpose`` for ``step`` of instance ``instance_pk`` at ``due``."""

    pk: Any
    instance_pk: Any
    step: str
    purpose: str
    due: datetime
    attempt: int = 1


class Storage(Protocol):
    """Where instances, their history and their timers live."""

    name: ClassVar[str]
    #: Whether ``locked()`` really excludes concurrent writers (row locks).
    supports_locking: ClassVar[bool]

    def atomic(self) -> AbstractContextManager[Any]: ...

    def create(self, instance: Instance, scope: str) -> None:
        """Insert a new instance; ``AlreadyRunning`` when its scope forbids it."""

    def load(self, id: str, workflow: str | None = None, *, for_update: bool = False,
             history: bool = True) -> Instance:
        """The newest instance with ``id`` (in ``workflow``); ``InstanceNotFound`` otherwise."""

    def load_pk(self, pk: Any, *, for_update: bool = False, history: bool = False) -> Instance: ...

    def save(self, instance: Instance) -> None:
        """Store the instance's state and its new history entries."""

    def save_if_unchanged(self, instance: Instance) -> bool:
        """Like :meth:`save`, but only if the stored revision is still ``instance.revision``."""

    def add_timers(self, instance: Instance, timers: Iterable[tuple[ScheduleTimer, datetime]]) -> list[Timer]:
        """Store durable timers; returns them as stored."""

    def due_timers(self, now: datetime, limit: int = 100) -> list[Timer]: ...

    def claim_timer(self, timer: Timer) -> bool:
        """Delete the timer; ``False`` when somebody else already took it."""

    def list(self, workflow: str | None = None, *, limit: int | None = None, **filters: Any) -> list[Instance]:
        """Instances newest first, at most ``limit`` (``None``: all), without reading their history."""
