"""README.md and the tutorial run as written: their blocks are read from the files at test time.

The rules are in ``tests/readme_runner.py``: every ``python`` block in order in the module
``myapp.workflows``, ``python manage.py`` and ``curl`` lines of ``sh`` blocks, ``test_*`` functions
called, a block skipped only after a visible ``<!-- not-run: reason -->``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.dispatch import Signal
from django.test import override_settings

from hephaestus_django import signals
from hephaestus_django.core import registry
from tests.readme_runner import Block, ReadmeError, ReadmeRunner, extract_blocks, shell_commands

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TUTORIAL = ROOT / "docs" / "tutorial.md"
MODULE = "myapp.workflows"


@pytest.fixture
def restored_receivers():
    """README blocks may connect signal receivers: disconnect them afterwards."""
    hephaestus_signals = [value for value in vars(signals).values() if isinstance(value, Signal)]
    saved = {signal: list(signal.receivers) for signal in hephaestus_signals}
    yield
    for signal, receivers in saved.items():
        with signal.lock:
            signal.receivers[:] = receivers
            signal.sender_receivers_cache.clear()


def run_markdown(path: Path, module_name: str, request: pytest.FixtureRequest) -> tuple[ReadmeRunner, Any]:
    """Run ``path``'s blocks as ``module_name``; unregister the workflows they defined afterwards."""
    blocks = extract_blocks(path.read_text(encoding="utf-8"))
    runner = ReadmeRunner(path, module_name, request.getfixturevalue)
    before = set(registry.all_workflows())
    try:
        with runner.installed() as module, override_settings(ROOT_URLCONF=module):
            runner.run(blocks)
    finally:
        for workflow in set(registry.all_workflows()) - before:
            registry.unregister(workflow.name)
    return runner, module


@pytest.mark.django_db
def test_readme_runs_as_written(request, restored_receivers):
    runner, module = run_markdown(README, MODULE, request)
    blocks = extract_blocks(README.read_text(encoding="utf-8"))

    # The tour is there and ran whole: a README with its blocks renamed or emptied fails here.
    assert {"ValidateOrder", "ChargePayment", "ReserveStock", "NotifyCustomer", "PackOrder", "AwaitPickup",
            "RejectOrder", "OrderFlow", "SupportFlow"} <= set(vars(module))
    assert {"test_an_order_closes_a_day_after_pickup", "test_a_failed_payment_can_be_retried"} <= set(
        runner.called_tests)
    assert any(command.startswith("hephaestus_start myapp.workflows.OrderFlow") for command in runner.commands)
    assert "POST /workflows/api/instances/order::A-20/resume/" in runner.requests
    skipped = [block for block in blocks if block.not_run is not None]
    assert len(skipped) <= 3, f"not-run is for what cannot run in a test, sparingly: {skipped}"


@pytest.mark.django_db
def test_the_tutorial_runs_as_written(request, restored_receivers):
    """docs/tutorial.md, as ``expenses.workflows``: its shell session, commands and TestCase."""
    runner, module = run_markdown(TUTORIAL, "expenses.workflows", request)
    assert {"CheckClaim", "ManagerApproval", "PayClaim", "NotifyRejection", "ExpenseClaim"} <= set(vars(module))
    assert {"ExpenseClaimTests.test_a_large_claim_can_be_rejected",
            "ExpenseClaimTests.test_a_claim_without_an_amount_is_invalid"} <= set(runner.called_tests)
    assert "hephaestus_resume claim::C-3 rejected" in runner.commands
    skipped = [block.not_run for block in extract_blocks(TUTORIAL.read_text(encoding="utf-8")) if block.not_run]
    assert len(skipped) == 4, skipped


# ---- the runner itself --------------------------------------------------------------------------

SAMPLE = """\
Intro.

```python
x = 1
```

- a list item with a block
  ```python
  x += 1
  ```

<!-- not-run: starts a server -->

```sh
python manage.py runserver
```

```json
{"not": "code"}
```
```sh
pip install something            # shown only
python manage.py hephaestus_list \\
    --json
curl -u a:b -d '{"k": 1}' http://h/x/?y=1
```
"""


def test_blocks_are_extracted_with_their_lines_and_markers():
    blocks = extract_blocks(SAMPLE)
    assert [(b.lang, b.kind, b.line, b.not_run) for b in blocks] == [
        ("python", "python", 4, None),
        ("python", "python", 9, None),
        ("sh", "shell", 15, "starts a server"),
        ("json", "other", 19, None),
        ("sh", "shell", 22, None),
    ]
    assert blocks[1].code == "x += 1"
    assert list(shell_commands(blocks[4])) == [
        (22, ["pip", "install", "something"]),
        (23, ["python", "manage.py", "hephaestus_list", "--json"]),
        (25, ["curl", "-u", "a:b", "-d", '{"k": 1}', "http://h/x/?y=1"]),
    ]


def test_a_not_run_marker_needs_a_reason():
    with pytest.raises(ReadmeError, match=r"line 1: a not-run marker needs a reason"):
        extract_blocks("<!-- not-run -->\n```python\nx = 1\n```\n")


def test_an_unclosed_block_is_an_error():
    with pytest.raises(ReadmeError, match="line 2: the code block opened here is never closed"):
        extract_blocks("text\n```python\nx = 1\n")


def test_a_failing_block_names_the_readme_line(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("one\n\n```python\nvalue = 1\nraise RuntimeError('broken on purpose')\n```\n")
    runner = ReadmeRunner(readme, "readmecheck.sample", lambda name: None)
    with runner.installed(), pytest.raises(RuntimeError, match="broken on purpose") as excinfo:
        runner.run(extract_blocks(readme.read_text()))
    assert any(entry.lineno + 1 == 5 and str(entry.path) == str(readme) for entry in excinfo.traceback)


def test_test_functions_are_called_with_fixtures(tmp_path):
    calls = []
    runner = ReadmeRunner(tmp_path / "R.md", "readmecheck.fixtures", lambda name: calls.append(name) or name)
    with runner.installed() as module:
        runner.run([Block("python", "seen = []\ndef test_it(db, settings):\n    seen.append((db, settings))", 1)])
    assert calls == ["db", "settings"] and module.seen == [("db", "settings")]
    assert runner.called_tests == ["test_it"]


@pytest.mark.django_db
def test_a_failing_command_or_request_fails_with_its_line(tmp_path):
    runner = ReadmeRunner(tmp_path / "R.md", "readmecheck.commands", lambda name: None)
    with runner.installed():
        with pytest.raises(ReadmeError, match=r"R.md:7: manage.py hephaestus_show order::nope failed: "):
            runner.run([Block("sh", "python manage.py hephaestus_show order::nope", 7)])
        with pytest.raises(ReadmeError, match=r"R.md:3: curl GET /api/instances/ answered 40[13]"):
            runner.run([Block("sh", "curl http://127.0.0.1:8000/api/instances/", 3)])
        with pytest.raises(ReadmeError, match="does not know curl option --oops"):
            runner.run([Block("sh", "curl --oops http://h/", 1)])


def test_the_module_name_must_be_free():
    runner = ReadmeRunner(README, "tests.settings", lambda name: None)
    with pytest.raises(ReadmeError, match="module 'tests' already exists"), runner.installed():
        pass
