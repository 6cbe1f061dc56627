"""Who this process is to the runs it claims, and the heartbeat that keeps its claims alive.

Every process that executes steps (a queue worker, or a web process under the immediate backend)
has a worker id. While it works on claimed runs, a daemon thread refreshes their
``heartbeat_at`` every ``LEASE_SECONDS / 3``; a claim whose heartbeat is older than
``LEASE_SECONDS`` was lost with its worker (killed, or cut off from the database) and is
recovered by ``hephaestus_worker``. The thread starts with the first claim and beats only for
the instances a task is working on right now: a task that ends (or crashes) stops beating for
its claims.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from hephaestus_django.conf import settings
from hephaestus_django.core.runner import Holding

logger = logging.getLogger("hephaestus")


def _place() -> str:
    """Where this process's pid means something: its host, and on Linux its pid namespace (two
    containers may share a host name, never a pid namespace)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: the host alone
        return socket.gethostname()[:200]
    return f"{socket.gethostname()[:200]}/{namespace}"


def new_worker_id() -> str:
    """``place:pid:random`` (place: host, and pid namespace on Linux): unique per process, readable
    in the admin and the logs, and telling a process of the same place whether its holder still lives."""
    return f"{_place()}:{os.getpid()}:{secrets.token_hex(4)}"


def is_gone(worker: str) -> bool:
    """Whether ``worker`` (a worker id) is a process of this host and pid namespace that no longer
    exists (killed: its claims are lost at once). ``False`` whenever that cannot be told: another
    place, or a live process with that pid (a reused pid only delays recovery to ``LEASE_SECONDS``)."""
    place, _, rest = worker.rpartition(":")[0].rpartition(":")
    try:
        pid = int(rest)
    except ValueError:
        return False
    if not place or place != _place() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # somebody else's process
        return False
    try:  # a zombie (killed, not reaped yet) is gone too
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


class Heartbeat:
    """The claims this process works on, kept alive by a daemon thread."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked worker (rq, Celery prefork) is someone else

    def _reset(self) -> None:
        self.worker_id = new_worker_id()
        self._lock = threading.Lock()
        self._held: Counter[Any] = Counter()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self) -> Iterator[Holding]:
        """Keep alive, until the block ends, the claims of the instances added to the holding."""
        holding = _Holding(self)
        try:
            yield holding
        finally:
            holding.close()

    def _add(self, instance_pk: Any) -> None:
        with self._lock:
            self._held[instance_pk] += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat_forever, name="hephaestus-heartbeat", daemon=True)
                self._thread.start()

    def _remove(self, instance_pk: Any) -> None:
        with self._lock:
            self._held[instance_pk] -= 1
            if self._held[instance_pk] <= 0:
                del self._held[instance_pk]

    def held(self) -> list[Any]:
        with self._lock:
            return list(self._held)

    def _beat_forever(self) -> None:  # pragma: no cover - runs in a daemon thread (tests check its effect)
        stop = threading.Event()
        while not stop.wait(max(0.05, settings.LEASE_SECONDS / 3)):
            self.beat()

    def beat(self) -> int:
        """Refresh the heartbeat of this process's current claims; returns how many rows it touched."""
        from hephaestus_django.storage.orm import DjangoStorage

        pks = self.held()
        if not pks:
            return 0
        try:
            return DjangoStorage().heartbeat(self.worker_id, pks)
        except Exception:
            logger.exception("hephaestus heartbeat failed (claims older than LEASE_SECONDS will be recovered)")
            return 0
        finally:
            if threading.current_thread() is self._thread:
                connections.close_all()  # this thread's own connection: held for a moment, not for ever


class _Holding(Holding):
    def __init__(self, heartbeat: Heartbeat) -> None:
        self.heartbeat = heartbeat
        self.pks: set[Any] = set()

    def add(self, instance_pk: Any) -> None:
        if instance_pk not in self.pks:
            self.pks.add(instance_pk)
            self.heartbeat._add(instance_pk)

    def close(self) -> None:
        for pk in self.pks:
            self.heartbeat._remove(pk)
        self.pks.clear()


heartbeat = Heartbeat()
