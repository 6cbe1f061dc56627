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
a request body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``            413 ``{"detail": ...}``
a value the database refuses (``DataError``)                   400 ``{"detail": ...}``
=============================================================  =====================================

Every message goes through :func:`public_message`: a client never gets a traceback or a path of
the server (the full error is logged on the ``hephaestus`` logger instead).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DataError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ParseError, ValidationError
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

logger = logging.getLogger("hephaestus")

CONFLICTS = (AlreadyRunning, NotWaiting, NotCancellable, NotRetryable, NotPausable, NotPaused)
#: Longest message sent to a client.
MESSAGE_LIMIT = 2000

_TRACEBACK = "Traceback (most recent call last)"
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+')
#: Absolute paths of Python files (POSIX or Windows), e.g. ``/srv/app/.venv/lib/.../x.py``.
_SOURCE_PATH = re.compile(r'(?:[A-Za-z]:)?(?:[\\/][^\s\\/"\'<>:]+)+\.py[cw]?\b')


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The instance is not in a state that allows this.")
    default_code = "conflict"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "payload_too_large"


def public_message(text: str) -> str:
    """``text`` fit for a client: a traceback is replaced by its last line (the exception), and
    paths of source files on the server are removed."""
    text = str(text)
    if _TRACEBACK in text:
        before, _sep, trace = text.partition(_TRACEBACK)
        lines = [line.strip() for line in trace.splitlines()
                 if line.strip() and not _FRAME.match(line) and not line.startswith((" ", "\t"))]
        text = " ".join(part for part in (before.strip(), lines[-1] if lines else "") if part)
    text = _SOURCE_PATH.sub("<path>", text)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text


def to_api_exception(exc: HephaestusError, fields: Collection[str] = ()) -> APIException:
    """The DRF exception for ``exc``; ``fields`` are the inputs of the request being answered."""
    message = public_message(str(exc))
    if message != str(exc):  # what the client does not see, the server log keeps
        logger.error("API request failed: %s", exc)
    if isinstance(exc, InstanceNotFound):
        return NotFound(message)
    if isinstance(exc, CONFLICTS):
        return Conflict(message)
    if exc.field and exc.field in fields:
        return ValidationError({exc.field: [message]})
    return Conflict(message)


def _forget_body(context: dict[str, Any]) -> None:
    """After a body that could not be read, the request has none (so that rendering the answer,
    e.g. the browsable API's forms, does not read it again)."""
    request = context.get("request")
    if request is not None:
        request._full_data = request._data = {}
        request._files = {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Translate a ``HephaestusError`` (and a body too large, a value the database refuses), then
    hand over to the project's ``EXCEPTION_HANDLER``."""
    if isinstance(exc, HephaestusError):
        input_fields = getattr(context.get("view"), "input_fields", None)
        fields = input_fields() if input_fields is not None else ()
        exc = to_api_exception(exc, fields)
    elif isinstance(exc, RequestDataTooBig):
        _forget_body(context)
        exc = PayloadTooLarge(gettext("The request body is larger than the %(limit)d bytes this server accepts.")
                              % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0})
    elif isinstance(exc, DataError):
        logger.warning("API request refused by the database: %s", exc)
        exc = ParseError(gettext("The database cannot store a value of this request."))
    elif isinstance(exc, RecursionError):
        _forget_body(context)
        exc = ParseError(gettext("The request is nested too deeply."))
    # DRF's settings import the dotted path (the stubs type the setting: a path or a function)
    handler = cast(Callable[[Exception, dict[str, Any]], Response | None], api_settings.EXCEPTION_HANDLER)
    if handler is exception_handler:  # configured project-wide: fall back to DRF's
        from rest_framework.views import exception_handler as handler
    return handler(exc, context)
