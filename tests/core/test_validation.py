"""Definition-time validation (SPEC §1.4, §1.5): one test per rule.

Each bad class must raise ``WorkflowDefinitionError`` when it is created, with a message that
names the workflow (its registry name, ``module.QualName``) and the offending steps/events, and
must not be registered.
"""

from __future__ import annotations

from typing import Any

import pytest

from hephaestus_django.core import (
    Done,
    Step,
    Unique,
    VersionedWorkflow,
    Wait,
    WaitForEvent,
    Workflow,
    WorkflowDefinitionError,
    registry,
    route,
)
from tests.core.helpers import make_step


def _check(excinfo: pytest.ExceptionInfo[WorkflowDefinitionError], qualname: str, *fragments: str) -> str:
    """The error names the workflow and every fragment; the workflow is not registered."""
    message = str(excinfo.value)
    name = f"{__name__}.{qualname}"
    assert name in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not registry.is_registered(name)
    assert excinfo.value.problems and all(p.startswith(f"workflow {name}") for p in excinfo.value.problems)
    return message


class Alpha(Step):
    events = ("ok",)


class Beta(Step):
    events = ("ok",)


class Gamma(Step):
    events = ("ok",)


# ---- start step ----------------------------------------------------------------------------------
def test_start_step_missing() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class NoStart(Workflow):
            unique = Unique(key="k")
            transitions = {(Alpha, "ok"): Done}

    _check(excinfo, "test_start_step_missing.<locals>.NoStart", "start_step is missing")


@pytest.mark.parametrize("start", [int, "Alpha", Alpha(), [Alpha], (Alpha, "config"), (Alpha, {}, 1)])
def test_start_step_not_a_step(start: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadStart(Workflow):
            unique = Unique(key="k")
            start_step = start
            transitions = {(Alpha, "ok"): Done}

    _check(excinfo, "test_start_step_not_a_step.<locals>.BadStart", "start_step")


# ---- graph shape ---------------------------------------------------------------------------------
def test_cycle() -> None:
    class CycleOne(Step):
        events = ("next",)

    class CycleTwo(Step):
        events = ("back", "out")

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Cyclic(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): CycleOne, (CycleOne, "next"): CycleTwo,
                           (CycleTwo, "back"): CycleOne, (CycleTwo, "out"): Done}

    message = _check(excinfo, "test_cycle.<locals>.Cyclic", "cycle", "CycleOne", "CycleTwo")
    assert "Alpha" not in message.split("cycle", 1)[1]


def test_self_loop() -> None:
    class Loop(Step):
        events = ("again", "out")

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class SelfLoop(Workflow):
            unique = Unique(key="k")
            start_step = Loop
            transitions = {(Loop, "again"): Loop, (Loop, "out"): Done}

    _check(excinfo, "test_self_loop.<locals>.SelfLoop", "cycle", "Loop -> ")


def test_unreachable_step() -> None:
    class Orphan(Step):
        events = ("ok",)

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Unreachable(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done, (Orphan, "ok"): Done}

    _check(excinfo, "test_unreachable_step.<locals>.Unreachable", "unreachable", "Orphan")


def test_leaf_that_is_not_done() -> None:
    class DeadEnd(Step):
        events = ()

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Leafy(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): DeadEnd}

    _check(excinfo, "test_leaf_that_is_not_done.<locals>.Leafy", "leaf step", "DeadEnd", "not Done")


def test_fan_out_branches_that_never_converge() -> None:
    Split = make_step("SplitNoConverge", ("go",))

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Diverging(Workflow):
            unique = Unique(key="k")
            start_step = Split
            transitions = {(Split, "go"): [Alpha, Beta], (Alpha, "ok"): Done, (Beta, "ok"): Done}

    _check(excinfo, "test_fan_out_branches_that_never_converge.<locals>.Diverging", "fan-out",
           "SplitNoConverge", "'go'", "Alpha", "Beta", "never converge")


def test_fan_out_branches_that_converge_are_fine() -> None:
    Split = make_step("SplitConverge", ("go",))

    class Converging(Workflow):
        unique = Unique(key="k")
        start_step = Split
        transitions = {(Split, "go"): [Alpha, Beta], (Alpha, "ok"): Gamma, (Beta, "ok"): Gamma,
                       (Gamma, "ok"): Done}

    assert registry.is_registered(Converging.name)


def test_same_context_key() -> None:
    class First(Step):
        events = ("ok",)
        step_key = "shared"

    class Second(Step):
        events = ("ok",)
        step_key = "shared"

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class SameKey(Workflow):
            unique = Unique(key="k")
            start_step = First
            transitions = {(First, "ok"): Second, (Second, "ok"): Done}

    _check(excinfo, "test_same_context_key.<locals>.SameKey", "First", "Second", "'shared'")


def test_same_default_context_key() -> None:
    def make() -> type[Step]:
        class ChargeCard(Step):
            events = ("ok",)

        return ChargeCard

    first, second = make(), make()
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class SameSnake(Workflow):
            unique = Unique(key="k")
            start_step = first
            transitions = {(first, "ok"): second, (second, "ok"): Done}

    _check(excinfo, "test_same_default_context_key.<locals>.SameSnake", "ChargeCard", "'charge_card'")


# ---- events --------------------------------------------------------------------------------------
def test_transition_on_undeclared_event() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Undeclared(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done, (Alpha, "bogus"): Done}

    _check(excinfo, "test_transition_on_undeclared_event.<locals>.Undeclared", "'bogus'", "Alpha",
           "does not declare")


@pytest.mark.parametrize("events", ["ok", ("ok", 1), None, ("ok", ""), {"ok": 1}])
def test_events_not_a_sequence_of_str(events: Any) -> None:
    BadEvents = type("BadEvents", (Step,), {"events": events})

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class WithBadEvents(Workflow):
            unique = Unique(key="k")
            start_step = BadEvents
            transitions = {(BadEvents, "ok"): Done}

    _check(excinfo, "test_events_not_a_sequence_of_str.<locals>.WithBadEvents", "BadEvents.events",
           "sequence")


def test_declared_event_without_transition() -> None:
    class TwoWays(Step):
        events = ("valid", "invalid")

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Unhandled(Workflow):
            unique = Unique(key="k")
            start_step = TwoWays
            transitions = {(TwoWays, "valid"): Done}

    _check(excinfo, "test_declared_event_without_transition.<locals>.Unhandled", "TwoWays", "'invalid'",
           "no transition")


def test_wait_for_event_timeout_needs_a_transition_only_with_a_timeout() -> None:
    class NoTimeout(Workflow):
        unique = Unique(key="k")
        start_step = (WaitForEvent, {"event_name": "paid"})
        transitions = {(WaitForEvent, "received"): Done}

    assert registry.is_registered(NoTimeout.name)

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class TimeoutUnhandled(Workflow):
            unique = Unique(key="k")
            start_step = (WaitForEvent, {"event_name": "paid", "timeout": 30})
            transitions = {(WaitForEvent, "received"): Done}

    qualname = "test_wait_for_event_timeout_needs_a_transition_only_with_a_timeout.<locals>.TimeoutUnhandled"
    _check(excinfo, qualname, "WaitForEvent", "'timeout'", "no transition")


def test_bad_wait_for_event_config() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadWaitForEvent(Workflow):
            unique = Unique(key="k")
            start_step = (WaitForEvent, {"event_name": "", "timeout": -5})
            transitions = {(WaitForEvent, "received"): Done, (WaitForEvent, "timeout"): Done}

    _check(excinfo, "test_bad_wait_for_event_config.<locals>.BadWaitForEvent", "event_name", "'timeout'")


# ---- unique --------------------------------------------------------------------------------------
def test_unique_missing() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class NoUnique(Workflow):
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}

    _check(excinfo, "test_unique_missing.<locals>.NoUnique", "unique is missing")


@pytest.mark.parametrize("key", ["Order", "order-id", "", "order\n", None, 5])
def test_unique_bad_key(key: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadKey(Workflow):
            unique = Unique(key=key)
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}

    _check(excinfo, "test_unique_bad_key.<locals>.BadKey", f"unique key {key!r}", "[a-z0-9]+")


@pytest.mark.parametrize("scope", ["tenant", "", None, "Workflow"])
def test_unique_bad_scope(scope: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadScope(Workflow):
            unique = Unique(key="k", scope=scope)
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}

    _check(excinfo, "test_unique_bad_scope.<locals>.BadScope", f"unique scope {scope!r}",
           "workflow, version, global, none")


def test_unique_not_a_unique() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class NotUnique(Workflow):
            unique = "orderid"
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}

    _check(excinfo, "test_unique_not_a_unique.<locals>.NotUnique", "unique must be a Unique")


def test_unique_only_records_its_arguments() -> None:
    unique = Unique(key="Not Valid", scope="nowhere")
    assert (unique.key, unique.scope) == ("Not Valid", "nowhere")
    assert Unique(key="k").scope == "workflow"


# ---- metadata, tags, config, version -------------------------------------------------------------
@pytest.mark.parametrize("meta", [{"when": object()}, {1: "int key"}, {"nan": float("nan")}, ["not", "dict"],
                                      {"nested": {"set": {1}}}])
def test_non_json_safe_metadata(meta: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadMetadata(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}
            metadata = meta

    _check(excinfo, "test_non_json_safe_metadata.<locals>.BadMetadata", "metadata", "JSON-safe")


def test_json_safe_metadata_and_tags_are_fine() -> None:
    class Described(Workflow):
        unique = Unique(key="k")
        start_step = Alpha
        transitions = {(Alpha, "ok"): Done}
        metadata = {"owner": "team-a", "sla": {"hours": 4, "strict": True, "levels": [1, 2.5, None]}}
        tags = ["billing", "critical"]

    assert registry.get_workflow(Described.name) is Described


@pytest.mark.parametrize("bad_tags", ["billing", ["billing", 1], None, {"billing"}])
def test_bad_tags(bad_tags: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadTags(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}
            tags = bad_tags

    _check(excinfo, "test_bad_tags.<locals>.BadTags", "tags must be a list of str")


@pytest.mark.parametrize(("config", "fragment"), [
    ({}, "'duration'"),
    ({"duration": "1"}, "'duration'"),
    ({"duration": -1}, "'duration'"),
    ({"duration": 1.5}, "'duration'"),
    ({"duration": True}, "'duration'"),
    ({"duration": 1, "unit": "week"}, "'unit'"),
])
def test_bad_wait_config(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadWait(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): (Wait, config), (Wait, "timeout"): Done}

    _check(excinfo, "test_bad_wait_config.<locals>.BadWait", "Wait", fragment)


def test_bad_workflow_version() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadVersion(Workflow):
            version = 0
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}

    _check(excinfo, "test_bad_workflow_version.<locals>.BadVersion", "version must be a positive int")


@pytest.mark.parametrize(("target", "fragment"), [
    (int, "int is not a Step subclass"),
    ([], "empty fan-out"),
    ((Beta, "cfg"), "config of Beta must be a dict"),
    ((Beta, {}, 2), "is not (StepClass, config_dict)"),
])
def test_bad_transition_targets(target: Any, fragment: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadTarget(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): target, (Beta, "ok"): Done}

    _check(excinfo, "test_bad_transition_targets.<locals>.BadTarget", "Alpha", "'ok'", fragment)


def test_bad_transition_key() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadKeyShape(Workflow):
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done, "Alpha.ok": Done}

    _check(excinfo, "test_bad_transition_key.<locals>.BadKeyShape", "'Alpha.ok'", "(StepClass, 'event')")


# ---- routes --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("targets", "fragment"), [
    ([int, Beta], "targets int are not Step subclasses"),
    (["Beta"], "are not Step subclasses"),
    ([], "non-empty list"),
])
def test_route_targets_not_steps(targets: Any, fragment: str) -> None:
    class Router(Step):
        events = ("routed",)

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadRoute(Workflow):
            unique = Unique(key="k")
            start_step = Router
            transitions = {(Beta, "ok"): Done}

            @route(Router, "routed", targets=targets)
            def pick(context: Any) -> Any:
                return Beta

    _check(excinfo, "test_route_targets_not_steps.<locals>.BadRoute", "route pick", fragment)


def test_route_on_undeclared_event() -> None:
    class Router(Step):
        events = ("routed",)

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class WrongEvent(Workflow):
            unique = Unique(key="k")
            start_step = Router
            transitions = {(Router, "routed"): Beta, (Beta, "ok"): Done}

            @route(Router, "elsewhere", targets=[Beta])
            def pick(context: Any) -> Any:
                return Beta

    _check(excinfo, "test_route_on_undeclared_event.<locals>.WrongEvent", "'elsewhere'", "Router")


def test_route_and_transition_on_the_same_event() -> None:
    class Router(Step):
        events = ("routed",)

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Twice(Workflow):
            unique = Unique(key="k")
            start_step = Router
            transitions = {(Router, "routed"): Beta, (Beta, "ok"): Done}

            @route(Router, "routed", targets=[Beta])
            def pick(context: Any) -> Any:
                return Beta

    _check(excinfo, "test_route_and_transition_on_the_same_event.<locals>.Twice", "already has a transition")


def test_route_targets_count_for_reachability_and_leaves() -> None:
    class Router(Step):
        events = ("routed",)

    class DeadEnd(Step):
        events = ()

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class RoutedLeaf(Workflow):
            unique = Unique(key="k")
            start_step = Router
            transitions = {(Beta, "ok"): Done}

            @route(Router, "routed", targets=[Beta, DeadEnd])
            def pick(context: Any) -> Any:
                return Beta

    _check(excinfo, "test_route_targets_count_for_reachability_and_leaves.<locals>.RoutedLeaf", "DeadEnd",
           "not Done")


# ---- several problems at once ---------------------------------------------------------------------
def test_every_problem_is_reported() -> None:
    class Orphan(Step):
        events = ("ok",)

    class TwoWays(Step):
        events = ("a", "b")

    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Many(Workflow):
            unique = Unique(key="K")
            tags = "x"
            start_step = TwoWays
            transitions = {(TwoWays, "a"): Done, (Orphan, "ok"): Done}

    message = _check(excinfo, "test_every_problem_is_reported.<locals>.Many", "unique key", "tags", "Orphan")
    assert len(excinfo.value.problems) >= 3, message


def test_name_clash_with_another_workflow() -> None:
    class Original(Workflow):
        name = "validation.clash"
        unique = Unique(key="k")
        start_step = Alpha
        transitions = {(Alpha, "ok"): Done}

    with pytest.raises(WorkflowDefinitionError, match="already used"):
        class Impostor(Workflow):
            name = "validation.clash"
            unique = Unique(key="k")
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}

    assert registry.get_workflow("validation.clash") is Original


def test_abstract_workflows_are_not_validated_or_registered() -> None:
    class Base(Workflow):
        abstract = True
        unique = Unique(key="k")

    assert not registry.is_registered(Base.name)

    class Concrete(Base):
        start_step = Alpha
        transitions = {(Alpha, "ok"): Done}

    assert registry.get_workflow(Concrete.name) is Concrete
    assert Concrete.unique == Unique(key="k")


# ---- VersionedWorkflow ---------------------------------------------------------------------------
def _version_workflow(n: int, unique: Unique | None = None) -> type[Workflow]:
    wf_unique = unique or Unique(key="userid")

    class Version(Workflow):
        name = f"validation.version.{n}.{wf_unique.key}.{wf_unique.scope}"
        version = n
        unique = wf_unique
        start_step = Alpha
        transitions = {(Alpha, "ok"): Done}

    return Version


@pytest.mark.parametrize("key", ["1", 0, -2, True, 1.0])
def test_versioned_bad_keys(key: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadKeys(VersionedWorkflow):
            unique = Unique(key="userid")
            versions = {key: _version_workflow(1)}
            current = 1

    _check(excinfo, "test_versioned_bad_keys.<locals>.BadKeys", f"version key {key!r}")


def test_versioned_version_mismatch() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Mismatch(VersionedWorkflow):
            unique = Unique(key="userid")
            versions = {1: _version_workflow(1), 3: _version_workflow(2)}
            current = 1

    _check(excinfo, "test_versioned_version_mismatch.<locals>.Mismatch", "versions[3]", "whose version is 2")


@pytest.mark.parametrize("value", [Alpha, "Workflow", None])
def test_versioned_value_not_a_workflow(value: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class NotWorkflow(VersionedWorkflow):
            unique = Unique(key="userid")
            versions = {1: _version_workflow(1), 2: value}
            current = 1

    _check(excinfo, "test_versioned_value_not_a_workflow.<locals>.NotWorkflow", "versions[2]",
           "must be a concrete Workflow")


def test_versioned_current_missing() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class NoCurrent(VersionedWorkflow):
            unique = Unique(key="userid")
            versions = {1: _version_workflow(1)}

    _check(excinfo, "test_versioned_current_missing.<locals>.NoCurrent", "current is missing")


def test_versioned_current_not_present() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class AbsentCurrent(VersionedWorkflow):
            unique = Unique(key="userid")
            versions = {1: _version_workflow(1), 2: _version_workflow(2)}
            current = 3

    _check(excinfo, "test_versioned_current_not_present.<locals>.AbsentCurrent", "current version 3",
           "[1, 2]")


@pytest.mark.parametrize("bad_versions", [{}, None, [1]])
def test_versioned_versions_empty_or_not_a_dict(bad_versions: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class NoVersions(VersionedWorkflow):
            unique = Unique(key="userid")
            versions = bad_versions
            current = 1

    _check(excinfo, "test_versioned_versions_empty_or_not_a_dict.<locals>.NoVersions", "versions must be")


@pytest.mark.parametrize("other", [Unique(key="email"), Unique(key="userid", scope="global")])
def test_versioned_unique_differs_from_umbrella(other: Unique) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class Differing(VersionedWorkflow):
            unique = Unique(key="userid")
            versions = {1: _version_workflow(1), 2: _version_workflow(2, other)}
            current = 2

    _check(excinfo, "test_versioned_unique_differs_from_umbrella.<locals>.Differing", "versions[2]",
           repr(other), "umbrella")


def test_versioned_unique_missing() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class NoUmbrellaUnique(VersionedWorkflow):
            versions = {1: _version_workflow(1)}
            current = 1

    _check(excinfo, "test_versioned_unique_missing.<locals>.NoUmbrellaUnique", "unique is missing")


def test_version_workflows_must_declare_unique_themselves() -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class VersionWithoutUnique(Workflow):
            version = 2
            start_step = Alpha
            transitions = {(Alpha, "ok"): Done}

    _check(excinfo, "test_version_workflows_must_declare_unique_themselves.<locals>.VersionWithoutUnique",
           "unique is missing")


def test_valid_versioned_workflow_is_registered() -> None:
    class Fine(VersionedWorkflow):
        unique = Unique(key="userid")
        versions = {1: _version_workflow(1), 2: _version_workflow(2)}
        current = 2

    assert registry.get_workflow(Fine.name) is Fine
    assert Fine.all_versions() == [1, 2]


# ---- routing and concurrency (SPEC §11) ------------------------------------------------------------
@pytest.mark.parametrize(("attrs", "fragment"), [
    ({"queue_name": ""}, "step Routed queue_name must be None or a non-empty str without surrounding spaces, not ''"),
    ({"queue_name": " mail"}, "not ' mail'"),
    ({"queue_name": 7}, "queue_name must be None or a non-empty str without surrounding spaces, not 7"),
    ({"priority": 101}, "step Routed priority must be None or an int from -100 to 100, not 101"),
    ({"priority": -101}, "priority must be None or an int from -100 to 100, not -101"),
    ({"priority": True}, "priority must be None or an int from -100 to 100, not True"),
    ({"priority": 1.5}, "not 1.5"),
    ({"concurrency_limit": 0}, "step Routed concurrency_limit must be None or a positive int, not 0"),
    ({"concurrency_limit": "2"}, "concurrency_limit must be None or a positive int, not '2'"),
    ({"concurrency_limit": False}, "concurrency_limit must be None or a positive int, not False"),
])
def test_step_routing_and_limit_are_checked(attrs: dict[str, Any], fragment: str) -> None:
    routed = make_step("Routed", **attrs)
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadRouting(Workflow):
            unique = Unique(key="k")
            start_step = routed
            transitions = {(routed, "ok"): Done}

    _check(excinfo, "test_step_routing_and_limit_are_checked.<locals>.BadRouting", fragment)


@pytest.mark.parametrize(("attrs", "fragment"), [
    ({"queue_name": ""}, "workflow queue_name must be None or a non-empty str"),
    ({"priority": 500}, "workflow priority must be None or an int from -100 to 100, not 500"),
])
def test_workflow_routing_defaults_are_checked(attrs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        type("BadDefaults", (Workflow,), {"__module__": __name__, "__qualname__": "BadDefaults",
                                          "unique": Unique(key="k"), "start_step": Alpha,
                                          "transitions": {(Alpha, "ok"): Done}, **attrs})

    _check(excinfo, "BadDefaults", fragment)


def test_a_compensation_steps_routing_is_checked_too() -> None:
    undo = make_step("Undo", priority=500)
    done = make_step("DoIt", compensate=undo)
    with pytest.raises(WorkflowDefinitionError) as excinfo:
        class BadUndo(Workflow):
            unique = Unique(key="k")
            start_step = done
            transitions = {(done, "ok"): Done}

    _check(excinfo, "test_a_compensation_steps_routing_is_checked_too.<locals>.BadUndo",
           "step Undo priority must be None or an int from -100 to 100, not 500")


def test_good_routing_is_accepted() -> None:
    routed = make_step("RoutedOk", queue_name="mail", priority=-100, concurrency_limit=3)

    class GoodRouting(Workflow):
        unique = Unique(key="k")
        queue_name = "flows"
        priority = 100
        start_step = routed
        transitions = {(routed, "ok"): Done}

    assert registry.is_registered(GoodRouting.name)


def test_definition_errors_are_collected_only_when_asked():
    """Outside collection a broken class raises; inside, it is recorded, unregistered and unusable."""
    class Lonely(Step):
        events = ("x",)

    with pytest.raises(WorkflowDefinitionError, match=r"leaf step \S*Lonely is not Done"):
        class Raised(Workflow):
            unique = Unique(key="raised")
            start_step = Lonely
            transitions = {}

    with registry.collect_definition_errors() as errors:
        class Recorded(Workflow):
            unique = Unique(key="recorded")
            start_step = Lonely
            transitions = {}

        class AlsoRecorded(Workflow):
            unique = Unique(key="Bad Key")
            start_step = Lonely
            transitions = {(Lonely, "x"): Done}

    assert [str(e).splitlines()[0] for e in errors] == [
        f"workflow {Recorded.name}:", f"workflow {AlsoRecorded.name}:"]
    assert "unique key 'Bad Key' must match [a-z0-9]+" in str(errors[1])
    assert not registry.is_registered(Recorded.name)
    with pytest.raises(WorkflowDefinitionError, match=r"leaf step \S*Lonely is not Done"):
        Recorded.definition()
    with pytest.raises(WorkflowDefinitionError, match=r"leaf step \S*Lonely is not Done"):
        Recorded.start("v", {})
