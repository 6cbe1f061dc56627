"""Where the workflow facade (``OrderFlow.start(...)``) sends its calls.

The core cannot import the Django layers, so they plug themselves in here with
:func:`set_backend` when the app is ready; until then the in-memory runner serves.
"""

from __future__ import annotations

from typing import Any

_backend: Any = None


def set_backend(backend: Any) -> Any:
    """Install the object that serves the facade; returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


def backend() -> Any:
    global _backend
    if _backend is None:
        from hephaestus_django.core.memory import default_runner

        _backend = default_runner()
    return _backend
