"""The loop behind ``manage.py hephaestus_worker``: a pass runs every job of :data:`JOBS` (fire due
timers, recover lost claims and dispatches, release throttled steps, start due schedule ticks).

SIGTERM and SIGINT stop it after the current pass; a second SIGINT interrupts at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.db import close_old_connections

from hephaestus_django.runtime.dispatch import DjangoRunner, get_runner

logger = logging.getLogger("hephaestus")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: How the worker's report counts what a job did.
FIRED, RECOVERED, STARTED = "fired", "recovered", "started"

#: What a pass does, in order: (name, what it counts as, job). Each job returns how many things it did.
JOBS: list[tuple[str, str, Callable[[DjangoRunner], int]]] = [
    ("fire due timers", FIRED, DjangoRunner.fire_due_timers),
    ("recover lost claims", RECOVERED, DjangoRunner.recover_lost_claims),
    ("re-send lost dispatches", RECOVERED, DjangoRunner.redispatch_lost),
    ("release throttled steps", RECOVERED, DjangoRunner.release_throttled),
    ("start due schedule ticks", STARTED, DjangoRunner.fire_schedules),
]


def run_pass() -> tuple[int, int, int]:
    """One pass of the worker: every job of :data:`JOBS`, each once; returns (timers fired, steps
    recovered or dispatched again, scheduled instances started). A job that raises is logged and
    the pass goes on (the first error is raised at the end)."""
    runner = get_runner()
    counts = {FIRED: 0, RECOVERED: 0, STARTED: 0}
    failure: Exception | None = None
    for name, kind, job in JOBS:
        try:
            counts[kind] += job(runner)
        except Exception as exc:
            logger.exception("hephaestus worker: %s failed", name)
            failure = failure or exc
    if failure is not None:
        raise failure
    return counts[FIRED], counts[RECOVERED], counts[STARTED]


def run_worker(once: bool, interval: float, stdout: Any) -> int:
    """Run passes every ``interval`` seconds until SIGTERM/SIGINT (one pass with ``once``).

    Writes a line per pass that did something to ``stdout`` (anything with ``write(str)``) and
    returns the total number of timers fired, steps recovered and scheduled instances started. A
    pass that raises is logged and the loop goes on; with ``once`` the error propagates.
    """
    stop = threading.Event()
    previous: dict[int, Any] = {}
    received: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)  # nothing that takes locks (logging) inside a signal handler
        stop.set()
        for number, handler in previous.items():  # a second signal acts as it normally would
            signal.signal(number, handler)

    if not once and threading.current_thread() is threading.main_thread():
        for number in _STOP_SIGNALS:
            handler = signal.signal(number, request_stop)
            previous[number] = handler if handler is not None else signal.SIG_DFL
    total = 0
    try:
        if not once:
            stdout.write(f"Worker started (a pass every {interval:g}s); SIGTERM or Ctrl-C stops it.\n")
        while True:
            try:
                fired, recovered, started = run_pass()
            except Exception:
                if once:
                    raise
                logger.exception("hephaestus worker: a pass failed")
                fired = recovered = started = 0
            total += fired + recovered + started
            if fired or recovered or started or once:
                ticks = f" Started {started} scheduled instance(s)." if started else ""
                stdout.write(f"Fired {fired} due timer(s), recovered {recovered} step(s).{ticks}\n")
            if once:
                break
            close_old_connections()
            if stop.wait(interval):
                break
        if received:
            logger.info("hephaestus worker: stopped by %s", signal.Signals(received[0]).name)
        if not once:
            stdout.write(f"Worker stopped ({total} timer(s) fired and step(s) recovered).\n")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return total
