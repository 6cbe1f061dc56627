"""The contract a storage implements (in memory here, the ORM in the storage layer).

Besides instances, history and timers, a storage keeps one *run* per runnable step execution:
written in the same write that makes the step runnable, claimed by the worker that executes it,
and removed by the write that applies its outcome. Runs are how recovery tells a lost claim (a
worker died while it held the step) from a step that merely waits in a queue. How steps are
dispatched is the :class:`~hephaestus_django.core.runner.Runner`'s (and its subclasses') business."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


#: States of a run: waiting for a worker, held by one, waiting for a concurrency slot.
QUEUED, CLAIMED, THROTTLED = "queued", "claimed", "throttled"


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


class Storage(Protocol):
    """Where instances, their history and their timers live."""

    name: ClassVar[str]
    #: Whether ``locked()`` really excludes concurrent writers (row locks).
    supports_locking: ClassVar[bool]
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
        (it waits for a slot), or ("missing", None, None) when no queued run has that token."""

    def holds(self, instance_pk: Any, step: str, worker: str, attempt: int) -> bool:
        """Whether ``worker`` still holds the run of ``step`` at ``attempt``."""

    def release(self, instance_pk: Any, step: str, *, worker: str | None = None, requeue: bool = False) -> None:
        """Remove the run of ``step`` (only if ``worker`` holds it, when given; ``requeue``: put it
        back, undispatched, for later)."""

    def promote_throttled(self, step: str, count: int, *, enqueued: bool = False) -> list[Run]:
        """Turn up to ``count`` throttled runs of ``step`` (oldest first) back into queued ones."""

    def queued_runs(self, instance_pks: Iterable[Any] | None = None) -> list[Run]:
        """Runs waiting for a worker (of dispatchable instances)."""

    def lost_runs(self, cutoff: datetime, limit: int = 100) -> list[LostRun]:
        """Claimed runs whose worker has not shown a sign of life since ``cutoff``."""

    def take_lost(self, lost: LostRun) -> bool:
        """Remove ``lost`` if it is still claimed and unchanged since it was read (one taker wins)."""

    def add_timers(self, instance: Instance, timers: Iterable[tuple[ScheduleTimer, datetime]]) -> list[Timer]:
        """Store durable timers; returns them as stored."""

    def due_timers(self, now: datetime, limit: int = 100) -> list[Timer]: ...

    def claim_timer(self, timer: Timer) -> bool:
        """Delete the timer; ``False`` when somebody else already took it."""

    def list(self, workflow: str | None = None, **filters: Any) -> list[Instance]: ...
