"""Where the workflow facade (``OrderFlow.start(...)``) sends its calls.

The core cannot import the layers above it, so a runner is injected here with
:func:`set_backend`: the Django app installs its database runner when it is ready; code that
uses the core alone installs one itself, e.g. ``set_backend(Runner(MemoryStorage()))``.
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core.exceptions import HephaestusError

_backend: Any = None


class NoRunnerInstalled(HephaestusError, RuntimeError):
    """The facade was used before any runner was installed."""


def set_backend(backend: Any) -> Any:
    """Install the object that serves the facade (``None`` removes it); returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


def backend() -> Any:
    """The installed runner; :class:`NoRunnerInstalled` when there is none."""
    if _backend is None:
        raise NoRunnerInstalled(
            "no runner serves the workflow facade yet: add 'hephaestus_django' to INSTALLED_APPS and call "
            "django.setup(), or install one with hephaestus_django.core.facade.set_backend(...)"
        )
    return _backend
