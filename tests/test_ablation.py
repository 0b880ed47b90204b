"""Ablation: candidate rules, scores, decisions, reports and the ``ablate`` command.

Training budgets here are tiny (tens of steps); the real ``small`` budget is exercised by hand
(see docs/ablation.md), not in the test suite.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simplifier.ablation import Budget, Score, Tolerance, ablate, candidates, statement_text
from simplifier.ablation.ablate import (
    CURVE_POINTS,
    ablation_changes,
    ablation_notes,
    is_scaling,
    learning_curve,
    score,
)
from simplifier.ablation.report import format_row, plot_png, table
from simplifier.analysis.types import infer_types
from simplifier.cli import main
from simplifier.parse import parse, parse_file
from simplifier.passes.dce import eliminate_dead_code
from simplifier.printer import to_text

TINY = Budget(
    "tiny", steps=25, seeds=2, grid=(0.5, 1.0, 2.0), calibration=(0.25, 1.0, 4.0), extend=1
)
# `g = g + 0` changes nothing; removing either negation turns descent into ascent.
TOY = "def train(w, g, lr):\n  g = g + 0\n  u = -g\n  u = u * lr\n  return -u\n"


def _rules(path: str) -> dict[str, str]:
    program = eliminate_dead_code(parse_file(path)).program
    return {statement_text(program, c.stmt): c.rule for c in candidates(program)}


def test_candidate_rules_on_program_4() -> None:
    rules = _rules("corpus/program4.py")
    assert rules == {
        "g = clip(g, lr)": "previous value of g",
        "g = arcsin(g)": "previous value of g",
        # after dead-code removal m is no longer a state: no previous value, so its operand
        "m = interp(g, v, 0.899)": "first operand 'g'",
        "m2 = m * m": "first operand 'm'",
        "v = interp(g, m, 1.109)": "previous value of v",
        "abs_m = sqrt(m2)": "first operand 'm2'",
        "update = m / abs_m": "first operand 'm'",
        "update = update + wd": "previous value of update",
        "update = update * lr": "previous value of update",
    }  # wd = w * 0.4602 and lr = lr * 0.0002 scale by a constant: hyperparameters


def test_candidate_rules_on_adamw_keep_the_division_as_a_candidate() -> None:
    rules = _rules("corpus/program3_adamw.py")
    assert rules["update = m / sqrt_v"] == "first operand 'm'"
    assert rules["sqrt_v = sqrt(v)"] == "first operand 'v'"
    assert "wd = w * 0.01" not in rules


def test_every_candidate_is_a_valid_smaller_program() -> None:
    for path in ("corpus/program4.py", "corpus/program3_adamw.py", "corpus/adabelief.py"):
        program = eliminate_dead_code(parse_file(path)).program
        for c in candidates(program):
            c.program.verify()
            infer_types(c.program)
            assert len(c.program.body) < len(program.body)
            assert c.stmt.target not in {s.target for s in c.program.body}
            text = to_text(c.program)  # printable, and parses back to the same text
            assert to_text(parse(text)) == text


def test_removal_replaces_reads_and_prunes() -> None:
    program = parse("def f(w, g, lr):\n  a = sqrt(g)\n  b = a * a\n  return b * lr\n")
    by_text = {statement_text(program, c.stmt): c for c in candidates(program)}
    # `b = a * a` has no previous value: its first operand `a` stands in for it.
    assert to_text(by_text["b = a * a"].program) == (
        "def f(w, g, lr):\n  a = sqrt(g)\n  return a * lr\n"
    )
    # removing `a = sqrt(g)` makes b = g * g
    assert to_text(by_text["a = sqrt(g)"].program) == (
        "def f(w, g, lr):\n  b = g * g\n  return b * lr\n"
    )


def test_ill_typed_removals_are_skipped() -> None:
    # Removing the norm would make clip's threshold a tensor under both rules.
    program = parse("def f(w, g, lr):\n  n = norm(w)\n  return clip(g, n) * lr\n")
    texts = [statement_text(program, c.stmt) for c in candidates(program)]
    assert "n = norm(w)" not in texts


def test_scaling_statements_are_not_candidates() -> None:
    program = parse("def f(w, g, lr):\n  a = g * 2\n  b = 3 / g\n  c = a / 4\n  return c + b\n")
    assert [is_scaling(s) for s in program.body] == [True, False, True, False]


def test_statement_text_inlines_temporaries() -> None:
    program = parse(
        "def f(w, g, m):\n  m = interp(g, m, 0.9)\n  u = -(sign(m) + w) * 2\n  return u, m\n"
    )
    assert [statement_text(program, s) for s in program.body if s.var] == [
        "m = interp(g, m, 0.9)",
        "u = -(sign(m) + w) * 2",
    ]


def test_score_is_the_best_multipliers_mean_and_ignores_failed_multipliers() -> None:
    table_ = np.array([[1.0, 1.2], [0.9, 0.7], [math.inf, 0.1]])
    s = score(table_, [0.5, 1.0, 2.0])
    assert (s.loss, s.multiplier) == (0.8, 1.0)
    assert s.stderr == pytest.approx(0.1)
    assert s.per_seed == (0.9, 0.7)
    assert s.by_multiplier[2] == (2.0, math.inf, 1)
    assert not s.at_edge
    diverged = score(np.full((2, 3), math.inf), [1.0, 2.0])
    assert not diverged.finite and diverged.loss == math.inf


def test_learning_curve_averages_seeds_then_windows() -> None:
    losses = np.array([[3.0, 2.0, 1.0, 1.0, 0.5], [1.0, 2.0, 1.0, math.inf, 0.5]])
    assert learning_curve(losses, points=5) == (
        (1, 2.0),
        (2, 2.0),
        (3, 1.0),
        (4, math.inf),
        (5, 0.5),
    )
    assert learning_curve(losses, points=2) == ((3, 5 / 3), (5, math.inf))  # windows of 3, 2
    assert learning_curve(np.ones((1, 200)))[-1] == (200, 1.0)
    assert len(learning_curve(np.ones((1, 200)))) == CURVE_POINTS


def test_tolerance() -> None:
    s = Score(2.0, 0.05, 1.0, (1.95, 2.05), ((1.0, 2.0, 0),))
    assert Tolerance().limit(s) == pytest.approx(0.05)  # seed noise beats 1% (0.02)
    assert Tolerance(rel=0.1).limit(s) == pytest.approx(0.2)
    assert Tolerance(rel=0.0, noise=0.0).limit(s) == 0.0


@pytest.fixture(scope="module")
def toy_report():  # type: ignore[no-untyped-def]
    return ablate(parse(TOY), budget=TINY)


def test_ablation_removes_the_no_op_and_keeps_what_matters(toy_report) -> None:  # type: ignore[no-untyped-def]
    rows = {r.statement: r for r in toy_report.rows}
    assert rows["g = g + 0"].decision == "removed"
    assert rows["g = g + 0"].loss == rows["g = g + 0"].loss_with  # bitwise the same training
    assert rows["u = -g"].decision == "kept"
    assert rows["u = -g"].loss > toy_report.baseline.loss + Tolerance().limit(toy_report.baseline)
    assert "g + 0" not in to_text(toy_report.program)
    # Never accept an unsupported removal: every removal is within tolerance of the original.
    limit = toy_report.tolerance.limit(toy_report.baseline)
    for r in toy_report.removed:
        assert r.loss - toy_report.baseline.loss <= limit


def test_same_seeds_same_report(toy_report) -> None:  # type: ignore[no-untyped-def]
    again = ablate(parse(TOY), budget=TINY)
    first, second = toy_report.as_json(), again.as_json()
    for d in (first, second):
        d.pop("seconds")
    assert first == second


def test_report_json_table_plot_and_changes(toy_report) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(toy_report.as_json(), allow_nan=False))
    assert set(data) >= {"rows", "baseline", "program"}
    assert set(data["baseline"]) >= {"loss", "stderr"}
    for row in data["rows"]:
        assert {"statement", "line", "loss", "stderr", "decision"} <= set(row)
        assert row["decision"] in ("removed", "kept")
        assert isinstance(row["line"], int)
    assert parse(data["program"]) == toy_report.program
    scores = [s for r in data["rounds"] for s in (r["baseline"], *r["candidates"])]
    for sc in scores:
        curve = sc["learning_curve"]
        assert len(curve["step"]) == len(curve["train_loss"]) == TINY.steps  # 20 <= 50 points
        assert curve["step"] == list(range(1, TINY.steps + 1))
    assert data["rounds"][0]["baseline"]["learning_curve"]["train_loss"][0] > 0
    text = table(toy_report)
    assert "g = g + 0" in text and "removed (round 0)" in text and "result:" in text
    assert format_row(toy_report.rows[0]).startswith("   2  g = g + 0")
    png = plot_png(toy_report)
    assert png.startswith(b"\x89PNG")
    changes = ablation_changes(toy_report)
    assert [c.level for c in changes] == ["measured"] * len(toy_report.removed)
    assert changes[0].line == 2 and "g = g + 0" in changes[0].detail
    assert any("u = -g" in n for n in ablation_notes(toy_report))


def test_dead_statements_are_not_measured() -> None:
    program = parse("def f(w, g, m, lr):\n  m = cosh(g)\n  t = g * 3\n  return g * lr, m\n")
    report = ablate(program, budget=TINY, seeds=1)
    assert [r.statement for r in report.rows] == ["g * lr"]  # the update's temporary
    assert report.program.states == ()


def test_a_program_that_always_diverges_is_an_error() -> None:
    program = parse("def f(w, g, lr):\n  return log(-abs(g))\n")
    with pytest.raises(ValueError, match="diverges at every lr multiplier"):
        ablate(program, budget=TINY)


def test_cli_json_and_plot(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "toy.py"
    src.write_text(TOY)
    png = tmp_path / "out.png"
    argv = [
        "ablate",
        str(src),
        "--json",
        "--quiet",
        "--steps",
        "15",
        "--seeds",
        "2",
        "--plot",
        str(png),
    ]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps"] == 15 and data["seeds"] == [0, 1]
    assert {r["statement"] for r in data["rows"]} >= {"g = g + 0", "u = -g"}
    assert png.read_bytes().startswith(b"\x89PNG")
    assert main(argv) == 2  # the plot exists: no overwrite without --force
    assert "pass --force" in capsys.readouterr().err


def test_cli_bad_input(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "toy.py"
    src.write_text(TOY)
    assert main(["ablate", str(src), "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err
    assert main(["ablate", str(tmp_path / "missing.py")]) == 2
    bad = tmp_path / "bad.py"
    bad.write_text("def f(w, g, lr):\n  return log(-abs(g))\n")
    assert main(["ablate", str(bad), "--quiet", "--steps", "5", "--seeds", "1"]) == 2
    assert "diverges" in capsys.readouterr().err


def test_simplify_ablate_logs_measured_removals(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "toy.py"
    body = TOY.split("\n", 1)[1].replace("return -u", "return -u, m")
    src.write_text("def train(w, g, m, lr):\n  m = cosh(g)\n" + body)
    argv = ["simplify", str(src), "--ablate", "--quiet", "--steps", "15", "--seeds", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dead-statement" in out and "[exact]" in out  # dead code first, exact
    assert "ablation        removed `g = g + 0`" in out and "[measured: training" in out
    assert "measured by training, not proved" in out
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    levels = {c["kind"]: c["level"] for c in data["changes"]}
    assert levels["ablation"] == "measured" and levels["dead-statement"] == "exact"
    assert {r["statement"] for r in data["ablation"]["rows"]} >= {"g = g + 0", "u = -g"}
