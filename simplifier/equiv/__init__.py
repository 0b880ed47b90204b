"""Equivalence of optimizer programs: identical, proved, proved-bounded, not-refuted or refuted.

>>> from simplifier.equiv import equivalent
>>> equivalent("def f(w, g):\\n  return g * 2\\n", "def f(w, g):\\n  return g + g\\n").verdict
'proved'
"""

from __future__ import annotations

from typing import Any

from simplifier.equiv.verdict import Counterexample, StepInputs, Verdict

__all__ = ["Counterexample", "StepInputs", "Verdict", "equivalent"]


def __getattr__(name: str) -> Any:
    # `equivalent` pulls in SymPy and z3: imported on first use, so that importing a light
    # submodule (the CLI reads `refute.DEFAULT_RTOL`) does not cost every command ~0.4 s.
    if name == "equivalent":
        from simplifier.equiv.api import equivalent

        return equivalent
    raise AttributeError(f"module 'simplifier.equiv' has no attribute {name!r}")
