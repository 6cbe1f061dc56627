"""App settings: one ``HEPHAESTUS`` dict, read through ``hephaestus_django.conf.settings``.

=====================  ==========  =============================================================
key                    default     meaning
=====================  ==========  =============================================================
``TASK_BACKEND``       "default"   alias in ``TASKS`` that step executions are enqueued on
``QUEUE_NAME``         "default"   queue name used when enqueuing
``LEASE_SECONDS``      300         a claim whose worker has not heartbeaten for this long is lost
                                   (the attempt counts as failed, the step goes on per its retry)
``RECOVERY_ATTEMPTS``  3           a step without ``retry`` runs at most this many times when its
                                   claims are lost
``MAX_INLINE_STEPS``   100         steps a queue worker's task runs for one instance, at most
``DISPATCH_TIMEOUT``   None        seconds after which an enqueued step nobody claimed is enqueued
                                   again (None: never; a backlog is never dispatched twice)
``WORKER_INTERVAL``    1.0         seconds between passes of ``hephaestus_worker``
``API_PERMISSION_CLASSES``  None   DRF permission classes (dotted paths) for the API; None: the
                                   default (authenticated + model permissions)
``ADMIN_COUNT_LIMIT``  10000       above this many rows the admin changelist estimates its count
=====================  ==========  =============================================================

Unknown keys are reported by ``manage.py check`` (``hephaestus.E001``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "TASK_BACKEND": "default",
    "QUEUE_NAME": "default",
    "LEASE_SECONDS": 300,
    "RECOVERY_ATTEMPTS": 3,
    "MAX_INLINE_STEPS": 100,
    "DISPATCH_TIMEOUT": None,
    "WORKER_INTERVAL": 1.0,
    "API_PERMISSION_CLASSES": None,
    "ADMIN_COUNT_LIMIT": 10_000,
}


class Settings:
    """Attribute access over ``DEFAULTS`` updated with ``settings.HEPHAESTUS``; reset on change."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(django_settings, "HEPHAESTUS", {})
        return value if isinstance(value, dict) else {}

    def _merged(self) -> dict[str, Any]:
        if self._cache is None:
            self._cache = {**DEFAULTS, **{k: v for k, v in self.user_settings.items() if k in DEFAULTS}}
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"unknown HEPHAESTUS setting {name!r}")
        return self._merged()[name]

    @property
    def TASK_BACKEND(self) -> str:  # noqa: N802 - typed accessors for the common keys
        return str(self._merged()["TASK_BACKEND"])

    @property
    def LEASE_SECONDS(self) -> float:  # noqa: N802
        return float(self._merged()["LEASE_SECONDS"])

    def reload(self) -> None:
        self._cache = None


settings = Settings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "HEPHAESTUS":
        settings.reload()


setting_changed.connect(_reload)
