"""The code base stays lint-clean, formatted and type-checked (ruff and mypy, configured in
pyproject.toml), so that the README's test command is also the quality gate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["simplifier", "tests", "bench", "examples", "conftest.py", "mkdocs_hooks"]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", *PATHS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", *PATHS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    scripts = [  # the example scripts, not the optimizer programs kept beside them
        str(p) for p in sorted((ROOT / "examples").glob("*.py")) if "__main__" in p.read_text()
    ]
    assert scripts, "no example scripts found"
    result = _run(sys.executable, "-m", "mypy", "simplifier", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr
