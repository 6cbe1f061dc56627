"""Versioned workflows: resolution on start, and instances keep their version (SPEC §1.5)."""

from __future__ import annotations

from typing import Any

import pytest

from hephaestus_django.core import Done, Unique, VersionedWorkflow, WaitForEvent, Workflow
from hephaestus_django.core.runner import Runner
from tests.core.helpers import CALLS, completed, make_step

UNIQUE = Unique(key="userid")


def _create_user() -> tuple[type[VersionedWorkflow], type[Workflow], type[Workflow]]:
    StepV1 = make_step("StepV1")
    StepV2 = make_step("StepV2")

    class CreateUserV1(Workflow):
        version = 1
        unique = UNIQUE
        start_step = StepV1
        transitions = {(StepV1, "ok"): Done}

    class CreateUserV2(Workflow):
        version = 2
        unique = UNIQUE
        start_step = WaitForEvent
        transitions = {(WaitForEvent, "received"): StepV2, (StepV2, "ok"): Done}

    class CreateUser(VersionedWorkflow):
        unique = UNIQUE
        versions = {1: CreateUserV1, 2: CreateUserV2}
        current = 2

        @classmethod
        def version_for(cls, versions: dict[int, type[Workflow]], context: Any) -> int | None:
            return 1 if context.get("legacy") else None

    return CreateUser, CreateUserV1, CreateUserV2


def test_current_version_by_default(service: Runner) -> None:
    CreateUser, _, _ = _create_user()
    instance = service.start_instance(CreateUser, {}, id="userid::1")
    assert instance.workflow is CreateUser
    assert instance.workflow_version == 2
    assert instance.status == "waiting"


def test_explicit_version(service: Runner) -> None:
    CreateUser, _, _ = _create_user()
    instance = service.start_instance(CreateUser, {}, id="userid::1", version=1)
    assert instance.workflow_version == 1
    assert instance.status == "completed"
    assert completed(instance) == ["StepV1", "Done"]


def test_explicit_version_wins_over_version_for(service: Runner) -> None:
    CreateUser, _, _ = _create_user()
    instance = service.start_instance(CreateUser, {"legacy": True}, id="userid::1", version=2)
    assert instance.workflow_version == 2


def test_version_for(service: Runner) -> None:
    CreateUser, _, _ = _create_user()
    legacy = service.start_instance(CreateUser, {"legacy": True}, id="userid::1")
    assert legacy.workflow_version == 1
    assert CALLS == ["StepV1"]
    modern = service.start_instance(CreateUser, {"legacy": False}, id="userid::2")
    assert modern.workflow_version == 2


@pytest.mark.parametrize("version", [3, 0, -1, "2", True])
def test_unknown_explicit_version(service: Runner, version: Any) -> None:
    CreateUser, _, _ = _create_user()
    with pytest.raises(ValueError, match="version"):
        service.start_instance(CreateUser, {}, id="userid::1", version=version)
    assert service.list() == []


def test_plain_workflow_versions(service: Runner) -> None:
    A = make_step("A")

    class Plain(Workflow):
        version = 3
        unique = Unique(key="p")
        start_step = A
        transitions = {(A, "ok"): Done}

    assert service.start_instance(Plain, {}, id="p::1").workflow_version == 3
    assert service.start_instance(Plain, {}, id="p::2", version=3).workflow_version == 3
    with pytest.raises(ValueError, match="version"):
        service.start_instance(Plain, {}, id="p::3", version=1)


def test_running_instance_keeps_its_version(service: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    CreateUser, _, _ = _create_user()
    service.start_instance(CreateUser, {}, id="userid::1")
    monkeypatch.setattr(CreateUser, "current", 1)
    newer = service.start_instance(CreateUser, {}, id="userid::2")
    assert newer.workflow_version == 1
    instance = service.resume("userid::1", "received")
    assert instance.workflow_version == 2
    assert instance.status == "completed"
    assert completed(instance) == ["WaitForEvent", "StepV2", "Done"]
    assert CALLS == ["StepV1", "StepV2"]


def test_list_by_version(service: Runner) -> None:
    CreateUser, _, _ = _create_user()
    service.start_instance(CreateUser, {}, id="userid::1", version=1)
    service.start_instance(CreateUser, {}, id="userid::2")
    assert [i.id for i in service.list(CreateUser, workflow_version=1)] == ["userid::1"]
    assert [i.id for i in service.list(CreateUser, workflow_version=2)] == ["userid::2"]


def test_definition_and_all_versions() -> None:
    CreateUser, V1, V2 = _create_user()
    assert CreateUser.all_versions() == [1, 2]
    assert CreateUser.definition() is V2
    assert CreateUser.definition(1) is V1
    assert CreateUser.resolve_version({"legacy": True}) == 1
    assert CreateUser.resolve_version({}) == 2
    with pytest.raises(ValueError):
        CreateUser.definition(9)
