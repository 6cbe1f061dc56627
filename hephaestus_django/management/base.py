"""What the ``hephaestus_*`` commands share: one-line errors, JSON in and out, aligned tables.

A command subclasses :class:`HephaestusCommand` and implements ``run(**options)``; any
``HephaestusError`` or ``ValueError`` it raises (unknown id, malformed JSON, undeclared event,
...) becomes a one-line ``CommandError``: exit status 1, no traceback. Argument errors (a
missing argument, ``--version abc``) are reported the same way rather than with argparse's
usage text and status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DataError

from hephaestus_django.core.exceptions import HephaestusError
from hephaestus_django.core.registry import short_name
from hephaestus_django.core.status import FINISHED_STATUSES, Status
from hephaestus_django.core.values import MAX_DEPTH, storable_problem
from hephaestus_django.shapes import history_shape, instance_shape
from hephaestus_django.storage.models import WorkflowInstance

STATUSES = tuple(s.value for s in Status)
FINISHED = tuple(s.value for s in Status if s in FINISHED_STATUSES)
#: The largest count or version a command takes (what every database's integer columns hold).
MAX_INT = 2**31 - 1


def one_line(text: str) -> str:
    """``text`` with its lines joined (a CommandError is one line)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "error"


# ---- argument types (argparse ``type=``) ------------------------------------------------------------
def positive_int(text: str) -> int:
    """An integer from 1 to :data:`MAX_INT`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {MAX_INT})")
    return value


def bounded_float(maximum: float, unit: str = "") -> Callable[[str], float]:
    """A ``type=`` for a number from 0 to ``maximum`` (NaN and infinities refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value >= 0 or value == float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {maximum:g}{unit})")
        return value

    return parse


#: ``--older-than DAYS``: anything up to 1,000 years.
days_argument = bounded_float(365_000, " days")


def text_argument(what: str) -> Callable[[str], str]:
    """A ``type=`` for an id or a name: text a database can hold (no NUL character)."""

    def parse(text: str) -> str:
        problem = storable_problem(text, what)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return text

    return parse


def status_value(allowed: Sequence[str] = STATUSES) -> Callable[[str], str]:
    """A ``type=`` that accepts one of ``allowed`` statuses (case-insensitive)."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"invalid status {text!r} (choose from {', '.join(allowed)})")
        return value

    return parse


# ---- JSON input ------------------------------------------------------------------------------------------
def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object the database can store; ``CommandError`` naming ``what``
    otherwise (malformed JSON, NaN or infinity, a NUL character, absurd nesting...)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") \
            from None
    except RecursionError:
        raise CommandError(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise CommandError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CommandError(f"{what} must be a JSON object, not {type(value).__name__}")
    problem = storable_problem(value, what)
    if problem is not None:
        raise CommandError(f"{problem}; nothing was written")
    return value


def read_json_file(path: str, what: str) -> dict[str, Any]:
    """The JSON object in file ``path`` (``-`` reads standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    return parse_json_object(text, f"{what} {path!r}")


# ---- output ------------------------------------------------------------------------------------------------
def to_json(data: Any) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An aligned text table (``-`` for empty cells)."""
    cells = [[("-" if v is None or v == "" else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.extend("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)
    return "\n".join(lines)


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def instance_row(instance_id: str, workflow: str | None = None) -> WorkflowInstance:
    """The newest row with ``instance_id`` (in ``workflow``); ``CommandError`` when there is none."""
    row = WorkflowInstance.objects.newest(instance_id, workflow)
    if row is None:
        where = f" in workflow {workflow}" if workflow else ""
        raise CommandError(f"no instance with id {instance_id!r}{where}")
    return row


def instance_summary(row: WorkflowInstance) -> str:
    """A few aligned ``key: value`` lines describing an instance."""
    pairs = [
        ("id", row.instance_id),
        ("workflow", f"{row.workflow} (version {row.workflow_version})"),
        ("status", row.status),
        ("current step", row.current_step or "-"),
        ("active steps", ", ".join(short_name(s) for s in row.active_steps) or "-"),
        ("waiting steps", ", ".join(short_name(s) for s in row.waiting_steps) or "-"),
        ("completed steps", ", ".join(short_name(s) for s in row.completed_steps) or "-"),
        ("created", when(row.created_at)),
        ("updated", when(row.updated_at)),
    ]
    if row.parent_instance_id:
        pairs.append(("parent", row.parent_instance_id))
    if row.error:
        pairs.append(("error", one_line(row.error)))
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in pairs)


def instance_with_history(row: WorkflowInstance) -> dict[str, Any]:
    return {**instance_shape(row), "history": [history_shape(h) for h in row.history.order_by("seq")]}


# ---- the base command ---------------------------------------------------------------------------------
class HephaestusCommand(BaseCommand):
    """Base of the ``hephaestus_*`` commands: ``run(**options)`` instead of ``handle``."""

    #: Add a ``--json`` flag.
    json_option = True

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # "resolve": our ``--version N`` (a workflow version) replaces Django's ``--version`` flag
        kwargs.setdefault("conflict_handler", "resolve")
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        command = self

        def error(message: str) -> NoReturn:
            text = f"Error: {one_line(message)}"
            if parser.called_from_command_line:
                command.stderr.write(f"CommandError: {text}")
                sys.exit(1)
            raise CommandError(text)

        parser.error = error  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        if self.json_option:
            parser.add_argument("--json", action="store_true",
                                help="Print one JSON document (the API's shapes).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.run(*args, **options)
            self.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        except CommandError as exc:
            raise CommandError(one_line(str(exc)), returncode=exc.returncode) from None
        except (HephaestusError, ValueError, OverflowError) as exc:
            raise CommandError(one_line(str(exc))) from None
        except DataError as exc:  # input the checks above let through and the database refused
            raise CommandError(one_line(f"the database refused the input: {exc}")) from None
        except BrokenPipeError:
            # The reader went away (`hephaestus_show ... | head`): stop quietly, as ls and git do.
            # Point stdout at /dev/null so the interpreter's final flush raises nothing either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)

    def run(self, *args: Any, **options: Any) -> None:
        raise NotImplementedError

    def print_json(self, data: Any) -> None:
        self.stdout.write(to_json(data))


class InstanceActionCommand(HephaestusCommand):
    """A command that changes one instance ``ID`` through the services and prints it."""

    #: Past tense shown on success ("Cancelled").
    done = ""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", metavar="ID", type=text_argument("ID"),
                            help="Instance id (the newest instance with it).")
        super().add_arguments(parser)

    def act(self, **options: Any) -> Any:
        """Call the service; return the core instance it returns."""
        raise NotImplementedError

    def headline(self, row: WorkflowInstance, **options: Any) -> str:
        return f"{self.done} {row.instance_id}."

    def run(self, **options: Any) -> None:
        instance = self.act(**options)
        row = WorkflowInstance.objects.get(pk=instance.pk)
        if options["json"]:
            self.print_json(instance_shape(row))
        else:
            self.stdout.write(self.headline(row, **options))
            self.stdout.write(instance_summary(row))
