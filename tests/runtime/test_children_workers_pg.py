"""Child workflows on real worker processes (django-tasks-db on PostgreSQL): SPEC §9."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Count

import hephaestus_django as h
from hephaestus_django.storage.models import HistoryEntry, StepRun, WorkflowInstance
from tests.runtime.conftest import wait_for
from tests.workflows_compose import QFan, QSum, QuickParent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.slow
def test_fifty_parents_with_five_children_each_on_two_workers(workers: Any, queue_backend: Any) -> None:
    from django_tasks_db.models import DBTaskResult

    workers.db_worker()
    workers.db_worker()
    for i in range(50):
        QuickParent.start(f"W{i}", {"children": 5})

    def statuses() -> dict[str, int]:
        return dict(WorkflowInstance.objects.filter(instance_id__startswith="qparent::")
                    .values_list("status").annotate(n=Count("pk")))

    wait_for(lambda: statuses() == {"completed": 50}, 300, lambda: f"{statuses()}\n{workers.logs()}")
    assert WorkflowInstance.objects.filter(instance_id__startswith="qchild::", status="completed").count() == 250
    assert not StepRun.objects.exists()  # no work left in flight
    # one task per start (50 parents, 250 children): each parent went on in its last child's task;
    # and one more each time a task ran MAX_INLINE_STEPS (100) steps, taking waiting work on (600 steps)
    assert 300 <= DBTaskResult.objects.filter(task_path__endswith=".run_step").count() <= 306
    assert not WorkflowInstance.objects.filter(instance_id__startswith="qchild::", parent__isnull=True).exists()
    for step in (QFan, QSum):
        per_parent = HistoryEntry.objects.filter(instance__instance_id__startswith="qparent::",
                                                 step=step.registry_name(), kind="completed") \
            .values("instance").annotate(n=Count("pk"))
        assert sorted(row["n"] for row in per_parent) == [1] * 50, step  # every parent step completed once
    for parent in h.list_instances(workflow=QuickParent.name):
        assert parent.context.steps["q_sum"] == {"total": 2 * (0 + 1 + 2 + 3 + 4)}
        value = parent.id.split("::")[1]
        assert [c["id"] for c in parent.context.steps["q_fan"]["children"]] == [
            f"qchild::{value}-{n}" for n in range(5)]
