"""The JSON shapes of instances, history entries and workflows (``docs/api.md``), shared by the API,
the commands' ``--json`` and the admin.

Instances and history entries are shaped from rows (no registry lookups, no extra queries);
workflows from the registry.
"""

from __future__ import annotations

from typing import Any

from hephaestus_django.core.workflow import BaseWorkflow
from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def instance_shape(row: WorkflowInstance, *, context: bool = True) -> dict[str, Any]:
    """An instance; without ``context`` (the API's compact list rows), its ``context`` is left out
    (and the row need not have loaded that column)."""
    shape: dict[str, Any] = {
        "id": row.instance_id,
        "workflow": row.workflow,
        "workflow_version": row.workflow_version,
        "status": row.status,
        "current_step": row.current_step or None,
    }
    if context:
        stored = row.context or {}
        shape["context"] = {"initial": stored.get("initial", {}), "steps": stored.get("steps", {})}
    shape.update({
        "step_configs": row.step_configs,
        "active_steps": row.active_steps,
        "completed_steps": row.completed_steps,
        "runtime_metadata": row.runtime_metadata,
        "telemetry_metadata": row.telemetry_metadata,
        "error": row.error or None,
        "parent": row.parent_instance_id or None,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    })
    return shape


def history_shape(row: HistoryEntry) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "step": row.step or None,
        "event": row.event or None,
        "timestamp": _iso(row.timestamp),
        "attempt": row.attempt,
        "error": row.error or None,
        "duration": row.duration,
        "context_updates": row.context_updates,
        "traceback": row.traceback or None,
    }


def workflow_shape(workflow: type[BaseWorkflow], version: int | None = None) -> dict[str, Any]:
    """A registered workflow; its graph is the one of ``version`` (default: the current one)."""
    from hephaestus_django.core import render

    definition = workflow.definition(version)
    graph = definition.graph
    return {
        "name": workflow.name,
        "versions": workflow.all_versions(),
        "current_version": workflow.definition(None).version,
        "unique": {"key": workflow.unique.key, "scope": workflow.unique.scope},
        "tags": list(workflow.tags),
        "metadata": workflow.metadata,
        "steps": [{"name": s.registry_name(), "context_key": s.context_key(), "events": list(s.events)}
                  for s in graph.nodes],
        "edges": [{"from": e.source.registry_name(), "event": e.event, "to": e.target.registry_name()}
                  for e in graph.edges],
        "mermaid": render.mermaid(graph),
    }
