"""Database connections of steps that run in a helper thread (steps with a ``timeout``).

Django opens one connection per thread, and a helper thread's connection would stay open until
the garbage collector finds it, or for as long as a hung step runs. These hooks (installed into
the engine, which imports no Django) close a helper thread's connections when its step returns
and, when the step overran its timeout and is abandoned, terminate the server side of its
PostgreSQL connections at once: the abandoned code gets an error at its next query, and the
connection slot is free again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.db.backends.signals import connection_created

from hephaestus_django.core import engine

logger = logging.getLogger("hephaestus")


class StepConnections:
    """:class:`~hephaestus_django.core.engine.StepThreadHooks` over Django's connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: helper thread id -> (alias, vendor, server process id) of the connections it opened
        self._opened: dict[int, list[tuple[str, str, int | None]]] = {}

    def started(self) -> int:
        token = threading.get_ident()
        with self._lock:
            self._opened[token] = []
        return token

    def finished(self, token: int) -> None:
        with self._lock:
            self._opened.pop(token, None)
        connections.close_all()  # this (helper) thread's connections only

    def abandoned(self, token: int) -> None:
        with self._lock:
            opened = list(self._opened.get(token, ()))
        for alias, vendor, pid in opened:
            if vendor == "postgresql" and pid is not None:
                self._terminate(alias, pid)

    def _terminate(self, alias: str, pid: int) -> None:
        try:
            with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        except DatabaseError:  # no privilege to signal it: it closes when the step returns
            logger.warning("could not close the database connection of an abandoned step (server pid %s)", pid)

    def connection_created(self, sender: Any, connection: Any, **kwargs: Any) -> None:
        with self._lock:
            opened = self._opened.get(threading.get_ident())
            if opened is None:
                return
        opened.append((connection.alias, connection.vendor, _backend_pid(connection)))


def _backend_pid(connection: Any) -> int | None:
    raw = connection.connection
    info = getattr(raw, "info", None)  # psycopg 3
    if info is not None:
        return int(info.backend_pid)
    get_pid = getattr(raw, "get_backend_pid", None)  # psycopg2
    return int(get_pid()) if get_pid is not None else None


_hooks = StepConnections()


def install() -> None:
    """Let the engine give back the connections of steps run in helper threads."""
    connection_created.connect(_hooks.connection_created, dispatch_uid="hephaestus-step-connections")
    engine.set_step_thread_hooks(_hooks)
