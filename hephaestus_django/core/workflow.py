"""Workflows: a graph of steps, validated when the class is created, and registered by name.

::

    class OrderFlow(Workflow):
        unique = Unique(key="orderid")
        start_step = ValidateOrder
        transitions = {
            (ValidateOrder, "valid"): ProcessPayment,
            (ValidateOrder, "invalid"): RejectOrder,
            (ProcessPayment, "paid"): [Notify, Ship],    # fan-out
            (Notify, "sent"): Pack,                      # fan-in
            (Ship, "shipped"): Pack,
            (Pack, "packed"): Done,
            (RejectOrder, "rejected"): Done,
        }
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hephaestus_django.core import facade, registry
from hephaestus_django.core.exceptions import WorkflowDefinitionError
from hephaestus_django.core.graph import (
    Graph,
    RouteSpec,
    build_graph,
    check_json_safe,
    describe,
    route,
    validate_graph,
)
from hephaestus_django.core.keys import KEY_RE, SCOPES
from hephaestus_django.core.schedules import Schedule, schedule_problems

if TYPE_CHECKING:
    from hephaestus_django.core.instance import Instance

__all__ = ["LIST_LIMIT", "BaseWorkflow", "Unique", "VersionedWorkflow", "Workflow", "route"]

#: How many instances ``list()`` returns unless given another ``limit``.
LIST_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Unique:
    """Business-key rule: ids are ``{key}::{value}``; ``scope`` is workflow|version|global|none.

    It only records its arguments; the workflow class checks them.
    """

    key: Any = None
    scope: Any = "workflow"


def _unique_problems(unique: Any) -> list[str]:
    if unique is None:
        return ["unique is missing: declare unique = Unique(key=...)"]
    if not isinstance(unique, Unique):
        return [f"unique must be a Unique(...), not {unique!r}"]
    problems = []
    if not isinstance(unique.key, str) or not KEY_RE.match(unique.key):
        problems.append(f"unique key {unique.key!r} must match [a-z0-9]+")
    if unique.scope not in SCOPES:
        problems.append(f"unique scope {unique.scope!r} must be one of {', '.join(SCOPES)}")
    return problems


#: Django Tasks' priority range (``django.tasks``: TASK_MIN_PRIORITY, TASK_MAX_PRIORITY).
PRIORITY_RANGE = (-100, 100)


def routing_problems(owner: str, queue_name: Any, priority: Any) -> list[str]:
    """What is wrong with a ``queue_name``/``priority`` pair declared on ``owner`` (a step or workflow)."""
    problems = []
    if queue_name is not None and (not isinstance(queue_name, str) or not queue_name.strip()
                                   or queue_name != queue_name.strip()):
        problems.append(f"{owner} queue_name must be None or a non-empty str without surrounding spaces, "
                        f"not {queue_name!r}")
    low, high = PRIORITY_RANGE
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                 or not low <= priority <= high):
        problems.append(f"{owner} priority must be None or an int from {low} to {high}, not {priority!r}")
    return problems


def _step_runtime_problems(graph: Graph) -> list[str]:
    """Routing and concurrency attributes of the graph's steps (compensation steps included)."""
    problems = []
    for step in dict.fromkeys([*graph.nodes, *graph.compensations.values()]):
        problems.extend(routing_problems(f"step {describe(step)}", step.queue_name, step.priority))
        limit: Any = step.concurrency_limit  # user input: validate at run time
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            problems.append(f"step {describe(step)} concurrency_limit must be None or a positive int, not {limit!r}")
    return problems


def _common_problems(cls: type[BaseWorkflow]) -> list[str]:
    problems = _unique_problems(cls.__dict__.get("unique", getattr(cls, "unique", None)))
    problems.extend(routing_problems("workflow", cls.queue_name, cls.priority))
    # class attributes are user input, whatever their annotations say: check them at run time
    tags: Any = cls.tags
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        problems.append(f"tags must be a list of str, not {tags!r}")
    metadata: Any = cls.metadata
    if not isinstance(metadata, dict) or not check_json_safe(metadata):
        problems.append("metadata must be a JSON-safe dict with str keys")
    name: Any = cls.name
    if not isinstance(name, str) or not name:
        problems.append(f"name must be a non-empty str, not {name!r}")
    deadline: Any = cls.deadline
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, int | float)
                                 or not 0 < deadline < float("inf")):
        problems.append(f"deadline must be a positive number of seconds, not {deadline!r}")
    schedules, schedule_issues = schedule_problems(cls.__name__, cls.__dict__.get("schedules", []))
    problems.extend(schedule_issues)
    cls.schedules = schedules  # with their default names filled in
    return problems


class _KeyedFacade:
    """A facade method that exists only for workflows whose ids can be rebuilt from the value."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type[BaseWorkflow]) -> Any:
        unique = getattr(owner, "unique", None)
        if isinstance(unique, Unique) and unique.scope == "none":
            raise AttributeError(
                f"{owner.__qualname__}.{self.name}: workflows with scope 'none' get random ids; "
                "use hephaestus_django.get_instance/resume/cancel with the id start() returned"
            )
        return self.func.__get__(owner, type(owner))


class BaseWorkflow:
    """What ``Workflow`` and ``VersionedWorkflow`` share: identity, uniqueness and the facade."""

    unique: ClassVar[Unique]
    version: ClassVar[int] = 1
    tags: ClassVar[list[str]] = []
    metadata: ClassVar[dict[str, Any]] = {}
    name: ClassVar[str]
    #: Default queue and priority of this workflow's step executions (a step's own win).
    queue_name: ClassVar[str | None] = None
    priority: ClassVar[int | None] = None
    #: Seconds after its start by which an instance must have finished; still active then, it
    #: fails with ``DeadlineExceeded`` (and its compensations run). ``None``: no deadline.
    deadline: ClassVar[float | None] = None
    #: A list of ``Schedule(...)``: this workflow starts an instance at each of their ticks (not inherited).
    schedules: ClassVar[list[Schedule]] = []
    #: ``abstract = True`` in a class body skips validation and registration (for base classes).
    abstract: ClassVar[bool] = True
    #: Set on a class whose definition failed while errors were being collected (autodiscovery).
    _definition_error: ClassVar[WorkflowDefinitionError | None] = None

    # ---- facade (the Python API through the class) ---------------------------------------
    @classmethod
    def start(cls, value: Any, context: dict[str, Any] | None = None, *, version: int | None = None,
              telemetry_metadata: dict[str, Any] | None = None) -> str:
        """Start an instance for business ``value``; returns its id."""
        cls._raise_if_broken()
        return str(facade.backend().start(cls, value, context if context is not None else {}, version=version,
                                          telemetry_metadata=telemetry_metadata))

    @_KeyedFacade
    def resume(cls, value: Any, event: str, *, step: Any = None, data: dict[str, Any] | None = None,  # noqa: N805
               idempotency_key: str | None = None) -> Instance:
        """Complete the waiting step of this value's instance with ``event``; ``data`` goes into
        the step's context entry; a repeated ``idempotency_key`` does nothing."""
        instance: Instance = facade.backend().resume(cls.id_for(value), event, step=step, data=data,
                                                     idempotency_key=idempotency_key, workflow=cls)
        return instance

    @_KeyedFacade
    def get(cls, value: Any) -> Instance:  # noqa: N805
        """The newest instance of this workflow for ``value``."""
        instance: Instance = facade.backend().get(cls.id_for(value), workflow=cls)
        return instance

    @_KeyedFacade
    def cancel(cls, value: Any, *, compensate: bool = False) -> Instance:  # noqa: N805
        """Cancel this value's instance (with ``compensate``, its compensations run first)."""
        instance: Instance = facade.backend().cancel(cls.id_for(value), workflow=cls, compensate=compensate)
        return instance

    @_KeyedFacade
    def pause(cls, value: Any) -> Instance:  # noqa: N805
        """Hold this value's running or waiting instance: no step starts, no timer fires."""
        instance: Instance = facade.backend().pause(cls.id_for(value), workflow=cls)
        return instance

    @_KeyedFacade
    def unpause(cls, value: Any) -> Instance:  # noqa: N805
        """Let this value's paused instance go on."""
        instance: Instance = facade.backend().unpause(cls.id_for(value), workflow=cls)
        return instance

    @_KeyedFacade
    def migrate(cls, value: Any, *, to_version: int,  # noqa: N805
                step_map: dict[str, str] | None = None) -> Instance:
        """Move this value's active instance to version ``to_version`` of the workflow."""
        instance: Instance = facade.backend().migrate(cls.id_for(value), to_version=to_version, step_map=step_map,
                                                      workflow=cls)
        return instance

    @classmethod
    def list(cls, *, limit: int | None = LIST_LIMIT, **filters: Any) -> builtins.list[Instance]:
        """The newest instances of this workflow, at most ``limit`` (``None``: all; filters:
        ``status``, ``status__in``, ``workflow_version``). Their history is read when looked at."""
        return list(facade.backend().list(workflow=cls, limit=limit, **filters))

    @classmethod
    def id_for(cls, value: Any) -> str:
        from hephaestus_django.core.keys import build_id

        return build_id(cls.unique.key, value, "workflow")

    # ---- definition --------------------------------------------------------------------------
    @classmethod
    def definition(cls, version: int | None = None) -> type[Workflow]:
        """The concrete workflow that runs ``version`` (``ValueError`` for an unknown one)."""
        raise NotImplementedError

    @classmethod
    def resolve_version(cls, context: Mapping[str, Any], version: int | None = None) -> int:
        raise NotImplementedError

    @classmethod
    def all_versions(cls) -> builtins.list[int]:
        raise NotImplementedError

    @classmethod
    def deadline_for(cls, version: int) -> float | None:
        """The deadline of instances of ``version``: the version's own, else the workflow's."""
        own = cls.definition(version).deadline
        return own if own is not None else cls.deadline

    @classmethod
    def _begin_class(cls) -> builtins.list[str] | None:
        """What every concrete subclass starts with: ``abstract`` (never inherited) and ``name``
        (default: the dotted path) set, then the problems of what all workflows declare;
        ``None`` for an abstract class (nothing more to check or register)."""
        cls.abstract = bool(cls.__dict__.get("abstract", False))
        if "name" not in cls.__dict__:
            cls.name = f"{cls.__module__}.{cls.__qualname__}"
        if cls.abstract:
            return None
        return _common_problems(cls)

    @classmethod
    def _finish_class(cls, problems: builtins.list[str]) -> None:
        """Register the class, or report its problems (raised, or recorded during autodiscovery)."""
        if problems:
            lines = "\n  - ".join(problems)
            error = WorkflowDefinitionError(f"workflow {cls.name}:\n  - {lines}",
                                            problems=[f"workflow {cls.name}: {p}" for p in problems])
        else:
            try:
                registry.register(cls)
                return
            except WorkflowDefinitionError as exc:
                error = exc
        cls._definition_error = error
        registry.report(error)

    @classmethod
    def _raise_if_broken(cls) -> None:
        """A class whose definition error was recorded instead of raised cannot be used."""
        error = cls.__dict__.get("_definition_error")
        if error is not None:
            raise error


class Workflow(BaseWorkflow):
    """A DAG of steps. Subclasses set ``unique``, ``start_step`` and ``transitions``."""

    start_step: ClassVar[Any] = None
    transitions: ClassVar[dict[Any, Any]] = {}
    graph: ClassVar[Graph]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        problems = cls._begin_class()
        if problems is None:
            return
        version: Any = cls.version  # user input: validate at run time
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            problems.append(f"version must be a positive int, not {version!r}")
        routes = [v for klass in reversed(cls.__mro__) for v in vars(klass).values() if isinstance(v, RouteSpec)]
        graph, graph_problems = build_graph(cls.start_step, cls.transitions, routes)
        problems.extend(graph_problems)
        if graph is not None:
            problems.extend(validate_graph(graph))
            problems.extend(_step_runtime_problems(graph))
            cls.graph = graph
        cls._finish_class(problems)

    @classmethod
    def definition(cls, version: int | None = None) -> type[Workflow]:
        cls._raise_if_broken()
        if version is not None and version != cls.version:
            raise ValueError(f"workflow {cls.name} has no version {version!r} (it is version {cls.version})")
        return cls

    @classmethod
    def resolve_version(cls, context: Mapping[str, Any], version: int | None = None) -> int:
        return cls.definition(version).version

    @classmethod
    def all_versions(cls) -> list[int]:
        return [cls.version]


class VersionedWorkflow(BaseWorkflow):
    """Several versions of one workflow under one name; starts pick explicit → ``version_for`` → ``current``."""

    versions: ClassVar[dict[int, type[Workflow]]] = {}
    current: ClassVar[int | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        problems = cls._begin_class()
        if problems is None:
            return
        versions: Any = cls.versions  # user input: validate at run time
        if not isinstance(versions, dict) or not versions:
            problems.append("versions must be a non-empty dict {version: Workflow}")
            versions = {}
        for key, wf in versions.items():
            if isinstance(key, bool) or not isinstance(key, int) or key < 1:
                problems.append(f"version key {key!r} must be a positive int")
                continue
            if not (isinstance(wf, type) and issubclass(wf, Workflow)) or wf.abstract:
                problems.append(f"versions[{key}] must be a concrete Workflow class, not {wf!r}")
                continue
            if wf.__dict__.get("_definition_error") is not None:
                problems.append(f"versions[{key}] ({wf.__qualname__}) is not a valid workflow (see its own error)")
                continue
            if wf.version != key:
                problems.append(f"versions[{key}] is {wf.__qualname__}, whose version is {wf.version}")
            umbrella = getattr(cls, "unique", None)  # missing: already reported, not an AttributeError
            if isinstance(umbrella, Unique) and wf.unique != umbrella:
                problems.append(f"versions[{key}] ({wf.__qualname__}) declares {wf.unique!r}, "
                                f"but the umbrella declares {umbrella!r}")
        if cls.current is None:
            problems.append("current is missing")
        elif cls.current not in versions:
            problems.append(f"current version {cls.current!r} is not among versions {sorted(versions)}")
        cls._finish_class(problems)

    @classmethod
    def version_for(cls, versions: dict[int, type[Workflow]], context: Mapping[str, Any]) -> int | None:
        """Override to choose a version from the start context; ``None`` means ``current``."""
        return None

    @classmethod
    def definition(cls, version: int | None = None) -> type[Workflow]:
        cls._raise_if_broken()
        chosen = cls.current if version is None else version
        if isinstance(chosen, bool) or chosen not in cls.versions:
            raise ValueError(f"workflow {cls.name} has no version {version!r} (versions: {sorted(cls.versions)})")
        return cls.versions[chosen]

    @classmethod
    def resolve_version(cls, context: Mapping[str, Any], version: int | None = None) -> int:
        if version is None:
            version = cls.version_for(dict(cls.versions), context)
        return cls.definition(version).version

    @classmethod
    def all_versions(cls) -> list[int]:
        return sorted(cls.versions)
