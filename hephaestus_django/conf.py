"""App settings: one ``HEPHAESTUS`` dict, read through ``hephaestus_django.conf.settings``.

Every key has one typed definition, :class:`HephaestusSettings` (its type and default), and one
rule (:data:`RULES`: what a valid value is and the system check id of a wrong one).
``manage.py check`` reports every problem of the project's dict (:func:`problems`); reading a
setting whose value is wrong raises ``ImproperlyConfigured`` with the same message.

=========================  ==========  ======================================================================
key                        default     meaning
=========================  ==========  ======================================================================
``TASK_BACKEND``           "default"   alias in ``TASKS`` that step executions are enqueued on
``QUEUE_NAME``             "default"   queue name used when enqueuing
``LEASE_SECONDS``          300         a claim whose worker has not heartbeaten for this long is lost
                                       (the attempt counts as failed, the step goes on per its retry)
``RECOVERY_ATTEMPTS``      3           a step without ``retry`` runs at most this many times when its
                                       claims are lost
``MAX_INLINE_STEPS``       100         steps a queue worker's task runs one after another, at most
``DISPATCH_TIMEOUT``       None        seconds after which an enqueued step nobody claimed is enqueued
                                       again (None: never; a backlog is never dispatched twice)
``WORKER_INTERVAL``        1.0         seconds between passes of ``hephaestus_worker``
``API_PERMISSION_CLASSES`` None        DRF permission classes (dotted paths) for the API; None: the
                                       default (authenticated + model permissions)
``ADMIN_COUNT_LIMIT``      10000       above this many rows the admin changelist estimates its count
                                       (0: always count)
=========================  ==========  ======================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["DEFAULTS", "RULES", "HephaestusSettings", "Problem", "Rule", "Settings", "load", "problems", "settings"]

#: The largest number of seconds a duration setting takes (about 31 years; a ``timedelta`` of
#: more would overflow in date arithmetic).
MAX_SECONDS = 10**9
#: The largest count setting (what a PostgreSQL ``integer`` column holds).
MAX_COUNT = 2**31 - 1


@dataclass(frozen=True)
class HephaestusSettings:
    """The settings in effect: each key's type and default, updated with the project's ``HEPHAESTUS``."""

    #: The alias in ``TASKS`` that step executions are enqueued on.
    TASK_BACKEND: str = "default"
    #: The queue of a step whose class and workflow name none.
    QUEUE_NAME: str = "default"
    #: Seconds after which a claim whose heartbeat stopped is lost.
    LEASE_SECONDS: float = 300.0
    #: Executions of a step without ``retry`` whose claims are lost, at most.
    RECOVERY_ATTEMPTS: int = 3
    #: Steps a queue worker's task runs one after another (of its instance, then of waiting ones it
    #: takes on), at most.
    MAX_INLINE_STEPS: int = 100
    #: Seconds after which an enqueued step nobody claimed is enqueued again (``None``: never).
    DISPATCH_TIMEOUT: float | None = None
    #: Seconds between two passes of ``hephaestus_worker``.
    WORKER_INTERVAL: float = 1.0
    #: DRF permission classes of the API (dotted paths, or the classes); ``None``: the app's default.
    API_PERMISSION_CLASSES: tuple[str | Callable[[], Any], ...] | None = None
    #: Up to this many rows the admin changelist counts exactly (``0``: always).
    ADMIN_COUNT_LIMIT: int = 10_000


#: Key -> default, in the order of :class:`HephaestusSettings`.
DEFAULTS: dict[str, Any] = {field.name: field.default for field in fields(HephaestusSettings)}


# ---- rules -------------------------------------------------------------------------------------------
def _text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _seconds(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value <= MAX_SECONDS)


def _optional_seconds_valid(value: object) -> bool:
    return value is None or _seconds(value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_COUNT


def _limit(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def _permission_classes(value: object) -> bool:
    return value is None or (isinstance(value, list | tuple) and all(_text(item) or callable(item) for item in value))


@dataclass(frozen=True)
class Rule:
    """What a valid value of one key is, and the system check id that reports a wrong one."""

    check_id: str
    #: How the check's message says what is expected: "must be <expected>, not <value>".
    expected: str
    valid: Callable[[object], bool]
    #: The value as :class:`HephaestusSettings` holds it (a valid value only).
    convert: Callable[[Any], Any] = lambda value: value
    hint: str = ""


def _optional_seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _tuple_or_none(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


_SECONDS_HINT = f"A number of seconds greater than 0 and at most {MAX_SECONDS}."
_COUNT_HINT = f"A whole number from 1 to {MAX_COUNT}."

#: Key -> its rule (check ids ``hephaestus.E002``-``E012``; ``E001``: an unknown key, ``E006``: not a dict).
RULES: dict[str, Rule] = {
    "TASK_BACKEND": Rule("hephaestus.E008", "a non-empty str", _text, hint="An alias of the TASKS setting."),
    "QUEUE_NAME": Rule("hephaestus.E009", "a non-empty str", _text),
    "LEASE_SECONDS": Rule("hephaestus.E002", "a positive number", _seconds, float, _SECONDS_HINT),
    "RECOVERY_ATTEMPTS": Rule("hephaestus.E004", "a positive int", _count, hint=_COUNT_HINT),
    "MAX_INLINE_STEPS": Rule("hephaestus.E007", "a positive int", _count, hint=_COUNT_HINT),
    "DISPATCH_TIMEOUT": Rule("hephaestus.E005", "None or a positive number of seconds", _optional_seconds_valid,
                             _optional_seconds, _SECONDS_HINT),
    "WORKER_INTERVAL": Rule("hephaestus.E003", "a positive number", _seconds, float, _SECONDS_HINT),
    "API_PERMISSION_CLASSES": Rule("hephaestus.E010", "None or a list of dotted paths of DRF permission classes",
                                   _permission_classes, _tuple_or_none),
    "ADMIN_COUNT_LIMIT": Rule("hephaestus.E012", "an int, 0 or more", _limit,
                              hint=f"A whole number from 0 (always count exactly) to {MAX_COUNT}."),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the ``HEPHAESTUS`` dict: what ``manage.py check`` reports."""

    check_id: str
    message: str
    hint: str = ""
    #: The key it is about (``None``: the whole dict).
    key: str | None = None


def problems(value: object) -> list[Problem]:
    """Everything wrong with ``value`` as the ``HEPHAESTUS`` setting: not a dict, unknown keys
    (sorted), then each known key with a wrong value (in the order of :class:`HephaestusSettings`)."""
    if not isinstance(value, dict):
        return [Problem("hephaestus.E006", f"HEPHAESTUS must be a dict, not {type(value).__name__}.")]
    found = [Problem("hephaestus.E001", f"Unknown HEPHAESTUS setting {key!r}.",
                     f"Known settings: {', '.join(sorted(DEFAULTS))}.", str(key))
             for key in sorted((k for k in value if k not in DEFAULTS), key=repr)]
    for key, rule in RULES.items():
        if key in value and not rule.valid(value[key]):
            found.append(Problem(rule.check_id, f"HEPHAESTUS[{key!r}] must be {rule.expected}, not {value[key]!r}.",
                                 rule.hint, key))
    return found


def load(value: object) -> HephaestusSettings:
    """The settings in effect for the ``HEPHAESTUS`` dict ``value`` (unknown keys are left out:
    ``manage.py check`` reports them); ``ImproperlyConfigured`` for a wrong value."""
    wrong = [problem for problem in problems(value) if problem.check_id != "hephaestus.E001"]
    if wrong or not isinstance(value, dict):
        raise ImproperlyConfigured(" ".join(problem.message for problem in wrong))
    return HephaestusSettings(**{key: RULES[key].convert(value[key]) for key in DEFAULTS if key in value})


# ---- access ------------------------------------------------------------------------------------------
if TYPE_CHECKING:  # attribute access gives the values of HephaestusSettings, typed as it declares them
    _Values = HephaestusSettings
else:
    _Values = object


class Settings(_Values):
    """``settings.LEASE_SECONDS`` and the other keys: the values in effect, read again after the
    ``HEPHAESTUS`` setting changes (``AppConfig.ready()`` connects :func:`reload_settings`)."""

    def __init__(self) -> None:
        self._current: HephaestusSettings | None = None

    @property
    def current(self) -> HephaestusSettings:
        if self._current is None:
            self._current = load(getattr(django_settings, "HEPHAESTUS", {}))
        return self._current

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"unknown HEPHAESTUS setting {name!r}")
        return getattr(self.current, name)

    def reload(self) -> None:
        self._current = None


settings = Settings()


def reload_settings(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: read ``HEPHAESTUS`` again when it changes (tests)."""
    if setting == "HEPHAESTUS":
        settings.reload()
