"""The benchmark workloads as workflows: the peer bench's ``linear5`` and ``fanout3``.

Each step stores a small dict (the peer bench's ``step_result``) in the instance's context.
Defined with a factory so both shapes share one step class per position.
"""

from __future__ import annotations

from typing import Any

from hephaestus_django import Done, Ok, Step, Unique, Workflow

try:  # the peer bench's own definition of a step's work, when it is on the path
    from peers.common import step_result
except ImportError:
    def step_result(instance: int, step: str) -> dict[str, Any]:
        """The same 'work' as the peer bench's ``peers.common.step_result``."""
        return {"instance": instance, "step": step, "ok": True, "value": (instance * 31 + len(step)) % 997}


class BenchStep(Step):
    events = ("ok",)
    label = ""

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return Ok("ok", step_result(int(context.initial["i"]), self.label))


def _step(shape: str, label: str) -> type[Step]:
    name = f"{shape.title()}{label.title()}"
    cls = type(name, (BenchStep,), {"__module__": __name__, "__qualname__": name, "label": label,
                                    "step_key": label})
    globals()[name] = cls
    return cls


S = {label: _step("linear", label) for label in ("s1", "s2", "s3", "s4", "s5")}


class Linear5(Workflow):
    name = "bench.linear5"
    unique = Unique(key="linear")
    start_step = S["s1"]
    transitions = {
        (S["s1"], "ok"): S["s2"], (S["s2"], "ok"): S["s3"], (S["s3"], "ok"): S["s4"], (S["s4"], "ok"): S["s5"],
        (S["s5"], "ok"): Done,
    }


F = {label: _step("fanout", label) for label in ("start", "b1", "b2", "b3", "join", "end")}


class Fanout3(Workflow):
    """start, three parallel branches, a join after all three, end (6 steps, plus Done)."""

    name = "bench.fanout3"
    unique = Unique(key="fanout")
    start_step = F["start"]
    transitions = {
        (F["start"], "ok"): [F["b1"], F["b2"], F["b3"]],
        (F["b1"], "ok"): F["join"], (F["b2"], "ok"): F["join"], (F["b3"], "ok"): F["join"],
        (F["join"], "ok"): F["end"],
        (F["end"], "ok"): Done,
    }


SHAPES = {"linear5": (Linear5, 5), "fanout3": (Fanout3, 6)}
