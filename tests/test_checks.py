"""Issue 3: system checks, settings and autodiscovery."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core import checks
from django.test import override_settings

from hephaestus_django.checks import check_settings, check_task_backend
from hephaestus_django.conf import DEFAULTS, settings
from hephaestus_django.core import registry

ROOT = Path(__file__).resolve().parent.parent


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages]


def test_default_settings_pass():
    assert check_settings() == []
    assert check_task_backend() == []
    assert settings.TASK_BACKEND == "default" and settings.LEASE_SECONDS == 300.0


@override_settings(HEPHAESTUS={"NOT_A_KEY": 1})
def test_unknown_key():
    messages = check_settings()
    assert ids(messages) == ["hephaestus.E001"] and "NOT_A_KEY" in messages[0].msg


@override_settings(HEPHAESTUS=["not", "a", "dict"])
def test_not_a_dict():
    messages = check_settings()
    assert ids(messages) == ["hephaestus.E006"] and messages[0].msg == "HEPHAESTUS must be a dict, not list."


@override_settings(HEPHAESTUS={"LEASE_SECONDS": 0, "WORKER_INTERVAL": "fast"})
def test_bad_numbers():
    assert ids(check_settings()) == ["hephaestus.E002", "hephaestus.E003"]


@override_settings(HEPHAESTUS={"TASK_BACKEND": "nowhere"})
def test_unknown_task_backend():
    messages = check_task_backend()
    assert ids(messages) == ["hephaestus.E201"] and "nowhere" in messages[0].msg


def test_settings_reload_on_change():
    assert settings.QUEUE_NAME == DEFAULTS["QUEUE_NAME"]
    with override_settings(HEPHAESTUS={"QUEUE_NAME": "workflows"}):
        assert settings.QUEUE_NAME == "workflows"
    assert settings.QUEUE_NAME == "default"
    with pytest.raises(AttributeError, match="unknown HEPHAESTUS setting"):
        settings.NOPE  # noqa: B018


def test_workflows_are_autodiscovered():
    assert registry.is_registered("tests.PersistFlow")


#: A workflows module whose only workflow is broken (its leaf is not Done).
BROKEN_FLOW = """
        from hephaestus_django import Step, Unique, Workflow

        class Lonely(Step):
            events = ("x",)

        class BrokenFlow(Workflow):
            unique = Unique(key="broken")
            start_step = Lonely
            transitions = {}
"""


def _broken_app(tmp_path: Path, source: str) -> dict[str, str]:
    """A ``brokenapp`` whose workflows module is ``source``, installed in settings: the env to run it."""
    app = tmp_path / "brokenapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "workflows.py").write_text(textwrap.dedent(source))
    (tmp_path / "broken_settings.py").write_text(textwrap.dedent("""
        from tests.settings import *  # noqa: F403
        INSTALLED_APPS = [*INSTALLED_APPS, "brokenapp"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    """))
    return {"PYTHONPATH": f"{tmp_path}:{ROOT}", "DJANGO_SETTINGS_MODULE": "broken_settings", "PATH": "/usr/bin:/bin"}


def _django(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "django", *args], capture_output=True, text=True, env=env,
                          cwd=env["PYTHONPATH"].split(":")[0], timeout=120, check=False)


def test_every_broken_workflow_of_a_module_is_reported(tmp_path):
    """Not only the first: each broken workflow gets its own E101, the valid ones still register."""
    env = _broken_app(tmp_path, """
        from hephaestus_django import Done, Step, Unique, VersionedWorkflow, Workflow

        class Lonely(Step):
            events = ("x",)

        class Fine(Step):
            events = ("ok",)

        class FirstBroken(Workflow):
            unique = Unique(key="first")
            start_step = Lonely
            transitions = {}

        class GoodFlow(Workflow):
            unique = Unique(key="good")
            start_step = Fine
            transitions = {(Fine, "ok"): Done}

        class SecondBroken(Workflow):
            unique = Unique(key="Not-Valid")
            start_step = Fine
            transitions = {(Fine, "ok"): Done}

        class Umbrella(VersionedWorkflow):
            unique = Unique(key="first")
            versions = {1: FirstBroken}
            current = 1

        class Twin(Workflow):
            name = "brokenapp.workflows.GoodFlow"
            unique = Unique(key="good")
            start_step = Fine
            transitions = {(Fine, "ok"): Done}
    """)
    result = _django(env, "check")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("hephaestus.E101") == 4, result.stderr
    assert "brokenapp.workflows.FirstBroken" in result.stderr and "leaf step Lonely is not Done" in result.stderr
    assert "workflow brokenapp.workflows.SecondBroken" in result.stderr
    assert "unique key 'Not-Valid' must match [a-z0-9]+" in result.stderr
    assert "versions[1] (FirstBroken) is not a valid workflow (see its own error)" in result.stderr
    assert ("workflow name 'brokenapp.workflows.GoodFlow' is already used by brokenapp.workflows.GoodFlow"
            in result.stderr)

    shell = _django(env, "shell", "--verbosity", "0", "-c", textwrap.dedent("""
        from hephaestus_django.core import registry
        from brokenapp import workflows
        print(sorted(n for n in ("GoodFlow", "FirstBroken", "SecondBroken", "Umbrella")
                     if registry.is_registered(f"brokenapp.workflows.{n}")))
        for broken in (workflows.FirstBroken, workflows.Umbrella):
            try:
                broken.start("v1", {})
            except Exception as exc:
                print(type(exc).__name__, str(exc).splitlines()[0])
    """))
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines() == [
        "['GoodFlow']",
        "WorkflowDefinitionError workflow brokenapp.workflows.FirstBroken:",
        "WorkflowDefinitionError workflow brokenapp.workflows.Umbrella:",
    ]


def test_an_import_that_stops_after_a_broken_workflow_reports_both(tmp_path):
    env = _broken_app(tmp_path, BROKEN_FLOW + """
        from hephaestus_django.core.registry import get_workflow
        FLOW = get_workflow("brokenapp.workflows.BrokenFlow")  # a broken workflow is not registered
    """)
    result = _django(env, "check")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("hephaestus.E101") == 2, result.stderr
    assert "leaf step Lonely is not Done" in result.stderr
    assert "then the import stopped: UnknownWorkflow: no workflow named" in result.stderr


def test_other_import_errors_are_not_hidden(tmp_path):
    env = _broken_app(tmp_path, "import not_a_module_anywhere\n")
    result = _django(env, "check")
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'not_a_module_anywhere'" in result.stderr


def test_invalid_workflow_reported_by_manage_py_check(tmp_path):
    """A workflows module with a broken workflow: `check` names it (E101) and exits non-zero."""
    env = _broken_app(tmp_path, BROKEN_FLOW)
    result = _django(env, "check")
    assert result.returncode == 1
    assert "hephaestus.E101" in result.stderr
    assert "brokenapp.workflows.BrokenFlow" in result.stderr and "leaf step Lonely is not Done" in result.stderr
    assert "Traceback" not in result.stderr


#: The queues the test workflows route steps to (tests.RoutedFlow), which a backend must accept.
ROUTED = ["default", "flows", "mail"]


@override_settings(HEPHAESTUS={"RECOVERY_ATTEMPTS": 0, "MAX_INLINE_STEPS": "many", "DISPATCH_TIMEOUT": -1})
def test_bad_runtime_settings():
    messages = check_settings()
    assert ids(messages) == ["hephaestus.E004", "hephaestus.E007", "hephaestus.E005"]
    assert "HEPHAESTUS['RECOVERY_ATTEMPTS'] must be a positive int, not 0." in messages[0].msg
    assert "HEPHAESTUS['MAX_INLINE_STEPS'] must be a positive int, not 'many'." in messages[1].msg
    assert "DISPATCH_TIMEOUT'] must be None or a positive number of seconds, not -1." in messages[2].msg


@override_settings(TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}})
def test_steps_routed_to_a_queue_the_backend_does_not_accept():
    messages = check_task_backend()
    mailer = [m for m in messages if "tests.workflows_faults.SMailer" in m.msg]
    assert mailer and all(m.id == "hephaestus.E203" for m in messages)
    assert "is routed to queue 'mail', which task backend 'default' does not accept (default)." in mailer[0].msg
    assert any("queue 'flows'" in m.msg for m in messages)


def test_a_compensation_step_routed_to_a_queue_the_backend_does_not_accept():
    from hephaestus_django.core import Done, Ok, Step, Unique, Workflow, registry

    class CUndo(Step):
        events = ("undone",)
        queue_name = "refunds"

        def execute(self, instance, config, context):
            return Ok("undone")

    class CDo(Step):
        events = ("done",)
        compensate = CUndo

        def execute(self, instance, config, context):
            return Ok("done")

    class CompensatedElsewhere(Workflow):
        unique = Unique(key="celse")
        start_step = CDo
        transitions = {(CDo, "done"): Done}

    try:
        with override_settings(TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ROUTED}}):
            messages = check_task_backend()
    finally:
        registry.unregister(CompensatedElsewhere.name)
    assert [m.msg for m in messages] == [
        f"step {CUndo.registry_name()} of workflow {CompensatedElsewhere.name} (version 1) is routed to queue "
        "'refunds', which task backend 'default' does not accept (default, flows, mail)."]


@override_settings(TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ROUTED}})
def test_steps_routed_to_accepted_queues_pass():
    assert check_task_backend() == []

FENNEL = "django_tasks_fennel.CeleryBackend"
OURS = "hephaestus_django.contrib.celery.CeleryBackend"


@pytest.mark.parametrize(("tasks", "hephaestus", "expected"), [
    pytest.param(
        {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
         "celery": {"BACKEND": OURS, "QUEUES": ROUTED}},
        {"TASK_BACKEND": "celery"},
        ("hephaestus.E202",
         "HEPHAESTUS['TASK_BACKEND'] is 'celery', whose backend hephaestus_django.contrib.celery.CeleryBackend runs "
         "only tasks of its own class (django_tasks_fennel.backend.Task); the engine's tasks are created on "
         "TASKS['default'], so its workers would discard them as unregistered.",
         "Make this backend TASKS['default'] and remove HEPHAESTUS['TASK_BACKEND']."),
        # fennel registers a task with Celery when the task is created on its backend: a Celery worker
        # would discard the engine's tasks (created on TASKS['default']) as unregistered
        id="celery-not-the-default-alias"),
    pytest.param(
        {"default": {"BACKEND": FENNEL, "QUEUES": ROUTED}},
        {},
        ("hephaestus.W202",
         "TASKS['default'] sends the engine's timers to Celery as ETA tasks: a worker holds each one unacknowledged "
         "until it is due, and RabbitMQ stops a consumer that holds a message longer than its consumer_timeout "
         "(30 minutes by default).",
         "Use 'hephaestus_django.contrib.celery.CeleryBackend' (timers fire through hephaestus_worker)."),
        id="fennel-sends-timers-as-eta-tasks"),
])
def test_celery_backend_checks(tasks, hephaestus, expected):
    pytest.importorskip("django_tasks_fennel", reason="the celery extra is not installed")
    with override_settings(TASKS=tasks, HEPHAESTUS=hephaestus):
        messages = check_task_backend()
    assert [(m.id, m.msg, m.hint) for m in messages] == [expected]


@override_settings(TASKS={"default": {"BACKEND": OURS, "QUEUES": ROUTED}})
def test_our_celery_backend_refuses_run_after():
    pytest.importorskip("django_tasks_fennel", reason="the celery extra is not installed")
    from datetime import timedelta

    from django.utils import timezone

    from hephaestus_django.compat import InvalidTaskError
    from hephaestus_django.runtime.tasks import fire_timer

    assert check_task_backend() == []
    with pytest.raises(InvalidTaskError, match="^Backend does not support run_after.$"):
        fire_timer.using(run_after=timezone.now() + timedelta(hours=1))


def test_celery_as_the_default_backend_passes_the_checks():
    """A project whose TASKS['default'] is our Celery backend (the engine's tasks are fennel's then)."""
    pytest.importorskip("django_tasks_fennel", reason="the celery extra is not installed")
    out = subprocess.run([sys.executable, "-m", "django", "check", "--settings", "tests.settings_celery"],
                         cwd=ROOT, capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "hephaestus." not in out.stdout + out.stderr
