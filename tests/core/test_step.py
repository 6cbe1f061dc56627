"""Steps, results and the Retry policy (SPEC §1.3)."""

from __future__ import annotations

import pytest

from hephaestus_django.core import Done, Ok, Retry, Step, Wait, WaitForEvent


@pytest.mark.parametrize(
    ("retry", "delays"),
    [
        (Retry(max_attempts=9, backoff="exponential", base=1.0, max_backoff=30.0), [1, 2, 4, 8, 16, 30, 30]),
        (Retry(max_attempts=9, backoff="exponential", base=0.5, max_backoff=100.0), [0.5, 1, 2, 4]),
        (Retry(max_attempts=9, backoff="linear", base=2.0, max_backoff=30.0), [2, 4, 6, 8]),
        (Retry(max_attempts=9, backoff="linear", base=10.0, max_backoff=25.0), [10, 20, 25, 25]),
        (Retry(max_attempts=9, backoff="constant", base=5.0, max_backoff=30.0), [5, 5, 5]),
        (Retry(max_attempts=9, backoff="constant", base=50.0, max_backoff=30.0), [30, 30]),
        (Retry(max_attempts=9, backoff="exponential", base=3.0, max_backoff=10.0), [3, 6, 10, 10]),
    ],
)
def test_retry_delay(retry: Retry, delays: list[float]) -> None:
    assert [retry.delay(n) for n in range(1, len(delays) + 1)] == delays
    assert all(isinstance(retry.delay(n), float) for n in range(1, 4))


def test_retry_defaults() -> None:
    retry = Retry()
    assert (retry.max_attempts, retry.backoff, retry.base, retry.max_backoff) == (3, "exponential", 1.0, 30.0)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"backoff": "fibonacci"}, "backoff"),
        ({"base": -1}, "base"),
        ({"max_backoff": "10"}, "max_backoff"),
    ],
)
def test_retry_rejects_bad_arguments(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_max_attempts_counts_the_first() -> None:
    class Once(Step):
        events = ("ok",)

    class Thrice(Step):
        events = ("ok",)
        retry = Retry(max_attempts=3)

    assert Once.max_attempts() == 1
    assert Thrice.max_attempts() == 3


def test_ok_defaults() -> None:
    assert Ok("x") == Ok("x", None, None)
    assert Ok("x", {"a": 1}).context_updates == {"a": 1}


def test_context_key() -> None:
    class ValidateOrder(Step):
        events = ("ok",)

    class Keyed(Step):
        events = ("ok",)
        step_key = "validate"

    assert ValidateOrder.context_key() == "validate_order"
    assert Keyed.context_key() == "validate"


def test_builtin_steps() -> None:
    assert Done.events == ("done",)
    assert Wait.events == ("timeout",)
    assert set(WaitForEvent.events) == {"received", "timeout"}
    assert Wait.seconds({"duration": 2, "unit": "minute"}) == 120
    assert Wait.seconds({"duration": 1, "unit": "day"}) == 86400
    assert Wait.seconds({"duration": 3}) == 3
    assert Wait.seconds({"duration": 1, "unit": "hour"}) == 3600
    with pytest.raises(ValueError, match="unit"):
        Wait.seconds({"duration": 1, "unit": "week"})
    assert WaitForEvent.resume_event("paid", {"event_name": "paid"}) == "received"
    assert WaitForEvent.resume_event("received", {"event_name": "paid"}) == "received"
    assert WaitForEvent.resume_event("other", {"event_name": "paid"}) == "other"
    assert WaitForEvent.required_events({}) == ("received",)
    assert set(WaitForEvent.required_events({"timeout": 5})) == {"received", "timeout"}
    assert WaitForEvent.wake_after({"timeout": 5}) == 5.0
    assert WaitForEvent.wake_after({}) is None
