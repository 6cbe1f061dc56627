"""Business keys: ids of the form ``key::value[::suffix]`` and the uniqueness scopes
(``docs/concepts/uniqueness.md``)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

SCOPES = ("workflow", "version", "global", "none")
KEY_RE = re.compile(r"^[a-z0-9]+\Z")
VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_SUFFIX_RE = re.compile(r"^[0-9a-f]{8}\Z")
SEPARATOR = "::"


def validate_value(value: object) -> str:
    """The business value as a str; ``ValueError`` naming ``value`` when it is malformed."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"business value 'value' must be a str or UUID, not {type(value).__name__}")
    if not VALUE_RE.match(value):
        raise ValueError(
            f"invalid business value {value!r}: 'value' must be a UUID or 1-128 letters, digits, "
            "'-', '_' and '.', starting with a letter or digit"
        )
    return value


def build_id(key: str, value: object, scope: str = "workflow") -> str:
    """``key::value``, plus a random ``::xxxxxxxx`` suffix for scope ``none``."""
    checked_key: object = key  # callers may pass anything: validate at run time
    if not isinstance(checked_key, str) or not KEY_RE.match(checked_key):
        raise ValueError(f"invalid business key {key!r}: 'key' must match [a-z0-9]+")
    if scope not in SCOPES:
        raise ValueError(f"invalid scope {scope!r}: 'scope' must be one of {', '.join(SCOPES)}")
    text = f"{key}{SEPARATOR}{validate_value(value)}"
    if scope == "none":
        text = f"{text}{SEPARATOR}{secrets.token_hex(4)}"
    return text


@dataclass(frozen=True, slots=True)
class ParsedId:
    key: str
    value: str
    suffix: str | None = None


def parse_id(id: str) -> ParsedId:
    """Split ``key::value[::suffix]``; ``ValueError`` when ``id`` is not of that form."""
    if not isinstance(id, str):
        raise ValueError(f"'id' must be a str, not {type(id).__name__}")
    parts = id.split(SEPARATOR)
    if len(parts) not in (2, 3) or not KEY_RE.match(parts[0]) or not VALUE_RE.match(parts[1]):
        raise ValueError(f"invalid instance id {id!r}: expected 'key::value' or 'key::value::suffix'")
    if len(parts) == 3 and not _SUFFIX_RE.match(parts[2]):
        raise ValueError(f"invalid instance id {id!r}: the suffix must be 8 lowercase hex digits")
    return ParsedId(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def check_id_for(key: str, id: object) -> str:
    """``id`` as a full instance id of a workflow whose unique key is ``key``: ``key::value`` or
    ``key::value::suffix`` (``ValueError`` naming ``id`` otherwise). The API and the commands
    accept a full id only when it passes this."""
    parsed = parse_id(id)  # type: ignore[arg-type]
    if parsed.key != key:
        raise ValueError(f"invalid instance id {id!r}: ids of this workflow start with '{key}::'")
    return str(id)


def unique_slot(scope: str, id: str, workflow: str, version: int) -> str | None:
    """The string an active instance reserves: two active instances conflict when equal.

    ``global`` additionally conflicts with any active instance with the same id (see
    :func:`conflicts`), which storages check under a lock.
    """
    if scope == "workflow":
        return f"w|{workflow}|{id}"
    if scope == "version":
        return f"v|{workflow}|{version}|{id}"
    if scope == "global":
        return f"g|{id}"
    return None


@dataclass(frozen=True, slots=True)
class ActiveRef:
    """What the scope rule needs to know of an active instance."""

    id: str
    workflow: str
    version: int


def conflicts(scope: str, new: ActiveRef, active: Iterable[ActiveRef]) -> ActiveRef | None:
    """The active instance that forbids starting ``new`` under ``scope``, if any."""
    for other in active:
        if other.id != new.id:
            continue
        if scope == "global":
            return other
        if scope == "workflow" and other.workflow == new.workflow:
            return other
        if scope == "version" and other.workflow == new.workflow and other.version == new.version:
            return other
    return None
