"""Issue 4: the django-tasks-rq backend (Redis) with a real ``rqworker`` process."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("django_tasks_rq", reason="the rq extra is not installed")

import hephaestus_django as h  # noqa: E402
from hephaestus_django.core import Status  # noqa: E402
from tests.runtime.conftest import wait_for  # noqa: E402
from tests.workflows import FanOutFlow, TimerFlow  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]

RQ_TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}


@pytest.fixture
def rq(settings, workers):
    import django_rq

    settings.RQ_QUEUES = {"default": {"URL": os.environ.get("HEPHAESTUS_TEST_REDIS", "redis://127.0.0.1:6379/7")}}
    settings.TASKS = RQ_TASKS
    django_rq.get_connection("default").flushdb()
    workers.settings = "tests.settings_rq"
    workers._spawn("rqworker", "rqworker", "default", "--job-class", "django_tasks_rq.Job", "--with-scheduler")
    return workers


def test_fan_outs_and_a_timer_on_rq(rq):
    for i in range(10):
        FanOutFlow.start(f"Q{i}", {})
    TimerFlow.start("Q", {})
    rq.hephaestus_worker()
    wait_for(lambda: all(i.status == Status.COMPLETED for i in h.list_instances()) and len(h.list_instances()) == 11,
             90, rq.logs)
    for instance in h.list_instances(workflow="tests.FanOutFlow"):
        assert instance.context.steps["r_join"] == {"branches": [1, 2, 3]}
