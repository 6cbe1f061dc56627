"""``hephaestus_resume --data --idempotency-key`` and the parent in ``hephaestus_show`` (SPEC §9)."""

from __future__ import annotations

import pytest

import hephaestus_django as h
from hephaestus_django.storage.models import ResumeKey
from tests.test_commands import fails, run, run_json, snapshot
from tests.workflows_compose import ParcelParent, TwoWaitFlow

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_wait() -> str:
    return h.start_instance(TwoWaitFlow, {}, id="twowait::C1").id


def test_resume_with_data_and_a_key(two_wait: str) -> None:
    data = run_json("hephaestus_resume", two_wait, "ping", "--data", '{"charge": "ch_9", "note": "Zoë"}',
                    "--idempotency-key", "evt_9")
    assert data["context"]["steps"] == {"k_first": {"charge": "ch_9", "note": "Zoë"}}
    before = snapshot()
    out = run("hephaestus_resume", two_wait, "ping", "--data", '{"charge": "other"}', "--idempotency-key", "evt_9")
    assert out.startswith(f"Resumed {two_wait} with 'ping'.\n")  # a redelivery: nothing changed, no error
    assert snapshot() == before
    history = run_json("hephaestus_show", two_wait)["history"]
    assert [(e["kind"], e["context_updates"]) for e in history] == [
        ("paused", None), ("resumed", {"charge": "ch_9", "note": "Zoë"}), ("paused", None)]
    assert list(ResumeKey.objects.values_list("key", flat=True)) == ["evt_9"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--data", "[1, 2]"], "--data must be a JSON object, not list"),
    (["--data", '{"a": '], "--data is not valid JSON: Expecting value (line 1, column 7)"),
    (["--data", '{"a": NaN}'], "data['a'] is nan, which JSON cannot represent; nothing was written"),
    (["--data", '{"a": "\\u0000"}'], "data['a'] contains a NUL character"),
    (["--idempotency-key", "k" * 256], "'idempotency_key' must be 1 to 255 characters long, not 256"),
    (["--idempotency-key", ""], "'idempotency_key' must be 1 to 255 characters long, not 0"),
])
def test_resume_refuses_bad_data_and_keys(two_wait: str, args: list[str], expected: str) -> None:
    before = snapshot()
    assert expected in fails("hephaestus_resume", two_wait, "ping", *args)
    assert snapshot() == before
    assert not ResumeKey.objects.exists()


def test_show_names_the_parent() -> None:
    h.start_instance(ParcelParent, {"parcels": ["P1"]}, id="cparent::C2")
    assert "parent:          cparent::C2" in run("hephaestus_show", "cparcel::P1")
    assert run_json("hephaestus_show", "cparcel::P1")["parent"] == "cparent::C2"
    assert "\nparent:" not in run("hephaestus_show", "cparent::C2")
