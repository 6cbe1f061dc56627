"""Issue 15: every setting typed and validated, one system check id per problem, checks and the
settings' reload connected by ``AppConfig.ready()`` (importing a module registers nothing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.test import override_settings

from hephaestus_django import conf
from hephaestus_django.checks import check_settings, check_task_backend, check_workflows
from hephaestus_django.conf import DEFAULTS, MAX_COUNT, MAX_SECONDS, RULES, HephaestusSettings, settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("hephaestus", "check_id", "message"), [
    ({"NOT_A_KEY": 1}, "hephaestus.E001", "Unknown HEPHAESTUS setting 'NOT_A_KEY'."),
    ({"LEASE_SECONDS": -5}, "hephaestus.E002", "HEPHAESTUS['LEASE_SECONDS'] must be a positive number, not -5."),
    ({"LEASE_SECONDS": float("inf")}, "hephaestus.E002",
     "HEPHAESTUS['LEASE_SECONDS'] must be a positive number, not inf."),
    ({"LEASE_SECONDS": MAX_SECONDS + 1}, "hephaestus.E002",
     f"HEPHAESTUS['LEASE_SECONDS'] must be a positive number, not {MAX_SECONDS + 1}."),
    ({"WORKER_INTERVAL": "fast"}, "hephaestus.E003",
     "HEPHAESTUS['WORKER_INTERVAL'] must be a positive number, not 'fast'."),
    ({"RECOVERY_ATTEMPTS": True}, "hephaestus.E004",
     "HEPHAESTUS['RECOVERY_ATTEMPTS'] must be a positive int, not True."),
    ({"DISPATCH_TIMEOUT": 0}, "hephaestus.E005",
     "HEPHAESTUS['DISPATCH_TIMEOUT'] must be None or a positive number of seconds, not 0."),
    ("fast", "hephaestus.E006", "HEPHAESTUS must be a dict, not str."),
    ({"MAX_INLINE_STEPS": 0}, "hephaestus.E007", "HEPHAESTUS['MAX_INLINE_STEPS'] must be a positive int, not 0."),
    ({"MAX_INLINE_STEPS": 2.5}, "hephaestus.E007", "HEPHAESTUS['MAX_INLINE_STEPS'] must be a positive int, not 2.5."),
    ({"TASK_BACKEND": ""}, "hephaestus.E008", "HEPHAESTUS['TASK_BACKEND'] must be a non-empty str, not ''."),
    ({"QUEUE_NAME": None}, "hephaestus.E009", "HEPHAESTUS['QUEUE_NAME'] must be a non-empty str, not None."),
    ({"API_PERMISSION_CLASSES": "rest_framework.permissions.AllowAny"}, "hephaestus.E010",
     "HEPHAESTUS['API_PERMISSION_CLASSES'] must be None or a list of dotted paths of DRF permission classes, "
     "not 'rest_framework.permissions.AllowAny'."),
    ({"API_PERMISSION_CLASSES": ["rest_framework.permissions.NoSuchClass"]}, "hephaestus.E011",
     "HEPHAESTUS['API_PERMISSION_CLASSES'] names 'rest_framework.permissions.NoSuchClass', which cannot be "
     "imported (Module \"rest_framework.permissions\" does not define a \"NoSuchClass\" attribute/class)."),
    ({"API_PERMISSION_CLASSES": ["rest_framework.permissions.SAFE_METHODS"]}, "hephaestus.E011",
     "HEPHAESTUS['API_PERMISSION_CLASSES'] names 'rest_framework.permissions.SAFE_METHODS', which is not a "
     "permission class."),
    ({"ADMIN_COUNT_LIMIT": -1}, "hephaestus.E012",
     "HEPHAESTUS['ADMIN_COUNT_LIMIT'] must be an int, 0 or more, not -1."),
])
def test_each_settings_problem_has_its_own_id(hephaestus, check_id, message):
    with override_settings(HEPHAESTUS=hephaestus):
        messages = check_settings()
        assert [(m.id, m.msg) for m in messages] == [(check_id, message)]
        assert all(isinstance(m, checks.Error) for m in messages)
        if check_id not in ("hephaestus.E001", "hephaestus.E011"):  # values the app cannot run with
            assert check_task_backend() == []  # nothing more to say until the settings are right
            with pytest.raises(ImproperlyConfigured, match=r"^HEPHAESTUS"):
                settings.LEASE_SECONDS  # noqa: B018


def test_one_rule_and_one_id_per_key():
    assert list(RULES) == list(DEFAULTS)
    ids = [rule.check_id for rule in RULES.values()]
    assert len(set(ids)) == len(ids)
    assert not {"hephaestus.E001", "hephaestus.E006", "hephaestus.E011"} & set(ids)


def test_every_check_id_is_documented():
    documented = (ROOT / "docs" / "settings.md").read_text()
    source = "".join((ROOT / "hephaestus_django" / name).read_text() for name in ("checks.py", "conf.py"))
    used = set(re.findall(r"hephaestus\.[EW]\d{3}", source))
    assert len(used) == 17
    assert {check_id for check_id in used if f"`{check_id}`" not in documented} == set()


@override_settings(HEPHAESTUS={"LEASE_SECONDS": 60, "WORKER_INTERVAL": 2, "DISPATCH_TIMEOUT": 600,
                               "API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
                               "ADMIN_COUNT_LIMIT": 0, "UNKNOWN": 1})
def test_values_in_effect_are_typed():
    current = settings.current
    assert current == HephaestusSettings(LEASE_SECONDS=60.0, WORKER_INTERVAL=2.0, DISPATCH_TIMEOUT=600.0,
                                         API_PERMISSION_CLASSES=("rest_framework.permissions.AllowAny",),
                                         ADMIN_COUNT_LIMIT=0)
    assert isinstance(settings.LEASE_SECONDS, float) and settings.ADMIN_COUNT_LIMIT == 0
    assert [m.id for m in check_settings()] == ["hephaestus.E001"]  # an unknown key is not fatal


def test_largest_values_pass():
    hephaestus = {"LEASE_SECONDS": MAX_SECONDS, "RECOVERY_ATTEMPTS": MAX_COUNT, "MAX_INLINE_STEPS": 1,
                  "DISPATCH_TIMEOUT": None, "ADMIN_COUNT_LIMIT": MAX_COUNT}
    assert conf.problems(hephaestus) == []
    assert conf.load(hephaestus).RECOVERY_ATTEMPTS == MAX_COUNT


def test_every_problem_is_reported_at_once():
    problems = conf.problems({"LEASE_SECONDS": 0, "QUEUE_NAME": "", "B": 1, "A": 2})
    assert [p.check_id for p in problems] == ["hephaestus.E001", "hephaestus.E001", "hephaestus.E009",
                                               "hephaestus.E002"]
    with pytest.raises(ImproperlyConfigured) as raised:
        conf.load({"LEASE_SECONDS": 0, "QUEUE_NAME": ""})
    assert str(raised.value) == ("HEPHAESTUS['QUEUE_NAME'] must be a non-empty str, not ''. "
                                 "HEPHAESTUS['LEASE_SECONDS'] must be a positive number, not 0.")


def test_checks_and_reload_are_registered_by_ready_once():
    registered = checks.registry.registry.get_checks()
    for check in (check_settings, check_task_backend, check_workflows):
        assert registered.count(check) == 1
    receivers = [r for r in setting_changed._live_receivers(None)[0] if r == conf.reload_settings]
    assert len(receivers) == 1

    from django.apps import apps

    apps.get_app_config("hephaestus_django").ready()  # again: nothing twice
    registered = checks.registry.registry.get_checks()
    assert [registered.count(c) for c in (check_settings, check_task_backend, check_workflows)] == [1, 1, 1]
    assert [r for r in setting_changed._live_receivers(None)[0] if r == conf.reload_settings] == receivers


def test_importing_the_modules_registers_nothing():
    """Without the app's ready(): no check, no setting_changed receiver, no telemetry listener."""
    script = textwrap.dedent("""
        import django
        from django.conf import settings
        settings.configure(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"])
        django.setup()
        from django.core import checks
        from django.core.signals import setting_changed
        before = set(checks.registry.registry.get_checks())
        receivers_before = len(setting_changed.receivers)
        import hephaestus_django.checks, hephaestus_django.conf, hephaestus_django.observability
        from hephaestus_django.core import telemetry
        print(set(checks.registry.registry.get_checks()) - before, len(setting_changed.receivers) - receivers_before,
              telemetry._listeners)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["set()", "0", "[]"]
