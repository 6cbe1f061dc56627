"""The step base class and what a step returns (built-in steps are in ``core.steps``).

A step is a class with ``events`` (what ``execute`` may emit) and an ``execute`` method::

    class ValidateOrder(Step):
        events = ("valid", "invalid")

        def execute(self, instance, config, context):
            if context.initial.get("item_count", 0) > 0:
                return Ok("valid", {"item_count": context.initial["item_count"]})
            return "invalid"
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from hephaestus_django.core.instance import Context, Instance

Backoff = Literal["exponential", "linear", "constant"]
_BACKOFFS = ("exponential", "linear", "constant")


@dataclass(frozen=True, slots=True)
class Ok:
    """Successful completion with ``event``; updates go to the step's context key and metadata."""

    event: str
    context_updates: dict[str, Any] | None = None
    metadata_updates: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Async:
    """Pause: the step waits for an external event or its timer."""


@dataclass(frozen=True, slots=True)
class Error:
    """Failure with a reason (retried per the step's ``retry``, then the instance fails)."""

    reason: Any = None


StepResult = Ok | Async | Error | str


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry policy: ``max_attempts`` counts every attempt, the first included.

    The delay after failed attempt ``n`` is ``base * 2**(n-1)`` (exponential), ``base * n``
    (linear) or ``base`` (constant), capped at ``max_backoff`` seconds.
    """

    max_attempts: int = 3
    backoff: Backoff = "exponential"
    base: float = 1.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        max_attempts: object = self.max_attempts  # user input: validate at run time
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            raise ValueError(f"Retry max_attempts must be a positive int, not {self.max_attempts!r}")
        if self.backoff not in _BACKOFFS:
            raise ValueError(f"Retry backoff must be one of {', '.join(_BACKOFFS)}, not {self.backoff!r}")
        for name in ("base", "max_backoff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"Retry {name} must be a non-negative number, not {value!r}")

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after failed attempt number ``failed_attempt`` (1-based)."""
        if self.backoff == "exponential":
            raw = self.base * 2 ** (failed_attempt - 1)
        elif self.backoff == "linear":
            raw = self.base * failed_attempt
        else:
            raw = self.base
        return float(min(raw, self.max_backoff))


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``ValidateOrder`` -> ``validate_order``; ``HTTPCall`` -> ``http_call``."""
    return _CAMEL.sub("_", name).lower()


class Step:
    """Base class of every step. Subclasses set ``events`` and implement ``execute``."""

    #: The events ``execute`` may emit (a tuple of str); each one needs a transition.
    events: ClassVar[tuple[str, ...] | Any] = ()
    #: Context key under which this step's updates are stored (default: snake_case class name).
    step_key: ClassVar[str | None] = None
    #: How failed attempts are retried (``None``: one attempt).
    retry: ClassVar[Retry | None] = None
    #: Seconds the runtime lets ``execute`` run before counting it a failure.
    timeout: ClassVar[float | None] = None
    #: Run ``execute`` in the transaction that records its result (Django runtime).
    atomic: ClassVar[bool] = False
    #: Steps whose completion comes from outside (external event or timer) are waiters.
    is_terminal: ClassVar[bool] = False
    #: Queue of the task backend this step's executions are enqueued on (``None``: the workflow's
    #: ``queue_name``, else ``HEPHAESTUS["QUEUE_NAME"]``).
    queue_name: ClassVar[str | None] = None
    #: Priority of this step's executions, in Django Tasks' range -100..100 (``None``: the
    #: workflow's ``priority``, else 0).
    priority: ClassVar[int | None] = None
    #: At most this many executions of this step run at once, across all workers (``None``: no limit).
    concurrency_limit: ClassVar[int | None] = None
    #: The step that undoes this one when the instance fails for good or is cancelled with
    #: ``compensate=True``. It is not a node of the graph: whatever event it
    #: returns, it is done; its updates land under its own context key.
    compensate: ClassVar[type[Step] | None] = None

    def execute(self, instance: Instance, config: dict[str, Any], context: Context) -> StepResult:
        """Do the step's work; return ``Ok(event, ...)``, an event str, ``Async()`` or ``Error(reason)``.

        ``instance`` is the instance as it was when the step started, ``config`` the dict its
        transition gave it (or ``{}``), ``context`` the instance's context. Raising is a failed attempt.
        """
        raise NotImplementedError(f"{type(self).__qualname__}.execute() is not implemented")

    # ---- class-level helpers -------------------------------------------------------------
    @classmethod
    def registry_name(cls) -> str:
        """The stable name a step is stored under: its dotted path."""
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def context_key(cls) -> str:
        """Where this step's context updates go: ``step_key``, or the snake_case class name."""
        return cls.step_key or snake_case(cls.__name__)

    @classmethod
    def max_attempts(cls) -> int:
        return cls.retry.max_attempts if cls.retry is not None else 1

    @classmethod
    def wake_after(cls, config: dict[str, Any]) -> float | None:
        """Seconds after which a paused step is resumed with ``timeout`` (``None``: never)."""
        return None

    @classmethod
    def resume_event(cls, event: str, config: dict[str, Any]) -> str:
        """Map an external event name onto a declared event (``WaitForEvent`` uses it)."""
        return event

    @classmethod
    def required_events(cls, config: dict[str, Any]) -> tuple[str, ...]:
        """Declared events that need a transition, given the config the step runs with."""
        return tuple(cls.events)

    @classmethod
    def config_problems(cls, config: dict[str, Any]) -> list[str]:
        """Problems with a config given to this step in a workflow definition."""
        return []


@dataclass(slots=True)
class StepOutcome:
    """What running a step produced: a result, or the exception it raised."""

    result: Any = None
    error: str | None = None
    traceback: str | None = None
    duration: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
