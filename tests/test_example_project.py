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
    assert "Seeded 13 demo instances." in result.stdout
    assert "failed (compensated): order::ORD-1006 is failed" in result.stdout
    listing = manage("shell", "-c", "from hephaestus_django.storage.models import WorkflowInstance as W;"
                     "print(sorted(set(W.objects.values_list('status', flat=True))))", db=db)
    assert listing.stdout.strip().splitlines()[-1] == str(
        sorted(["pending", "running", "waiting", "completed", "failed", "cancelled"]))
    again = manage("seed_demo", db=db)  # idempotent: active ones are reported as already there
    assert again.returncode == 0 and "already there" in again.stdout


def test_the_parcel_order_uses_resume_data_keys_children_and_a_list_route(tmp_path):
    db = tmp_path / "demo.sqlite3"
    for args in (["migrate", "--no-input"], ["seed_demo"]):
        result = manage(*args, db=db)
        assert result.returncode == 0, result.stdout + result.stderr
    script = """
import hephaestus_django as h
from hephaestus_django.storage.models import ResumeKey, WorkflowInstance as W
paid, done = h.get_instance("porder::PO-2002"), h.get_instance("porder::PO-2003")
print(paid.status, sorted(s.__name__ for s in paid.waiting_steps), paid.context.steps["await_payment"])
print(sorted(W.objects.filter(parent_instance_id="porder::PO-2002").values_list("instance_id", "status")))
print(ResumeKey.objects.filter(instance__instance_id="porder::PO-2002").count(),
      [e.kind for e in paid.execution_history].count("resumed"))
print(done.status, sorted(done.context.steps["complete_order"]["branches"]))
print([(c["id"], c["status"]) for c in done.context.steps["ship_parcels"]["children"]])
"""
    result = manage("shell", "-c", script, db=db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-5:] == [
        "waiting ['ShipParcels'] {'charge_id': 'ch_PO-2002', 'amount': 32}",
        "[('parcel::PO-2002-1', 'waiting'), ('parcel::PO-2002-2', 'waiting')]",
        "1 1",
        "completed ['await_payment', 'email_receipt', 'plan_fulfilment', 'ship_parcels', 'wrap_gift']",
        "[('parcel::PO-2003-1', 'completed'), ('parcel::PO-2003-2', 'completed')]",
    ]
