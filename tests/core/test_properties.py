"""Property-based: random valid DAGs always run to completion with correct joins (SPEC §1.4).

A workflow is drawn as a structured program of blocks (a step, a sequence, an exclusive branch
whose event - or dynamic route - is chosen by the context, a fan-out whose arms reconverge at a
join), then built backwards into Step classes made with ``type()``; every leaf goes to ``Done``.
A reference model walks the same edges with the same choices to say which steps must run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hephaestus_django.core import Done, Ok, Step, Unique, Workflow, registry, route
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner

_ids = itertools.count(1)
MAX_STEPS = 40


class GenStep(Step):
    """Logs its run in the per-example log, then emits the event its kind and the context choose."""

    log: list[str]
    kind = "plain"

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        name = type(self).__name__
        self.log.append(name)
        if self.kind == "branch":
            event = self.events[context.initial["choices"][name]]
        else:
            event = self.events[0]
        return Ok(event, {"ran": len(self.log)})


@dataclass
class Build:
    """What the builder made: classes in creation order (successors first) and the edges it drew."""

    log: list[str] = field(default_factory=list)
    created: list[type[Step]] = field(default_factory=list)
    transitions: dict[tuple[type[Step], str], Any] = field(default_factory=dict)
    routes: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, int] = field(default_factory=dict)
    #: what each step activates when it completes, given ``choices``
    emits: dict[type[Step], list[type[Step]]] = field(default_factory=dict)
    preds: dict[type[Step], set[type[Step]]] = field(default_factory=dict)

    def step(self, kind: str, events: tuple[str, ...]) -> type[Step]:
        cls = type(f"GenS{next(_ids)}", (GenStep,), {"events": events, "kind": kind, "log": self.log})
        self.created.append(cls)
        return cls

    def edge(self, source: type[Step], target: type[Step]) -> None:
        self.preds.setdefault(target, set()).add(source)


def draw_block(data: st.DataObject, depth: int, budget: list[int]) -> tuple[Any, ...]:
    kinds = ["step"]
    if depth < 3 and budget[0] < MAX_STEPS:
        kinds += ["seq", "branch", "parallel"]
    kind = data.draw(st.sampled_from(kinds))
    budget[0] += 1
    if kind == "step":
        return ("step",)
    if kind in ("seq", "parallel"):
        return (kind, [draw_block(data, depth + 1, budget) for _ in range(data.draw(st.integers(2, 3)))])
    arms: list[tuple[str, Any]] = []
    for _ in range(data.draw(st.integers(2, 3))):
        arm = data.draw(st.sampled_from(["block", "empty", "done"]))
        arms.append((arm, draw_block(data, depth + 1, budget) if arm == "block" else None))
    if all(arm == "done" for arm, _ in arms):
        arms[0] = ("empty", None)  # at least one arm goes on, so every block reaches its exit
    return ("branch", data.draw(st.booleans()), arms)


def build(data: st.DataObject, block: tuple[Any, ...], nxt: type[Step], b: Build) -> type[Step]:
    """Make the classes of ``block`` leading to ``nxt``; returns the block's entry step."""
    kind = block[0]
    if kind == "step":
        cls = b.step("plain", ("ok",))
        b.transitions[(cls, "ok")] = nxt
        b.emits[cls] = [nxt]
        b.edge(cls, nxt)
        return cls
    if kind == "seq":
        entry = nxt
        for child in reversed(block[1]):
            entry = build(data, child, entry, b)
        return entry
    if kind == "parallel":
        join = build(data, ("step",), nxt, b)
        entries = [build(data, child, join, b) for child in block[1]]
        split = b.step("plain", ("go",))
        b.transitions[(split, "go")] = entries
        b.emits[split] = entries
        for entry in entries:
            b.edge(split, entry)
        return split
    _, routed, arms = block
    targets = []
    for arm, child in arms:
        if arm == "done":
            targets.append(Done)
        elif arm == "empty":
            targets.append(nxt)
        else:
            targets.append(build(data, child, nxt, b))
    choice = data.draw(st.integers(0, len(arms) - 1))
    if routed:
        cls = b.step("plain", ("routed",))

        def pick(context: Any, _name: str = cls.__name__, _targets: list[Any] = targets) -> Any:
            return _targets[context.initial["choices"][_name]]

        b.routes[f"route_{cls.__name__}"] = route(cls, "routed", targets=list(dict.fromkeys(targets)))(pick)
    else:
        cls = b.step("branch", tuple(f"e{i}" for i in range(len(arms))))
        for i, target in enumerate(targets):
            b.transitions[(cls, f"e{i}")] = target
    b.choices[cls.__name__] = choice
    b.emits[cls] = [targets[choice]]
    for target in targets:
        b.edge(cls, target)
    return cls


def expected_run(start: type[Step], b: Build) -> set[str]:
    """Reference model: a step runs when a step that ran activates it (successors were made first)."""
    reached: set[type[Step]] = {start}
    for cls in reversed(b.created):
        if cls in reached:
            reached.update(b.emits[cls])
    return {cls.__name__ for cls in reached if cls is not Done}


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(st.data())
def test_random_valid_dags_run_to_completion(data: st.DataObject) -> None:
    b = Build()
    shape = draw_block(data, 0, [0])
    start = build(data, shape, Done, b)
    namespace = {"unique": Unique(key="gen"), "start_step": start, "transitions": b.transitions, **b.routes}
    workflow = type(f"GenFlow{next(_ids)}", (Workflow,), namespace)
    try:
        service = Runner(MemoryStorage())
        instance = service.start_instance(workflow, {"choices": b.choices}, id="gen::1")

        assert instance.status == "completed", (instance.status, instance.error)
        assert instance.active_steps == set() and instance.pending_joins == set()
        log = b.log
        assert len(log) == len(set(log)), f"a step ran twice: {log}"
        assert set(log) == expected_run(start, b)
        position = {name: i for i, name in enumerate(log)}
        for target, preds in b.preds.items():
            if target is Done or target.__name__ not in position or len(preds) < 2:
                continue
            for pred in preds:
                if pred.__name__ in position:
                    assert position[pred.__name__] < position[target.__name__], (pred, target, log)
        kinds = ("completed", "resumed", "timer_fired")
        ran = [e.step_ref.__name__ for e in instance.execution_history if e.kind in kinds]
        assert ran == [*log, "Done"]
        assert set(instance.context.steps) == {cls.context_key() for cls in b.created if cls.__name__ in log}
    finally:
        registry.unregister(workflow.name)
