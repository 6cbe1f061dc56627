"""Graphs of thousands of steps validate and run without recursion (SPEC §1.4, §4)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from hephaestus_django.core import Done, Step, Unique, Workflow, WorkflowDefinitionError
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner
from tests.core.helpers import unique_name

N = 2000


class Counted(Step):
    events = ("ok",)
    runs: list[str]

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        self.runs.append(type(self).__name__)
        return "ok"


@pytest.fixture
def low_recursion_limit() -> Iterator[None]:
    """Whatever the engine does must not recurse per step: 200 frames are far fewer than 2,000 steps."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _steps(count: int, runs: list[str]) -> list[type[Step]]:
    prefix = unique_name("Big")
    return [type(f"{prefix}N{i}", (Counted,), {"runs": runs}) for i in range(count)]


def test_long_linear_chain(low_recursion_limit: None) -> None:
    runs: list[str] = []
    steps = _steps(N, runs)
    transitions: dict[Any, Any] = {(a, "ok"): b for a, b in zip(steps, steps[1:], strict=False)}
    transitions[(steps[-1], "ok")] = Done
    workflow = type(unique_name("Chain"), (Workflow,),
                    {"unique": Unique(key="chain"), "start_step": steps[0], "transitions": transitions})
    assert len(workflow.graph.nodes) == N + 1

    instance = Runner(MemoryStorage()).start_instance(workflow, {}, id="chain::1")
    assert instance.status == "completed"
    assert runs == [s.__name__ for s in steps]
    assert len(instance.execution_history) == N + 1
    assert instance.execution_history[-1].step_ref is Done


def test_wide_fan_out_fan_in(low_recursion_limit: None) -> None:
    runs: list[str] = []
    split, join, *branches = _steps(N, runs)
    transitions: dict[Any, Any] = {(split, "ok"): branches, (join, "ok"): Done}
    transitions.update({(b, "ok"): join for b in branches})
    workflow = type(unique_name("Wide"), (Workflow,),
                    {"unique": Unique(key="wide"), "start_step": split, "transitions": transitions})
    assert len(workflow.graph.preds[join]) == N - 2

    instance = Runner(MemoryStorage()).start_instance(workflow, {}, id="wide::1")
    assert instance.status == "completed"
    assert len(runs) == N
    assert runs.count(join.__name__) == 1
    assert runs[0] == split.__name__ and runs[-1] == join.__name__
    assert len(instance.completed_steps) == N + 1


def test_long_cycle_is_reported_without_recursion(low_recursion_limit: None) -> None:
    runs: list[str] = []
    steps = _steps(N, runs)
    transitions: dict[Any, Any] = {(a, "ok"): b for a, b in zip(steps, steps[1:], strict=False)}
    transitions[(steps[-1], "ok")] = steps[1]  # back to the second step: a cycle of N - 1 steps
    with pytest.raises(WorkflowDefinitionError, match="cycle"):
        type(unique_name("Loop"), (Workflow,),
             {"unique": Unique(key="loop"), "start_step": steps[0], "transitions": transitions})


def test_long_chain_with_unreachable_tail_is_reported(low_recursion_limit: None) -> None:
    runs: list[str] = []
    steps = _steps(N, runs)
    transitions: dict[Any, Any] = {(a, "ok"): b for a, b in zip(steps, steps[1:], strict=False)}
    transitions[(steps[-1], "ok")] = Done
    with pytest.raises(WorkflowDefinitionError, match="unreachable") as excinfo:
        type(unique_name("Tail"), (Workflow,),
             {"unique": Unique(key="tail"), "start_step": steps[N // 2], "transitions": transitions})
    assert steps[0].__qualname__ in str(excinfo.value)
