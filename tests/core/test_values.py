"""What the database can store (SPEC §13): one check, used for every value the engine writes."""

from __future__ import annotations

import datetime
import decimal
import functools
import uuid
from typing import Any

import pytest

from hephaestus_django.core import values
from hephaestus_django.core.exceptions import InvalidContext
from hephaestus_django.core.values import MAX_DEPTH, allow_types, check_storable, storable_problem


def nested(depth: int) -> Any:
    return functools.reduce(lambda value, _: {"x": value}, range(depth), 1)


@pytest.mark.parametrize("value", [
    {}, {"a": [1, 2.5, "é", None, True, {"b": []}]}, {"when": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
    {"d": datetime.date(2026, 1, 1), "t": datetime.time(1, 2), "td": datetime.timedelta(seconds=3)},
    {"dec": decimal.Decimal("1.50"), "u": uuid.uuid4()}, {1: "int keys become strings"}, {"big": 10**100},
    nested(MAX_DEPTH - 1), ("tuples", "are", "lists"),
])
def test_storable_values_pass(value: Any) -> None:
    assert storable_problem(value) is None
    check_storable(value)


@pytest.mark.parametrize(("value", "message"), [
    ({"v": {1, 2}}, "context['v'] is a set"),
    ({"v": b"x"}, "context['v'] is a bytes"),
    ({"v": object()}, "context['v'] is a object"),
    ({"v": float("nan")}, "context['v'] is nan"),
    ({"v": [1, float("inf")]}, "context['v'][1] is inf"),
    ({"v": decimal.Decimal("NaN")}, "Decimal('NaN')"),
    ({"v": "a\x00b"}, "context['v'] contains a NUL character"),
    ({"a\x00": 1}, "context has a key"),  # the key is in the message, NUL escaped by repr
    ({"v": "\ud800"}, "lone surrogate"),
    ({(1, 2): 1}, "has a key (1, 2) of type tuple"),
    (nested(MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels deep"),
])
def test_unstorable_values_are_named_with_their_place(value: Any, message: str) -> None:
    problem = storable_problem(value, "context")
    assert problem is not None and message in problem
    with pytest.raises(InvalidContext, match="nothing was written") as info:
        check_storable(value, "context")
    assert info.value.field == "context" and isinstance(info.value, ValueError)


def test_a_value_that_contains_itself_is_refused_not_looped_over() -> None:
    value: list[Any] = []
    value.append(value)
    assert "nested more than" in (storable_problem(value) or "")


def test_very_deep_input_is_checked_without_recursion() -> None:
    value = nested(100_000)
    assert "nested more than" in (storable_problem(value) or "")


def test_field_names_the_input() -> None:
    with pytest.raises(InvalidContext) as info:
        check_storable({"v": {1}}, "data")
    assert info.value.field == "data"
    with pytest.raises(InvalidContext) as info:
        check_storable({"v": {1}}, "context['x']", field="context")
    assert info.value.field == "context"


def test_more_types_can_be_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Lazy(str):
        pass

    class Custom:
        pass

    assert storable_problem(Lazy("ok")) is None  # a str subclass is a str
    assert storable_problem(Custom()) is not None
    monkeypatch.setattr(values, "_extra_types", values._extra_types)  # restored after the test
    allow_types(Custom)
    assert storable_problem(Custom()) is None
