"""``Instance.execution_history`` as a step sees it (SPEC §12): the whole history up to that moment,
also when a storage reads the stored entries only on first use (``History``)."""

from __future__ import annotations

from typing import Any

import pytest

from hephaestus_django.core import Done, Ok, Step, Unique, WaitForEvent, Workflow
from hephaestus_django.core.instance import ExecutionEntry, History, Instance, history_size
from hephaestus_django.core.runner import Runner
from tests.core.helpers import T0, unique_name


def _entry(n: int) -> ExecutionEntry:
    return ExecutionEntry(f"pkg.Step{n}", "ok", T0, None)


class _Loader:
    def __init__(self, stored: int) -> None:
        self.stored = [_entry(n) for n in range(stored)]
        self.calls: list[int] = []

    def __call__(self, count: int) -> list[ExecutionEntry]:
        self.calls.append(count)
        return self.stored[:count]


def test_appending_reads_nothing() -> None:
    loader = _Loader(3)
    history = History.stored(3, loader)
    history.append(_entry(9))
    assert loader.calls == [] and not history.is_loaded
    assert history_size(history) == 4
    assert history.tail(3) == [_entry(9)] and loader.calls == []


@pytest.mark.parametrize("look", [len, list, bool, lambda h: h[0], lambda h: h[-1], lambda h: h[1:],
                                  lambda h: _entry(0) in h, reversed, lambda h: h == [], repr, iter,
                                  lambda h: h.index(_entry(9)), lambda h: h.count(_entry(0)), lambda h: h.copy()])
def test_any_look_reads_the_stored_entries_once_and_in_front(look: Any) -> None:
    loader = _Loader(3)
    history = History.stored(3, loader)
    history.append(_entry(9))
    look(history)
    look(history)
    assert loader.calls == [3]
    assert list(history) == [_entry(0), _entry(1), _entry(2), _entry(9)]
    assert history.tail(3) == [_entry(9)]


def test_a_loader_that_fails_can_be_retried() -> None:
    calls = []

    def flaky(count: int) -> list[ExecutionEntry]:
        calls.append(count)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return [_entry(0)]

    history = History.stored(1, flaky)
    with pytest.raises(ConnectionError):
        len(history)
    assert len(history) == 1 and calls == [1, 1]


def test_copies_and_pickles_hold_every_entry() -> None:
    import copy
    import pickle

    def round_trip(history: History) -> Any:
        return pickle.loads(pickle.dumps(history))  # noqa: S301 - bytes made here

    for clone in (copy.copy, copy.deepcopy, round_trip):
        history = History.stored(2, _Loader(2))
        assert list(clone(history)) == [_entry(0), _entry(1)]


def test_stored_entries_need_a_loader() -> None:
    with pytest.raises(ValueError, match="need a loader"):
        History(unloaded=2)


def test_new_entries_and_mark_persisted_do_not_read() -> None:
    loader = _Loader(2)
    instance = Instance(id="k::1", workflow=object)  # type: ignore[arg-type]
    instance.execution_history = History.stored(2, loader)
    instance.persisted_entries = instance.history_length = 2
    instance.execution_history.append(_entry(5))
    assert instance.new_entries == [_entry(5)]
    instance.mark_persisted()
    assert (instance.persisted_entries, instance.history_length, instance.new_entries) == (3, 3, [])
    assert loader.calls == []


SEEN: list[list[str]] = []


class _Look(Step):
    events = ("seen",)

    def execute(self, instance: Any, config: dict[str, Any], context: Any) -> Any:
        SEEN.append([str(e.kind) for e in instance.execution_history])
        return Ok("seen")


def test_a_step_sees_the_whole_history_in_memory(service: Runner) -> None:
    SEEN.clear()
    flow = type(unique_name("Look"), (Workflow,), {
        "__module__": __name__, "unique": Unique(key="look"), "start_step": (WaitForEvent, {"event_name": "go"}),
        "transitions": {(WaitForEvent, "received"): _Look, (_Look, "seen"): Done}})
    instance = service.start_instance(flow, {}, id="look::1")
    service.resume(instance.id, "go")
    assert SEEN == [["paused", "resumed"]]
