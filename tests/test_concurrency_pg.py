"""Issue 3: uniqueness holds under concurrent starts (PostgreSQL, real threads)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from hephaestus_django.exceptions import AlreadyRunning
from hephaestus_django.storage.models import WorkflowInstance
from tests.workflows import GlobalFlowA, NoScopeFlow, PersistFlow, SharedKeyFlow, VersionScoped

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(n: int, start) -> tuple[list[str], list[BaseException]]:
    """Run ``start(i)`` in ``n`` threads released at the same moment."""
    barrier = threading.Barrier(n)
    ok: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            barrier.wait()
            result = start(i)
            with lock:
                ok.append(result)
        except BaseException as exc:  # collected and asserted on below
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return ok, errors


@pytest.mark.parametrize(
    ("workflow", "value", "version"),
    [(PersistFlow, "C-1", None), (VersionScoped, "C-2", 2), (GlobalFlowA, "C-3", None)],
    ids=["workflow", "version", "global"],
)
def test_twenty_threads_one_active_instance(workflow, value, version):
    ok, errors = race(20, lambda i: workflow.start(value, {"thread": i}, version=version))
    assert len(ok) == 1, errors
    assert len(errors) == 19 and all(isinstance(e, AlreadyRunning) for e in errors), errors
    assert WorkflowInstance.objects.filter(instance_id=f"{workflow.unique.key}::{value}").active().count() == 1


def test_global_scope_against_another_workflow_under_race():
    """Half the threads start the id in a workflow-scoped flow, half in the global one. Each
    scope checks its own rule, so one of each may end up active (the global start's check ran
    before the other start committed: in serial order it came first), never two of one."""
    def start(i: int) -> str:
        return (SharedKeyFlow if i % 2 else GlobalFlowA).start("C-4", {})

    ok, errors = race(20, start)
    assert all(isinstance(e, AlreadyRunning) for e in errors), errors
    active = sorted(WorkflowInstance.objects.filter(instance_id="shared::C-4").active()
                    .values_list("workflow", flat=True))
    assert len(active) == len(ok) >= 1
    assert active in (["tests.GlobalFlowA"], ["tests.SharedKeyFlow"], ["tests.GlobalFlowA", "tests.SharedKeyFlow"])


def test_scope_none_never_conflicts():
    ok, errors = race(10, lambda i: NoScopeFlow.start("C-5", {}))
    assert not errors and len(set(ok)) == 10
