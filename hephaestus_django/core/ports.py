"""The contract a storage implements (in memory here, the ORM in the storage layer). How steps
are dispatched is a :class:`~hephaestus_django.core.runner.Runner` subclass's ``run``."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from hephaestus_django.core.children import ChildSummary
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


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What a storage keeps of one schedule (SPEC §10): its next tick and whether it is paused.

    ``next_tick`` is ``None`` until a worker pass has seen the schedule."""

    workflow: str
    name: str
    next_tick: datetime | None
    paused: bool = False
    last_tick: datetime | None = None
    last_instance: str | None = None


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

    def due_timers(self, now: datetime, limit: int = 100, *, instance_pk: Any = None) -> list[Timer]:
        """Timers due by ``now`` (of one instance with ``instance_pk``; else of instances not paused)."""

    def claim_timer(self, timer: Timer) -> bool:
        """Delete the timer; ``False`` when somebody else already took it."""

    def delete_timers(self, instance: Instance) -> None: ...

    def retry_timer_steps(self, instance_pk: Any) -> set[str]:
        """Names of the instance's steps that wait for a retry timer."""

    def rename_timer_steps(self, instance_pk: Any, renamed: dict[str, str]) -> None:
        """Point the instance's timers at the steps' new names (a migration renamed them)."""

    # ---- schedules ---------------------------------------------------------------------------------
    def schedule_states(self) -> dict[tuple[str, str], ScheduleState]:
        """Every stored schedule, by (workflow name, schedule name)."""

    def see_schedule(self, workflow: str, name: str, next_tick: datetime) -> None:
        """Note a schedule seen by a worker for the first time (stored or not, ``next_tick`` unset)."""

    def lock_schedule(self, workflow: str, name: str) -> ScheduleState | None:
        """The schedule, locked until the transaction ends; ``None`` if another worker holds it."""

    def claim_tick(self, workflow: str, name: str, tick: datetime) -> bool:
        """Record that ``tick`` starts; ``False`` if it already did (a unique constraint)."""

    def record_tick(self, workflow: str, name: str, tick: datetime, next_tick: datetime,
                    instance: Instance | None, error: str) -> None:
        """After a claimed tick: what it started (or why not), and the schedule's next tick."""

    def set_schedule_paused(self, workflow: str, name: str, paused: bool, next_tick: datetime | None) -> None:
        """Pause or unpause a schedule (created if unseen); ``next_tick`` replaces the stored one."""

    def list(self, workflow: str | None = None, *, limit: int | None = None, **filters: Any) -> list[Instance]:
        """Instances newest first, at most ``limit`` (``None``: all), without reading their history."""

    # ---- resume keys and child workflows ----------------------------------------------------------
    def claim_resume_key(self, instance: Instance, key: str) -> bool:
        """Record that ``instance`` is resumed with idempotency ``key`` (in the caller's
        transaction); ``False`` when the key was used on it before."""

    def has_active_children(self, pk: Any, step: str) -> bool:
        """Whether a child that the children step ``step`` of instance ``pk`` started is active."""

    def children_of(self, pk: Any, step: str) -> builtins.list[ChildSummary]:
        """The children that step ``step`` of instance ``pk`` started, in the order they started."""

    def active_descendants(self, pk: Any) -> builtins.list[Any]:
        """The keys of the active children of instance ``pk``, of their active children and so on."""

    def lock_active_descendants(self, pk: Any) -> builtins.list[Any]:
        """Lock the active children of instance ``pk``, their active children and so on, deepest
        first; returns their keys, nearest first."""
