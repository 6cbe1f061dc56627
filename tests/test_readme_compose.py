"""The README's tour of SPEC §9 (resume data, idempotency keys, child workflows, list routes) runs
as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hephaestus_django.core import registry

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "### Events with data, child workflows, fan-out chosen at run time"


def block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(HEADING):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


@pytest.mark.django_db(transaction=True)
def test_the_tour_block_runs() -> None:
    before = {w.name for w in registry.all_workflows()}
    try:
        exec(compile(block(), str(README), "exec"), {"__name__": "readme_tour"})  # noqa: S102 - our own README
    finally:
        for workflow in registry.all_workflows():
            if workflow.name not in before:
                registry.unregister(workflow.name)
