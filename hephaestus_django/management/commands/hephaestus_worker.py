"""``manage.py hephaestus_worker``: fire due timers and schedule ticks, recover lost work, in a loop
(``runtime/worker.py``)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from django.core.management.base import CommandParser

from hephaestus_django.conf import settings
from hephaestus_django.management.base import HephaestusCommand
from hephaestus_django.runtime.worker import run_worker

#: The longest pause between two passes (a day).
MAX_INTERVAL = 86_400


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    if value > MAX_INTERVAL:
        raise argparse.ArgumentTypeError(f"{text!r} is too long (at most {MAX_INTERVAL} seconds)")
    return value


class Command(HephaestusCommand):
    help = ("Fire due timers and schedule ticks, recover lost claims and dispatches, and release throttled "
            "steps, every --interval seconds until SIGTERM/Ctrl-C.")
    json_option = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Make one pass and exit.")
        parser.add_argument("--interval", metavar="SECONDS", type=positive_seconds, default=None,
                            help="Seconds between passes (default: HEPHAESTUS['WORKER_INTERVAL'], 1.0).")

    def run(self, **options: Any) -> None:
        interval = options["interval"] if options["interval"] is not None else float(settings.WORKER_INTERVAL)
        if getattr(self, "_called_from_command_line", False):  # leave a calling program's logging alone
            configure_logging(options["verbosity"])
        run_worker(options["once"], interval, self.stdout)


def configure_logging(verbosity: int) -> None:
    """``-v 0``: errors only, ``1``: info, ``2`` and more: debug, on the ``hephaestus`` logger; a
    stderr handler is added only when logging is not configured at all."""
    logger = logging.getLogger("hephaestus")
    logger.setLevel({0: logging.ERROR, 1: logging.INFO}.get(verbosity, logging.DEBUG))
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
