"""Equivalence of optimizer programs: identical, proved, proved-bounded, not-refuted or refuted.

>>> from simplifier.equiv import equivalent
>>> equivalent("def f(w, g):\\n  return g * 2\\n", "def f(w, g):\\n  return g + g\\n").verdict
'proved'
"""

from simplifier.equiv.api import equivalent
from simplifier.equiv.verdict import Counterexample, StepInputs, Verdict

__all__ = ["Counterexample", "StepInputs", "Verdict", "equivalent"]
