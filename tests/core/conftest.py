"""Fixtures of the core tests: a fresh in-memory service, a frozen clock, a clean registry.

These tests need neither Django nor a database: they never request the ``db`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hephaestus_django.core import clock, facade, registry
from hephaestus_django.core.memory import MemoryStorage
from hephaestus_django.core.runner import Runner
from tests.core import helpers


@pytest.fixture(autouse=True)
def _isolation() -> Iterator[None]:
    """Real clock, empty call log, and no workflow left registered by the test."""
    clock.set_clock(None)
    helpers.CALLS.clear()
    before = {w.name for w in registry.all_workflows()}
    yield
    clock.set_clock(None)
    helpers.CALLS.clear()
    for workflow in registry.all_workflows():
        if workflow.name not in before:
            registry.unregister(workflow.name)


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def service(storage: MemoryStorage) -> Runner:
    return Runner(storage)


@pytest.fixture
def frozen() -> helpers.FrozenClock:
    """The engine's clock, frozen at ``helpers.T0`` until the test advances it."""
    frozen_clock = helpers.FrozenClock()
    clock.set_clock(frozen_clock.now)
    return frozen_clock


@pytest.fixture
def facade_service(service: Runner) -> Iterator[Runner]:
    """Route the workflow facade (``OrderFlow.start(...)``) to this test's service."""
    previous = facade.set_backend(service)
    yield service
    facade.set_backend(previous)
