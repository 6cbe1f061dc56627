"""Fixtures of the API tests: users with and without permissions, authenticated clients, builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from rest_framework.test import APIClient

import hephaestus_django as h
from tests.api import workflows_api as wf

PERMS = ("view", "add", "change")


def url(name: str, *args: Any) -> str:
    return reverse(f"hephaestus:{name}", args=args)


def make_user(username: str, *perms: str, superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "pw")
    user = User.objects.create_user(username, f"{username}@example.com", "pw")
    if perms:
        user.user_permissions.set(Permission.objects.filter(
            content_type__app_label="hephaestus_django", codename__in=[f"{p}_workflowinstance" for p in perms]))
    return user


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api(db: None) -> APIClient:
    """A client whose user may view, start and change instances (not a superuser)."""
    return client_for(make_user("operator", *PERMS))


@pytest.fixture
def start(api: APIClient) -> Callable[..., dict[str, Any]]:
    """Start an ApiOrderFlow (or ``workflow``) instance through the API; returns the response body."""

    def _start(value: str, workflow: type = wf.ApiOrderFlow, **body: Any) -> dict[str, Any]:
        response = api.post(url("instance-list"), {"workflow": workflow.name, "value": value, **body},
                               format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return _start


@pytest.fixture
def waiting(start: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return start("W-1")


@pytest.fixture
def failed(start: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    body = start("F-1", context={"fail": True})
    assert body["status"] == "failed"
    return body


def direct_start(value: str, workflow: type = wf.ApiOrderFlow, context: dict[str, Any] | None = None) -> str:
    """Start through the Python API (no HTTP)."""
    key = workflow.unique.key
    return h.start_instance(workflow, context or {}, id=f"{key}::{value}").id


def make_rows(count: int, *, workflow: str = wf.ApiOrderFlow.name, status: str = "waiting", prefix: str = "R",
              history: int = 0, **fields: Any) -> list[Any]:
    """``count`` instance rows written directly (fast), with ``history`` entries each."""
    from datetime import timedelta

    from django.utils import timezone

    from hephaestus_django.storage.models import HistoryEntry, WorkflowInstance

    now = timezone.now()
    rows = WorkflowInstance.objects.bulk_create([
        WorkflowInstance(instance_id=f"order::{prefix}-{i}", workflow=workflow, status=status,
                         created_at=fields.get("created_at", now - timedelta(seconds=count - i)),
                         updated_at=fields.get("updated_at", now - timedelta(seconds=count - i)),
                         context={"initial": {"n": i}, "steps": {}}, history_length=history,
                         **{k: v for k, v in fields.items() if k not in ("created_at", "updated_at")})
        for i in range(count)
    ])
    if history:
        HistoryEntry.objects.bulk_create([
            HistoryEntry(instance=row, seq=seq, kind="completed", step="s", event="e", timestamp=now,
                         context_updates={"seq": seq})
            for row in rows for seq in range(1, history + 1)
        ])
    return rows
