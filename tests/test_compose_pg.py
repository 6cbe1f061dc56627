"""SPEC §9 under concurrency, on PostgreSQL: real threads and real worker processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import Count

import hephaestus_django as h
from hephaestus_django.exceptions import NotWaiting
from hephaestus_django.storage.models import HistoryEntry, ResumeKey, WorkflowInstance
from hephaestus_django.storage.orm import DjangoStorage
from tests.test_concurrency_pg import race
from tests.workflows_compose import CInvoice, CShip, GatedParent, ParcelChild, ParcelParent, TwoWaitFlow

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def together(calls: list[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    """Run every call in its own thread, released at the same moment."""
    return race(len(calls), lambda i: calls[i]())


def test_ten_threads_with_one_idempotency_key_resume_once() -> None:
    TwoWaitFlow.start("T1", {})
    results, errors = together([
        lambda: h.resume("twowait::T1", "ping", idempotency_key="evt_42", data={"n": 1}) for _ in range(10)])
    assert errors == []
    # each got the instance as it was (the winner's next step may still have been running)
    assert len(results) == 10 and {r.status for r in results} <= {"running", "waiting"}
    assert HistoryEntry.objects.filter(instance__instance_id="twowait::T1", kind="resumed").count() == 1
    assert ResumeKey.objects.filter(key="evt_42").count() == 1
    instance = h.get_instance("twowait::T1")
    assert instance.status == "waiting"
    assert [s.__name__ for s in instance.active_steps] == ["KSecond"]
    assert instance.context.steps == {"k_first": {"n": 1}}


def test_two_children_finishing_at_the_same_moment_complete_the_parent_once() -> None:
    parents = 15
    for i in range(parents):
        ParcelParent.start(f"S{i}", {"parcels": [f"S{i}a", f"S{i}b"]})
    for i in range(parents):
        results, errors = together([lambda p=p: ParcelChild.resume(p, "delivered") for p in (f"S{i}a", f"S{i}b")])
        assert errors == [] and len(results) == 2
    assert dict(WorkflowInstance.objects.filter(instance_id__startswith="cparent::")
                .values_list("status").annotate(n=Count("pk"))) == {"completed": parents}
    for step in (CShip, CInvoice):
        per_parent = HistoryEntry.objects.filter(instance__instance_id__startswith="cparent::",
                                                 step=step.registry_name(), kind="completed") \
            .values("instance").annotate(n=Count("pk"))
        assert sorted(row["n"] for row in per_parent) == [1] * parents, step


def test_cancelling_a_parent_while_its_children_finish_never_deadlocks() -> None:
    """Cancel locks the active children before the parent, as finishing children lock themselves
    before their parent: the two orders agree, so PostgreSQL never has to break a deadlock."""
    parents = 10
    for i in range(parents):
        ParcelParent.start(f"X{i}", {"parcels": [f"X{i}a", f"X{i}b", f"X{i}c"]})
    for i in range(parents):
        results, errors = together([
            lambda i=i: h.cancel(f"cparent::X{i}"),
            lambda i=i: ParcelChild.resume(f"X{i}a", "delivered"),
            lambda i=i: ParcelChild.resume(f"X{i}b", "delivered"),
        ])
        assert all(isinstance(e, NotWaiting) for e in errors), errors  # a child cancelled first
        assert len(results) + len(errors) == 3
        assert h.get_instance(f"cparent::X{i}").status == "cancelled"
        children = dict(WorkflowInstance.objects.filter(parent__instance_id=f"cparent::X{i}")
                        .values_list("instance_id", "status"))
        assert children[f"cparcel::X{i}c"] == "cancelled"
        assert set(children.values()) <= {"completed", "cancelled"}


def test_children_started_while_a_cancel_waits_are_cancelled_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancel read the (empty) tree, then children started before it locked the parent: it
    starts over, locking them first, and cancels them."""
    GatedParent.start("G1", {"parcels": ["G1a", "G1b"]})
    walked = threading.Event()
    calls: list[int] = []
    original = DjangoStorage.lock_active_descendants

    def slow_walk(self: DjangoStorage, pk: Any) -> list[Any]:
        found = original(self, pk)
        calls.append(len(found))
        if len(calls) == 1:
            walked.set()
            time.sleep(1.5)  # the children start meanwhile
        return found

    monkeypatch.setattr(DjangoStorage, "lock_active_descendants", slow_walk)

    def start_children() -> Any:
        assert walked.wait(30)
        return GatedParent.resume("G1", "go")

    results, errors = together([lambda: h.cancel("gated::G1"), start_children])
    assert errors == [] and len(results) == 2
    assert calls[0] == 0 and calls[-1] == 2  # started over, and locked the two children the second time
    assert h.get_instance("gated::G1").status == "cancelled"
    assert dict(WorkflowInstance.objects.filter(parent__instance_id="gated::G1")
                .values_list("instance_id", "status")) == {"cparcel::G1a": "cancelled", "cparcel::G1b": "cancelled"}
