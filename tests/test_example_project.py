"""Issue 3: the example project migrates, passes its checks and seeds every status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"

pytestmark = pytest.mark.slow


def manage(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=EXAMPLE, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_seed_demo_creates_every_status(tmp_path):
    db = tmp_path / "demo.sqlite3"
    for args in (["check"], ["migrate", "--no-input"], ["seed_demo"]):
        result = manage(*args, db=db)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "Seeded 10 demo instances." in result.stdout
    assert "failed (compensated): order::ORD-1006 is failed" in result.stdout
    listing = manage("shell", "-c", "from hephaestus_django.storage.models import WorkflowInstance as W;"
                     "print(sorted(set(W.objects.values_list('status', flat=True))))", db=db)
    assert listing.stdout.strip().splitlines()[-1] == str(
        sorted(["pending", "running", "waiting", "completed", "failed", "cancelled"]))
    again = manage("seed_demo", db=db)  # idempotent: active ones are reported as already there
    assert again.returncode == 0 and "already there" in again.stdout
