"""Hostile input to the commands (SPEC §13): every bad value is a one-line ``CommandError`` (exit
status 1, no traceback) naming the problem, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hephaestus_django import services
from tests.test_commands import cli_env, fails, manage, snapshot, value  # noqa: F401 - cli_env is a fixture
from tests.workflows_commands import CmdFanFlow

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000
NESTED_150 = '{"a": ' * 150 + "1" + "}" * 150


@pytest.mark.parametrize("option", ["--context", "--telemetry-metadata"])
@pytest.mark.parametrize(("text", "expected"), [
    ('{"x": NaN}', "{option}['x'] is nan, which JSON cannot represent; nothing was written"),
    ('{"x": 1e400}', "{option}['x'] is inf, which JSON cannot represent; nothing was written"),
    ('{"x": -Infinity}', "{option}['x'] is -inf, which JSON cannot represent; nothing was written"),
    ('{"x": "a\\u0000b"}', "{option}['x'] contains a NUL character (\\u0000), which the database cannot store"),
    ('{"x": "\\ud800"}', "{option}['x'] contains a lone surrogate"),
    ('{"x": ' + DEEP + "}", "{option} is nested more than 100 levels deep"),
    (NESTED_150, "is nested more than 100 levels deep; nothing was written"),
    ('{"x": ' + "9" * 5000 + "}", "{option} is not valid JSON: Exceeds the limit (4300 digits)"),
])
def test_start_refuses_json_the_database_cannot_store(option: str, text: str, expected: str) -> None:
    before = snapshot()
    message = fails("hephaestus_start", "tests.CmdFanFlow", "H-1", option, text)
    assert expected.format(option=option) in message
    assert snapshot() == before


def test_a_context_file_is_checked_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "context.json"
    path.write_text('{"total": NaN}', encoding="utf-8")
    before = snapshot()
    message = fails("hephaestus_start", "tests.CmdFanFlow", "H-1", "--context-file", str(path))
    assert message == f"--context-file '{path}'['total'] is nan, which JSON cannot represent; nothing was written"
    assert snapshot() == before


@pytest.mark.parametrize(("full_id", "expected"), [
    ("other::X15", "invalid instance id 'other::X15': ids of this workflow start with 'cmd::'"),
    ("<script>alert(1)</script>", "invalid instance id '<script>alert(1)</script>': expected 'key::value'"),
    ("cmd::", "invalid instance id 'cmd::': expected 'key::value'"),
    ("cmd::A::nothex1", "the suffix must be 8 lowercase hex digits"),
    ("cmd::A\x00B", "invalid instance id 'cmd::A\\x00B'"),
    ("cmd::A::B::C", "expected 'key::value' or 'key::value::suffix'"),
])
def test_start_with_id_checks_the_id_like_the_api(full_id: str, expected: str) -> None:
    before = snapshot()
    assert expected in fails("hephaestus_start", "tests.CmdFanFlow", full_id, "--id")
    assert snapshot() == before


def test_start_with_a_valid_full_id() -> None:
    v = value()
    from tests.test_commands import run

    assert f"Started cmd::{v}." in run("hephaestus_start", "tests.CmdFanFlow", f"cmd::{v}", "--id")


@pytest.mark.parametrize(("args", "expected"), [
    (["hephaestus_list", "--limit", "99999999999999999999"],
     "argument --limit: '99999999999999999999' is too large (at most 2147483647)"),
    (["hephaestus_list", "--version", "2147483648"], "argument --version: '2147483648' is too large"),
    (["hephaestus_prune", "--older-than", "1e308"],
     "argument --older-than: '1e308' is too large (at most 365000 days)"),
    (["hephaestus_prune", "--older-than", "nan"], "argument --older-than: 'nan' is not a non-negative number"),
    (["hephaestus_prune", "--older-than", "inf"], "argument --older-than: 'inf' is not a non-negative number"),
    (["hephaestus_prune", "--older-than", "1", "--batch-size", "1" + "0" * 30], "is too large"),
    (["hephaestus_worker", "--once", "--interval", "1e308"], "argument --interval: '1e308' is too long"),
    (["hephaestus_start", "tests.CmdFanFlow", "H-1", "--version", "9" * 20], "argument --version:"),
])
def test_numbers_out_of_range_are_one_line_errors(args: list[str], expected: str) -> None:
    before = snapshot()
    assert expected in fails(*args)
    assert snapshot() == before


@pytest.mark.parametrize("command", [["hephaestus_show"], ["hephaestus_cancel"], ["hephaestus_retry"],
                                     ["hephaestus_resume", "{id}", "approved"]])
def test_an_id_with_a_nul_is_a_one_line_error(command: list[str]) -> None:
    services.start_instance(CmdFanFlow, {"items": 1}, id="cmd::N-1")
    args = [a.format(id="cmd::N\x00") for a in command] if "{id}" in command else [*command, "cmd::N\x00"]
    before = snapshot()
    message = fails(*args)
    assert "ID contains a NUL character (\\u0000), which the database cannot store" in message
    assert snapshot() == before


def test_graph_of_an_instance_with_a_nul_in_its_id() -> None:
    message = fails("hephaestus_graph", "tests.CmdFanFlow", "--instance", "cmd::\x00")
    assert "ID contains a NUL character" in message


@pytest.mark.parametrize(("args", "expected"), [
    (["hephaestus_resume", "cmd::R-1", "approved\x00"], "declares event 'approved\\x00'"),
    (["hephaestus_resume", "cmd::R-1", "approved", "--step", "a\x00b"], "has no step"),
    (["hephaestus_list", "--workflow", "tests.\x00"], "no workflow named"),
])
def test_other_text_with_a_nul_is_a_one_line_error(args: list[str], expected: str) -> None:
    services.start_instance(CmdFanFlow, {"items": 1}, id="cmd::R-1")
    before = snapshot()
    assert expected in fails(*args)
    assert snapshot() == before


@pytest.mark.parametrize(("args", "expected"), [
    (["hephaestus_start", "tests.CmdFanFlow", "P-1", "--context", '{"x": NaN}'],
     "CommandError: --context['x'] is nan, which JSON cannot represent; nothing was written"),
    (["hephaestus_start", "tests.CmdFanFlow", "P-1", "--context", DEEP],
     "CommandError: --context is nested more than 100 levels deep"),
    (["hephaestus_start", "tests.CmdFanFlow", "other::X15", "--id"],
     "CommandError: invalid instance id 'other::X15': ids of this workflow start with 'cmd::'"),
    (["hephaestus_list", "--limit", "99999999999999999999"],
     "CommandError: Error: argument --limit: '99999999999999999999' is too large (at most 2147483647)"),
    (["hephaestus_prune", "--older-than", "1e308"],
     "CommandError: Error: argument --older-than: '1e308' is too large (at most 365000 days)"),
])
def test_a_process_exits_1_with_one_line(cli_env: dict[str, str], args: list[str],  # noqa: F811 - the fixture
                                         expected: str) -> None:
    result = manage(*args, env=cli_env)
    assert (result.returncode, result.stderr.strip(), result.stdout) == (1, expected, "")


