"""Issue 7: the ``hephaestus_*`` management commands (SPEC §7 "Commands (precise)").

Commands run through ``call_command`` against the test database; a few run as real processes
(``python -m django ...``) to check exit statuses, stderr and signal handling.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from hephaestus_django import services
from hephaestus_django.core import render
from hephaestus_django.storage.models import HistoryEntry, Timer, WorkflowInstance
from hephaestus_django.testing import frozen_clock
from tests import workflows_commands as wc
from tests.workflows_commands import CmdApprove, CmdFailFlow, CmdFanFlow, CmdSignalFlow

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_KEYS = {"id", "workflow", "workflow_version", "status", "current_step", "context", "step_configs",
                 "active_steps", "completed_steps", "runtime_metadata", "telemetry_metadata", "error",
                 "parent", "created_at", "updated_at"}
HISTORY_KEYS = {"kind", "step", "event", "timestamp", "attempt", "error", "duration", "context_updates",
                "traceback"}
WORKFLOW_KEYS = {"name", "versions", "current_version", "unique", "tags", "metadata", "steps", "edges",
                 "mermaid"}


def run(*args: str) -> str:
    """Run a command in process; its stdout."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def fails(*args: str) -> str:
    """Run a command that must fail with a one-line CommandError (exit status 1); its message."""
    with pytest.raises(CommandError) as info:
        run(*args)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    assert info.value.returncode == 1
    return message


def value() -> str:
    return f"V-{uuid.uuid4().hex[:10]}"


def snapshot() -> tuple[Any, ...]:
    """Everything a failed command must leave untouched."""
    rows = tuple(WorkflowInstance.objects.order_by("pk")
                 .values_list("pk", "status", "updated_at", "history_length"))
    return rows, HistoryEntry.objects.count(), Timer.objects.count()


@pytest.fixture
def waiting_id() -> str:
    """An instance of CmdFanFlow waiting at CmdApprove."""
    return services.start_instance(CmdFanFlow, {"items": 2}, id=f"cmd::{value()}").id


@pytest.fixture
def failed_id() -> Iterator[str]:
    instance_id = f"cmdfail::{value()}"
    wc.FAIL_IDS.add(instance_id)
    services.start_instance(CmdFailFlow, {}, id=instance_id)
    yield instance_id
    wc.FAIL_IDS.discard(instance_id)


# ---- hephaestus_start ----------------------------------------------------------------------------
def test_start_prints_a_summary() -> None:
    v = value()
    out = run("hephaestus_start", "tests.CmdFanFlow", v, "--context", '{"items": 3}')
    assert out.startswith(f"Started cmd::{v}.\n")
    assert "status:          waiting" in out
    assert "waiting steps:   CmdApprove" in out
    row = WorkflowInstance.objects.get(instance_id=f"cmd::{v}")
    assert row.context["initial"] == {"items": 3}


def test_start_json_is_the_api_instance_shape() -> None:
    v = value()
    data = run_json("hephaestus_start", "tests.CmdFanFlow", v, "--context", '{"items": 1, "name": "Zoë"}',
                    "--telemetry-metadata", '{"tenant": "acme"}', "--version", "1")
    assert set(data) == INSTANCE_KEYS
    assert data["id"] == f"cmd::{v}"
    assert data["workflow"] == "tests.CmdFanFlow" and data["workflow_version"] == 1
    assert data["status"] == "waiting"
    assert data["current_step"] == CmdApprove.registry_name()
    assert data["context"]["initial"] == {"items": 1, "name": "Zoë"}
    assert data["telemetry_metadata"] == {"tenant": "acme"}
    assert data["active_steps"] == [CmdApprove.registry_name()]


def test_start_json_keeps_non_ascii_text_as_is() -> None:
    out = run("hephaestus_start", "tests.CmdFanFlow", value(), "--context", '{"name": "Zoë ✓"}', "--json")
    assert "Zoë ✓" in out and "\\u" not in out


def test_start_with_a_context_file_and_a_full_id(tmp_path: Path) -> None:
    path = tmp_path / "context.json"
    path.write_text('{"skip": true}', encoding="utf-8")
    data = run_json("hephaestus_start", "tests.CmdFanFlow", "cmd::given-id.1", "--id",
                    "--context-file", str(path))
    assert data["id"] == "cmd::given-id.1"
    assert data["status"] == "completed"  # skip -> Done
    assert data["context"]["initial"] == {"skip": True}


def test_start_reads_the_context_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"items": 7}'))
    data = run_json("hephaestus_start", "tests.CmdFanFlow", value(), "--context-file", "-")
    assert data["context"]["initial"] == {"items": 7}


@pytest.mark.parametrize(("args", "expected"), [
    (["nope.Flow", "A-1"], "no workflow named 'nope.Flow' is registered"),
    (["tests.CmdFanFlow", "A-1", "--context", "{bad"], "--context is not valid JSON"),
    (["tests.CmdFanFlow", "A-1", "--context", "[1, 2]"], "--context must be a JSON object, not list"),
    (["tests.CmdFanFlow", "A-1", "--telemetry-metadata", "nope"], "--telemetry-metadata is not valid JSON"),
    (["tests.CmdFanFlow", "bad value!"], "invalid business value 'bad value!'"),
    (["tests.CmdFanFlow", "-x"], "Error:"),
    (["tests.CmdFanFlow", "A-1", "--version", "2"], "has no version 2"),
    (["tests.CmdFanFlow", "A-1", "--version", "0"], "argument --version: '0' is not a positive integer"),
    (["tests.CmdFanFlow", "A-1", "--version", "x"], "argument --version: 'x' is not an integer"),
    (["tests.CmdFanFlow", "A-1", "--context", "{}", "--context-file", "x.json"], "not allowed with argument"),
    (["tests.CmdFanFlow", "A-1", "--context-file", "/nonexistent/ctx.json"], "cannot read --context-file"),
    (["tests.CmdFanFlow"], "the following arguments are required: VALUE"),
])
def test_start_refuses_bad_input_and_changes_nothing(args: list[str], expected: str) -> None:
    before = snapshot()
    assert expected in fails("hephaestus_start", *args)
    assert snapshot() == before


def test_start_twice_is_already_running(waiting_id: str) -> None:
    before = snapshot()
    message = fails("hephaestus_start", "tests.CmdFanFlow", waiting_id, "--id")
    assert "already active" in message
    assert snapshot() == before


# ---- resume, cancel, retry -----------------------------------------------------------------------
def test_resume_completes_the_waiting_step(waiting_id: str) -> None:
    out = run("hephaestus_resume", waiting_id, "approved")
    assert out.startswith(f"Resumed {waiting_id} with 'approved'.\n")
    assert "status:          completed" in out
    assert WorkflowInstance.objects.get(instance_id=waiting_id).status == "completed"


def test_resume_with_step_and_json(waiting_id: str) -> None:
    data = run_json("hephaestus_resume", waiting_id, "rejected", "--step", CmdApprove.registry_name())
    assert set(data) == INSTANCE_KEYS and data["status"] == "completed"


@pytest.mark.parametrize(("args", "expected"), [
    (["cmd::missing", "approved"], "no instance with id 'cmd::missing'"),
    (["{id}", "nope"], "no waiting step of instance"),
    (["{id}", "approved", "--step", "tests.Nope"], "has no step"),
    (["{id}"], "the following arguments are required: EVENT"),
])
def test_resume_refuses_bad_input(waiting_id: str, args: list[str], expected: str) -> None:
    before = snapshot()
    assert expected in fails("hephaestus_resume", *[a.replace("{id}", waiting_id) for a in args])
    assert snapshot() == before


def test_resume_of_a_finished_instance_is_not_waiting(waiting_id: str) -> None:
    run("hephaestus_resume", waiting_id, "approved")
    before = snapshot()
    assert "has no waiting step" in fails("hephaestus_resume", waiting_id, "approved")
    assert snapshot() == before


def test_cancel(waiting_id: str) -> None:
    out = run("hephaestus_cancel", waiting_id)
    assert out.startswith(f"Cancelled {waiting_id}.\n") and "status:          cancelled" in out
    before = snapshot()
    message = fails("hephaestus_cancel", waiting_id)
    assert "only pending, running and waiting (or paused) instances can be cancelled" in message
    assert "no instance with id 'cmd::missing'" in fails("hephaestus_cancel", "cmd::missing")
    assert snapshot() == before


def test_cancel_json(waiting_id: str) -> None:
    data = run_json("hephaestus_cancel", waiting_id)
    assert data["status"] == "cancelled" and data["active_steps"] == []


def test_retry(failed_id: str) -> None:
    row = WorkflowInstance.objects.get(instance_id=failed_id)
    assert row.status == "failed" and "boom" in row.error
    before = snapshot()
    assert "no instance with id 'cmdfail::missing'" in fails("hephaestus_retry", "cmdfail::missing")
    assert snapshot() == before
    wc.FAIL_IDS.discard(failed_id)
    data = run_json("hephaestus_retry", failed_id)
    assert data["status"] == "completed" and data["error"] is None
    before = snapshot()
    assert "only failed instances can be retried" in fails("hephaestus_retry", failed_id)
    assert snapshot() == before


def test_retry_prints_a_summary(failed_id: str) -> None:
    out = run("hephaestus_retry", failed_id)  # still failing: it fails again
    assert out.startswith(f"Retried {failed_id}.\n")
    assert "status:          failed" in out and "error:           Error: boom" in out


# ---- list and show -------------------------------------------------------------------------------
def test_list_table_and_filters(waiting_id: str, failed_id: str) -> None:
    done = services.start_instance(CmdFanFlow, {"skip": True}, id=f"cmd::{value()}").id
    out = run("hephaestus_list")
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "WORKFLOW", "VERSION", "STATUS", "CURRENT", "STEP", "CREATED", "UPDATED"]
    assert [line.split()[0] for line in lines] == [done, failed_id, waiting_id]  # newest first
    assert header.index("WORKFLOW") == lines[0].index("tests.")  # columns are aligned

    def ids(*args: str) -> list[str]:
        return [item["id"] for item in run_json("hephaestus_list", *args)]

    assert ids("--workflow", "tests.CmdFailFlow") == [failed_id]
    assert ids("--status", "waiting", "failed") == [failed_id, waiting_id]
    assert ids("--status", "waiting", "--status", "COMPLETED") == [done, waiting_id]
    assert ids("--version", "1", "--limit", "2") == [done, failed_id]
    assert ids("--version", "2") == []
    assert all(set(item) == INSTANCE_KEYS for item in run_json("hephaestus_list"))


def test_list_when_empty() -> None:
    assert run("hephaestus_list") == "No instances.\n"
    assert run_json("hephaestus_list") == []


@pytest.mark.parametrize(("args", "expected"), [
    (["--workflow", "tests.Nope"], "no workflow named 'tests.Nope' is registered"),
    (["--status", "done"], "invalid status 'done' (choose from pending, running, waiting, completed, failed"),
    (["--limit", "0"], "'0' is not a positive integer"),
])
def test_list_refuses_bad_input(args: list[str], expected: str) -> None:
    assert expected in fails("hephaestus_list", *args)


def test_show_prints_the_instance_and_its_history(waiting_id: str) -> None:
    out = run("hephaestus_show", waiting_id)
    assert f"id:              {waiting_id}" in out
    assert '"items": 2' in out
    assert "History (5 entries):" in out
    history = out.split("History (5 entries):\n", 1)[1].splitlines()
    assert history[0].split() == ["#", "TIME", "KIND", "STEP", "EVENT", "ATTEMPT", "DURATION", "ERROR"]
    assert [line.split()[3] for line in history[1:]] == ["completed", "completed", "completed", "completed",
                                                         "paused"]


def test_show_json_has_the_history(failed_id: str) -> None:
    data = run_json("hephaestus_show", failed_id)
    assert set(data) == INSTANCE_KEYS | {"history"}
    assert data["status"] == "failed"
    assert [set(h) for h in data["history"]] == [HISTORY_KEYS]
    assert data["history"][0]["kind"] == "failed" and data["history"][0]["error"] == "Error: boom"


def test_show_unknown_id() -> None:
    assert fails("hephaestus_show", "cmd::nope") == "no instance with id 'cmd::nope'"


# ---- workflows and graph -------------------------------------------------------------------------
def test_workflows_table_and_json() -> None:
    out = run("hephaestus_workflows")
    header, *lines = out.splitlines()
    assert header.split() == ["NAME", "VERSIONS", "CURRENT", "UNIQUE", "STEPS", "TAGS"]
    line = next(line for line in lines if line.startswith("tests.CmdFanFlow "))
    assert line.split() == ["tests.CmdFanFlow", "1", "1", "cmd", "(workflow)", "6", "tests,", "commands"]
    data = run_json("hephaestus_workflows")
    names = [w["name"] for w in data]
    assert names == sorted(names) and "tests.CmdFanFlow" in names
    fan = next(w for w in data if w["name"] == "tests.CmdFanFlow")
    assert set(fan) == WORKFLOW_KEYS
    assert fan["mermaid"] == render.mermaid(CmdFanFlow.graph)
    assert {"from": wc.CmdPrepare.registry_name(), "event": "ready", "to": wc.CmdBranchA.registry_name()} \
        in fan["edges"]


def test_graph_formats() -> None:
    graph = CmdFanFlow.graph
    assert run("hephaestus_graph", "tests.CmdFanFlow") == render.mermaid(graph)
    assert run("hephaestus_graph", "tests.CmdFanFlow", "--format", "dot") == render.dot(graph)
    assert run("hephaestus_graph", "tests.CmdFanFlow", "--format", "ascii") == render.ascii(graph)


def test_graph_of_an_instance_marks_its_steps(waiting_id: str) -> None:
    out = run("hephaestus_graph", "tests.CmdFanFlow", "--format", "ascii", "--instance", waiting_id)
    assert "  [x] CmdMerge" in out and "  [~] CmdApprove" in out and "  [ ] Done" in out
    mermaid = run("hephaestus_graph", "tests.CmdFanFlow", "--instance", waiting_id)
    assert "class n4_CmdApprove waiting" in mermaid


@pytest.mark.parametrize(("args", "expected"), [
    (["tests.Nope"], "no workflow named 'tests.Nope' is registered"),
    (["tests.CmdFanFlow", "--format", "png"], "invalid format 'png' (choose from mermaid, dot, ascii)"),
    (["tests.CmdFanFlow", "--instance", "cmd::nope"], "no instance with id 'cmd::nope' in workflow"),
    (["tests.CmdFailFlow", "--instance", "{id}"], "in workflow tests.CmdFailFlow"),
])
def test_graph_refuses_bad_input(waiting_id: str, args: list[str], expected: str) -> None:
    assert expected in fails("hephaestus_graph", *[a.replace("{id}", waiting_id) for a in args])


# ---- prune ---------------------------------------------------------------------------------------
def _old_instances(days_ago: float) -> dict[str, str]:
    """One instance per status, finished (or left active) ``days_ago`` days ago."""
    made = {}
    with frozen_clock(datetime.now(UTC) - timedelta(days=days_ago)):
        made["completed"] = services.start_instance(CmdFanFlow, {"skip": True}, id=f"cmd::{value()}").id
        made["waiting"] = services.start_instance(CmdFanFlow, {}, id=f"cmd::{value()}").id
        made["cancelled"] = services.start_instance(CmdFanFlow, {}, id=f"cmd::{value()}").id
        services.cancel(made["cancelled"])
        failing = f"cmdfail::{value()}"
        wc.FAIL_IDS.add(failing)
        try:
            made["failed"] = services.start_instance(CmdFailFlow, {}, id=failing).id
        finally:
            wc.FAIL_IDS.discard(failing)
    return made


def _exists(instance_id: str) -> bool:
    return WorkflowInstance.objects.filter(instance_id=instance_id).exists()


def test_prune_deletes_old_finished_instances_only() -> None:
    old = _old_instances(40)
    recent = _old_instances(5)
    entries = _history(old)
    assert entries > 3
    out = run("hephaestus_prune", "--older-than", "30")
    assert out == ("Deleted 3 completed, failed, cancelled instances older than 30 days "
                   f"({entries} history entries) in 1 batch(es).\n")
    assert not any(_exists(old[s]) for s in ("completed", "failed", "cancelled"))
    assert _exists(old["waiting"])  # never an active instance
    assert all(_exists(i) for i in recent.values())
    assert not HistoryEntry.objects.filter(instance__instance_id=old["completed"]).exists()


def _history(made: dict[str, str]) -> int:
    return HistoryEntry.objects.filter(instance__instance_id__in=[made[s] for s in ("completed", "failed",
                                                                                     "cancelled")]).count()


def test_prune_dry_run_counts_and_deletes_nothing() -> None:
    old = _old_instances(10)
    entries = _history(old)
    before = snapshot()
    out = run("hephaestus_prune", "--older-than", "7", "--dry-run")
    assert out == ("Would delete 3 completed, failed, cancelled instances older than 7 days "
                   f"({entries} history entries).\n")
    assert snapshot() == before


def test_prune_by_status_in_batches() -> None:
    made = [_old_instances(3) for _ in range(3)]
    out = run("hephaestus_prune", "--older-than", "1", "--status", "completed", "--status", "cancelled",
              "--batch-size", "2", "-v", "2")
    assert "batch 1: deleted 2 instances" in out and "batch 2: deleted 2 instances" in out
    assert out.endswith("in 3 batch(es).\n")
    assert out.splitlines()[-1].startswith("Deleted 6 completed, cancelled instances older than 1 days")
    for group in made:
        assert not _exists(group["completed"]) and not _exists(group["cancelled"])
        assert _exists(group["failed"]) and _exists(group["waiting"])


@pytest.mark.parametrize(("args", "expected"), [
    ([], "the following arguments are required: --older-than"),
    (["--older-than", "-1"], "'-1' is not a non-negative number"),
    (["--older-than", "x"], "'x' is not a number"),
    (["--older-than", "1", "--status", "running"],
     "invalid status 'running': only finished instances can be pruned"),
    (["--older-than", "1", "--batch-size", "0"], "'0' is not a positive integer"),
])
def test_prune_refuses_bad_input(args: list[str], expected: str) -> None:
    _old_instances(3)
    before = snapshot()
    assert expected in fails("hephaestus_prune", *args)
    assert snapshot() == before


# ---- worker --------------------------------------------------------------------------------------
def test_worker_once_fires_due_timers() -> None:
    instance_id = f"cmdsig::{value()}"
    with frozen_clock() as clock:
        services.start_instance(CmdSignalFlow, {}, id=instance_id)
        services.resume(instance_id, "approved")
        assert WorkflowInstance.objects.get(instance_id=instance_id).status == "waiting"  # at Wait, 5 s
        assert run("hephaestus_worker", "--once") == "Fired 0 due timer(s), recovered 0 step(s).\n"
        clock.advance(seconds=6)
        assert run("hephaestus_worker", "--once") == "Fired 1 due timer(s), recovered 0 step(s).\n"
    assert WorkflowInstance.objects.get(instance_id=instance_id).status == "completed"
    wc.FLAKY_ATTEMPTS.pop(instance_id, None)


def test_worker_refuses_a_bad_interval() -> None:
    assert "'0' is not a positive number of seconds" in fails("hephaestus_worker", "--interval", "0")


# ---- real processes ------------------------------------------------------------------------------
def _env(database_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "django", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a process using a fresh, migrated SQLite database of its own."""
    env = _env(f"sqlite:///{tmp_path_factory.mktemp('cli') / 'db.sqlite3'}")
    result = manage("migrate", "-v", "0", env=env)
    assert result.returncode == 0, result.stderr
    return env


@pytest.mark.parametrize(("args", "expected"), [
    (["hephaestus_start", "tests.Nope", "A-1"], "CommandError: no workflow named 'tests.Nope' is registered"),
    (["hephaestus_start", "tests.CmdFanFlow", "A-1", "--context", "{oops"],
     "CommandError: --context is not valid JSON: Expecting property name enclosed in double quotes "
     "(line 1, column 2)"),
    (["hephaestus_start", "tests.CmdFanFlow", "A-1", "--version", "x"],
     "CommandError: Error: argument --version: 'x' is not an integer"),
    (["hephaestus_list", "--status", "bogus"],
     "CommandError: Error: argument --status: invalid status 'bogus' (choose from pending, running, waiting, "
     "completed, failed, cancelled, compensating, paused)"),
])
def test_process_exits_1_with_one_line_and_no_traceback(cli_env: dict[str, str], args: list[str],
                                                        expected: str) -> None:
    result = manage(*args, env=cli_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == expected
    assert result.stdout == ""


def test_process_round_trip(cli_env: dict[str, str]) -> None:
    v = value()
    started = manage("hephaestus_start", "tests.CmdFanFlow", v, "--context", '{"items": 1}', "--json",
                     env=cli_env)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["status"] == "waiting"
    bad = manage("hephaestus_resume", f"cmd::{v}", "nope", env=cli_env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    expected = f"CommandError: no waiting step of instance cmd::{v} declares event 'nope'"
    assert bad.stderr.strip().startswith(expected)
    resumed = manage("hephaestus_resume", f"cmd::{v}", "approved", env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    shown = manage("hephaestus_show", f"cmd::{v}", "--json", env=cli_env)
    data = json.loads(shown.stdout)
    assert data["status"] == "completed"
    assert [h["kind"] for h in data["history"]][-2:] == ["resumed", "completed"]


def test_a_reader_that_goes_away_stops_a_command_quietly(cli_env: dict[str, str]) -> None:
    # `hephaestus_list | head -1`: the pipe closes before the command writes
    process = subprocess.Popen([sys.executable, "-m", "django", "hephaestus_list"], cwd=ROOT, env=cli_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert process.returncode == 1


def test_worker_stops_cleanly_on_sigterm(cli_env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "django", "hephaestus_worker", "--interval", "0.2"]
    process = subprocess.Popen(command, cwd=ROOT, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Worker started (a pass every 0.2s)")
        time.sleep(0.5)  # a few passes
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert time.monotonic() - started < 5
    assert "Worker stopped (0 timer(s) fired and step(s) recovered)." in out
    assert "Traceback" not in err
