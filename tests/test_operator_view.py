"""SPEC §12 beyond the API and the admin: the history a step sees, tracebacks in history entries,
strict built-in configs, and ``list()`` with a limit and no history read."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

import hephaestus_django as h
from hephaestus_django.core import Done, Step, Unique, Wait, WaitForEvent, Workflow
from hephaestus_django.core.instance import History
from hephaestus_django.exceptions import WorkflowDefinitionError
from hephaestus_django.storage.models import HistoryEntry
from hephaestus_django.testing import frozen_clock, run_until_idle
from tests.workflows import PersistFlow, RetryExhaustFlow
from tests.workflows_operator import SeenFlow

DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
#: What each step after the gate saw: (count, kinds, steps) of the history up to it.
BEFORE_PLAIN = (["completed", "paused", "resumed"], ["SeenStart", "SeenGate", "SeenGate"])


def _expected(extra: list[str]) -> dict[str, Any]:
    kinds, steps = BEFORE_PLAIN
    return {"count": 3 + len(extra), "kinds": kinds + ["completed"] * len(extra), "steps": steps + extra}


def _check_seen(instance_id: str) -> None:
    steps = h.get_instance(instance_id).context.steps
    assert steps["seen_plain"] == _expected([])
    assert steps["seen_atomic"] == _expected(["SeenPlain"])
    assert steps["seen_timed"] == _expected(["SeenPlain", "SeenAtomic"])


# ---- whole history for steps -----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_step_sees_the_whole_history_under_the_immediate_backend(caplog: pytest.LogCaptureFixture) -> None:
    instance_id = SeenFlow.start("I-1", {})
    with caplog.at_level(logging.INFO, logger="hephaestus"):
        h.resume(instance_id, "go")
    _check_seen(instance_id)
    assert h.get_instance(instance_id).status == "completed"
    debug = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Debug "))
    # Debug logs every entry before it: 6 of them, the resume included
    assert debug.count("'completed')") + debug.count("'paused')") + debug.count("'resumed')") == 6
    assert "'resumed')" in debug


@pytest.mark.django_db(transaction=True)
def test_a_step_sees_the_whole_history_when_a_queue_worker_runs_it() -> None:
    with override_settings(TASKS=DUMMY):
        instance_id = SeenFlow.start("Q-1", {})
        run_until_idle()
        h.resume(instance_id, "go")
        run_until_idle()
    _check_seen(instance_id)


@pytest.mark.django_db
def test_the_hot_path_reads_no_history_unless_a_step_looks() -> None:
    PersistFlow.start("H0", {})  # warm up
    with CaptureQueriesContext(connection) as queries:
        PersistFlow.start("H1", {})
        h.resume("persist::H1", "approved")
    reads = [q["sql"] for q in queries.captured_queries
             if q["sql"].startswith("SELECT") and "historyentry" in q["sql"]]
    # none: resume() returns the instance it changed with its history unread (read when looked at)
    assert reads == []


@pytest.mark.django_db
def test_appending_to_an_unread_history_writes_only_the_new_entries() -> None:
    from hephaestus_django.runtime.dispatch import get_runner

    instance_id = PersistFlow.start("A1", {})
    stored = HistoryEntry.objects.count()
    instance = get_runner().storage.load(instance_id, history=False)
    assert isinstance(instance.execution_history, History) and not instance.execution_history.is_loaded
    h.cancel(instance_id)
    assert HistoryEntry.objects.count() == stored + 1
    assert [e.kind for e in h.get_instance(instance_id).execution_history][-1] == "cancelled"
    # the snapshot loaded before the cancel reads the entries that existed when it was loaded
    assert len(instance.execution_history) == stored


# ---- tracebacks ---------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_failed_and_retrying_entries_keep_the_traceback(tmp_path: Any) -> None:
    with frozen_clock() as clock:
        RetryExhaustFlow.start("T-1", {"dir": str(tmp_path)})
        for _ in range(3):
            clock.advance(seconds=60)
            run_until_idle()
    instance = h.get_instance("exhaust::T-1")
    assert instance.status == "failed"
    entries = [e for e in instance.execution_history if e.kind in ("retrying", "failed")]
    assert [e.kind for e in entries][-1] == "failed"
    for entry in entries:
        assert entry.traceback is not None and entry.traceback.startswith("Traceback (most recent call last):")
        assert entry.traceback.rstrip().endswith(entry.error)
    rows = HistoryEntry.objects.filter(instance__instance_id="exhaust::T-1", kind__in=["retrying", "failed"])
    assert all(row.traceback for row in rows)
    assert not HistoryEntry.objects.filter(instance__instance_id="exhaust::T-1", kind="completed") \
        .exclude(traceback="").exists()


class _Raises(Step):
    events = ("ok",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        _deep(context.initial["depth"])
        return "ok"


def _deep(size: int) -> None:
    try:
        raise LookupError("z" * size)  # a long first part, which a stored traceback leaves out
    except LookupError as exc:
        raise ValueError("bad \x00 byte") from exc


class _RaisesFlow(Workflow):
    name = "tests.test_operator_view.RaisesFlow"
    unique = Unique(key="raises")
    start_step = _Raises
    transitions = {(_Raises, "ok"): Done}


@pytest.mark.django_db
def test_a_traceback_is_stored_even_when_it_holds_a_nul_and_is_huge() -> None:
    from hephaestus_django.core.engine import TRACEBACK_LIMIT

    for depth, value in ((0, "R-1"), (40_000, "R-2")):
        instance = h.start_instance(_RaisesFlow, {"depth": depth}, id=f"raises::{value}")
        [failed] = [e for e in h.get_instance(instance.id).execution_history if e.kind == "failed"]
        trace = failed.traceback
        assert trace is not None and "\x00" not in trace
        assert trace.rstrip().endswith("ValueError: bad \\x00 byte")
        assert len(trace) <= TRACEBACK_LIMIT
        assert trace.startswith("Traceback (most recent call last):\n")
        assert ("\n  ...\n" in trace) == (depth > 0)


# ---- strict built-in configs ---------------------------------------------------------------------------------
class _Go(Step):
    events = ("go",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        return "go"


@pytest.mark.parametrize(("target", "key", "hint"), [
    ((WaitForEvent, {"event_name": "paid", "timeout_ms": 1000}), "timeout_ms", "did you mean 'timeout'?"),
    ((WaitForEvent, {"event": "paid"}), "event", "did you mean 'event_name'?"),
    ((Wait, {"duration": 1, "unit": "day", "units": "day"}), "units", "did you mean 'unit'?"),
    ((Wait, {"duration": 1, "jitter": 2}), "jitter", ""),
])
def test_built_in_steps_refuse_unknown_config_keys(target: Any, key: str, hint: str) -> None:
    step = target[0]
    transitions: dict[Any, Any] = {(_Go, "go"): target, (step, "timeout"): Done}
    if step is WaitForEvent:
        transitions[(step, "received")] = Done
    with pytest.raises(WorkflowDefinitionError) as raised:
        type("Typo", (Workflow,), {"__module__": __name__, "unique": Unique(key="typo"), "start_step": _Go,
                                  "transitions": transitions})
    message = str(raised.value)
    assert f"config has unknown key {key!r} ({step.__name__} takes" in message
    assert hint in message


def test_a_subclass_may_take_more_config_keys() -> None:
    class Tuned(WaitForEvent):
        config_keys = (*WaitForEvent.config_keys, "channel")

    flow = type("Tuned", (Workflow,), {
        "__module__": __name__, "name": "tests.test_operator_view.Tuned", "unique": Unique(key="tuned"),
        "start_step": _Go, "transitions": {(_Go, "go"): (Tuned, {"event_name": "x", "channel": "sms"}),
                                           (Tuned, "received"): Done}})
    assert flow.definition().graph.configs[Tuned] == {"event_name": "x", "channel": "sms"}


# ---- list() ------------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_list_has_a_limit_and_reads_no_history() -> None:
    for n in range(5):
        PersistFlow.start(f"L{n}", {})
    with CaptureQueriesContext(connection) as queries:
        listed = PersistFlow.list(limit=3)
        also = h.list_instances(limit=2, status="waiting")
    assert [i.id for i in listed] == ["persist::L4", "persist::L3", "persist::L2"]
    assert [i.id for i in also] == ["persist::L4", "persist::L3"]
    assert not [q for q in queries.captured_queries if "historyentry" in q["sql"]]
    assert len(queries.captured_queries) == 2
    # ...and an instance's history is still there for whoever looks
    assert [e.kind for e in listed[0].execution_history] == [e.kind for e in h.get_instance("persist::L4")
                                                              .execution_history]
    assert len(PersistFlow.list(limit=None)) == len(PersistFlow.list()) == 5


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [0, -1, "3", 2.5, True])
def test_a_bad_limit_names_it(limit: Any) -> None:
    with pytest.raises(ValueError, match="'limit' must be a positive int or None"):
        PersistFlow.list(limit=limit)
