"""Fuzzing the CLI (issue 14, "done when"): corpus programs mutated byte- and token-wise, run
through check, analyze, hash, simplify and emit in process (``simplifier.cli.main``).

For every input: no exception escapes but the CLI's own errors (argparse's exit), every exit code
is 0, 1 or 2, nothing prints a traceback, a program ``check`` refuses is refused by every command
and one it accepts is answered by every command (or refused with a located error), every module
``emit`` writes imports and matches the reference interpreter for 3 steps, and each command ends
within ``COMMAND_SECONDS``.

Bounded for CI: 25 derandomized examples (the same every run). To hunt, set
``SIMPLIFIER_FUZZ_EXAMPLES``: that many random examples, e.g.
``SIMPLIFIER_FUZZ_EXAMPLES=500 python -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import os
import random
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from emit_support import inputs, run_emitted, run_reference, signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simplifier.cli import main
from simplifier.errors import ProgramError
from simplifier.parse import parse
from simplifier.testing import random_program

CORPUS = sorted((Path(__file__).resolve().parent.parent / "corpus").glob("*.py"))
# The corpus, and a few random valid programs (reductions, clip, step) for variety.
SEEDS = [p.read_bytes() for p in CORPUS] + [
    random_program(random.Random(seed), 8).encode() for seed in range(6)
]
EXAMPLES = int(os.environ.get("SIMPLIFIER_FUZZ_EXAMPLES", "25"))
COMMAND_SECONDS = 30.0
ERROR_LINE = re.compile(r"^(.+?:\d+:\d+: error: |simplifier \w+: error: )")

# One token per match: comments, numbers, names, two-character operators, any other character.
TOKEN = re.compile(
    r"#[^\n]*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|\w+|\*\*|[+\-*/]=|\r?\n|[ \t]+|.",
    re.DOTALL,
)
# Tokens an attacker or a careless user would bring (issue 14's classes among them).
HOSTILE = [
    *["1e400", "1e-400", "2e-324", "1e999999999", "9" * 120, "1e308", "0", "0.0", "5e-324"],
    *["10 ** 10 ** 6", "0.999 ** 10000", "1e308 * 10"],
    *["𝔤", "ﬁ", "fi", "ｍ", "β1", "flat", "lr", "g", "w", "m", "v", "step", "__x", "if", "lambda"],
    *["\u2028", "\x0b", "\x0c", "\r\n", "\t", "\\\n", "\n", " ", "#", "\ufeff", "\x00"],
    *["(", ")", ",", "**", "-", "+", "*", "/", "=", "+=", ":", "state", "hyper", "return"],
    *["sqrt", "interp", "sign", "log", "exp", "clip", "norm", "global_norm", "dot", "maximum"],
    *["get_eps()", "get_pi()", "sqrt(sqrt(sqrt(g)))", "m / m", "g - g"],
]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """A corpus program with 1-4 mutations: token-wise (on its text) or byte-wise."""
    data = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            toks = tokens(data.decode("utf-8", errors="replace")) or [""]
            i = draw(st.integers(0, len(toks) - 1))
            kind = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "insert"]))
            pool = st.one_of(st.sampled_from(HOSTILE), st.sampled_from(toks))
            if kind == "delete":
                del toks[i]
            elif kind == "duplicate":
                toks.insert(i, toks[i])
            elif kind == "swap":
                j = draw(st.integers(0, len(toks) - 1))
                toks[i], toks[j] = toks[j], toks[i]
            elif kind == "replace":
                toks[i] = draw(pool)
            else:
                toks.insert(i, draw(pool))
            data = "".join(toks).encode("utf-8")
        else:
            raw = bytearray(data)
            i = draw(st.integers(0, max(len(raw) - 1, 0)))
            kind = draw(st.sampled_from(["delete", "insert", "flip", "truncate"]))
            if kind == "delete" and raw:
                del raw[i]
            elif kind == "insert":
                raw.insert(i, draw(st.sampled_from(range(256))))
            elif kind == "flip" and raw:
                raw[i] ^= 1 << draw(st.sampled_from(range(8)))
            elif kind == "truncate":
                del raw[i:]
            data = bytes(raw)
    return data


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float


def run_cli(*argv: str) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))  # any exception but the CLI's exits fails the test here
    return Outcome(code, out.getvalue(), err.getvalue(), time.perf_counter() - start)


def assert_well_behaved(command: str, outcome: Outcome) -> None:
    assert outcome.code in (0, 1, 2), (command, outcome)
    assert "Traceback" not in outcome.err, (command, outcome.err)
    assert outcome.seconds < COMMAND_SECONDS, (command, outcome.seconds)
    if outcome.code == 2:
        first = outcome.err.split("\n")[0]
        assert ERROR_LINE.match(first), (command, outcome.err)


_modules = itertools.count()


def assert_module_matches_the_interpreter(module_path: Path, source: bytes) -> None:
    """The module ``emit`` wrote imports, and its optimizer's first 3 steps are the reference
    interpreter's (float64, the per-tensor path)."""
    spec = importlib.util.spec_from_file_location(f"fuzz_emitted_{next(_modules)}", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = module.Fuzzed
    program = parse(source.decode("utf-8"))
    data = inputs(torch.float64, steps=3)
    expected = run_reference(program, data, "math", torch.float64)
    actual, _, _ = run_emitted(cls, signature(program), data, foreach=False)
    for t, (xs, ys) in enumerate(zip(actual, expected, strict=True)):
        for x, y in zip(xs, ys, strict=True):
            torch.testing.assert_close(
                x, y, rtol=1e-6, atol=1e-6, equal_nan=True, msg=lambda m, t=t: f"step {t + 1}: {m}"
            )


def fuzz_one(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fuzzed.py"
        src.write_bytes(data)
        check = run_cli("check", str(src))
        assert_well_behaved("check", check)
        for command in ("analyze", "hash", "simplify"):
            outcome = run_cli(command, str(src))
            assert_well_behaved(command, outcome)
            if check.code == 2:  # what check refuses, every command refuses
                assert outcome.code == 2, (command, outcome)
        out = Path(tmp) / "emitted.py"
        emitted = run_cli("emit", str(src), "-o", str(out), "--class-name", "Fuzzed")
        assert_well_behaved("emit", emitted)
        if check.code == 2:
            assert emitted.code == 2 and not out.exists(), emitted
        # No temporary file left behind (listed before the import below writes __pycache__).
        assert sorted(p.name for p in Path(tmp).iterdir()) in (
            ["emitted.py", "fuzzed.py"],
            ["fuzzed.py"],
        )
        if emitted.code == 0:
            assert_module_matches_the_interpreter(out, data)
        else:
            assert not out.exists()


@given(mutants())
@settings(
    max_examples=EXAMPLES,
    deadline=None,  # the bound per input is COMMAND_SECONDS per command, asserted above
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
    derandomize="SIMPLIFIER_FUZZ_EXAMPLES" not in os.environ,  # CI: the same inputs every run
)
def test_mutated_corpus_programs(data: bytes) -> None:
    fuzz_one(data)


# Inputs the fuzzer (or the issue) found, kept as regressions.
FOUND = [
    b"def train(w, g, lr):\n  u = g * (1e400)\n  return u * lr\n",
    b"def train(w, g, lr):\n  u = g * (1e999999999)\n  return u * lr\n",
    b"def train(w, g, lr):\n  u = g * (1e308 * 10)\n  return u * lr\n",
    b"def train(w, g, lr):\n  u = g ** (0.999 ** 10000)\n  return u * lr\n",
    b"def train(w, g, lr, b=1e400):\n  return g * b\n",
    "def train(w, g, 𝔤):\n  return g\n".encode(),
    "def train(w, g, m, lr, fi=0.9):\n  ｍ = interp(g, m, ﬁ)\n  return sign(m) * lr, m\n".encode(),
    b"def train(w, g, lr, flat=0.5):\n  return g * flat * lr\n",
    b"def train(w, g, lr):\n  # \x0c\x0b\n  u = sgn(g)\n  return u\n",
    "def train(w, g, lr, be\u0301ta=0.5, β=0.25):\n  u = g * béta + β\n  return u * lr\n".encode(),
    b"def train(w, g, lr):\n  u = g * 3e-324 + 7 ** 150\n  return u * lr\n",
    # interp with an infinite weight: the lerp kernel gave +-1 after sign where the program
    # gives nan (the emitted lerp now runs only for a finite weight)
    b"def signum(w, g, m, lr):\n  m = interp(g, m, 10 ** 10 ** 6)\n  return lr * sign(m), m\n",
]


@pytest.mark.parametrize("data", FOUND, ids=range(len(FOUND)))
def test_found_inputs(data: bytes) -> None:
    fuzz_one(data)


def test_the_mutator_makes_both_kinds() -> None:
    """The strategy reaches invalid UTF-8 and hostile tokens (it is not a no-op)."""
    seen: list[bytes] = []

    @given(mutants())
    @settings(max_examples=100, database=None, deadline=None, derandomize=True)
    def collect(data: bytes) -> None:
        seen.append(data)

    collect()
    assert any(not _utf8(d) for d in seen)
    assert any(d not in SEEDS and _utf8(d) for d in seen)
    with pytest.raises(ProgramError):  # and the seeds themselves parse
        parse("def f(w, g):\n  return g g\n")
    assert all(parse(s.decode("utf-8")) for s in SEEDS)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
