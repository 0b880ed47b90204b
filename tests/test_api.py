"""The public API as the README and docs use it: ``from simplifier import ...`` and
``simplifier.NAME``, repeatedly, in a fresh interpreter (import order decides what a package
attribute is, so this cannot run inside the test process that has imported everything)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

import simplifier
from simplifier.errors import ProgramError
from simplifier.parse import parse, parse_file

ROOT = Path(__file__).resolve().parent.parent

FRESH = """
import simplifier
from simplifier import simplify, parse, equivalent, compile_torch, emit_torch, ablate
p = parse(open("corpus/lion.py").read())
assert simplify(p, check=False).program.name == "lion"
assert simplify(p, check=False).program.name == "lion"  # twice: the function, not the module
assert simplifier.simplify(p, check=False).program.name == "lion"
assert simplifier.simplify(p, check=False).program.name == "lion"
import simplifier.simplify, simplifier.parse       # importing the modules keeps the functions
assert callable(simplifier.simplify) and callable(simplifier.parse)
from simplifier.simplify import SimplifyResult    # and the modules stay importable
assert isinstance(simplifier.simplify("corpus/lion.py", check=False), SimplifyResult)
for name in simplifier.__all__:
    getattr(simplifier, name)
print("ok")
"""


def test_public_api_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRESH], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_all_lists_every_export() -> None:
    assert set(simplifier.__all__) == {"__version__", *simplifier._EXPORTS}
    assert set(simplifier._EXPORTS) <= set(dir(simplifier))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = simplifier.nope  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value", [0.95, "0.95", Fraction(19, 20), "19/20"], ids=["float", "str", "Fraction", "ratio"]
)
def test_hyper_values_of_any_numeric_kind(value: object) -> None:
    p = parse_file(str(ROOT / "corpus/lion.py"), {"beta1": value})  # type: ignore[dict-item]
    beta1 = next(h for h in p.hypers if h.name == "beta1")
    assert beta1.default is not None and beta1.default.value == Fraction(19, 20)
    assert beta1.default.text == "0.95"


def test_hyper_value_int_and_bad_values() -> None:
    p = parse("def f(w, g, lr, k: hyper):\n  return g * lr * k\n", values={"k": 2})
    assert p.hypers[0].default is not None and p.hypers[0].default.value == 2
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse("def f(w, g, lr, k: hyper):\n  return g * lr * k\n", values={"k": "x"})
    with pytest.raises(TypeError, match="got bool"):
        parse("def f(w, g, lr, k: hyper):\n  return g * lr * k\n", values={"k": True})


def test_functions_take_text_path_or_program() -> None:
    path = ROOT / "corpus/lion.py"
    text = path.read_text()
    program = parse(text, str(path))
    texts = {
        simplifier.to_text(simplifier.simplify(src).program)
        for src in (text, str(path), path, program)
    }
    assert len(texts) == 1
    assert simplifier.equivalent(text, path).verdict == "identical"
    assert "class Lion" in simplifier.emit_torch(path)
    with pytest.raises(ProgramError, match="no such file"):
        simplifier.simplify("missing.py")
    with pytest.raises(TypeError, match="got int"):
        simplifier.simplify(3)  # type: ignore[arg-type]
