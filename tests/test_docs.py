"""The documentation covers what it must: every option and JSON field in docs/cli.md, every page
in the site's navigation. (The examples themselves run through Sybil: see the root conftest.py.)"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from simplifier.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = (ROOT / "docs" / "cli.md").read_text()


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_page_lists_every_option(command: str) -> None:
    sub = _subparsers()[command]
    assert f"## `simplifier {command}" in CLI_DOC
    options = {o for a in sub._actions for o in a.option_strings if o not in ("-h", "--help")}
    missing = sorted(o for o in options if f"`{o}" not in CLI_DOC)
    assert not missing, f"docs/cli.md does not document {command} {missing}"


@pytest.mark.parametrize(
    "args",
    [
        ["check", "corpus/lion.py"],
        ["hash", "corpus/lion.py"],
        ["analyze", "corpus/lion.py"],
        ["equiv", "corpus/lion.py", "corpus/program1_lion.py"],
        ["simplify", "corpus/lion.py"],
    ],
    ids=lambda a: a[0],
)
def test_cli_page_lists_every_json_field(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    main([*args, "--json"])
    report = json.loads(capsys.readouterr().out)
    section = CLI_DOC.split(f"## `simplifier {args[0]}")[1].split("\n## ")[0]
    missing = sorted(k for k in report if k != "schema_version" and f"`{k}`" not in section)
    assert not missing, f"docs/cli.md's {args[0]} section lacks JSON fields {missing}"


def test_every_page_is_in_the_navigation() -> None:
    nav = set(re.findall(r":\s*([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages <= nav, f"add to mkdocs.yml's nav: {sorted(pages - nav)}"
