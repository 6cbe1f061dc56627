"""Uniqueness scopes enforced by MemoryStorage, and restarts after completion (SPEC §1.6)."""

from __future__ import annotations

import pytest

from hephaestus_django.core import AlreadyRunning, Done, Unique, VersionedWorkflow, WaitForEvent, Workflow
from hephaestus_django.core.runner import Runner
from tests.core.helpers import history


def _waiting(scope: str, wf_name: str = "") -> type[Workflow]:
    """A workflow that waits; ``wf_name`` registers another workflow with the same key."""

    class Waiting(Workflow):
        if wf_name:
            name = wf_name
        unique = Unique(key="order", scope=scope)
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): Done}

    return Waiting


def test_scope_workflow(service: Runner) -> None:
    first, second = _waiting("workflow"), _waiting("workflow", "uniqueness.Other")
    assert service.start(first, "1", {}) == "order::1"
    with pytest.raises(AlreadyRunning):
        service.start(first, "1", {})
    # the same id may be active in another workflow
    assert service.start(second, "1", {}) == "order::1"
    assert service.start(first, "2", {}) == "order::2"
    assert len(service.list(first)) == 2


def test_scope_version(service: Runner) -> None:
    def version(n: int) -> type[Workflow]:
        class Version(Workflow):
            name = f"scope_version_v{n}"
            version = n
            unique = Unique(key="order", scope="version")
            start_step = WaitForEvent
            transitions = {(WaitForEvent, "received"): Done}

        return Version

    class Versioned(VersionedWorkflow):
        unique = Unique(key="order", scope="version")
        versions = {1: version(1), 2: version(2)}
        current = 2

    service.start(Versioned, "1", {}, version=1)
    with pytest.raises(AlreadyRunning):
        service.start(Versioned, "1", {}, version=1)
    service.start(Versioned, "1", {}, version=2)
    with pytest.raises(AlreadyRunning):
        service.start(Versioned, "1", {})
    assert sorted(i.workflow_version for i in service.list(Versioned)) == [1, 2]


def test_scope_global(service: Runner) -> None:
    plain = _waiting("workflow")
    glob = _waiting("global", "uniqueness.Global")
    other_glob = _waiting("global", "uniqueness.OtherGlobal")

    service.start(plain, "1", {})
    with pytest.raises(AlreadyRunning):
        service.start(glob, "1", {})
    service.start(glob, "2", {})
    with pytest.raises(AlreadyRunning):
        service.start(other_glob, "2", {})
    with pytest.raises(AlreadyRunning):
        service.start(glob, "2", {})
    assert [i.id for i in service.list(glob)] == ["order::2"]
    assert service.list(other_glob) == []


def test_scope_none(service: Runner) -> None:
    free = _waiting("none")
    first = service.start(free, "1", {})
    second = service.start(free, "1", {})
    assert first != second
    assert first.startswith("order::1::") and second.startswith("order::1::")
    assert len(service.list(free)) == 2


@pytest.mark.parametrize("scope", ["workflow", "version", "global"])
def test_finished_instance_does_not_block_and_is_kept(service: Runner, scope: str) -> None:
    flow = _waiting(scope)
    service.start(flow, "1", {})
    finished = service.resume("order::1", "received")
    assert finished.status == "completed"
    service.start(flow, "1", {})
    instances = service.list(flow)
    assert [i.status for i in instances] == ["waiting", "completed"]  # newest first
    assert instances[0].pk > instances[1].pk
    newest = service.get("order::1")
    assert newest.status == "waiting"
    assert newest.pk == instances[0].pk
    assert service.get("order::1", workflow=flow).pk == newest.pk
    old = instances[1]
    assert history(old) == history(finished)
    # a cancelled one does not block either
    service.cancel("order::1")
    third = service.start_instance(flow, {}, id="order::1")
    assert third.status == "waiting"
    assert [i.status for i in service.list(flow)] == ["waiting", "cancelled", "completed"]


def test_id_only_lookups_take_the_newest_across_workflows(service: Runner) -> None:
    first, second = _waiting("workflow"), _waiting("workflow", "uniqueness.Second")
    service.start(first, "1", {})
    service.start(second, "1", {})
    assert service.get("order::1").workflow is second
    assert service.get("order::1", workflow=first).workflow is first
    resumed = service.resume("order::1", "received")
    assert resumed.workflow is second
    assert service.get("order::1", workflow=first).status == "waiting"
    resumed = service.resume("order::1", "received", workflow=first)
    assert resumed.workflow is first and resumed.status == "completed"
