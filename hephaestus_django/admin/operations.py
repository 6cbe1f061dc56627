"""Cancel, retry, resume, pause, unpause and migrate instances from the admin, through
:mod:`hephaestus_django.services`.

Every change goes through the services; the admin never writes instance fields. Each instance
is handled on its own: one that cannot be changed (``NotCancellable``, ``NotWaiting``...) is
reported in a message and the others go ahead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from django.contrib import messages
from django.db.models import Max
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from hephaestus_django import services
from hephaestus_django.core.engine import (
    CANCELLABLE_STATUSES,
    MIGRATABLE_STATUSES,
    PAUSABLE_STATUSES,
    RESUMABLE_STATUSES,
)
from hephaestus_django.core.exceptions import HephaestusError
from hephaestus_django.core.instance import Instance
from hephaestus_django.core.status import Status
from hephaestus_django.storage.models import WorkflowInstance

logger = logging.getLogger("hephaestus")

#: At most this many instances per action: each one is a transaction (and, with the immediate
#: backend, runs its steps in the request).
ACTION_LIMIT = 1000
#: Per-instance error messages shown before they are summarised.
MAX_ERROR_MESSAGES = 10

CANCEL = "cancel"
RETRY = "retry"
RESUME = "resume"
PAUSE = "pause"
UNPAUSE = "unpause"
MIGRATE = "migrate"
#: Operations that need no input beyond a confirmation.
CONFIRMED = (CANCEL, RETRY, PAUSE, UNPAUSE)
#: The statuses each operation applies to.
APPLIES_TO: dict[str, Collection[Status]] = {
    CANCEL: CANCELLABLE_STATUSES,
    RETRY: (Status.FAILED,),
    PAUSE: PAUSABLE_STATUSES,
    UNPAUSE: (Status.PAUSED,),
    MIGRATE: MIGRATABLE_STATUSES,
    RESUME: RESUMABLE_STATUSES,
}


def superseded(rows: Sequence[WorkflowInstance]) -> set[int]:
    """Pks of ``rows`` that a newer instance with the same id and workflow has replaced.

    The services act on the newest instance of an id, so acting on an older row from the
    admin would change another instance: such rows are refused. One query.
    """
    if not rows:
        return set()
    newest = {
        (r["instance_id"], r["workflow"]): r["newest"]
        for r in WorkflowInstance.objects.filter(instance_id__in={row.instance_id for row in rows})
        .order_by().values("instance_id", "workflow").annotate(newest=Max("pk"))
    }
    return {row.pk for row in rows if newest.get((row.instance_id, row.workflow), row.pk) != row.pk}


def _call(verb: str, row: WorkflowInstance, selection: tuple[str, str] | None, options: dict[str, Any],
          data: dict[str, Any] | None = None) -> Instance:
    if verb == CANCEL:
        return services.cancel(row.instance_id, workflow=row.workflow, compensate=bool(options.get("compensate")))
    if verb == RETRY:
        return services.retry(row.instance_id, workflow=row.workflow)
    if verb == PAUSE:
        return services.pause(row.instance_id, workflow=row.workflow)
    if verb == UNPAUSE:
        return services.unpause(row.instance_id, workflow=row.workflow)
    if verb == MIGRATE:
        return services.migrate(row.instance_id, workflow=row.workflow, to_version=options["to_version"],
                                step_map=options.get("step_map"))
    if selection is None:
        raise ValueError("resume needs a (step, event) selection")
    step, event = selection
    return services.resume(row.instance_id, event, step=step, data=data, workflow=row.workflow)


_DONE: dict[str, Callable[[int], str]] = {
    CANCEL: lambda n: ngettext("Cancelled %(count)d instance.", "Cancelled %(count)d instances.", n),
    RETRY: lambda n: ngettext("Retried %(count)d instance.", "Retried %(count)d instances.", n),
    RESUME: lambda n: ngettext("Resumed %(count)d instance.", "Resumed %(count)d instances.", n),
    PAUSE: lambda n: ngettext("Paused %(count)d instance.", "Paused %(count)d instances.", n),
    UNPAUSE: lambda n: ngettext("Unpaused %(count)d instance.", "Unpaused %(count)d instances.", n),
    MIGRATE: lambda n: ngettext("Migrated %(count)d instance.", "Migrated %(count)d instances.", n),
}


def apply(request: HttpRequest, verb: str, rows: Sequence[WorkflowInstance],
          selections: dict[int, tuple[str, str]] | None = None, *,
          log: Callable[[WorkflowInstance, str], None] | None = None, options: dict[str, Any] | None = None,
          data: dict[str, Any] | None = None) -> int:
    """Run ``verb`` on each row (for ``resume``, the rows in ``selections``, with ``data``) and report
    with messages.

    ``options``: ``compensate`` for cancel; ``to_version`` and ``step_map`` for migrate.

    ``log(row, detail)`` records each change (the admin's ``LogEntry``). Returns how many
    instances were changed.
    """
    if selections is not None:
        rows = [row for row in rows if row.pk in selections]
    stale = superseded(rows)
    done = 0
    errors: list[str] = []
    warnings: list[str] = []
    for row in rows:
        if row.pk in stale:
            errors.append(_("%(id)s: a newer instance with this id exists; act on that one instead.")
                          % {"id": row.instance_id})
            continue
        selection = selections.get(row.pk) if selections else None
        try:
            result = _call(verb, row, selection, options or {}, data)
        except HephaestusError as exc:
            errors.append(f"{row.instance_id}: {exc}")
            continue
        except Exception:  # a bug must not hide what happened to the other instances
            logger.exception("admin %s of %s failed", verb, row.instance_id)
            errors.append(_("%(id)s: unexpected error (see the server log).") % {"id": row.instance_id})
            continue
        done += 1
        if log is not None:
            detail = f" ({selection[0]}: {selection[1]})" if selection else ""
            if verb == MIGRATE:
                detail = f" (to version {(options or {}).get('to_version')})"
            elif verb == CANCEL and (options or {}).get("compensate"):
                detail = " (with compensation)"
            log(row, detail)
        if verb != CANCEL and result.status == Status.FAILED:
            warnings.append(_("%(id)s failed: %(error)s") % {"id": row.instance_id, "error": result.error})
    if done:
        messages.success(request, _DONE[verb](done) % {"count": done})
    for text in warnings[:MAX_ERROR_MESSAGES]:
        messages.warning(request, text)
    for text in errors[:MAX_ERROR_MESSAGES]:
        messages.error(request, text)
    hidden = max(0, len(errors) - MAX_ERROR_MESSAGES) + max(0, len(warnings) - MAX_ERROR_MESSAGES)
    if hidden:
        text = ngettext("…and %(count)d more problem.", "…and %(count)d more problems.", hidden)
        messages.error(request, text % {"count": hidden})
    return done


def applicable(verb: str, row: Any) -> bool:
    """Whether ``verb`` can apply to the row's status (for the confirmation pages)."""
    return row.status in APPLIES_TO.get(verb, ())
