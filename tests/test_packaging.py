"""Packaging habits (issue 16, item 11): the metadata a package index and a type checker read,
and the files a newcomer looks for. The wheel itself is built and installed apart from the
checkout in CI (``.ci/run``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_license_is_mit_and_shipped() -> None:
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_classifiers_and_python_versions() -> None:
    classifiers = PROJECT["classifiers"]
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    # A license expression (PEP 639) replaces the License :: classifiers (build backends refuse
    # both).
    assert not any(c.startswith("License ::") for c in classifiers)
    assert PROJECT["requires-python"] == ">=3.11"
    versions = {
        c.rsplit(":: ", 1)[1] for c in classifiers if c.count("::") == 2 and "Python :: 3." in c
    }
    assert "3.11" in versions


def test_project_urls() -> None:
    urls = PROJECT["urls"]
    assert set(urls) >= {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    assert all(u.startswith("https://") for u in urls.values())


def test_py_typed_ships_in_the_package() -> None:
    assert (ROOT / "simplifier" / "py.typed").is_file()
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]
    assert wheel["build"]["targets"]["wheel"]["packages"] == ["simplifier"]  # py.typed inside


def test_changelog_and_contributing() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog.startswith("# Changelog") and "## Unreleased" in changelog
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for section in ("## Tests", "## Documentation", "## Benchmarks", "## Where to add things"):
        assert section in contributing
    sdist = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]
    assert {"LICENSE", "CHANGELOG.md", "CONTRIBUTING.md"} <= set(
        sdist["build"]["targets"]["sdist"]["include"]
    )


def test_dependencies_never_replace_the_users_torch() -> None:
    """No upper bound on torch (a new release must not be downgraded); CI pins the one it tests."""
    (torch,) = [d for d in PROJECT["dependencies"] if d.startswith("torch")]
    assert torch == "torch>=2.3"
    assert "torch==" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_wheel_ships_the_corpus_and_the_grammar() -> None:
    """The README's examples run from an installed package (``--example NAME``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include == {
        "grammar/optimizer.lark": "simplifier/grammar/optimizer.lark",
        "corpus": "simplifier/corpus",
    }
