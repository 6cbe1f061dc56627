"""Fixtures of the admin tests: users with given permissions, and instances in every state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from hephaestus_django import services
from hephaestus_django.core.instance import Instance
from hephaestus_django.storage.models import WorkflowInstance
from tests.admin import workflows_admin  # noqa: F401 - registers the Adm* workflows

CHANGELIST = "/admin/hephaestus_django/workflowinstance/"


def change_url(row: Any) -> str:
    return f"{CHANGELIST}{row.pk}/change/"


def row_of(instance: Instance) -> WorkflowInstance:
    return WorkflowInstance.objects.get(pk=instance.pk)


@pytest.fixture(autouse=True)
def _flaky_fails() -> Iterator[None]:
    workflows_admin.FLAKY["fail"] = True
    yield
    workflows_admin.FLAKY["fail"] = True


@pytest.fixture
def start() -> Callable[..., WorkflowInstance]:
    """``start(workflow, value, context=None)``: starts an instance, returns its row."""

    def start_(workflow: Any, value: str, context: dict[str, Any] | None = None,
               **kwargs: Any) -> WorkflowInstance:
        key = workflow.unique.key
        return row_of(services.start_instance(workflow, context or {}, id=f"{key}::{value}", **kwargs))

    return start_


def _staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    if codenames:
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="hephaestus_django",
                                                            codename__in=codenames))
    return user


@pytest.fixture
def viewer_client(db: Any) -> Client:
    """Staff with the view permission only."""
    client = Client()
    client.force_login(_staff("viewer", "view_workflowinstance"))
    return client


@pytest.fixture
def changer_client(db: Any) -> Client:
    """Staff with view and change permissions (no delete)."""
    client = Client()
    client.force_login(_staff("changer", "view_workflowinstance", "change_workflowinstance"))
    return client


@pytest.fixture
def stranger_client(db: Any) -> Client:
    """Staff without any permission on instances."""
    client = Client()
    client.force_login(_staff("stranger"))
    return client


def bulk_rows(count: int, *, prefix: str = "bulk", status: str = "completed", workflow: str | None = None,
              start_at: Any = None, step: Any = None) -> None:
    """``count`` instance rows written straight through the model (fast; no engine involved)."""
    from datetime import UTC, datetime, timedelta

    start_at = start_at or datetime(2024, 1, 1, tzinfo=UTC)
    step = step or timedelta(minutes=1)
    WorkflowInstance.objects.bulk_create(
        [WorkflowInstance(instance_id=f"{prefix}::{i}",
                          workflow=workflow or workflows_admin.AdmApprovalFlow.name,
                          workflow_version=1, status=status, current_step="hephaestus_django.core.steps.Done",
                          context={"initial": {"i": i}, "steps": {}}, created_at=start_at + i * step,
                          updated_at=start_at + i * step) for i in range(count)],
        batch_size=1000,
    )
