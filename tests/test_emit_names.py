"""The emitter's namespace: every name it writes is distinct after NFKC normalisation (Python's
reading of identifiers) and distinct from the names the emitted module and its class define.

Programs are renamed at the IR level (so these tests do not depend on what the parser accepts):
states, hypers, the gradient and temporaries get names that Python folds together (``𝔤`` and
``g``, ``ﬁ`` and ``fi``, ``ｍ`` and ``m``), the constructor's own keywords (``flat``,
``maximize``...) and the generated code's locals. Each emitted module is written to a file,
imported from it, and run for 3 steps against the reference interpreter.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
from dataclasses import replace
from pathlib import Path

import torch
from emit_support import assert_close_steps, inputs, run_emitted, run_reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simplifier.emit import emit_torch
from simplifier.emit.hypers import extract_hypers
from simplifier.emit.names import CLASS_KEYWORDS
from simplifier.ir import Program, Ref
from simplifier.parse import parse
from simplifier.passes.dce import prune

# One program with every kind of name: two states, three hypers, a temporary with a name.
TEMPLATE = """def f(w, g, m, v, lr, a=0.5, b=0.25, c=0.125):
  t = interp(g, m, 0.9) * a
  m = interp(g, m, 0.8)
  v = interp(g * g, v, 0.7) + b
  update = lr * (t + c * v + g)
  return update, m, v
"""
# Names to give them: NFKC-equal pairs, the class's keywords, the module's own names, locals.
POOL = [
    "g",
    "𝔤",
    "m",
    "ｍ",
    "fi",
    "ﬁ",
    "v",
    "ⅴ",
    "t",
    *(name for name, _, _ in CLASS_KEYWORDS),
    "betas",
    "weight_decay",
    "params",
    "grads",
    "states",
    "group",
    "scalars",
    "kernel",
    "rest",
    "kind",
    "idx",
    "torch",
    "Tensor",
    "types",
    "BLOCK",
    "COMPILE_OPTIONS",
    "self",
    "closure",
]
RENAMABLE = ("g", "m", "v", "a", "b", "c", "t")


def rename(program: Program, mapping: dict[str, str]) -> Program:
    """``program`` with its inputs and named values renamed (SSA suffixes kept)."""

    def name(n: str) -> str:
        base, dot, rest = n.partition(".")
        return mapping.get(base, base) + dot + rest if base in mapping else n

    def atom(a: object) -> object:
        return Ref(name(a.name)) if isinstance(a, Ref) else a

    params = tuple(replace(p, name=name(p.name)) for p in program.params)
    body = tuple(
        replace(
            s,
            target=name(s.target),
            args=tuple(atom(a) for a in s.args),  # type: ignore[misc]
            var=name(s.var) if s.var else None,
        )
        for s in program.body
    )
    outputs = tuple(atom(a) for a in program.outputs)
    return replace(program, params=params, body=body, outputs=outputs)  # type: ignore[arg-type]


def _load(path: Path) -> type[torch.optim.Optimizer]:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls: type[torch.optim.Optimizer] = module.F
    return cls


def _check(program: Program, path: Path) -> None:
    """Write the module, import it from the file, run 3 steps on every eager path."""
    path.write_text(emit_torch(program, class_name="F"), encoding="utf-8")
    cls = _load(path)
    keywords = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
    ]
    assert len(keywords) == len(set(keywords))
    sig = extract_hypers(prune(program)).signature
    data = inputs(torch.float64, steps=3)
    expected = run_reference(program, data, "math", torch.float64)
    for foreach in (False, True):
        actual, _, _ = run_emitted(cls, sig, data, foreach=foreach)
        assert_close_steps(actual, expected, 1e-10)
    actual, _, _ = run_emitted(cls, sig, data, flat=True)
    assert_close_steps(actual, expected, 1e-10)


def test_names_python_folds_together_stay_distinct(tmp_path: Path) -> None:
    """The issue's cases: a state ``𝔤`` beside the gradient ``g``; hypers ``ﬁ`` and ``fi``;
    states ``m`` and ``ｍ``; a hyper named ``flat``."""
    base = parse(TEMPLATE)
    cases = [
        {"m": "𝔤"},
        {"a": "ﬁ", "b": "fi"},
        {"v": "ｍ"},
        {"a": "flat", "b": "maximize", "c": "differentiable"},
        {"t": "ⅴ", "g": "𝔤"},
    ]
    for i, mapping in enumerate(cases):
        _check(rename(base, mapping), tmp_path / f"emitted_{i}.py")


def test_a_hyper_named_flat_is_renamed_and_flat_still_works() -> None:
    program = rename(parse(TEMPLATE), {"a": "flat"})
    text = emit_torch(program)
    assert "flat_1: float = 0.5" in text
    assert "flat: bool = False" in text


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.permutations(POOL))
def test_any_names_from_the_pool(tmp_path: Path, names: list[str]) -> None:
    """Random names (distinct as written, often equal after NFKC or reserved) for the template's
    inputs and values."""
    mapping = dict(zip(RENAMABLE, names, strict=False))
    program = rename(parse(TEMPLATE), mapping)
    _check(program, tmp_path / f"emitted_{next(_files)}.py")


_files = itertools.count()


def test_the_namespace_hands_out_many_names_for_one_hint_in_linear_time() -> None:
    """``m``, ``m_1``, ... ``m_n`` for n requests, each looking at O(1) candidates (it rescanned
    from ``m_1`` every time: emit was quadratic in the statements assigning one variable)."""
    from simplifier.emit.names import Namespace

    class Counting(set[str]):
        lookups = 0

        def __contains__(self, item: object) -> bool:
            Counting.lookups += 1
            return super().__contains__(item)

    ns = Namespace()
    ns._taken = Counting(ns._taken)
    ns.reserve("m_3")  # a name taken elsewhere is still skipped
    names = [ns.name("m.7") for _ in range(2000)]
    assert names[:4] == ["m", "m_1", "m_2", "m_4"] and len(set(names)) == 2000
    assert Counting.lookups < 3 * 2000


def test_two_thousand_chained_statements_emit() -> None:
    """2,000 statements reassigning ``m`` (``m``, ``m_1``, ... ``m_1999`` in the module): the
    emitted source compiles."""
    text = "def f(w, g, m, lr):\n" + "  m = 0.9 * m + 0.1 * g\n" * 2000 + "  return m * lr, m\n"
    source = emit_torch(parse(text))
    compile(source, "emitted.py", "exec")
    assert "m_1999" in source
