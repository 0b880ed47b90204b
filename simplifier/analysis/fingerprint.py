"""The numeric fingerprint: a hash of what a program computes on fixed pseudo-random inputs.

As AutoML-Zero does for its functional-equivalence cache: run the program for a few steps
(:data:`STEPS`, from zero state) with the reference interpreter :func:`simplifier.numeric.run`
on fixed seeded weights, gradients and lr values (two parameter tensors, so that per-tensor
``norm`` and the global reductions differ), quantise every update to :data:`BITS` significant
bits, canonicalise NaN (one NaN), -0.0 (as 0.0), tiny values (below :data:`FLOOR` in
magnitude, as 0.0) and keep infinities with their sign, then hash with ``hashlib``. Weights
are not updated between steps, so the fingerprint samples the update as a function of its
inputs without letting a diverging program turn everything into inf or NaN.

It catches algebraic equivalences the structural hash cannot (``x + x`` vs ``2 * x``,
``interp(x, y, a)`` vs ``interp(y, x, 1 - a)``). It can be wrong both ways:

- false "equal": programs that agree on these inputs but not on others (``maximum(step, 9)``
  vs ``9`` in the first :data:`STEPS` steps; branches of ``sign``/``maximum`` the samples
  never reach); updates that differ by less than one quantisation step (a relative
  ``2**-BITS``) or only below :data:`FLOOR`; programs whose updates are NaN or inf on these
  inputs for different reasons; a collision of the 128-bit digest.
- false "different": equal programs whose floating-point rounding differs (``(a + b) + c``
  vs ``a + (b + c)``) and lands on two sides of a quantisation boundary (rare, not never);
  programs equal in exact arithmetic where one overflows or divides 0 by 0 and the other does
  not (``exp(x) / exp(x)`` vs ``1``).

The fingerprint depends on the semantics (``math`` or ``hero``), which is part of the digest.

>>> from simplifier.parse import parse
>>> a = parse("def f(w, g, lr):\\n  return (g + g) * lr\\n")
>>> b = parse("def f(w, g, lr):\\n  return lr * (2 * g)\\n")
>>> fingerprint(a) == fingerprint(b)
True
"""

from __future__ import annotations

from hashlib import blake2b

import numpy as np

from simplifier.ir import Program
from simplifier.numeric import Semantics, run

STEPS = 4
SHAPES = ((5,), (3,))
BITS = 24  # significant bits kept of every update entry
FLOOR = 2.0**-40  # entries smaller in magnitude count as 0
SEED = 20230213  # the Lion paper's arXiv date: any fixed value works
_LRS = (0.75, 1.25, 0.5, 1.5, 1.0, 0.875, 1.125, 0.625)


def _inputs(steps: int) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[float]]:
    rng = np.random.default_rng(SEED)
    weights = [rng.normal(size=s) for s in SHAPES]
    grads = [[rng.normal(size=s) for s in SHAPES] for _ in range(steps)]
    lrs = [_LRS[t % len(_LRS)] for t in range(steps)]
    return weights, grads, lrs


_INPUTS = _inputs(STEPS)


def quantise(x: np.ndarray) -> bytes:
    """The canonical bytes of an array: its shape, class codes and quantised mantissas.

    >>> quantise(np.array([-0.0, np.nan])) == quantise(np.array([0.0, -np.nan]))
    True
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.ravel()
    finite = np.isfinite(flat)
    # Class codes: 0 finite, 1 NaN, 2 +inf, 3 -inf.
    codes = np.where(finite, 0, np.where(np.isnan(flat), 1, np.where(flat > 0, 2, 3)))
    y = np.where(finite & (np.abs(flat) >= FLOOR), flat, 0.0) + 0.0  # + 0.0 turns -0.0 into 0.0
    mantissa, exponent = np.frexp(y)
    q = np.rint(mantissa * float(1 << BITS)).astype(np.int64)
    carry = np.abs(q) == (1 << BITS)  # rounding up to the next power of two
    q = np.where(carry, q // 2, q)
    exponent = np.where(carry, exponent + 1, exponent)
    parts = (
        str(x.shape).encode(),
        codes.astype(np.int8).tobytes(),
        q.tobytes(),
        exponent.astype(np.int32).tobytes(),
    )
    return b"\x00".join(parts)


def fingerprint(program: Program, *, semantics: Semantics = "math") -> str:
    """The numeric fingerprint of a program, as 32 hex digits (see the module docstring).

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, m, lr):\\n  m = interp(g, m, 0.9)\\n  return sign(m) * lr, m\\n")
    >>> len(fingerprint(p)), fingerprint(p) != fingerprint(p, semantics="hero")
    (32, True)
    """
    from simplifier.passes.dce import prune

    weights, grads, lrs = _INPUTS
    trace = run(
        prune(program), weights, grads, lrs, STEPS, semantics=semantics, apply_updates=False
    )
    h = blake2b(digest_size=16)
    h.update(f"fingerprint/{semantics}/{STEPS}/{BITS}".encode())
    for update in trace.updates:
        for u in update:
            h.update(b"\x01")
            h.update(quantise(u))
    return h.hexdigest()
