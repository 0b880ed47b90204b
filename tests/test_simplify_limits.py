"""Depth, time and honesty of ``simplify`` and ``equiv`` (issue 14, items 3 to 5).

Every program ``check`` accepts goes through ``simplify`` and ``equiv`` with an answer or a
located refusal (no RecursionError); ``simplify`` does not call a result verified when its own
check compared nothing or a logged condition fails on the check's inputs; ``equiv`` says when
float64 trajectories disagree with a proof over the reals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simplifier.cli import main
from simplifier.emit.plan import Buffers
from simplifier.equiv.api import equivalent
from simplifier.equiv.verdict import Verdict
from simplifier.parse import MAX_DEPTH, parse
from simplifier.passes.rewrite import rewrite
from simplifier.printer import to_text
from simplifier.simplify import simplify

HEAD = "def f(w, g, m, lr):\n"


def chained_interps(n: int) -> str:
    return HEAD + "  m = interp(g, m, 0.9)\n" * n + "  return m * lr, m\n"


def nested(template: str, depth: int) -> str:
    e = "g"
    for _ in range(depth):
        e = template.format(e)
    return f"def f(w, g, lr):\n  u = {e}\n  return u * lr\n"


def test_chained_interps_rewrite_without_a_loop() -> None:
    # 59 of them once raised RecursionError; then the mul-const-const rule cycled on the
    # all-constant products it could not fold.
    r = rewrite(parse(chained_interps(120)))
    assert r.changes and r.changes[0].detail.startswith("interp-merge")


def test_chained_interps_simplify_and_stay_equivalent() -> None:
    p = parse(chained_interps(100))
    result = simplify(p)
    assert result.numeric is not None and result.numeric.agree and not result.unverified
    assert len(result.program.body) < len(p.body)


@pytest.mark.parametrize("template", ["interp(g, {}, 0.9)", "exp({})", "(g - {})", "sqrt({})"])
def test_the_deepest_nesting_check_accepts_goes_through_simplify_and_equiv(template: str) -> None:
    p = parse(nested(template, MAX_DEPTH - 1))
    result = simplify(p)  # an answer, perhaps with a note that SymPy could not fold it
    assert result.numeric is not None and result.numeric.agree
    verdict = result.equivalence  # simplify's check is equiv(p, result.program)
    assert isinstance(verdict, Verdict) and verdict.verdict != "refuted"


@pytest.mark.parametrize("command", ["check", "analyze", "hash", "simplify", "emit", "equiv"])
def test_a_thousand_chained_emas_go_through_every_command(
    command: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """1,000 chained moving averages (each statement reads the last): a DAG 1,000 levels deep,
    past Python's recursion limit for anything that recursed on it."""
    src = tmp_path / "p.py"
    src.write_text(HEAD + "  m = 0.9 * m + 0.1 * g\n" * 1000 + "  return m * lr, m\n")
    extra = {"emit": ["-o", str(tmp_path / "o.py")], "equiv": [str(src)]}.get(command, [])
    assert main([command, str(src), *extra]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_the_change_log_does_not_expand_the_dag() -> None:
    """Every statement reads the previous one twice: the log names a rewritten value by its
    variable, so each entry stays short (expanding the DAG as a tree doubles per statement)."""
    n = 300
    body = "  x0 = g * 1\n" + "".join(
        f"  x{i} = (x{i - 1} + x{i - 1} * 1) * 1\n" for i in range(1, n)
    )
    r = rewrite(parse(f"def f(w, g, lr):\n{body}  return x{n - 1} * lr\n"))
    assert len(r.changes) >= n
    assert max(len(c.detail) for c in r.changes) < 100


def run_simplify(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, *flags: str
) -> tuple[int, bool, str]:
    src, out = tmp_path / "p.py", tmp_path / "out.py"
    src.write_text(text)
    code = main(["simplify", str(src), "-o", str(out), *flags])
    return code, out.exists(), capsys.readouterr().err


@pytest.mark.parametrize(
    "text",
    [
        # NaN at step 1: the fold's condition m != 0 fails on the check's first inputs
        HEAD + "  u = g + m / m\n  m = interp(g, m, 0.9)\n  return u * lr, m\n",
        # logged as almost-everywhere g >= 0, which half of the inputs violate
        "def f(w, g, lr):\n  u = sqrt(g) * sqrt(g)\n  return u * lr\n",
    ],
)
def test_an_unverified_result_is_not_a_success(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    code, written, err = run_simplify(capsys, tmp_path, text)
    assert (code, written) == (1, False)
    assert "not verified" in err and "--accept-unchecked" in err
    code, written, _ = run_simplify(capsys, tmp_path, text, "--accept-unchecked")
    assert (code, written) == (0, True)


def test_a_vacuous_check_is_reported_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    p = parse("def f(w, g, lr):\n  u = sqrt(g) * sqrt(g)\n  return u * lr\n")
    result = simplify(p)
    assert result.unverified == ["a logged condition does not hold on the check's inputs (step 1)"]
    assert result.as_json()["unverified"] == result.unverified


def test_the_time_limit_bounds_the_whole_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "p.py"
    src.write_text(chained_interps(30))
    assert main(["simplify", str(src), "--time-limit", "1e-6", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "rules skipped: the time budget of 1e-06 s ran out" in data["notes"]
    assert "equivalence: not checked" in data["verdict"]
    assert data["program"] == to_text(parse(chained_interps(30)))  # nothing ran: the input
    with pytest.raises(SystemExit):
        main(["simplify", str(src), "--time-limit", "0"])


A_BIG = "def f(w, g, lr):\n  u = (g + 1e20) - 1e20\n  return u * lr\n"
A_EXP = "def f(w, g, lr):\n  u = log(exp(1000 * g))\n  return u * lr\n"
B_G = "def f(w, g, lr):\n  return g * lr\n"
B_1000 = "def f(w, g, lr):\n  u = 1000 * g\n  return u * lr\n"


@pytest.mark.parametrize(("a", "b"), [(A_BIG, B_G), (A_EXP, B_1000)])
def test_equiv_says_when_float64_disagrees_with_a_proof(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, a: str, b: str
) -> None:
    (tmp_path / "a.py").write_text(a)
    (tmp_path / "b.py").write_text(b)
    files = [str(tmp_path / "a.py"), str(tmp_path / "b.py")]
    assert main(["equiv", *files, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "proved" and data["float64_agrees"] is False
    assert data["details"]["float64"]["first_difference_step"] == 1
    assert main(["equiv", *files]) == 1
    assert "float64 trajectories DISAGREE from step 1" in capsys.readouterr().out
    assert main(["equiv", *files, "--reals"]) == 0


def test_equiv_float64_agrees_for_a_plain_proof() -> None:
    v = equivalent(B_G, "def f(w, g, lr):\n  return lr * g\n")
    assert v.verdict == "identical" or v.float64_agrees is True
    v = equivalent(B_1000, "def f(w, g, lr):\n  return g * (lr * 1000)\n")
    assert v.verdict == "proved" and v.float64_agrees is True and v.exit_code == 0


def reference_release(
    buffers: dict[str, str | None],
    fixed: set[str],
    free: list[str],
    last_use: dict[str, int],
    pos: int,
) -> list[str]:
    """The quadratic release the heap replaced: every buffer, each time."""
    out = list(free)
    for buffer, value in buffers.items():
        dead = value is None or last_use.get(value, -1) <= pos
        if buffer not in fixed and buffer not in out and dead:
            out.append(buffer)
    return out


def test_buffer_release_frees_in_creation_order_like_the_full_scan() -> None:
    import random

    rng = random.Random(0)
    for _ in range(50):
        n = 30
        last = {f"v{i}": rng.randrange(-1, n) for i in range(n)}
        b = Buffers({"w": "w"}, {"w": "w"}, {"w"}, dict(last), [])
        for pos in range(n):
            choices = [*b.free, f"t{pos}"]
            b.put(f"v{pos}", rng.choice(choices))
            expected = reference_release(b.holds, b.fixed, b.free, b.last_use, pos)
            b.release(pos)
            assert b.free == expected


def test_a_nested_sympy_budget_does_not_pause_the_enclosing_one() -> None:
    import time

    from simplifier.symbolic.translate import SymbolicTimeout, time_budget

    calls = 0
    with pytest.raises(SymbolicTimeout), time_budget(0.3):
        for _ in range(40):  # 40 inner calls of 0.05 s: the outer 0.3 s must still fire
            with time_budget(0.2):
                calls += 1
                time.sleep(0.05)
    assert calls < 40  # stopped by the outer budget, not by running out of calls
