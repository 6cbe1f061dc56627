"""Issue 7: telemetry. The 11 Django signals with their documented measurements and metadata,
robust receivers, the ``hephaestus`` logger, and OpenTelemetry spans."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from hephaestus_django import observability, services, signals
from hephaestus_django.core import Done, Wait
from hephaestus_django.runtime.dispatch import DjangoRunner
from hephaestus_django.testing import frozen_clock
from tests import workflows_commands as wc
from tests.workflows_commands import (
    CmdApprove,
    CmdBranchA,
    CmdBranchB,
    CmdFanFlow,
    CmdMerge,
    CmdPrepare,
    CmdSigApproval,
    CmdSigCheck,
    CmdSigFlaky,
    CmdSignalFlow,
    CmdSigStart,
)

#: SPEC §7: measurements and metadata keys of each event, in the order of the table.
DOCUMENTED: dict[str, tuple[set[str], set[str]]] = {
    "workflow_started": ({"system_time"}, {"initial_step", "context_keys", "runner"}),
    "workflow_stopped": ({"duration", "step_count", "advance_count"},
                         {"status", "completed_steps", "runner"}),
    "workflow_exception": ({"duration"}, {"status", "failed_step", "reason", "kind", "traceback", "runner"}),
    "workflow_transition": ({"system_time", "targets_count"}, {"from_step", "event", "targets", "fan_out"}),
    "step_started": ({"system_time"}, {"step", "step_key", "concurrent", "active_steps_count"}),
    "step_stopped": ({"duration"}, {"step", "step_key", "event", "has_context_updates",
                                    "has_metadata_updates", "transitions_to"}),
    "step_exception": ({"duration"}, {"step", "step_key", "kind", "reason", "traceback"}),
    "step_async": ({"duration"}, {"step", "step_key", "instance_status"}),
    "step_resumed": ({"system_time", "wait_duration"}, {"step", "step_key", "resume_event", "source"}),
    "engine_advanced": ({"duration", "active_steps_count", "completed_in_advance"},
                        {"status_before", "status_after", "iteration"}),
    "runner_initialized": ({"system_time"}, {"name", "runner", "storage"}),
}
INSTANCE_KEYS = {"instance_id", "workflow", "workflow_version", "runner"}
STATUSES = {"pending", "running", "waiting", "completed", "failed", "cancelled"}


class Recorder:
    """Receives every hephaestus signal: ``events`` is a list of (name, sender, measurements, metadata)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = []
        self.receivers: dict[str, Any] = {}

    def connect(self) -> None:
        for name, signal in signals.SIGNALS.items():
            def receiver(sender: Any, *, measurements: dict[str, Any], metadata: dict[str, Any],
                         _name: str = name, **kwargs: Any) -> None:
                self.events.append((_name, sender, measurements, metadata))

            self.receivers[name] = receiver
            signal.connect(receiver, weak=False)

    def disconnect(self) -> None:
        for name, receiver in self.receivers.items():
            signals.SIGNALS[name].disconnect(receiver)

    def named(self, name: str) -> list[tuple[Any, dict[str, Any], dict[str, Any]]]:
        return [(s, m, d) for n, s, m, d in self.events if n == name]

    def counts(self) -> dict[str, int]:
        return {name: len(self.named(name)) for name in signals.SIGNALS}


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    rec.connect()
    yield rec
    rec.disconnect()


def new_id(key: str) -> str:
    return f"{key}::T-{uuid.uuid4().hex[:10]}"


def test_the_signals_module_has_the_eleven_signals_in_spec_order() -> None:
    assert list(signals.SIGNALS) == list(DOCUMENTED)
    for name, signal in signals.SIGNALS.items():
        assert getattr(signals, name) is signal


@pytest.mark.django_db
def test_a_run_with_fan_out_wait_resume_retry_timer_and_failure(recorder: Recorder) -> None:
    """Every event once per occurrence, with exactly the documented keys (plus the instance's)."""
    instance_id = new_id("cmdsig")
    wc.FAIL_IDS.add(instance_id)
    start_ns = time.time_ns()
    try:
        with frozen_clock() as clock:
            services.start_instance(CmdSignalFlow, {"order": 1, "amount": 2}, id=instance_id,
                                    telemetry_metadata={"tenant": "acme"})
            # fan-out: CmdSigApproval waits, CmdSigFlaky fails once and is retried at once
            clock.advance(seconds=3)
            services.resume(instance_id, "approved")  # CmdSigCheck runs and fails: the instance fails
            wc.FAIL_IDS.discard(instance_id)
            services.retry(instance_id)  # CmdSigCheck passes; Wait pauses for 5 s
            clock.advance(seconds=6)
            assert services.get_instance(instance_id).status == "waiting"
            assert DjangoRunner().fire_due_timers() == 1  # Wait times out; Done completes the instance
    finally:
        wc.FAIL_IDS.discard(instance_id)
        wc.FLAKY_ATTEMPTS.pop(instance_id, None)
    assert services.get_instance(instance_id).status == "completed"

    events = [e for e in recorder.events if e[0] != "runner_initialized"]
    assert recorder.counts() == {
        "workflow_started": 1, "workflow_stopped": 1, "workflow_exception": 1,
        # Start -> [Approval, Flaky]; Approval -> Check; Flaky -> Check; Check -> Wait; Wait -> Done
        "workflow_transition": 5,
        # Start, Approval, Flaky x2, Check x2 (failed, then retried), Wait, Done
        "step_started": 8,
        "step_stopped": 4,  # Start, Flaky, Check, Done (Approval and Wait end by resume)
        "step_exception": 2,  # Flaky's first attempt, Check's failure
        "step_async": 2,  # Approval, Wait
        "step_resumed": 2,  # Approval (external), Wait (timeout)
        # one per step outcome applied: Start, Approval, Flaky x2, Check x2, Wait (Done completes at once
        # inside the state change that reaches it, and resumes are not step outcomes)
        "engine_advanced": 7,
        "runner_initialized": 1,  # the DjangoRunner() above
    }
    for name, sender, measurements, metadata in events:
        documented_measurements, documented_metadata = DOCUMENTED[name]
        assert sender is CmdSignalFlow, name
        assert set(measurements) == documented_measurements, name
        assert set(metadata) == documented_metadata | INSTANCE_KEYS | {"tenant"}, name
        assert metadata["instance_id"] == instance_id
        assert metadata["workflow"] == "tests.CmdSignalFlow" and metadata["workflow_version"] == 1
        assert metadata["tenant"] == "acme"
        for key in ("system_time",):
            if key in measurements:
                assert isinstance(measurements[key], int) and start_ns <= measurements[key] <= time.time_ns()
        for key in ("duration", "wait_duration"):
            if key in measurements:
                assert isinstance(measurements[key], float) and measurements[key] >= 0, (name, key)

    (_, m, d), = recorder.named("workflow_started")
    assert d["initial_step"] == CmdSigStart.registry_name() and d["context_keys"] == ["amount", "order"]

    fan_out = [d for _, _, d in recorder.named("workflow_transition") if d["fan_out"]]
    assert [(d["from_step"], d["event"], d["targets"]) for d in fan_out] == [
        (CmdSigStart.registry_name(), "go", [CmdSigApproval.registry_name(), CmdSigFlaky.registry_name()])]
    assert [m["targets_count"] for _, m, _ in recorder.named("workflow_transition")].count(2) == 1

    first, second = recorder.named("step_exception")
    assert first[2]["step"] == CmdSigFlaky.registry_name() and first[2]["kind"] == "exception"
    assert "flaky first attempt" in first[2]["reason"] and "RuntimeError" in first[2]["traceback"]
    assert second[2]["step"] == CmdSigCheck.registry_name() and second[2]["kind"] == "error"
    assert second[2]["reason"] == "Error: check failed" and second[2]["traceback"] is None

    (_, m, d), = recorder.named("workflow_exception")
    assert d["status"] == "failed" and d["failed_step"] == CmdSigCheck.registry_name()
    assert d["reason"] == "Error: check failed" and d["kind"] == "error"
    assert m["duration"] == pytest.approx(3.0)  # by the engine's (frozen) clock

    assert [(d["step"], d["instance_status"]) for _, _, d in recorder.named("step_async")] == [
        (CmdSigApproval.registry_name(), "running"),  # CmdSigFlaky still runs beside it
        (Wait.registry_name(), "waiting")]
    resumed = recorder.named("step_resumed")
    assert [(d["step"], d["resume_event"], d["source"]) for _, _, d in resumed] == [
        (CmdSigApproval.registry_name(), "approved", "external"),
        (Wait.registry_name(), "timeout", "timeout")]
    # paused-at times are stored as JSON with millisecond precision
    waits = [m["wait_duration"] for _, m, _ in resumed]
    assert waits == [pytest.approx(3.0, abs=1e-3), pytest.approx(6.0, abs=1e-3)]

    started = recorder.named("step_started")
    assert [d["step"] for _, _, d in started].count(CmdSigFlaky.registry_name()) == 2
    assert [d["step_key"] for _, _, d in started][0] == "cmd_sig_start"

    stopped = {d["step"]: d for _, _, d in recorder.named("step_stopped")}
    assert stopped[CmdSigStart.registry_name()]["has_context_updates"] is True
    assert stopped[CmdSigStart.registry_name()]["has_metadata_updates"] is True
    assert stopped[CmdSigStart.registry_name()]["transitions_to"] == [CmdSigApproval.registry_name(),
                                                                      CmdSigFlaky.registry_name()]
    assert stopped[Done.registry_name()]["transitions_to"] == []

    advances = [d for _, _, d in recorder.named("engine_advanced")]
    assert [d["status_after"] for d in advances].count("failed") == 1
    assert all(d["status_before"] in STATUSES and d["status_after"] in STATUSES for d in advances)

    (_, m, d), = recorder.named("workflow_stopped")
    assert d["status"] == "completed" and m["step_count"] == 6
    assert d["completed_steps"] == sorted(s.registry_name() for s in CmdSignalFlow.graph.nodes)
    assert m["duration"] == pytest.approx(9.0)

    (sender, m, d), = recorder.named("runner_initialized")
    assert sender is None and set(m) == {"system_time"} and set(d) == DOCUMENTED["runner_initialized"][1]
    assert d == {"name": "DjangoRunner", "runner": "django_tasks", "storage": "django_orm"}


@pytest.mark.django_db
def test_cancel_sends_workflow_stopped(recorder: Recorder) -> None:
    instance_id = new_id("cmd")
    services.start_instance(CmdFanFlow, {}, id=instance_id)
    services.cancel(instance_id)
    (sender, _, metadata), = recorder.named("workflow_stopped")
    assert sender is CmdFanFlow and metadata["status"] == "cancelled"


@pytest.mark.django_db
def test_a_receiver_that_raises_is_logged_and_never_breaks_a_workflow(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.step_started.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="hephaestus"):
            instance_id = new_id("cmd")
            instance = services.start_instance(CmdFanFlow, {"skip": True}, id=instance_id)
    finally:
        signals.step_started.disconnect(broken)
    assert instance.status == "completed"
    failures = [r for r in caplog.records if r.name == "hephaestus" and "receiver bug" in r.getMessage()]
    assert len(failures) == 2  # CmdPrepare and Done started
    assert "signal step_started raised RuntimeError" in failures[0].getMessage()
    assert failures[0].exc_info is not None


@pytest.mark.django_db
def test_logging_on_the_hephaestus_logger(caplog: pytest.LogCaptureFixture) -> None:
    failing = new_id("cmdfail")
    wc.FAIL_IDS.add(failing)
    try:
        with caplog.at_level(logging.DEBUG, logger="hephaestus"):
            services.start_instance(CmdFanFlow, {"skip": True}, id=new_id("cmd"))
            services.start_instance(wc.CmdFailFlow, {}, id=failing)
    finally:
        wc.FAIL_IDS.discard(failing)
    records = [r for r in caplog.records if r.name == "hephaestus" and hasattr(r, "hephaestus_event")]
    levels: dict[str, set[int]] = {}
    for record in records:
        levels.setdefault(record.hephaestus_event, set()).add(record.levelno)
    assert levels["workflow_started"] == {logging.INFO}
    assert levels["workflow_stopped"] == {logging.INFO}
    assert levels["workflow_exception"] == {logging.ERROR}
    assert levels["step_exception"] == {logging.ERROR}
    assert levels["workflow_transition"] == {logging.DEBUG}
    assert levels["engine_advanced"] == {logging.DEBUG}
    stopped = next(r for r in records if r.hephaestus_event == "workflow_stopped")
    assert stopped.getMessage().startswith("workflow tests.CmdFanFlow completed (instance cmd::")
    failed = next(r for r in records if r.hephaestus_event == "workflow_exception")
    assert failed.getMessage() == (f"workflow tests.CmdFailFlow failed (instance {failing}) at step "
                                   f"{wc.CmdBoom.registry_name()}: Error: boom")
    assert failed.hephaestus_metadata["failed_step"] == wc.CmdBoom.registry_name()


# ---- OpenTelemetry ------------------------------------------------------------------------------------
@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    previous = observability.set_tracer_provider(provider)
    yield memory
    observability.set_tracer_provider(previous)
    provider.shutdown()


@pytest.mark.django_db
def test_opentelemetry_span_tree_of_one_run(exporter: InMemorySpanExporter,
                                            django_capture_on_commit_callbacks: Any) -> None:
    instance_id = new_id("cmd")
    with django_capture_on_commit_callbacks(execute=True):
        with frozen_clock() as clock:
            services.start_instance(CmdFanFlow, {"items": 1}, id=instance_id,
                                    telemetry_metadata={"tenant": "acme"})
            assert exporter.get_finished_spans() == ()  # nothing until the instance finishes
            clock.advance(seconds=60)
            services.resume(instance_id, "approved")
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1
    root = roots[0]
    assert root.name == "workflow tests.CmdFanFlow"
    assert root.attributes is not None
    assert root.attributes["hephaestus.instance_id"] == instance_id
    assert root.attributes["hephaestus.status"] == "completed"
    assert root.attributes["hephaestus.tenant"] == "acme"
    assert root.status.status_code == StatusCode.UNSET
    assert root.end_time is not None and root.start_time is not None
    assert (root.end_time - root.start_time) / 1e9 == pytest.approx(60.0, abs=0.01)

    children = [s for s in spans if s is not root]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in children)
    assert all(s.context.trace_id == root.context.trace_id for s in children)
    steps = (CmdPrepare, CmdBranchA, CmdBranchB, CmdMerge, CmdApprove, Done)
    expected = [f"step {c.__name__}" for c in steps] + ["wait CmdApprove"]
    assert sorted(s.name for s in children) == sorted(expected)
    kinds = {s.name: s.attributes["hephaestus.kind"] for s in children if s.attributes is not None}
    assert kinds["step CmdApprove"] == "paused" and kinds["wait CmdApprove"] == "resumed"
    assert kinds["step CmdMerge"] == "completed"
    wait = next(s for s in children if s.name == "wait CmdApprove")
    assert wait.attributes is not None
    assert wait.attributes["hephaestus.source"] == "external"
    assert wait.attributes["hephaestus.event"] == "approved"
    assert wait.end_time is not None and wait.start_time is not None
    assert (wait.end_time - wait.start_time) / 1e9 == pytest.approx(60.0, abs=0.01)
    for child in children:
        assert child.start_time is not None and child.end_time is not None
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time


@pytest.mark.django_db
def test_opentelemetry_marks_a_failed_run(exporter: InMemorySpanExporter,
                                          django_capture_on_commit_callbacks: Any) -> None:
    failing = new_id("cmdfail")
    wc.FAIL_IDS.add(failing)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.start_instance(wc.CmdFailFlow, {}, id=failing)
    finally:
        wc.FAIL_IDS.discard(failing)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"workflow tests.CmdFailFlow", "step CmdBoom"}
    assert spans["workflow tests.CmdFailFlow"].status.status_code == StatusCode.ERROR
    assert spans["workflow tests.CmdFailFlow"].status.description == "Error: boom"
    assert spans["step CmdBoom"].status.status_code == StatusCode.ERROR


@pytest.mark.django_db
def test_no_spans_without_a_tracer_provider(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.start_instance(CmdFanFlow, {"skip": True}, id=new_id("cmd"))
    assert callbacks == []  # no provider configured: nothing is scheduled, no query is made
