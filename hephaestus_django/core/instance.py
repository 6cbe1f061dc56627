"""``Instance``, ``Context`` and ``ExecutionEntry``: the state of one workflow run.

They map the Elixir ``Hephaestus.Core.Instance`` field for field; the extra fields
(``waiting_steps``, ``pending_joins``, ``error``, ``revision``) are engine bookkeeping
that the original keeps implicit, and ``parent_id`` links a child workflow to its parent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hephaestus_django.core.status import EntryKind, Status

if TYPE_CHECKING:
    from hephaestus_django.core.base import Step
    from hephaestus_django.core.workflow import BaseWorkflow


@dataclass(slots=True)
class Context:
    """``initial``: the caller's data (never mutated by the engine); ``steps``: per context key."""

    initial: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"initial": self.initial, "steps": self.steps}


@dataclass(slots=True)
class ExecutionEntry:
    """One step outcome in an instance's history.

    ``step_ref`` is the step class (or its registry name when the class is no longer known,
    or ``None`` for an instance-level entry such as a cancellation of a pending instance).
    """

    step_ref: Any
    event: str | None
    timestamp: datetime
    context_updates: dict[str, Any] | None = None
    kind: str = EntryKind.COMPLETED
    attempt: int = 1
    error: str | None = None
    duration: float | None = None
    #: For ``retrying`` entries: seconds until the next attempt.
    delay: float | None = None
    #: For ``failed`` and ``retrying`` entries of a step that raised: the Python traceback.
    traceback: str | None = None

    @property
    def step_name(self) -> str | None:
        ref = self.step_ref
        if ref is None or isinstance(ref, str):
            return ref
        return str(ref.registry_name())


@dataclass(slots=True)
class Compensation:
    """The saga of a failing or cancelled instance: which compensations are left.

    ``pending`` lists the completed steps whose compensation has not run yet, the next one
    first (reverse order of completion); ``done`` those whose compensation ran. ``outcome``
    is the status the instance ends in once ``pending`` is empty (``failed`` or ``cancelled``),
    with ``error`` (the failure that started it; ``None`` for a cancellation).
    """

    outcome: Status
    error: str | None = None
    pending: list[type[Step]] = field(default_factory=list)
    done: list[type[Step]] = field(default_factory=list)
    #: Registry name of the step whose failure started it (telemetry), if a step failed.
    failed_step: str | None = None


#: ``loader(count)`` returns the first ``count`` stored entries of an instance, in order.
HistoryLoader = Callable[[int], Iterable[ExecutionEntry]]


class History(list[ExecutionEntry]):
    """An instance's execution history whose stored part is read on first use.

    A storage that loads an instance without its history gives it a ``History`` holding only a
    count of the stored entries and a loader. Appending (what the engine does) reads nothing; the
    first time anything looks at the entries (iterating, ``len``, indexing, comparing...) the
    stored ones are read and put in front of those appended since, so whoever looks sees the
    whole history up to that moment.
    """

    __slots__ = ("_loader", "_unloaded")

    def __init__(self, entries: Iterable[ExecutionEntry] = (), *, unloaded: int = 0,
                 loader: HistoryLoader | None = None) -> None:
        super().__init__(entries)
        if unloaded and loader is None:
            raise ValueError("History: stored entries that are not loaded need a loader")
        self._unloaded = unloaded
        self._loader = loader

    @classmethod
    def stored(cls, count: int, loader: HistoryLoader) -> History:
        """The history of an instance that has ``count`` stored entries, none read yet."""
        return cls(unloaded=count, loader=loader)

    @property
    def is_loaded(self) -> bool:
        return not self._unloaded

    @property
    def size(self) -> int:
        """How many entries there are, stored or appended, without reading the stored ones."""
        return self._unloaded + list.__len__(self)

    def tail(self, start: int) -> list[ExecutionEntry]:
        """The entries from position ``start`` on; reads nothing when they were all appended here."""
        if start >= self._unloaded:
            return list.__getitem__(self, slice(start - self._unloaded, None))
        self.load()
        return list.__getitem__(self, slice(start, None))

    def load(self) -> None:
        """Read the stored entries now (if they are not read yet)."""
        if not self._unloaded or self._loader is None:
            return
        entries = list(self._loader(self._unloaded))
        list.__setitem__(self, slice(0, 0), entries)
        self._unloaded, self._loader = 0, None

    def __copy__(self) -> History:
        return History(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> History:
        import copy

        return History(copy.deepcopy(list(self), memo))

    def __reduce__(self) -> tuple[Any, ...]:
        return History, (list(self),)


def _reading(name: str) -> Any:
    method = getattr(list, name)

    def read_first(self: History, *args: Any, **kwargs: Any) -> Any:
        self.load()
        return method(self, *args, **kwargs)

    read_first.__name__ = name
    read_first.__doc__ = method.__doc__
    return read_first


# Everything but append/extend looks at (or moves) the stored entries: read them first.
for _name in ("__contains__", "__delitem__", "__eq__", "__ge__", "__getitem__", "__gt__", "__imul__", "__iter__",
              "__le__", "__len__", "__lt__", "__mul__", "__ne__", "__add__", "__repr__", "__reversed__",
              "__rmul__", "__setitem__", "__sizeof__", "clear", "copy", "count", "index", "insert", "pop",
              "remove", "reverse", "sort"):
    setattr(History, _name, _reading(_name))
del _name


def history_size(history: list[ExecutionEntry]) -> int:
    """``len(history)``, without reading the stored entries of a :class:`History`."""
    return history.size if isinstance(history, History) else len(history)


def _check_new_args(workflow: Any, version: Any, context: Any, id: Any) -> None:
    if workflow is None:
        raise TypeError("Instance.new: 'workflow' must be a workflow class, not None")
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"Instance.new: 'version' must be a positive int, not {version!r}")
    if version < 1:
        raise ValueError(f"Instance.new: 'version' must be a positive int, not {version!r}")
    if not isinstance(context, dict):
        raise TypeError(f"Instance.new: 'context' must be a dict, not {type(context).__name__}")
    if not isinstance(id, str):
        raise TypeError(f"Instance.new: 'id' must be a non-empty str, not {type(id).__name__}")
    if not id:
        raise ValueError("Instance.new: 'id' must be a non-empty str")


@dataclass(slots=True, eq=False)
class Instance:
    """A run of a workflow. Create with :meth:`Instance.new`."""

    id: str
    workflow: type[BaseWorkflow]
    workflow_version: int = 1
    current_step: type[Step] | None = None
    status: Status = Status.PENDING
    context: Context = field(default_factory=Context)
    step_configs: dict[type[Step], dict[str, Any]] = field(default_factory=dict)
    active_steps: set[type[Step]] = field(default_factory=set)
    completed_steps: set[type[Step]] = field(default_factory=set)
    runtime_metadata: dict[str, Any] = field(default_factory=dict)
    telemetry_metadata: dict[str, Any] = field(default_factory=dict)
    telemetry_start_time: int | None = None
    execution_history: list[ExecutionEntry] = field(default_factory=list)
    #: Active steps that are paused (for an event or a timer), with the time each paused.
    waiting_steps: dict[type[Step], datetime] = field(default_factory=dict)
    #: Joins that an edge has reached while other predecessors may still arrive.
    pending_joins: set[type[Step]] = field(default_factory=set)
    #: Error of the last failure (set while the instance is failed, or compensating a failure).
    error: str | None = None
    #: Completed steps in the order they completed (``completed_steps`` as a list).
    completion_order: list[type[Step]] = field(default_factory=list)
    #: While ``paused``: the status the instance had (kept up to date by steps that finish meanwhile).
    paused_from: Status | None = None
    #: The compensations of a failing or cancelled instance (``None`` until one starts).
    compensation: Compensation | None = None
    #: The id of the instance whose children step started this one (``None``: no parent).
    parent_id: str | None = None
    #: Storage bookkeeping: the parent's storage key, and the registry name of its children step.
    parent_pk: Any = None
    parent_step: str | None = None
    #: Storage bookkeeping: bumped on every save (optimistic concurrency).
    revision: int = 0
    #: Storage bookkeeping: the storage's own key for this row (None until stored).
    pk: Any = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Storage bookkeeping: how many entries of ``execution_history`` are already stored.
    persisted_entries: int = field(default=0, repr=False)
    #: Storage bookkeeping: how many history entries the storage holds (loaded or not).
    history_length: int = field(default=0, repr=False)

    @classmethod
    def new(cls, workflow: type[BaseWorkflow], version: int, context: dict[str, Any], id: str) -> Instance:
        """A ``pending`` instance of ``workflow`` at ``version`` whose ``context.initial`` is ``context``."""
        _check_new_args(workflow, version, context, id)
        return cls(id=id, workflow=workflow, workflow_version=version, context=Context(initial=context))

    def __repr__(self) -> str:
        name = getattr(self.workflow, "name", self.workflow)
        return f"<Instance {self.id} {name} v{self.workflow_version} {self.status}>"

    @property
    def running_steps(self) -> set[type[Step]]:
        return self.active_steps - self.waiting_steps.keys()

    @property
    def new_entries(self) -> list[ExecutionEntry]:
        """History entries appended since the instance was last stored (storage uses this; it
        never reads the stored entries)."""
        history = self.execution_history
        if isinstance(history, History):
            return history.tail(self.persisted_entries)
        return history[self.persisted_entries :]

    def mark_persisted(self) -> None:
        size = history_size(self.execution_history)
        self.history_length += size - self.persisted_entries
        self.persisted_entries = size
