"""The core is pure Python: importing it (or the package) never imports Django (SPEC §0, §1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter with no settings. A meta-path finder records every attempt to
# import django (or DRF / django-filter), even one that would fail or be caught.
PROBE = r"""
import json, sys

attempted = []

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("django", "rest_framework", "django_filters"):
            attempted.append(name)
        return None

sys.meta_path.insert(0, Watch())

{body}

loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("django", "rest_framework", "django_filters"))
print(json.dumps({{"attempted": attempted, "loaded": loaded}}))
"""

BODIES = {
    "core": "import hephaestus_django.core",
    "package": "import hephaestus_django",
    "lazy names": (
        "import hephaestus_django\n"
        "from hephaestus_django import Step, Workflow, VersionedWorkflow, Ok, Async, Error, Retry\n"
        "from hephaestus_django import Unique, route\n"
        "from hephaestus_django import Done, Wait, WaitForEvent, Debug, Instance, Context, ExecutionEntry\n"
        "import hephaestus_django.exceptions"
    ),
    "every core module": (
        "import pkgutil, importlib, hephaestus_django.core as core\n"
        "for info in pkgutil.iter_modules(core.__path__):\n"
        "    importlib.import_module('hephaestus_django.core.' + info.name)"
    ),
    "a run through the facade": (
        "from hephaestus_django import Done, Ok, Step, Unique, Workflow\n"
        "from hephaestus_django.core import facade\n"
        "from hephaestus_django.core.memory import MemoryStorage\n"
        "from hephaestus_django.core.runner import Runner\n"
        "facade.set_backend(Runner(MemoryStorage()))  # injected: the core imports no runner itself\n"
        "class Hello(Step):\n"
        "    events = ('ok',)\n"
        "    def execute(self, instance, config, context):\n"
        "        return Ok('ok', {'greeting': 'hello ' + context.initial['name']})\n"
        "class HelloFlow(Workflow):\n"
        "    unique = Unique(key='hello')\n"
        "    start_step = Hello\n"
        "    transitions = {(Hello, 'ok'): Done}\n"
        "assert HelloFlow.start('1', {'name': 'x'}) == 'hello::1'\n"
        "instance = HelloFlow.get('1')\n"
        "assert instance.status == 'completed', instance.status\n"
        "assert instance.context.steps == {'hello': {'greeting': 'hello x'}}"
    ),
}


@pytest.mark.parametrize("what", list(BODIES))
def test_import_does_not_import_django(what: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    result = subprocess.run([sys.executable, "-c", PROBE.format(body=BODIES[what])], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"attempted": [], "loaded": []}


def test_the_facade_without_a_runner_says_what_to_do() -> None:
    """Outside Django nobody installs a runner: the facade says so instead of storing nowhere."""
    from hephaestus_django.core import facade
    from hephaestus_django.core.facade import NoRunnerInstalled

    previous = facade.set_backend(None)
    try:
        with pytest.raises(NoRunnerInstalled, match="INSTALLED_APPS"):
            facade.backend()
    finally:
        facade.set_backend(previous)
