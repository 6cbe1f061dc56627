"""The DAG of a workflow: nodes, edges, predecessors and reachability, built and checked
iteratively (graphs of thousands of steps never touch the recursion limit)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hephaestus_django.core.base import Step

Target = tuple[type[Step], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Edge:
    source: type[Step]
    event: str
    target: type[Step]
    config: dict[str, Any] | None = None
    routed: bool = False


@dataclass(slots=True)
class RouteSpec:
    """A dynamic route declared with :func:`route`: at run time ``func(context)`` picks one target."""

    step: Any
    event: Any
    #: As declared (a list when valid); :func:`build_graph` checks it.
    targets: Any
    func: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def route(step: type[Step], event: str, *, targets: list[Any]) -> Callable[[Callable[..., Any]], RouteSpec]:
    """Declare a dynamic route on a workflow: ``targets`` are graph edges, the function picks one.

    ::

        @route(Triage, "routed", targets=[FastTrack, Standard])
        def triage(context):
            return FastTrack if context.initial.get("priority") == "high" else Standard
    """

    def decorator(func: Callable[..., Any]) -> RouteSpec:
        raw: Any = targets  # user input: validated by build_graph
        declared = list(raw) if isinstance(raw, list | tuple) else raw
        return RouteSpec(step=step, event=event, targets=declared, func=func)

    return decorator


def is_step(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Step)


def describe(obj: Any) -> str:
    if isinstance(obj, type):
        return obj.__qualname__
    return repr(obj)


def parse_target(target: Any) -> tuple[list[Target], list[str]]:
    """A transition target as (step, config) pairs, with problems for anything malformed."""
    items = target if isinstance(target, list) else [target]
    pairs: list[Target] = []
    problems: list[str] = []
    if isinstance(target, list) and not target:
        problems.append("an empty fan-out list")
    for item in items:
        config: Any = None
        step = item
        if isinstance(item, tuple):
            if len(item) != 2:
                problems.append(f"target {item!r} is not (StepClass, config_dict)")
                continue
            step, config = item
            if not isinstance(config, dict):
                problems.append(f"config of {describe(step)} must be a dict, not {type(config).__name__}")
                continue
        if not is_step(step):
            problems.append(f"target {describe(step)} is not a Step subclass")
            continue
        pairs.append((step, config))
    return pairs, problems


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(slots=True)
class Graph:
    """Structure of one workflow definition, with every node in topological order."""

    start: type[Step]
    start_config: dict[str, Any] | None
    edges: list[Edge]
    transitions: dict[tuple[type[Step], str], list[Target]]
    routes: dict[tuple[type[Step], str], RouteSpec]
    nodes: list[type[Step]] = field(default_factory=list)
    index: dict[type[Step], int] = field(default_factory=dict)
    by_name: dict[str, type[Step]] = field(default_factory=dict)
    preds: dict[type[Step], list[type[Step]]] = field(default_factory=dict)
    succs: dict[type[Step], list[type[Step]]] = field(default_factory=dict)
    configs: dict[type[Step], dict[str, Any]] = field(default_factory=dict)
    #: Node -> the step that compensates it (its ``compensate``); compensation steps are not nodes,
    #: but ``by_name`` knows them (rows name the one that runs).
    compensations: dict[type[Step], type[Step]] = field(default_factory=dict)
    _reach: list[int] | None = None

    # ---- queries used by the engine ------------------------------------------------------
    def step(self, name_or_class: Any) -> type[Step] | None:
        if isinstance(name_or_class, str):
            return self.by_name.get(name_or_class)
        return name_or_class if name_or_class in self.index else None

    def position(self, step: type[Step]) -> int:
        """A sort key: the node's topological index (compensation steps sort after every node)."""
        return self.index.get(step, len(self.index))

    def is_join(self, step: type[Step]) -> bool:
        return len(self.preds.get(step, ())) > 1

    def reach(self) -> list[int]:
        """``reach()[i]``: bitset of the steps reachable from node ``i`` (itself excluded)."""
        if self._reach is None:
            reach = [0] * len(self.nodes)
            for i in range(len(self.nodes) - 1, -1, -1):
                bits = 0
                for succ in self.succs[self.nodes[i]]:
                    j = self.index[succ]
                    bits |= (1 << j) | reach[j]
                reach[i] = bits
            self._reach = reach
        return self._reach

    def can_run_mask(self, steps: set[type[Step]]) -> int:
        """Bitset of ``steps`` and of every step reachable from them."""
        reach = self.reach()
        mask = 0
        for step in steps:
            i = self.index[step]
            mask |= (1 << i) | reach[i]
        return mask

    def targets(self, step: type[Step], event: str) -> list[Target] | RouteSpec:
        spec = self.routes.get((step, event))
        if spec is not None:
            return spec
        return self.transitions.get((step, event), [])

    def handled_events(self, step: type[Step]) -> list[str]:
        """The events ``step`` declares that lead somewhere in this graph, in declaration order
        (what a waiting step may usefully be resumed with)."""
        return [e for e in step.events if (step, e) in self.transitions or (step, e) in self.routes]


def build_graph(start_step: Any, transitions: Any, routes: list[RouteSpec]) -> tuple[Graph | None, list[str]]:
    """Parse a definition into a :class:`Graph` and list every problem found on the way."""
    problems: list[str] = []
    start_pairs, start_problems = parse_target(start_step) if start_step is not None else ([], [])
    if start_step is None:
        problems.append("start_step is missing")
    elif start_problems or len(start_pairs) != 1 or isinstance(start_step, list):
        problems.append(f"start_step must be a Step subclass or (Step, config), not {describe(start_step)}")
    if not isinstance(transitions, dict):
        problems.append(f"transitions must be a dict, not {type(transitions).__name__}")
        transitions = {}
    parsed: dict[tuple[type[Step], str], list[Target]] = {}
    for key, target in transitions.items():
        if not (isinstance(key, tuple) and len(key) == 2 and is_step(key[0]) and isinstance(key[1], str)):
            problems.append(f"transition key {key!r} is not (StepClass, 'event')")
            continue
        pairs, target_problems = parse_target(target)
        problems.extend(f"transition ({describe(key[0])}, {key[1]!r}): {p}" for p in target_problems)
        parsed[key] = pairs
    route_map: dict[tuple[type[Step], str], RouteSpec] = {}
    for spec in routes:
        label = f"route {spec.func.__name__}"
        if not is_step(spec.step) or not isinstance(spec.event, str):
            problems.append(f"{label}: ({describe(spec.step)}, {spec.event!r}) is not (StepClass, 'event')")
            continue
        if not isinstance(spec.targets, list) or not spec.targets:
            problems.append(f"{label}: targets must be a non-empty list of Step classes")
            continue
        bad = [describe(t) for t in spec.targets if not (is_step(t) or (isinstance(t, tuple) and len(t) == 2
                                                                        and is_step(t[0])))]
        if bad:
            problems.append(f"{label}: targets {', '.join(bad)} are not Step subclasses")
            continue
        key = (spec.step, spec.event)
        if key in parsed or key in route_map:
            problems.append(f"{label}: ({describe(spec.step)}, {spec.event!r}) already has a transition")
            continue
        route_map[key] = spec
    if problems or not start_pairs:
        return None, problems

    start, start_config = start_pairs[0]
    edges: list[Edge] = []
    for (source, event), pairs in parsed.items():
        edges.extend(Edge(source, event, target, config) for target, config in pairs)
    for (source, event), spec in route_map.items():
        for t in spec.targets:
            target, config = (t if isinstance(t, tuple) else (t, None))
            edges.append(Edge(source, event, target, config, routed=True))

    # nodes: the start step and everything an edge mentions, in first-seen order
    seen: dict[type[Step], None] = {start: None}
    for edge in edges:
        seen.setdefault(edge.source, None)
        seen.setdefault(edge.target, None)
    succs: dict[type[Step], list[type[Step]]] = {n: [] for n in seen}
    preds: dict[type[Step], list[type[Step]]] = {n: [] for n in seen}
    for edge in edges:
        if edge.target not in succs[edge.source]:
            succs[edge.source].append(edge.target)
            preds[edge.target].append(edge.source)

    # Kahn's algorithm: topological order, and whatever is left lies on or after a cycle
    indegree = {n: len(preds[n]) for n in seen}
    queue = deque(n for n in seen if indegree[n] == 0)
    order: list[type[Step]] = []
    while queue:
        n = queue.popleft()
        order.append(n)
        for s in succs[n]:
            indegree[s] -= 1
            if indegree[s] == 0:
                queue.append(s)
    if len(order) != len(seen):
        cycle = _find_cycle([n for n in seen if indegree[n] > 0], succs, indegree)
        problems.append("a cycle: " + " -> ".join(describe(s) for s in cycle))
        return None, problems

    configs: dict[type[Step], dict[str, Any]] = {}
    if start_config is not None:
        configs[start] = start_config
    for edge in edges:
        if edge.config is not None:
            configs.setdefault(edge.target, edge.config)
    graph = Graph(start=start, start_config=start_config, edges=edges, transitions=parsed, routes=route_map,
                  nodes=order, index={n: i for i, n in enumerate(order)}, preds=preds, succs=succs,
                  configs=configs)
    return graph, problems


def _find_cycle(candidates: list[type[Step]], succs: dict[type[Step], list[type[Step]]],
                indegree: dict[type[Step], int]) -> list[type[Step]]:
    """One cycle among the nodes Kahn's algorithm could not order (walk until a node repeats)."""
    remaining = set(candidates)
    node = candidates[0]
    path: list[type[Step]] = []
    position: dict[type[Step], int] = {}
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(s for s in succs[node] if s in remaining)
    # every remaining node has a remaining predecessor, so walking forward must repeat
    return path[position[node]:] + [node]


def validate_graph(graph: Graph) -> list[str]:
    """Every definition-time rule that needs the built graph (``docs/concepts/workflows.md``, *Validation*)."""
    problems: list[str] = []
    nodes = graph.nodes
    # reachability from the start
    reachable = {graph.start}
    queue = deque([graph.start])
    while queue:
        for s in graph.succs[queue.popleft()]:
            if s not in reachable:
                reachable.add(s)
                queue.append(s)
    unreachable = [n for n in nodes if n not in reachable]
    if unreachable:
        problems.append("steps unreachable from the start step: " + ", ".join(describe(s) for s in unreachable))

    names: dict[str, type[Step]] = {}
    keys: dict[str, list[type[Step]]] = {}
    for step in nodes:
        if not _known_step(graph, step, names, keys, problems):
            continue
        config = graph.configs.get(step, {})
        problems.extend(f"{describe(step)}: {p}" for p in step.config_problems(config))
        if not graph.succs[step] and not step.is_terminal:
            problems.append(f"leaf step {describe(step)} is not Done: every path must end in Done")
    problems.extend(_compensation_problems(graph, names, keys))
    for key, steps in keys.items():
        if len(steps) > 1:
            problems.append(f"steps {', '.join(describe(s) for s in steps)} share the context key {key!r}")
    if problems:
        return problems

    handled: dict[type[Step], set[str]] = {}
    for source, event in list(graph.transitions) + list(graph.routes):
        handled.setdefault(source, set()).add(event)
        if event not in source.events:
            problems.append(f"transition on event {event!r} that {describe(source)} does not declare "
                            f"(it declares {', '.join(source.events) or 'no events'})")
    for step in nodes:
        if step.is_terminal:
            continue
        missing = [e for e in step.required_events(graph.configs.get(step, {})) if e not in handled.get(step, ())]
        if missing:
            problems.append(f"{describe(step)} declares event(s) {', '.join(map(repr, missing))} with no transition")

    # fan-out branches must meet at a common non-terminal step before Done
    reach = graph.reach()
    terminal = 0
    for i, n in enumerate(nodes):
        if n.is_terminal:
            terminal |= 1 << i
    for (source, event), pairs in graph.transitions.items():
        branches = list(dict.fromkeys(step for step, _ in pairs))
        if len(branches) < 2:
            continue
        common = ~0
        for b in branches:
            i = graph.index[b]
            common &= (1 << i) | reach[i]
        if not common & ~terminal:
            problems.append(f"fan-out ({describe(source)}, {event!r}) -> {', '.join(describe(b) for b in branches)}: "
                            "the branches never converge before Done")
    return problems


def _known_step(graph: Graph, step: type[Step], names: dict[str, type[Step]], keys: dict[str, list[type[Step]]],
                problems: list[str]) -> bool:
    """Check a step's events and registry name, and make it known by name and context key;
    ``False`` (with a problem) when its events are malformed."""
    events = step.events
    if not isinstance(events, list | tuple) or not all(isinstance(e, str) and e for e in events):
        problems.append(f"{describe(step)}.events must be a sequence of event names (str), not {events!r}")
        return False
    name = step.registry_name()
    if name in names and names[name] is not step:
        problems.append(f"two different steps share the registry name {name!r}")
    names[name] = step
    graph.by_name[name] = step
    keys.setdefault(step.context_key(), []).append(step)
    return True


def _compensation_problems(graph: Graph, names: dict[str, type[Step]],
                           keys: dict[str, list[type[Step]]]) -> list[str]:
    """``compensate = SomeStep`` on nodes: a Step class that is not a node of the graph.

    Compensation steps join ``by_name`` and the context keys (their updates land under their own
    key); their events need no transitions.
    """
    problems: list[str] = []
    for step in graph.nodes:
        compensation: Any = step.__dict__.get("compensate", getattr(step, "compensate", None))
        if compensation is None:
            continue
        if not is_step(compensation):
            problems.append(f"{describe(step)}.compensate must be a Step subclass, not {describe(compensation)}")
            continue
        if compensation in graph.index:
            problems.append(f"{describe(step)}.compensate is {describe(compensation)}, which is a step of the graph: "
                            "a compensation step must not be a node")
            continue
        if compensation in graph.compensations.values() or _known_step(graph, compensation, names, keys, problems):
            graph.compensations[step] = compensation
    return problems


def check_json_safe(value: Any) -> bool:
    """Whether ``value`` is plain JSON with str keys (dict keys other than str are refused)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif not (item is None or isinstance(item, str | int | float | bool)):
            return False
    return _json_safe(value)
