"""The one clock the engine reads. The test kit swaps it for a frozen one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_now: Callable[[], datetime] | None = None


def now() -> datetime:
    """The current time as an aware UTC datetime."""
    if _now is not None:
        return _now()
    return datetime.now(UTC)


def set_clock(func: Callable[[], datetime] | None) -> Callable[[], datetime] | None:
    """Replace the clock (``None`` restores the real one); returns the previous replacement."""
    global _now
    previous, _now = _now, func
    return previous

