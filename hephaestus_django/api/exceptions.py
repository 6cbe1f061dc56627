"""Engine errors as HTTP answers: never a 500 for a ``HephaestusError``.

=============================================================  =====================================
error                                                          answer
=============================================================  =====================================
``InstanceNotFound``                                           404 ``{"detail": ...}``
``AlreadyRunning``, ``NotWaiting``, ``NotCancellable``,         409 ``{"detail": ...}``
``NotRetryable``, ``NotPausable``, ``NotPaused``
any other error whose ``.field`` is an input of the request    400 ``{field: [message]}``
(``InvalidEvent`` -> ``event``/``step``, ``InvalidContext`` ->
``context``, ``UnknownWorkflow`` -> ``workflow``,
``MigrationError`` -> ``step_map``/``version``)
anything else (e.g. the stored instance's workflow is gone)    409 ``{"detail": ...}``
=============================================================  =====================================
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings

from hephaestus_django.exceptions import (
    AlreadyRunning,
    HephaestusError,
    InstanceNotFound,
    NotCancellable,
    NotPausable,
    NotPaused,
    NotRetryable,
    NotWaiting,
)

CONFLICTS = (AlreadyRunning, NotWaiting, NotCancellable, NotRetryable, NotPausable, NotPaused)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The instance is not in a state that allows this.")
    default_code = "conflict"


def to_api_exception(exc: HephaestusError, fields: Collection[str] = ()) -> APIException:
    """The DRF exception for ``exc``; ``fields`` are the inputs of the request being answered."""
    message = str(exc)
    if isinstance(exc, InstanceNotFound):
        return NotFound(message)
    if isinstance(exc, CONFLICTS):
        return Conflict(message)
    if exc.field and exc.field in fields:
        return ValidationError({exc.field: [message]})
    return Conflict(message)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Translate a ``HephaestusError``, then hand over to the project's ``EXCEPTION_HANDLER``."""
    if isinstance(exc, HephaestusError):
        view = context.get("view")
        fields = view.input_fields() if hasattr(view, "input_fields") else ()
        exc = to_api_exception(exc, fields)
    handler = api_settings.EXCEPTION_HANDLER
    if handler is exception_handler:  # configured project-wide: fall back to DRF's
        from rest_framework.views import exception_handler as handler
    return handler(exc, context)
