"""Run a Markdown file's code as a reader would: the engine of ``tests/test_readme.py``.

The rules (the contributor docs repeat them):

- Every fenced ``python`` (or ``py``) block runs, in file order, in ONE module namespace,
  registered in ``sys.modules`` under the name given (the README's tour says ``# myapp/workflows.py``,
  so it runs as ``myapp.workflows``: its workflows register under names nothing else uses, and
  ``mock.patch("myapp.workflows....")`` works). Tracebacks point at the Markdown file's lines.
- A function named ``test_*`` that a block defines is called right after that block, with the
  pytest fixtures its parameters name (``db``...); a ``unittest.TestCase`` class it defines (Django's
  ``TestCase``) is run with unittest's runner, and any failure or error fails.
- In ``sh`` (or ``bash``, ``shell``, ``console``) blocks, each ``python manage.py COMMAND ...`` line
  runs through ``call_command`` and each ``curl ...`` line is sent to Django's test client (against
  the ``urlpatterns`` the blocks defined); a non-2xx answer or a ``CommandError`` fails. A bare
  ``python manage.py shell`` is not run: the ``python`` block after it is what one types in it.
  Other lines (``pip``, ``bash scripts/...``) are shown, not run. Lines ending in ``\\`` continue.
- A block preceded by ``<!-- not-run: reason -->`` (on the nearest non-blank line above its
  fence) is skipped; the reason is required. Use it only for what cannot run in a test (a
  long-running worker, a server).
- Blocks in other languages (``json``, ``text``, ...) are not code.
"""

from __future__ import annotations

import base64
import inspect
import re
import shlex
import sys
import textwrap
import types
import unittest
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PYTHON = {"python", "py", "python3"}
SHELL = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)[^\n]*$")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run\b(?P<rest>.*?)-->\s*$")


class ReadmeError(AssertionError):
    """The Markdown's code did not run as written (the message names the line)."""


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the block's first code line
    not_run: str | None = None  # the reason, for a block marked not-run

    @property
    def kind(self) -> str:
        if self.lang in PYTHON:
            return "python"
        if self.lang in SHELL:
            return "shell"
        return "other"


def extract_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text``, dedented, with their line numbers and not-run markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match["indent"], match["fence"], match["lang"].lower()
        start = i + 1
        end = start
        while end < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[end]):
            end += 1
        if end == len(lines):
            raise ReadmeError(f"line {i + 1}: the code block opened here is never closed")
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[start:end]]
        blocks.append(Block(lang, textwrap.dedent("\n".join(body)), start + 1, _not_run_reason(lines, i)))
        i = end + 1
    return blocks


def _not_run_reason(lines: list[str], fence_index: int) -> str | None:
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None
    match = NOT_RUN.match(lines[j])
    if not match:
        return None
    reason = match["rest"].strip().lstrip(":").strip()
    if not reason:
        raise ReadmeError(f"line {j + 1}: a not-run marker needs a reason: <!-- not-run: why -->")
    return reason


def shell_commands(block: Block) -> Iterator[tuple[int, list[str]]]:
    """(line, argv) of each command of a shell block: continuations joined, comments dropped."""
    pending: list[str] = []
    first = 0
    for offset, raw in enumerate(block.code.splitlines()):
        line = raw.rstrip()
        if not pending:
            first = block.line + offset
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        text = " ".join(pending).strip()
        pending = []
        if text.startswith("$ "):
            text = text[2:]
        argv = shlex.split(text, comments=True)
        if argv:
            yield first, argv


class ReadmeRunner:
    """Runs the blocks of one Markdown file in the module ``module_name``."""

    def __init__(self, path: Path, module_name: str, fixture: Callable[[str], Any]) -> None:
        self.path = path
        self.module_name = module_name
        self.fixture = fixture
        self.module = types.ModuleType(module_name)
        self.module.__file__ = str(path)
        self.called_tests: list[str] = []
        self.commands: list[str] = []
        self.requests: list[str] = []

    # ---- the module -------------------------------------------------------------------------
    @contextmanager
    def installed(self) -> Iterator[types.ModuleType]:
        """The module (and its parent packages) in ``sys.modules`` while the blocks run."""
        names = self.module_name.split(".")
        added: list[str] = []
        parent: types.ModuleType | None = None
        for depth in range(1, len(names) + 1):
            name = ".".join(names[:depth])
            if name in sys.modules:
                raise ReadmeError(f"module {name!r} already exists: run the README under another name")
            module = self.module if depth == len(names) else types.ModuleType(name)
            if depth < len(names):
                module.__path__ = []  # a package, so that the dotted name imports
            sys.modules[name] = module
            added.append(name)
            if parent is not None:
                setattr(parent, names[depth - 1], module)
            parent = module
        try:
            yield self.module
        finally:
            for name in reversed(added):
                sys.modules.pop(name, None)

    # ---- running ------------------------------------------------------------------------------
    def run(self, blocks: list[Block]) -> None:
        for block in blocks:
            if block.not_run is not None or block.kind == "other":
                continue
            if block.kind == "python":
                self.run_python(block)
            else:
                self.run_shell(block)

    def run_python(self, block: Block) -> None:
        namespace = self.module.__dict__
        before = dict(namespace)
        # Leading newlines keep the Markdown's line numbers in tracebacks.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(self.path), "exec"), namespace)  # noqa: S102 - the README is ours
        for name, value in list(namespace.items()):
            if before.get(name) is value:
                continue
            if name.startswith("test_") and inspect.isfunction(value):
                kwargs = {param: self.fixture(param) for param in inspect.signature(value).parameters}
                value(**kwargs)
                self.called_tests.append(name)
            elif (isinstance(value, type) and issubclass(value, unittest.TestCase)
                  and value.__module__ == self.module_name):
                self.run_test_case(block, value)

    def run_test_case(self, block: Block, case: type[unittest.TestCase]) -> None:
        output = StringIO()
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
        names = [f"{case.__name__}.{test.id().rpartition('.')[2]}" for test in suite]
        result = unittest.TextTestRunner(stream=output, verbosity=2).run(suite)
        if not result.wasSuccessful() or not result.testsRun:
            raise ReadmeError(f"{self.path.name}:{block.line}: {case.__name__} did not pass "
                              f"({result.testsRun} run):\n{output.getvalue()}")
        self.called_tests.extend(names)

    def run_shell(self, block: Block) -> None:
        for line, argv in shell_commands(block):
            if argv[:2] == ["python", "manage.py"] and len(argv) > 2:
                if argv[2:] == ["shell"]:
                    continue  # interactive: the next python block is the session
                self.manage(line, argv[2:])
            elif argv[0] == "curl":
                self.curl(line, argv[1:])

    def manage(self, line: int, argv: list[str]) -> None:
        from django.core.management import CommandError, call_command

        out, err = StringIO(), StringIO()
        try:
            call_command(*argv, stdout=out, stderr=err)
        except (CommandError, SystemExit) as exc:
            raise ReadmeError(f"{self.path.name}:{line}: manage.py {shlex.join(argv)} failed: {exc}\n"
                              f"{out.getvalue()}{err.getvalue()}") from exc
        self.commands.append(shlex.join(argv))

    def curl(self, line: int, argv: list[str]) -> None:
        from django.test import Client

        method, url, data = None, None, None
        headers: dict[str, str] = {}
        args = iter(argv)
        for arg in args:
            if arg in ("-u", "--user"):
                credentials = base64.b64encode(next(args).encode()).decode()
                headers["Authorization"] = f"Basic {credentials}"
            elif arg in ("-H", "--header"):
                key, _, value = next(args).partition(":")
                headers[key.strip()] = value.strip()
            elif arg in ("-d", "--data", "--data-raw"):
                data = next(args)
            elif arg in ("-X", "--request"):
                method = next(args)
            elif arg in ("-s", "-S", "-f", "--fail", "--silent", "-i"):
                continue
            elif arg.startswith("-"):
                raise ReadmeError(f"{self.path.name}:{line}: the README runner does not know curl option {arg}")
            else:
                url = arg
        if url is None:
            raise ReadmeError(f"{self.path.name}:{line}: curl without a URL")
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        method = method or ("POST" if data is not None else "GET")
        content_type = headers.pop("Content-Type", "application/octet-stream")
        response = Client().generic(method, path, data=data or "", content_type=content_type, headers=headers)
        if not 200 <= response.status_code < 300:
            raise ReadmeError(f"{self.path.name}:{line}: curl {method} {path} answered {response.status_code}: "
                              f"{response.content.decode(errors='replace')[:2000]}")
        self.requests.append(f"{method} {path}")
