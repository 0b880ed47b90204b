"""Bad input: one line ``FILE:LINE:COL: error: MESSAGE`` (plus an optional source line and caret),
exit code 2, never a traceback. Each case of issue 2, item 7, and a few more, through
``simplifier check`` (in process with :func:`simplifier.cli.main`, and a few in a subprocess).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simplifier.cli import main
from simplifier.errors import ProgramError
from simplifier.ir import Const
from simplifier.parse import parse

ERROR = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")


@dataclass(frozen=True)
class Bad:
    """A bad program: where the error must point, and words its message must contain."""

    id: str
    text: str
    line: int
    col: int
    words: tuple[str, ...]


HEAD = "def train(w, g, lr):\n"

CASES = [
    # syntax errors say what was expected
    Bad("unclosed-paren", HEAD + "  u = (g * lr\n  return u\n", 2, 14, ("expected", "')'")),
    Bad(
        "operator-twice",
        HEAD + "  u = g * * lr\n  return u\n",
        2,
        11,
        ("unexpected '*'", "expected", "a name"),
    ),
    Bad("missing-colon", "def train(w, g, lr)\n  return g\n", 1, 20, ("expected ':'",)),
    Bad("bare-expression", HEAD + "  sqrt(g)\n  return g\n", 2, 7, ("expected", "'='")),
    Bad("after-return", HEAD + "  return g\n  u = g\n", 3, 3, ("after the return",)),
    Bad(
        "two-programs",
        HEAD + "  return g\ndef f(w, g):\n  return g\n",
        3,
        1,
        ("one program per file",),
    ),
    Bad("no-def", "u = g * 2\n", 1, 1, ("expected 'def'",)),
    Bad("unknown-character", HEAD + "  u = g × 2\n  return u\n", 2, 9, ("'×'", "use '*'")),
    Bad("glued-lookalike", HEAD + "  u = g−2\n  return u\n", 2, 8, ("'−' (U+2212)", "use '-'")),
    Bad("superscript-in-name", HEAD + "  x² = g\n  return x²\n", 2, 4, ("'²'", "part of a name")),
    Bad("nbsp", HEAD + "  u = g\u00a0* 2\n  return u\n", 2, 8, ("'\\xa0'",)),
    # names and functions
    Bad(
        "unknown-function",
        HEAD + "  u = sgn(g)\n  return u\n",
        2,
        7,
        ("unknown function 'sgn'", "did you mean 'sign'"),
    ),
    Bad(
        "unknown-function-hero",
        HEAD + "  u = interpolat(g, w, 0.5)\n  return u\n",
        2,
        7,
        ("unknown function 'interpolat'", "did you mean 'interpolate'"),
    ),
    Bad(
        "unknown-function-clip-like",
        HEAD + "  u = clp(g, 1.0)\n  return u\n",
        2,
        7,
        ("unknown function 'clp'", "did you mean 'clip'", "global norm", "clamp(x, lo, hi)"),
    ),
    Bad(
        "unknown-function-clamp-like",
        HEAD + "  u = clmp(g, -1, 1)\n  return u\n",
        2,
        7,
        ("did you mean 'clamp'", "bounds each entry", "clip(x, c) rescales"),
    ),
    Bad(
        "arity-clamp",
        HEAD + "  u = clamp(g, 1)\n  return u\n",
        2,
        7,
        ("clamp() takes 3 arguments, got 2",),
    ),
    Bad(
        "sum-of-a-scalar",
        HEAD + "  u = g * numel(lr)\n  return u\n",
        2,
        11,
        ("numel() reduces a tensor",),
    ),
    Bad(
        "arity-interp",
        HEAD + "  u = interp(g, w)\n  return u\n",
        2,
        7,
        ("interp() takes 3 arguments, got 2",),
    ),
    Bad(
        "arity-unary",
        HEAD + "  u = sqrt(g, w)\n  return u\n",
        2,
        7,
        ("sqrt() takes 1 argument, got 2",),
    ),
    Bad(
        "arity-constant",
        HEAD + "  u = g * get_pi(g)\n  return u\n",
        2,
        11,
        ("get_pi() takes 0 arguments, got 1",),
    ),
    Bad(
        "undefined-name",
        HEAD + "  u = g * mom\n  return u\n",
        2,
        11,
        ("name 'mom' is not defined",),
    ),
    Bad(
        "undefined-close-name",
        "def f(w, g, momentum):\n  u = g * momentun\n  return u, u\n",
        2,
        11,
        ("'momentun' is not defined", "did you mean 'momentum'"),
    ),
    Bad(
        "read-before-assignment",
        HEAD + "  u = g * x\n  x = g * 2\n  return u\n",
        2,
        11,
        ("name 'x' is not defined",),
    ),
    Bad(
        "augmented-undefined",
        HEAD + "  u += g\n  return u\n",
        2,
        3,
        ("'u' is not defined before '+='",),
    ),
    Bad("variable-called", HEAD + "  u = g(w)\n  return u\n", 2, 7, ("'g' is a variable",)),
    Bad(
        "function-as-value",
        HEAD + "  u = sqrt * g\n  return u\n",
        2,
        7,
        ("'sqrt' is a function", "sqrt(...)"),
    ),
    # types
    Bad(
        "tensor-interp-weight",
        "def f(w, g, m, lr):\n  m = interp(g, m, w)\n  return m, m\n",
        2,
        7,
        ("third argument of interp() must be a scalar", "tensor"),
    ),
    Bad(
        "tensor-clip-bound",
        HEAD + "  u = clip(g, w)\n  return u\n",
        2,
        7,
        ("second argument of clip() must be a scalar", "tensor"),
    ),
    Bad(
        "reduction-of-scalar",
        HEAD + "  u = global_norm(lr)\n  return g * u\n",
        2,
        7,
        ("global_norm() reduces a tensor",),
    ),
    Bad(
        "state-ends-scalar",
        "def f(w, g, m, lr):\n  m = lr * 2\n  return g, m\n",
        3,
        13,
        ("state 'm' must be a tensor", "scalar"),
    ),
    Bad(
        "state-ends-constant",
        "def f(w, g, m, lr):\n  m = 0.5\n  return g, m\n",
        3,
        13,
        ("state 'm' must be a tensor",),
    ),
    # returns
    Bad(
        "too-few-returns",
        "def f(w, g, m, v, lr):\n  return g, m\n",
        2,
        3,
        ("return gives 2 value(s); expected 3", "update, m, v"),
    ),
    Bad(
        "too-many-returns", HEAD + "  return g, g\n", 2, 3, ("return gives 2 value(s); expected 1",)
    ),
    Bad("missing-return", HEAD + "  u = g * lr\n", 2, 13, ("missing return",)),
    Bad("bare-return", HEAD + "  return\n", 2, 9, ("expected", "a name")),
    Bad(
        "tuple-outside-return",
        HEAD + "  u = (g, w)\n  return u\n",
        2,
        7,
        ("tuple is only allowed as the return value",),
    ),
    # parameters
    Bad(
        "duplicate-parameter",
        "def train(w, g, g, lr):\n  return g\n",
        1,
        17,
        ("duplicate parameter 'g'",),
    ),
    Bad("no-weight", "def train(x, g, lr):\n  return g\n", 1, 5, ("no weight parameter",)),
    Bad("no-gradient", "def train(w, m, lr):\n  return m, m\n", 1, 5, ("no gradient parameter",)),
    Bad(
        "two-lrs",
        "def train(w, g, lr, learning_rate):\n  return g\n",
        1,
        21,
        ("more than one lr parameter",),
    ),
    Bad(
        "weight-default",
        "def train(w=1, g):\n  return g\n",
        1,
        11,
        ("weight parameter 'w' cannot have a default",),
    ),
    Bad(
        "step-default",
        "def train(w, g, step=1):\n  return g\n",
        1,
        17,
        ("step parameter 'step' cannot have a default",),
    ),
    Bad("star-args", "def train(w, g, *rest):\n  return g\n", 1, 17, ("unexpected '*'",)),
    Bad(
        "hyper-without-value",
        "def train(w, g, beta: hyper):\n  return g * beta\n",
        1,
        17,
        ("hyper 'beta' has no value", "--set beta="),
    ),
    # Python keywords and reserved names
    Bad(
        "keyword-target",
        HEAD + "  class = g * 2\n  return g\n",
        2,
        3,
        ("'class' is a Python keyword",),
    ),
    Bad("keyword-parameter", "def train(w, g, lr, for=0.9):\n  return g\n", 1, 21, ("'for'",)),
    Bad(
        "keyword-value",
        HEAD + "  u = g * True\n  return u\n",
        2,
        11,
        ("'True' is a Python keyword",),
    ),
    Bad("if-block", HEAD + "  if g:\n    u = g\n  return g\n", 2, 3, ("'if'", "straight-line")),
    Bad("for-loop", HEAD + "  for i in g:\n    u = g\n  return g\n", 2, 3, ("'for'",)),
    Bad(
        "dunder-target",
        HEAD + "  __x = g * 2\n  return g\n",
        2,
        3,
        ("names starting with '__' are reserved",),
    ),
    Bad(
        "dunder-parameter",
        "def train(w, g, __lr__):\n  return g\n",
        1,
        17,
        ("names starting with '__' are reserved",),
    ),
    Bad(
        "dunder-function",
        HEAD + "  u = __import__(g)\n  return u\n",
        2,
        7,
        ("names starting with '__' are reserved",),
    ),
    # constructs outside the language
    Bad("string-single", HEAD + "  u = 'adam'\n  return g\n", 2, 7, ("strings",)),
    Bad("string-double", HEAD + '  u = g * "2"\n  return g\n', 2, 11, ("strings",)),
    Bad("lambda", HEAD + "  f = lambda x: x\n  return g\n", 2, 7, ("lambdas",)),
    Bad("attribute", HEAD + "  u = g.abs()\n  return u\n", 2, 8, ("attribute access",)),
    Bad(
        "module-attribute", HEAD + "  u = torch.sign(g)\n  return u\n", 2, 12, ("attribute access",)
    ),
    Bad("subscript", HEAD + "  u = g[0]\n  return u\n", 2, 8, ("subscripts",)),
    Bad("import", "import torch\n" + HEAD + "  return g\n", 1, 1, ("imports",)),
    Bad("from-import", "from math import pi\n" + HEAD + "  return g\n", 1, 1, ("imports",)),
    Bad("semicolon", HEAD + "  u = g; v = g\n  return u\n", 2, 8, ("one statement per line",)),
    Bad(
        "keyword-argument",
        HEAD + "  u = interp(g, w, a=0.5)\n  return u\n",
        2,
        21,
        ("keyword arguments",),
    ),
    Bad("decorator", "@jit\n" + HEAD + "  return g\n", 1, 1, ("decorators",)),
    Bad(
        "chained-comparison",
        HEAD + "  u = 0 < g < w\n  return u\n",
        2,
        13,
        ("comparisons do not chain", "(a < b) * (b < c)"),
    ),
    Bad("not", HEAD + "  u = !g\n  return u\n", 2, 7, ("'!' is not an operator", "'!='")),
    Bad(
        "comparison-operand", HEAD + "  u = g < \n  return u\n", 2, 11, ("unexpected end of line",)
    ),
    Bad("dict", HEAD + "  u = {}\n  return g\n", 2, 7, ("dicts",)),
    # layout
    Bad(
        "inconsistent-indent",
        HEAD + "  u = g\n    v = u * 2\n  return v\n",
        3,
        5,
        ("inconsistent indentation", "column 3"),
    ),
    Bad("unindented-body", HEAD + "u = g * 2\nreturn u\n", 2, 1, ("indented",)),
    # empty input
    Bad("empty", "", 1, 1, ("empty file",)),
    Bad("only-comments", "# nothing here\n\n   \n", 1, 1, ("empty file",)),
]


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(err: str, path: str, line: int, col: int, words: tuple[str, ...]) -> str:
    """One error line (optionally followed by the source line and a caret under the column)."""
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) in (1, 3), err
    m = ERROR.match(lines[0])
    assert m, lines[0]
    assert (m["path"], int(m["line"]), int(m["col"])) == (path, line, col), lines[0]
    for word in words:
        assert word in m["message"], f"{word!r} not in {m['message']!r}"
    if len(lines) == 3:
        assert lines[2].strip() == "^"
        # the caret sits under the column (both context lines are indented by two spaces)
        assert len(lines[2]) - 2 == col, (lines[1], lines[2])
    return m["message"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_program(case: Bad, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{case.id}.py"
    path.write_text(case.text, encoding="utf-8")
    code, out, err = run_check(capsys, str(path))
    assert code == 2
    assert out == ""
    assert_one_error(err, str(path), case.line, case.col, case.words)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_program_raises_program_error(case: Bad) -> None:
    """The library raises the same located error (no other exception type escapes)."""
    with pytest.raises(ProgramError) as info:
        parse(case.text, "t.py")
    assert (info.value.path, info.value.line, info.value.col) == ("t.py", case.line, case.col)


def test_caret_context_is_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.py"
    path.write_text(HEAD + "  u = sgn(g)\n  return u\n", encoding="utf-8")
    _, _, err = run_check(capsys, str(path))
    assert err.split("\n")[1:3] == ["    u = sgn(g)", "        ^"]


def test_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.py"
    path.write_bytes("def train(w, g, lr):\n  # café\n  return g\n".encode("latin-1"))
    code, out, err = run_check(capsys, str(path))
    assert code == 2 and out == ""
    assert_one_error(err, str(path), 2, 8, ("not UTF-8", "0xe9"))


def test_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04\x00\xff\xfe\x00binary")
    code, _, err = run_check(capsys, str(path))
    assert code == 2
    assert_one_error(err, str(path), 1, 6, ("not UTF-8",))


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.py"
    code, out, err = run_check(capsys, str(path))
    assert code == 2 and out == ""
    assert_one_error(err, str(path), 1, 1, ("no such file",))


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_check(capsys, str(tmp_path))
    assert code == 2
    assert_one_error(err, str(tmp_path), 1, 1, ("directory",))


def test_set_unknown_hyper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.py"
    path.write_text("def f(w, g, beta=0.9):\n  return g * beta\n", encoding="utf-8")
    code, _, err = run_check(capsys, str(path), "--set", "gamma=0.5")
    assert code == 2
    assert_one_error(err, str(path), 1, 1, ("no hyper named 'gamma'", "beta"))


@pytest.mark.parametrize("item", ["beta", "beta=abc", "=0.5"])
def test_set_malformed(item: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.py"
    path.write_text("def f(w, g, beta: hyper):\n  return g * beta\n", encoding="utf-8")
    code, out, err = run_check(capsys, str(path), "--set", item)
    assert code == 2 and out == ""
    assert err.startswith("simplifier check: error: --set") and "Traceback" not in err
    assert len(err.strip().split("\n")) == 1


def test_first_bad_file_stops_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(HEAD + "  return g * lr\n", encoding="utf-8")
    bad.write_text(HEAD + "  return g * lr2\n", encoding="utf-8")
    code, _, err = run_check(capsys, str(good), str(bad))
    assert code == 2
    assert_one_error(err, str(bad), 2, 14, ("'lr2' is not defined", "did you mean 'lr'"))


# -- very deep and very long programs --------------------------------------------------------------
DEEP = 5000


@pytest.mark.parametrize(
    "expr",
    [
        "sqrt(" * DEEP + "g" + ")" * DEEP,
        "-" * DEEP + "g",
        " + ".join(["g"] * DEEP),
        " ** ".join(["g"] * DEEP),
        "interp(" * DEEP + "g" + ", w, 0.5)" * DEEP,
    ],
    ids=["calls", "negations", "sum", "powers", "interps"],
)
def test_deep_nesting_is_refused_clearly(
    expr: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.py"
    path.write_text(f"def f(w, g):\n  u = {expr}\n  return u\n", encoding="utf-8")
    code, out, err = run_check(capsys, str(path))
    assert code == 2 and out == ""
    m = ERROR.match(err.split("\n")[0])
    assert m and m["line"] == "2" and "nested more than" in m["message"]
    assert len(err.split("\n")[0]) < 300  # no giant context line


def test_moderate_nesting_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nested.py"
    path.write_text("def f(w, g):\n  u = " + "tanh(" * 150 + "g" + ")" * 150 + "\n  return u\n")
    code, _, _ = run_check(capsys, str(path))
    assert code == 0


@pytest.mark.slow
def test_seven_thousand_statements(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 7_000  # ~200 KB, under the 256 KiB limit of a program file
    body = ["  m = interp(g, m, 0.9)"]
    body += [f"  x{i} = tanh(x{i - 1}) * 0.5 + m" if i else "  x0 = m * 2" for i in range(n - 2)]
    body += [f"  update = sign(x{n - 3}) * lr"]
    path = tmp_path / "long.py"
    path.write_text("def f(w, g, m, lr):\n" + "\n".join(body) + "\n  return update, m\n")
    start = time.perf_counter()
    code, out, err = run_check(capsys, str(path))
    elapsed = time.perf_counter() - start
    assert code == 0, err
    assert f"x{n - 3}" in out
    print(f"checked a {n}-statement program in {elapsed:.1f} s")


# -- a real process: exit status and stderr, no traceback -----------------------------------
@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty file"),
        (b"\xff\xfe", "not UTF-8"),
        (b"def train(w, g, lr):\n  u = 'x'\n  return g\n", "strings"),
    ],
)
def test_in_a_subprocess(content: bytes, words: str, tmp_path: Path) -> None:
    path = tmp_path / "p.py"
    path.write_bytes(content)
    r = subprocess.run(
        [sys.executable, "-m", "simplifier", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert ERROR.match(r.stderr.split("\n")[0]) and words in r.stderr


# -- number literals (issue 14, item 1) --------------------------------------------------------
# A literal has at most MAX_LITERAL_DIGITS significant digits and its value, rounded to float64,
# is finite and (unless it is 0) not 0. Anything else is a located error, found without building
# the value.
def literal_program(expr: str) -> str:
    return f"def train(w, g, lr):\n  u = g * ({expr})\n  return u * lr\n"


@pytest.mark.parametrize(
    ("literal", "words"),
    [
        ("1e400", "out of range"),
        ("1e5000", "out of range"),
        ("1e999999999", "out of range"),
        ("1e99999999999999999999999999", "out of range"),
        ("-1e400", "out of range"),
        ("1.8e308", "out of range"),
        ("1e-400", "rounds to 0"),
        ("2e-324", "rounds to 0"),
        ("0.0000000000e-999999999999999999999", "rounds to 0"),
        ("9" * 500, "out of range"),
        ("1." + "2" * 100, "101 significant digits"),
        ("0." + "0" * 200 + "1" * 101, "101 significant digits"),
    ],
)
def test_literal_out_of_the_language(
    literal: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse_module = sys.modules["simplifier.parse"]  # (simplifier.parse is also the function)
    built: list[object] = []

    def exact(*args: object) -> Fraction:
        built.append(args)
        return Fraction(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(parse_module, "Fraction", exact)
    with pytest.raises(ProgramError) as info:
        parse(literal_program(literal), "t.py")
    assert (info.value.line, info.value.col) == (2, 12)
    assert words in info.value.message
    if "e" in literal and abs(int(literal.split("e")[1])) > 330:  # 1e999999999: refused from
        assert built == []  # its exponent, before any exact value (10**999999999) is built


@pytest.mark.parametrize("literal", ["1.7976931348623157e308", "5e-324", "3e-324", "0e999999"])
def test_literal_at_the_edges_of_float64(literal: str) -> None:
    parse(literal_program(literal))


def test_hyper_default_and_set_value_follow_the_literal_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.py"
    path.write_text("def train(w, g, b=1e400):\n  return g * b\n", encoding="utf-8")
    code, _, err = run_check(capsys, str(path))
    assert code == 2
    assert_one_error(err, str(path), 1, 19, ("out of range",))
    path.write_text("def train(w, g, b=0.5):\n  return g * b\n", encoding="utf-8")
    for value, words in [("1e999999999", "out of range"), ("1e-400", "rounds to 0")]:
        code, out, err = run_check(capsys, str(path), "--set", f"b={value}")
        assert code == 2 and out == ""
        assert err.startswith("simplifier check: error: --set b: number") and words in err


FINITE = st.floats(allow_nan=False, allow_infinity=False)


@given(FINITE)
@settings(max_examples=60, deadline=None)
def test_every_finite_float_literal_is_exact(x: float) -> None:
    """repr of any finite float is a literal of the language: its exact decimal value, which
    rounds back to the float."""
    text = repr(abs(x))
    p = parse(literal_program(text))
    consts = [a for s in p.body for a in s.args if isinstance(a, Const)]
    assert consts and consts[0].value == Fraction(Decimal(text))
    assert float(consts[0].value) == abs(x)


@given(
    mantissa=st.from_regex(r"\A[1-9][0-9]{0,20}(\.[0-9]{0,20})?\Z"),
    exponent=st.one_of(st.integers(309, 10**30), st.integers(-(10**30), -346)),
)
@settings(max_examples=60, deadline=None)
def test_literals_beyond_float64_are_located_errors(mantissa: str, exponent: int) -> None:
    with pytest.raises(ProgramError) as info:
        parse(literal_program(f"{mantissa}e{exponent}"), "t.py")
    assert (info.value.line, info.value.col) == (2, 12)
    assert ("out of range" if exponent > 0 else "rounds to 0") in info.value.message


@given(digits=st.integers(101, 300), zeros=st.integers(0, 300), point=st.integers(0, 300))
@settings(max_examples=20, deadline=None)
def test_literals_with_too_many_digits_are_located_errors(
    digits: int, zeros: int, point: int
) -> None:
    text = "0." + "0" * zeros + "7" * digits  # e.g. 0.000777...: the digits, not the zeros, count
    with pytest.raises(ProgramError, match=f"{digits} significant digits"):
        parse(literal_program(text))
    parse(literal_program("0." + "0" * zeros + "7" * 100 + "0" * point))


@pytest.mark.parametrize("literal", ["3e-324", "1e-320", "1e300", "2.5e-310"])
def test_printed_literals_parse_back(literal: str) -> None:
    """The printer writes some constants in full (``0.000...0003``): those are literals too."""
    from simplifier.printer import to_text

    p = parse(literal_program(literal))
    assert parse(to_text(p)) == p


@pytest.mark.parametrize(
    ("expr", "folded", "value"),
    [
        ("2 ** 100", "1267650600228229401496703205376", Fraction(2**100)),
        ("2 ** 100 * 3", "3802951800684688204490109616128", Fraction(3 * 2**100)),
        ("10 ** 40", "1e+40", Fraction(10**40)),
        ("0.5 ** 60", "8.67361737988403547205962240695953369140625e-19", Fraction(1, 2**60)),
    ],
)
def test_folded_constants_print_exactly(expr: str, folded: str, value: Fraction) -> None:
    """``simplify`` folds an exact constant into one literal that prints exactly (issue 14, item
    8: 28 significant digits printed ``2 ** 100`` as ...205000; then it came out as ``N / 1``)."""
    from simplifier.printer import to_text
    from simplifier.simplify import simplify

    result = simplify(parse(literal_program(expr)))
    text = to_text(result.program)
    assert folded in text and "/" not in text, text
    consts = [a.value for s in result.program.body for a in s.args if isinstance(a, Const)]
    assert consts == [value]  # the value, exactly
    assert parse(text) == result.program  # and it parses back
    assert not result.unverified


@given(st.integers(1, 100).map(lambda e: 2**e * 3 ** (e % 7)))
@settings(max_examples=40, deadline=None)
def test_integers_print_exactly_and_parse_back(value: int) -> None:
    from simplifier.printer import to_text

    p = parse(literal_program(str(value)))
    assert parse(to_text(p)) == p
    assert [a.value for s in p.body for a in s.args if isinstance(a, Const)] == [value]


# Constant expressions whose exact value leaves float64: every command answers (folding keeps
# the expression as written, where float64 gives inf or 0 as the emitted module would).
@pytest.mark.parametrize(
    "expr", ["1e308 * 10", "0.999 ** 10000", "10 ** 10 ** 6", "1e-300 * 1e-300", "2 ** 2000"]
)
@pytest.mark.parametrize("command", ["check", "analyze", "hash", "simplify", "emit"])
def test_constant_expressions_beyond_float64_do_not_crash(
    expr: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.py"
    path.write_text(literal_program(expr), encoding="utf-8")
    assert main([command, str(path)]) in (0, 1)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("expr", ["0.999 ** 10000", "10 ** 10 ** 6"])
def test_equiv_with_huge_exact_constants_answers(
    expr: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(literal_program(expr), encoding="utf-8")
    b.write_text(literal_program("1"), encoding="utf-8")
    assert main(["equiv", str(a), str(b)]) == 1  # not equivalent, found numerically
    assert "Traceback" not in capsys.readouterr().err


# -- names equal after NFKC are the same name (issue 14, item 2) ---------------------------------
def test_names_are_python_identifiers_written_in_any_normal_form() -> None:
    """NFD text (e + combining acute) and NFC text are the same name; so are ℘ and other
    identifier characters Python accepts."""
    p = parse("def train(w, g, lr, be\u0301ta=0.5):\n  ℘ = g * béta\n  return ℘ * lr\n")
    assert p.params[-1].name == "béta" == unicodedata.normalize("NFC", "be\u0301ta")
    assert p.body[0].var == "℘"


def test_nfkc_equal_names_are_one_name() -> None:
    p = parse("def train(w, 𝔤, ｍ, ﬁ=0.5):\n  m = interp(g, m, fi)\n  return sign(ｍ), m\n")
    assert [(q.name, q.role.value) for q in p.params] == [
        ("w", "weight"),
        ("g", "gradient"),
        ("m", "state"),
        ("fi", "hyper"),
    ]


@pytest.mark.parametrize(
    ("params", "name", "col"),
    [("w, g, 𝔤", "g", 17), ("w, g, m, ｍ", "m", 20), ("w, g, ﬁ=0.1, fi=0.2", "fi", 24)],
)
def test_nfkc_duplicate_parameters_are_located(params: str, name: str, col: int) -> None:
    with pytest.raises(ProgramError) as info:
        parse(f"def train({params}):\n  return g\n", "t.py")
    assert (info.value.line, info.value.col) == (1, col)
    assert f"duplicate parameter {name!r}" in info.value.message
    assert "NFKC" in info.value.message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (HEAD + "  𝐢𝐟 = g\n  return g\n", 2, "'if'"),
        (HEAD + "  u = g\n  ｒｅｔｕｒｎ u\n", 3, "'return' (written 'ｒｅｔｕｒｎ')"),
    ],
)
def test_nfkc_forms_of_keywords(text: str, line: int, words: str) -> None:
    with pytest.raises(ProgramError) as info:
        parse(text, "t.py")
    assert (info.value.line, info.value.col) == (line, 3) and words in info.value.message


@given(st.text(st.characters(categories=["Lu", "Ll", "Lo", "Nd", "Pc"]), min_size=1, max_size=6))
@settings(max_examples=80, deadline=None)
def test_names_are_stored_in_nfkc(name: str) -> None:
    """Any name the parser accepts is stored as its NFKC form (the name Python would read)."""
    try:
        p = parse(f"def train(w, g, lr):\n  {name} = g * lr\n  return {name}\n")
    except ProgramError:
        return
    nfkc = unicodedata.normalize("NFKC", name)
    assert nfkc.isidentifier()
    assert p.body[0].var == nfkc


# -- positions count lines as the parser does (issue 14, item 7) ---------------------------------
@pytest.mark.parametrize("separator", ["\u2028", "\x0b", "\x0c", "\x1c", "\x85", "\u2029"])
def test_context_line_after_other_line_separators(
    separator: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.py"
    path.write_text(
        f"def train(w, g, lr):\n  # note{separator}more\n  u = sgn(g)\n  return u\n",
        encoding="utf-8",
    )
    code, _, err = run_check(capsys, str(path))
    assert code == 2
    lines = err.split("\n")
    assert lines[0].startswith(f"{path}:3:7: error: unknown function 'sgn'")
    assert lines[1:3] == ["    u = sgn(g)", "        ^"]


SEPARATORS = ["\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\r"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["comment", "blank", "code"]), st.sampled_from(SEPARATORS)),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=40, deadline=None)
def test_error_positions_count_lines_as_the_parser_does(lines: list[tuple[str, str]]) -> None:
    """Any mix of separators Python's str.splitlines would break a line at, in comments and
    after code, before an error: the error names its real line and shows that line."""
    body = []
    for kind, sep in lines:
        body.append({"comment": f"  # a{sep}b", "blank": "", "code": f"  v = g  # c{sep}d"}[kind])
    text = "def train(w, g, lr):\n" + "\n".join([*body, "  u = sgn(g)", "  return u"]) + "\n"
    with pytest.raises(ProgramError) as info:
        parse(text, "p.py")
    e = info.value
    assert (e.line, e.col) == (len(body) + 2, 7), text
    assert e.source_line == "  u = sgn(g)"
    assert e.render().split("\n")[1:] == ["    u = sgn(g)", "        ^"]


def test_context_line_shows_separators_as_spaces(capsys: pytest.CaptureFixture[str]) -> None:
    error = ProgramError.at("bad", "p.py", "a\n\x0cu = x\u2028y\n", 2, 7)
    assert error.render().split("\n")[1:] == ["   u = x y", "        ^"]


def test_caret_under_wide_and_combining_characters() -> None:
    error = ProgramError.at("bad", "p.py", "  x = 'β́' + 学习 + sgn\n", 1, 19)  # 's' of sgn
    # the terminal shows "  x = 'β́' + " in 12 columns, 学习 in 4, " + " in 3
    assert error.render().split("\n")[1:] == ["    x = 'β́' + 学习 + sgn", " " * (2 + 19) + "^"]
