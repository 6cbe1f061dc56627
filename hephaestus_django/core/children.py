"""Child workflows: a step that starts other workflows and completes when the last of them ends.

::

    class ShipParcels(ChildrenStep):
        def children(self, instance, config, context):
            return [Child(ParcelFlow, parcel["id"], context=parcel) for parcel in context.initial["parcels"]]

    transitions = {
        (ShipParcels, "completed"): Invoice,    # every child completed
        (ShipParcels, "failed"): Refund,        # at least one failed or was cancelled
        ...
    }

Running the step starts every child in the transaction that pauses the step (the parent is then
``waiting`` on it); with no children it completes at once with ``completed``. When the last child
finishes, the step completes with ``completed`` if every child completed, else ``failed``, and its
context updates are ``{"children": [{"id", "workflow", "status", "error", "steps"}, ...]}`` in the
order of ``children()``. A child that cannot start is a failure of the step (retried per its
``retry``), and no child of that attempt is left behind.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hephaestus_django.core.base import Step, StepResult
from hephaestus_django.core.exceptions import InvalidContext, WorkflowDefinitionError
from hephaestus_django.core.keys import build_id, parse_id
from hephaestus_django.core.values import check_storable

if TYPE_CHECKING:
    from hephaestus_django.core.instance import Context, Instance
    from hephaestus_django.core.workflow import BaseWorkflow

__all__ = ["Child", "ChildSummary", "ChildrenStep", "Spawn", "is_children_step"]

CHILDREN_EVENTS = ("completed", "failed")


@dataclass(frozen=True, slots=True)
class Child:
    """A child workflow to start: ``workflow`` (class or registry name) and its business ``value``,
    or its full ``id``. Workflows with scope ``none`` may omit both (the id is then derived from the
    parent's business value, plus the random suffix of that scope)."""

    workflow: Any
    value: Any = None
    _: KW_ONLY
    id: str | None = None
    context: dict[str, Any] | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        if self.value is not None and self.id is not None:
            raise ValueError("Child: give the business 'value' or the full 'id', not both")
        checked_id: object = self.id  # user input: validate at run time
        if checked_id is not None and (not isinstance(checked_id, str) or not checked_id):
            raise ValueError(f"Child: 'id' must be a non-empty str, not {self.id!r}")
        context: object = self.context
        if context is not None and not isinstance(context, dict):
            raise InvalidContext(f"Child: 'context' must be a dict, not {type(context).__name__}", field="context")
        version: object = self.version
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValueError(f"Child: 'version' must be a positive int, not {self.version!r}")

    def instance_id(self, workflow: type[BaseWorkflow], parent_id: str) -> str:
        """The id the child starts with, under ``workflow``'s unique key and scope."""
        unique = workflow.unique
        if self.id is not None:
            return self.id
        if self.value is not None:
            return build_id(unique.key, self.value, unique.scope)
        if unique.scope != "none":
            raise ValueError(f"Child of {workflow.name}: give its business 'value' (or its full 'id'); only "
                             "workflows with scope 'none' may omit both")
        try:
            value = parse_id(parent_id).value
        except ValueError:
            value = "child"
        return build_id(unique.key, value, "none")

    def start_context(self) -> dict[str, Any]:
        context = dict(self.context) if self.context is not None else {}
        check_storable(context, "context")
        return context


@dataclass(frozen=True, slots=True)
class Spawn:
    """What a :class:`ChildrenStep` returns: the children to start (``execute()`` builds it)."""

    children: tuple[Child, ...]


@dataclass(frozen=True, slots=True)
class ChildSummary:
    """A finished child, as its parent's children step records it."""

    id: str
    workflow: str
    status: str
    error: str | None
    steps: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "workflow": self.workflow, "status": self.status, "error": self.error,
                "steps": self.steps}


class ChildrenStep(Step):
    """A step that starts child workflows and waits for all of them.

    Implement :meth:`children` (not ``execute``). ``events`` are ``("completed", "failed")``;
    ``retry`` and ``timeout`` apply to ``children()`` and to starting the children.
    """

    events: ClassVar[tuple[str, ...]] = CHILDREN_EVENTS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        events: Any = cls.events
        if not isinstance(events, list | tuple) or tuple(events) != CHILDREN_EVENTS:
            raise WorkflowDefinitionError(f"{cls.__qualname__}: a ChildrenStep's events are fixed to "
                                          f"{CHILDREN_EVENTS!r}; it declares {events!r}")
        if "execute" in cls.__dict__:
            raise WorkflowDefinitionError(f"{cls.__qualname__}: a ChildrenStep implements children(), "
                                          "not execute()")

    def children(self, instance: Instance, config: dict[str, Any], context: Context) -> list[Child]:
        raise NotImplementedError(f"{type(self).__qualname__}.children() is not implemented")

    def execute(self, instance: Instance, config: dict[str, Any], context: Context) -> StepResult:
        children: Any = self.children(instance, config, context)
        if not isinstance(children, list | tuple):
            raise TypeError(f"{type(self).__qualname__}.children() returned {type(children).__name__}; "
                            "expected a list of Child")
        wrong = [c for c in children if not isinstance(c, Child)]
        if wrong:
            raise TypeError(f"{type(self).__qualname__}.children() returned {wrong[0]!r}, which is not a Child")
        return Spawn(tuple(children))  # type: ignore[return-value]


def is_children_step(step: Any) -> bool:
    return isinstance(step, type) and issubclass(step, ChildrenStep)
