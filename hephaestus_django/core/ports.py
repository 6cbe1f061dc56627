"""The contract a storage implements (in memory here, the ORM in the storage layer).

Besides instances, history and timers, a storage keeps one *run* per runnable step execution:
written in the same write that makes the step runnable, claimed by the worker that executes it,
and removed by the write that applies its outcome. Runs are how recovery tells a lost claim (a
worker died while it held the step) from a step that merely waits in a queue. How steps are
dispatched is the :class:`~hephaestus_django.core.runner.Runner`'s (and its subclasses') business."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
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


#: States of a run: waiting for a worker, held by one, waiting for a concurrency slot.
QUEUED, CLAIMED, THROTTLED = "queued", "claimed", "throttled"
#: What a claim finds when no queued run has its token (no run has this state).
MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Run:
    """A runnable step execution as stored: attempt ``attempt`` of ``step`` of instance ``instance_pk``.

    ``queue_name`` ("" for the runtime's default), ``priority`` and ``limit`` (the step's
    ``concurrency_limit``) are kept so that the run can be (re-)dispatched without loading its
    workflow. ``enqueued``: the task that runs it reached the queue (or this process runs it).
    """

    instance_pk: Any
    step: str
    attempt: int = 1
    state: str = QUEUED
    queue_name: str = ""
    priority: int = 0
    limit: int | None = None
    enqueued: bool = False
    worker: str = ""
    #: Identifies this dispatch of the run: the task that runs it claims it by this token (a new
    #: attempt, or a dispatch sent again, gets a new one, so a stale task finds nothing to claim).
    token: str = ""


@dataclass(frozen=True, slots=True)
class LostRun:
    """A claimed run whose worker stopped heartbeating (``heartbeat``: its last sign of life)."""

    pk: Any
    instance_pk: Any
    step: str
    attempt: int
    worker: str
    heartbeat: datetime | None


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What a storage keeps of one schedule: its next tick and whether it is paused.

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
    #: What a write raises when the database refuses a value (the outcome is then recorded as a
    #: failure of its step instead).
    unstorable_errors: ClassVar[tuple[type[BaseException], ...]]

    def atomic(self) -> AbstractContextManager[Any]: ...

    def writes_alone(self) -> bool:
        """Whether a single write (``create``, ``save``...) is atomic by itself here and now, so
        that it needs no transaction around it when nothing else goes with it."""

    def create(self, instance: Instance, scope: str, runs: Sequence[Run] = (), extra: Sequence[Any] = ()) -> None:
        """Insert a new instance and its first runs; ``AlreadyRunning`` when its scope forbids it.
        ``extra``: rows of the storage's own kind written with them (the Django runtime: task rows)."""

    def load(self, id: str, workflow: str | None = None, *, for_update: bool = False,
             history: bool = True) -> Instance:
        """The newest instance with ``id`` (in ``workflow``); ``InstanceNotFound`` otherwise."""

    def load_pk(self, pk: Any, *, for_update: bool = False, history: bool = False) -> Instance: ...

    def save(self, instance: Instance, runs: Sequence[Run] = (), release: str | None = None,
             extra: Sequence[Any] = ()) -> None:
        """Store the instance's state and its new history entries, add (or renew) ``runs``, and
        remove the run of step ``release``. A finished instance loses its unclaimed runs and its
        timers in the same write."""

    def save_if_unchanged(self, instance: Instance, runs: Sequence[Run] = (), release: str | None = None,
                          holder: tuple[str, int] | None = None, extra: Sequence[Any] = ()) -> bool:
        """Like :meth:`save`, but only if the stored revision is still ``instance.revision`` (and,
        with ``holder`` = (worker, attempt), only while that worker still holds ``release``'s run)."""

    def write_runs(self, instance: Instance, runs: Sequence[Run], extra: Sequence[Any] = ()) -> None:
        """Add (or renew) runs without changing the instance (a retry timer re-running a step)."""

    def claim(self, token: str, worker: str, *, load: bool = True) -> tuple[str, Instance | None, Run | None]:
        """Take the queued run dispatched with ``token`` for ``worker``: (CLAIMED, the instance when
        ``load``, the run), (THROTTLED, None, the run) when its step's concurrency limit is reached
        (it waits for a slot), or (MISSING, None, None) when no queued run has that token."""

    def holds(self, instance_pk: Any, step: str, worker: str, attempt: int) -> bool:
        """Whether ``worker`` still holds the run of ``step`` at ``attempt``."""

    def release(self, instance_pk: Any, step: str, *, worker: str | None = None, requeue: bool = False) -> None:
        """Remove the run of ``step`` (only if ``worker`` holds it, when given; ``requeue``: put it
        back, undispatched, for later)."""

    def promote_throttled(self, step: str, count: int, *, enqueued: bool = False) -> builtins.list[Run]:
        """Turn up to ``count`` throttled runs of ``step`` (oldest first) back into queued ones."""

    def queued_runs(self, instance_pks: Iterable[Any] | None = None) -> builtins.list[Run]:
        """Runs waiting for a worker (of dispatchable instances)."""

    def runs(self, instance_pk: Any = None) -> builtins.list[Run]:
        """The runs (of one instance), oldest first."""

    def lost_runs(self, cutoff: datetime, limit: int = 100) -> builtins.list[LostRun]:
        """Claimed runs whose worker has not shown a sign of life since ``cutoff``."""

    def take_lost(self, lost: LostRun) -> bool:
        """Remove ``lost`` if it is still claimed and unchanged since it was read (one taker wins)."""

    def add_timers(self, instance: Instance, timers: Iterable[tuple[ScheduleTimer, datetime]]) -> list[Timer]:
        """Store durable timers; returns them as stored."""

    def due_timers(self, now: datetime, limit: int = 100, *, instance_pk: Any = None) -> list[Timer]:
        """Timers due by ``now`` (of one instance with ``instance_pk``; else of instances not paused)."""

    def claim_timer(self, timer: Timer) -> bool:
        """Delete the timer; ``False`` when somebody else already took it."""

    def delete_timers(self, instance: Instance) -> None:
        """Delete the instance's timers (a cancel that compensates leaves the steps they were for)."""

    def retry_timer_steps(self, instance_pk: Any) -> set[str]:
        """Names of the instance's steps that wait for a retry timer."""

    def rename_steps(self, instance_pk: Any, renamed: dict[str, str]) -> None:
        """Point the instance's runs and timers at the steps' new names (a migration renamed them)."""

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
