"""The simplifier on the corpus (goldens), on Program 4 in every mode, and as a command.

Goldens: ``corpus/NAME.expected`` is what ``simplifier simplify corpus/NAME.py`` prints, without
its verdict line (the numeric differences it reports vary by platform), computed without time
budgets (the SymPy fold's 5 s would make a golden depend on the machine's load). They are
reviewed like code; after an intended change, regenerate them with
``SIMPLIFIER_UPDATE_GOLDENS=1 pytest tests/test_simplify.py`` and read the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from simplifier.cli import main
from simplifier.cli.simplify import report
from simplifier.ir import Program
from simplifier.parse import parse, parse_file
from simplifier.passes.fold import SymbolicFold
from simplifier.printer import to_text
from simplifier.simplify import default_pipeline, simplify

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PROGRAMS = sorted(CORPUS.glob("*.py"))
UPDATE = os.environ.get("SIMPLIFIER_UPDATE_GOLDENS") == "1"

LION = """\
def train(w, g, v, lr):
  g = arcsin(clip(g, lr))
  c = interp(g, v, 0.899)
  update = (sign(c) + w * 0.4602) * (lr * 0.0002)
  v = interp(g, v, 0.996991)
  return update, v
"""


def golden_text(path: Path) -> str:
    program = parse_file(str(path))
    pipeline = default_pipeline(program)
    unbounded = tuple(
        replace(p, budget=600.0) if isinstance(p, SymbolicFold) else p for p in pipeline.passes
    )
    result = simplify(program, pipeline=replace(pipeline, passes=unbounded), time_limit=None)
    return report(result, "math", "almost-everywhere", verdict=False).replace(str(CORPUS), "corpus")


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    expected = path.with_suffix(".expected")
    actual = golden_text(path)
    if UPDATE:
        expected.write_text(actual, encoding="utf-8")
    assert expected.exists(), f"no golden for {path.name}: run with SIMPLIFIER_UPDATE_GOLDENS=1"
    assert actual == expected.read_text(encoding="utf-8")


def test_every_golden_has_its_program() -> None:
    for golden in CORPUS.glob("*.expected"):
        assert golden.with_suffix(".py").exists(), golden.name


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_corpus_result_is_checked(path: Path) -> None:
    result = simplify(parse_file(str(path)))
    assert result.numeric is not None and result.numeric.agree, result.verdict
    assert result.numeric.compared == result.numeric.steps  # no logged condition failed
    assert result.operations[1] <= result.operations[0]
    assert parse(to_text(result.program)) == result.program  # the output is a valid program


# -- Program 4 ----------------------------------------------------------------------------------
def program4(name: str = "program4") -> Program:
    return parse_file(str(CORPUS / f"{name}.py"))


@pytest.mark.parametrize("name", ["program4", "program4_raw"])
def test_program4_is_lion(name: str) -> None:
    result = simplify(program4(name))
    assert to_text(result.program) == LION
    assert result.program.states == ("v",)
    sign = [c for c in result.changes if "sign" in c.detail]
    assert [(c.kind, c.level, c.condition) for c in sign] == [
        ("rewrite", "almost-everywhere", "c != 0")
    ]
    assert any(c.kind == "dead-state" and "'m'" in c.detail for c in result.changes)
    assert "0.996991" in to_text(result.program)  # 0.899 * 1.109, exactly


def test_program4_hero_keeps_the_protected_division() -> None:
    result = simplify(program4(), semantics="hero")
    text = to_text(result.program)
    assert "update = (c / abs(c) + w * 0.4602) * (lr * 0.0002)" in text  # sqrt(c*c) = |c| holds
    assert "sign" not in text
    assert all(c.level == "exact" for c in result.changes)
    assert any("approximate (within 1e-8/|m| of sign(m))" in n for n in result.notes)
    assert result.numeric is not None and result.numeric.agree


def test_program4_hero_approximate_states_its_bound() -> None:
    result = simplify(program4(), semantics="hero", allow="approximate")
    assert to_text(result.program) == LION
    sign = [c for c in result.changes if "sign" in c.detail]
    assert [(c.level, c.condition) for c in sign] == [("approximate", "within 1e-8/|c| of sign(c)")]
    assert result.numeric is not None and result.numeric.agree


def test_program4_exact_only() -> None:
    result = simplify(program4(), allow="exact")
    assert "c / abs(c)" in to_text(result.program)
    assert all(c.level == "exact" for c in result.changes)


def test_folding_merges_an_affine_pair_into_an_interp() -> None:
    text = "def f(w, g, m, lr, beta=0.9):\n  m = beta * m + (1 - beta) * g\n  return m * lr, m\n"
    result = simplify(parse(text))
    assert "m = interp(g, m, beta)" in to_text(result.program)
    assert next(c.detail for c in result.changes if c.kind == "fold").startswith("affine-to-interp")


def test_folding_logs_a_lost_division() -> None:
    result = simplify(parse("def f(w, g, lr):\n  return g / g * lr + g\n"))
    assert to_text(result.program).endswith("  update = g + lr\n  return update\n")
    lost = [c for c in result.changes if c.level == "almost-everywhere"]
    assert [(c.detail, c.condition) for c in lost] == [("division by g folded away", "g != 0")]


def test_folding_logs_a_cancelled_input() -> None:
    result = simplify(parse("def f(w, g, lr):\n  return (g - g + w) * lr\n"))
    assert "update = w * lr" in to_text(result.program)
    lost = [(c.detail, c.condition) for c in result.changes if c.level != "exact"]
    assert lost == [("update no longer reads g", "g is finite")]


def test_scalar_factors_are_collected() -> None:
    result = simplify(parse("def f(w, g, lr):\n  u = 0.5 * (g * lr) * 0.0004\n  return u\n"))
    assert "update = g * (lr * 0.0002)" in to_text(result.program)


def test_a_reduced_tensor_does_not_become_a_scalar() -> None:
    """`global_norm(w - (c + w))` is not `global_norm(-c)`: the norm counts the entries."""
    text = "def f(w, g, lr):\n  c = cosine_sim(w, g) + w\n  return global_norm(w - c) * g\n"
    result = simplify(parse(text))
    assert "global_norm(w - " in to_text(result.program)
    assert result.numeric is not None and result.numeric.agree


# -- the command ----------------------------------------------------------------------------------
def test_cli_prints_program_and_log(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simplify", str(CORPUS / "program4.py")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(LION)
    assert "[almost-everywhere: c != 0]" in out
    assert "# verdict:" in out and "numeric check: updates agree" in out


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simplify", str(CORPUS / "program4.py"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["program"] == LION
    assert isinstance(data["verdict"], str)
    for change in data["changes"]:
        assert set(change) >= {"kind", "line", "detail", "level", "condition"}
        assert change["level"] in ("exact", "almost-everywhere", "approximate", "measured")
    assert {"kind": "rewrite", "level": "almost-everywhere", "condition": "c != 0"}.items() <= next(
        c for c in data["changes"] if "sign" in c["detail"]
    ).items()


def test_cli_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lion.py"
    source = str(CORPUS / "program4_raw.py")
    assert main(["simplify", source, "-o", str(out)]) == 0
    assert out.read_text() == LION
    assert capsys.readouterr().out.startswith("# simplified: 27 -> 9 operations")
    out.write_text("keep me")
    assert main(["simplify", source, "-o", str(out)]) == 2  # no overwrite without --force
    assert out.read_text() == "keep me"
    assert "--force" in capsys.readouterr().err
    assert main(["simplify", source, "-o", str(out), "--force", "--semantics", "hero"]) == 0
    assert "c / abs(c)" in out.read_text()


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(w, g, lr):\n  u = g *\n  return u\n")
    out = tmp_path / "out.py"
    assert main(["simplify", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:2:")
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]  # no partial output
    assert main(["simplify", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
