"""What the database can store: the one check for every value the engine writes.

Contexts, resume data, metadata and every step's context and metadata updates are stored as
JSON (PostgreSQL ``jsonb``, SQLite ``JSON``). :func:`storable_problem` says what, if anything,
would stop such a value from being written *and read back the same*:

- types JSON has no place for (a ``set``, ``bytes``, an arbitrary object);
- ``NaN`` and infinities (not JSON; PostgreSQL refuses them);
- a NUL character or a lone surrogate in a string or a key (PostgreSQL text cannot hold them);
- nesting deeper than :data:`MAX_DEPTH` (absurdly deep input costs stack and time everywhere).

Besides JSON's own types, the Django JSON encoder's are accepted: dates, times, durations,
decimals and UUIDs (stored as strings). The Django layer may add more with
:func:`allow_types` (lazy translation strings). The walk is iterative: no recursion limit.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid
from typing import Any

from hephaestus_django.core.exceptions import InvalidContext

__all__ = ["MAX_DEPTH", "allow_types", "check_storable", "storable_problem", "storable_text"]

#: The deepest nesting of lists and dicts a stored value may have.
MAX_DEPTH = 100

_SCALARS: tuple[type, ...] = (bool, int, type(None))
_AS_STRING: tuple[type, ...] = (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, uuid.UUID)
_extra_types: tuple[type, ...] = ()
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def allow_types(*types: type) -> None:
    """Accept values of ``types`` too (the encoder of the storage turns them into strings)."""
    global _extra_types
    _extra_types = tuple(dict.fromkeys((*_extra_types, *types)))


def _text_problem(text: str) -> str | None:
    found = _UNSTORABLE_TEXT.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000), which the database cannot store"
    return f"contains a lone surrogate ({found.group()!a}), which is not valid Unicode"


def _scalar_problem(value: Any) -> str | None:
    """What is wrong with a non-container ``value`` (``None`` when it can be stored)."""
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value!r}, which JSON cannot represent"
    if isinstance(value, decimal.Decimal):
        return None if value.is_finite() else f"is Decimal({str(value)!r}), which JSON cannot represent"
    if isinstance(value, _SCALARS + _AS_STRING + _extra_types):
        return None
    return f"is a {type(value).__name__}, which cannot be stored as JSON"


def _key_problem(key: Any) -> str | None:
    if isinstance(key, str):
        problem = _text_problem(key)
        return None if problem is None else f"has a key {key!r} that {problem}"
    if isinstance(key, bool | int) or key is None:
        return None
    if isinstance(key, float) and math.isfinite(key):
        return None
    return f"has a key {key!r} of type {type(key).__name__}; JSON object keys are strings"


def storable_problem(value: Any, what: str = "value") -> str | None:
    """A one-line description of why ``value`` cannot be stored, naming where (``what[...]``);
    ``None`` when it can."""
    stack: list[tuple[Any, str, int]] = [(value, what, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:  # a value that contains itself ends here too
                return f"{path} is nested more than {MAX_DEPTH} levels deep"
            if isinstance(item, dict):
                for key, child in item.items():
                    problem = _key_problem(key)
                    if problem is not None:
                        return f"{path} {problem}"
                    stack.append((child, f"{path}[{key!r}]", depth + 1))
            else:
                stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))
            continue
        problem = _scalar_problem(item)
        if problem is not None:
            return f"{path} {problem}"
    return None


def check_storable(value: Any, what: str = "context", *, field: str | None = None) -> None:
    """Raise :class:`InvalidContext` (``field``: the input, default ``what``) unless ``value`` can
    be stored."""
    problem = storable_problem(value, what)
    if problem is not None:
        raise InvalidContext(f"{problem}; nothing was written", field=field or what)


def storable_text(text: str) -> str:
    """``text`` with what the database cannot store (NUL characters, lone surrogates) written as
    escapes (``\\x00``, ``\\ud800``): for text the engine writes itself, such as tracebacks."""
    return _UNSTORABLE_TEXT.sub(lambda found: ascii(found.group())[1:-1], text)
