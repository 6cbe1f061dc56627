"""Issue 10 point 1 in process (any database): values the database cannot store, returned by a
step, are a failure of that step — retried per its policy, then recorded — and never leave an
instance running or a step to be re-run. The same with real workers: ``test_faults_pg.py``."""

from __future__ import annotations

import pytest
from django.db import connection

import hephaestus_django as h
from hephaestus_django.core import Status
from hephaestus_django.storage.models import StepRun
from tests.models import Ledger
from tests.runtime.test_dispatch import DB_QUEUE, drain
from tests.workflows_faults import POISONS, AtomicPoisonFlow, HugeFlow, LongEventFlow, PoisonFlow

pytestmark = pytest.mark.django_db

#: What the recorded error says about each value.
PROBLEMS = {
    "set": "is a set, which cannot be stored as JSON",
    "nan": "is nan, which JSON cannot represent",
    "inf": "is inf, which JSON cannot represent",
    "nul": "contains a NUL character (\\u0000), which the database cannot store",
    "bytes": "is a bytes, which cannot be stored as JSON",
    "object": "is a _Opaque, which cannot be stored as JSON",
    "decimal_nan": "is Decimal('NaN'), which JSON cannot represent",
}


def check_failed_cleanly(instance_id: str, poison: str, where: str) -> None:
    instance = h.get_instance(instance_id)
    assert instance.status == Status.FAILED
    expected = f"PPoison returned {where}_updates['v'] {PROBLEMS[poison]}"
    assert [(e.kind, e.attempt) for e in instance.execution_history] == [("retrying", 1), ("failed", 2)]
    assert all(e.error == expected for e in instance.execution_history), instance.execution_history
    assert instance.error == expected
    assert "v" not in instance.runtime_metadata and instance.context.steps == {}
    # retried once as its policy says, then never again: nothing is left to run
    assert Ledger.objects.filter(instance_id=instance_id).count() == 2
    assert not StepRun.objects.filter(instance__instance_id=instance_id).exists()


def test_the_poisons_cover_the_issue():
    assert set(POISONS) == set(PROBLEMS) >= {"set", "nan", "inf", "nul", "bytes", "object"}


@pytest.mark.parametrize("where", ["context", "metadata"])
@pytest.mark.parametrize("poison", sorted(POISONS))
def test_an_unstorable_value_fails_its_step_under_the_immediate_backend(poison, where):
    # the start does not raise: the failure is the step's, recorded on the instance
    assert PoisonFlow.start(f"{poison}-{where}", {"poison": poison, "where": where}) == f"poison::{poison}-{where}"
    check_failed_cleanly(f"poison::{poison}-{where}", poison, where)


@pytest.mark.parametrize("where", ["context", "metadata"])
@pytest.mark.parametrize("poison", ["set", "nul", "object"])
def test_an_unstorable_value_fails_its_step_under_a_queue_backend(settings, poison, where):
    settings.TASKS = DB_QUEUE
    PoisonFlow.start(f"q-{poison}-{where}", {"poison": poison, "where": where})
    assert drain() == ["ran 2 step(s)"]  # attempt 1, and the retry continued in the same task
    check_failed_cleanly(f"poison::q-{poison}-{where}", poison, where)


def test_an_atomic_step_returning_an_unstorable_value_rolls_back_its_writes():
    AtomicPoisonFlow.start("A1", {})
    instance = h.get_instance("atomicpoison::A1")
    assert instance.status == Status.FAILED
    assert instance.error == ("PAtomicPoison returned context_updates['v'] is a set, "
                              "which cannot be stored as JSON")
    assert not Ledger.objects.filter(instance_id="atomicpoison::A1").exists()


def test_a_write_that_still_fails_is_recorded_as_a_failure_of_the_step():
    """A value the check lets through but no JSON encoder can write (an int of 5,001 digits): the
    write fails, is rolled back, and the step's failure is recorded in a fresh transaction."""
    HugeFlow.start("W1", {})
    instance = h.get_instance("huge::W1")
    assert instance.status == Status.FAILED
    assert instance.error.startswith("ValueError: the outcome of PHuge could not be stored: ")
    assert "4300 digits" in instance.error
    assert [e.kind for e in instance.execution_history] == ["failed"]
    assert Ledger.objects.filter(instance_id="huge::W1").count() == 1  # never re-run
    assert not StepRun.objects.exists()


@pytest.mark.postgres
def test_a_write_the_database_refuses_is_recorded_as_a_failure_of_the_step():
    LongEventFlow.start("W2", {})
    instance = h.get_instance("longevent::W2")
    assert connection.vendor == "postgresql"
    assert instance.status == Status.FAILED
    assert instance.error.startswith("DataError: the outcome of PLongEvent could not be "
                                     "stored: value too long for type character varying(255)")
    assert Ledger.objects.filter(instance_id="longevent::W2").count() == 1
    assert not StepRun.objects.exists()
