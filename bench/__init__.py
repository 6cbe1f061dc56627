"""Benchmarks (run as scripts: ``python bench/runtime.py``, ``python bench/backends.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def markdown_table(header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """``rows`` (dicts keyed by the header's names) as a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[name]) for name in header) + " |" for row in rows]
    return "\n".join(lines)
