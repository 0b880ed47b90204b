"""Tested documentation: Sybil runs the examples of README.md and every docs/*.md.

- ```python blocks that start with ``>>>`` are doctests (other python blocks, e.g. optimizer
  programs, are shown, not run);
- ```console blocks: each line starting with ``$ `` is a shell command (a line ending with ``\\``
  continues on the next), the lines after it up to the next ``$ `` its exact output, stdout and
  stderr together. A line ``...`` stands for any number of lines, ``...`` inside a line for any
  text. ``simplifier`` and ``python`` are this checkout's (``python -m simplifier``);
- ``<!-- skip: next -->`` skips the next block (slow ones); a block that takes minutes is marked
  ``<!-- skip: next if(not SLOW, reason="...") -->`` and runs when ``DOCS_SLOW=1`` (.ci/run).

The examples of one document run in order, in one scratch directory that mirrors the repository
root (its top-level entries are symlinked there), so that they read ``corpus/program4.py`` as
written and the files they write (``-o lion.py``) land in the scratch directory, not the
checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sybil import Document, Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, SkipParser
from sybil.parsers.markdown import PythonCodeBlockParser as _PythonBlocks

ROOT = Path(__file__).resolve().parent
COMMAND_TIMEOUT = 600  # seconds; slow blocks are skipped unless DOCS_SLOW=1


def parse_console(text: str) -> list[tuple[str, list[str]]]:
    """``$ cmd`` lines and the output lines after each.

    >>> parse_console("$ echo a \\\\\\n  b\\na b\\n$ true\\n")
    [('echo a \\\\\\n  b', ['a b']), ('true', [])]
    """
    steps: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if steps:
                steps[-1][1].append(line)
            elif line.strip():
                raise ValueError(f"console block: output before any '$ ' command: {line!r}")
            i += 1
            continue
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command += "\n" + lines[i]
        steps.append((command, []))
        i += 1
    return steps


def _line_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")) + r"\Z")


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` lines match ``expected`` (a ``...`` line: any lines; ``...`` in a line:
    any text); trailing whitespace and trailing blank lines do not count.

    >>> output_matches(["a", "...", "z: ... s"], ["a", "b", "c", "z: 7.1 s"])
    True
    >>> output_matches(["a", "..."], []), output_matches(["a"], ["a", "b"])
    (False, False)
    """
    exp = [e.rstrip() for e in expected]
    act = [a.rstrip() for a in actual]
    while exp and not exp[-1]:
        exp.pop()
    while act and not act[-1]:
        act.pop()
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(exp):
                memo[i, j] = j == len(act)
            elif exp[i] == "...":
                memo[i, j] = any(match(i + 1, k) for k in range(j, len(act) + 1))
            else:
                memo[i, j] = (
                    j < len(act) and _line_pattern(exp[i]).match(act[j]) is not None
                ) and match(i + 1, j + 1)
        return memo[i, j]

    return match(0, 0)


def _scratch(namespace: dict[str, Any]) -> Path:
    """The document's scratch directory (made on first use): the repository root mirrored."""
    if "_scratch" not in namespace:
        work = Path(tempfile.mkdtemp(prefix="docs-"))
        for entry in ROOT.iterdir():
            if entry.name not in (".git", ".venv", "__pycache__") and not entry.name.startswith(
                (".pytest", ".mypy", ".ruff")
            ):
                (work / entry.name).symlink_to(entry)
        bin_dir = work / ".bin"
        bin_dir.mkdir()
        # Wrappers, not symlinks: a venv's python found through a symlink elsewhere is not
        # that venv's (it looks for pyvenv.cfg next to the link).
        for name, run in (("python", ""), ("simplifier", " -m simplifier")):
            wrapper = bin_dir / name
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}"{run} "$@"\n')
            wrapper.chmod(0o755)
        namespace["_scratch"] = work
    return Path(namespace["_scratch"])


def evaluate_console(example: Example) -> str | None:
    work = _scratch(example.namespace)
    env = {
        **os.environ,
        "PATH": f"{work / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "100",
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
    }
    for command, expected in parse_console(example.parsed):
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        actual = done.stdout.splitlines()
        if not output_matches(expected, actual):
            return (
                f"$ {command}\n(exit code {done.returncode})\nexpected:\n"
                + "\n".join(expected)
                + "\ngot:\n"
                + done.stdout
            )
    return None


class PythonDocTests(_PythonBlocks):
    """```python blocks that are doctests run; the other python blocks are only shown."""

    def __call__(self, document: Document):  # type: ignore[no-untyped-def]
        for region in super().__call__(document):
            if region.evaluator is not self.codeblock_parser._evaluator:
                yield region


def _setup(namespace: dict[str, Any]) -> None:
    namespace["SLOW"] = os.environ.get("DOCS_SLOW") == "1"
    namespace["_cwd"] = os.getcwd()
    os.chdir(_scratch(namespace))


def _teardown(namespace: dict[str, Any]) -> None:
    os.chdir(namespace["_cwd"])
    shutil.rmtree(namespace["_scratch"], ignore_errors=True)


pytest_collect_file = Sybil(
    parsers=[PythonDocTests(), CodeBlockParser("console", evaluate_console), SkipParser()],
    patterns=["README.md", "docs/*.md", "CONTRIBUTING.md"],
    path=str(ROOT),
    setup=_setup,
    teardown=_teardown,
).pytest()
