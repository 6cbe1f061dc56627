"""Business ids and the uniqueness scopes (SPEC §1.6)."""

from __future__ import annotations

import re
import uuid

import pytest

from hephaestus_django.core import keys
from hephaestus_django.core.keys import ActiveRef, build_id, conflicts, parse_id, validate_value


@pytest.mark.parametrize("value", ["123", "ORD-2024.17", "a", "A_b-c.d", "9" * 128, "x" + "." * 127])
def test_valid_values(value: str) -> None:
    assert validate_value(value) == value
    assert build_id("orderid", value) == f"orderid::{value}"


def test_uuid_values() -> None:
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert validate_value(value) == "12345678-1234-5678-1234-567812345678"
    assert build_id("userid", value) == "userid::12345678-1234-5678-1234-567812345678"
    assert parse_id(build_id("userid", value)).value == str(value)


@pytest.mark.parametrize("value", ["", "-abc", ".abc", "_abc", "a b", "a::b", "a/b", "é", "x" * 129, "a\n"])
def test_invalid_values(value: str) -> None:
    with pytest.raises(ValueError, match="'value'"):
        validate_value(value)
    with pytest.raises(ValueError, match="'value'"):
        build_id("orderid", value)


@pytest.mark.parametrize("value", [123, None, 1.5, b"abc"])
def test_non_str_values(value: object) -> None:
    with pytest.raises(ValueError, match="'value'"):
        validate_value(value)


@pytest.mark.parametrize("key", ["Order", "order-id", "", "order id", "order\n", None])
def test_invalid_keys(key: object) -> None:
    with pytest.raises(ValueError, match="'key'"):
        build_id(key, "1")  # type: ignore[arg-type]


def test_invalid_scope() -> None:
    with pytest.raises(ValueError, match="'scope'"):
        build_id("orderid", "1", "tenant")


@pytest.mark.parametrize("scope", ["workflow", "version", "global"])
def test_scopes_without_suffix(scope: str) -> None:
    assert build_id("orderid", "123", scope) == "orderid::123"


def test_scope_none_adds_a_random_suffix() -> None:
    first = build_id("orderid", "123", "none")
    second = build_id("orderid", "123", "none")
    assert re.fullmatch(r"orderid::123::[0-9a-f]{8}", first)
    assert re.fullmatch(r"orderid::123::[0-9a-f]{8}", second)
    assert first != second
    parsed = parse_id(first)
    assert (parsed.key, parsed.value, parsed.suffix) == ("orderid", "123", first[-8:])


def test_parse_id() -> None:
    parsed = parse_id("orderid::ORD-2024.17")
    assert (parsed.key, parsed.value, parsed.suffix) == ("orderid", "ORD-2024.17", None)


@pytest.mark.parametrize("id", ["orderid", "orderid::", "::1", "Order::1", "orderid::1::XYZ",
                                "orderid::1::abc", "orderid::1::0123abcd::x", "orderid::-1", "orderid\n::1",
                                "orderid::1::0123abcd\n"])
def test_parse_id_rejects(id: str) -> None:
    with pytest.raises(ValueError, match="id"):
        parse_id(id)


def test_parse_id_rejects_non_str() -> None:
    with pytest.raises(ValueError, match="'id'"):
        parse_id(123)  # type: ignore[arg-type]


def test_conflicts() -> None:
    new = ActiveRef("k::1", "app.A", 1)
    same_workflow_other_version = ActiveRef("k::1", "app.A", 2)
    other_workflow = ActiveRef("k::1", "app.B", 1)
    other_id = ActiveRef("k::2", "app.A", 1)

    assert conflicts("workflow", new, [other_id, other_workflow]) is None
    assert conflicts("workflow", new, [same_workflow_other_version]) == same_workflow_other_version
    assert conflicts("version", new, [same_workflow_other_version, other_workflow, other_id]) is None
    assert conflicts("version", new, [ActiveRef("k::1", "app.A", 1)]) == ActiveRef("k::1", "app.A", 1)
    assert conflicts("global", new, [other_id]) is None
    assert conflicts("global", new, [other_id, other_workflow]) == other_workflow
    assert conflicts("none", new, [ActiveRef("k::1", "app.A", 1)]) is None
    assert conflicts("workflow", new, []) is None


def test_unique_slot() -> None:
    slot = keys.unique_slot
    assert slot("workflow", "k::1", "app.A", 1) == slot("workflow", "k::1", "app.A", 2)
    assert slot("workflow", "k::1", "app.A", 1) != slot("workflow", "k::1", "app.B", 1)
    assert slot("version", "k::1", "app.A", 1) != slot("version", "k::1", "app.A", 2)
    assert slot("global", "k::1", "app.A", 1) == slot("global", "k::1", "app.B", 3)
    assert slot("none", "k::1", "app.A", 1) is None
