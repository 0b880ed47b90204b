"""Numeric refutation: run both programs on random input sequences and look for a step where the
updates differ, then make the counterexample small.

Float64 trajectories (:mod:`simplifier.numeric`, both semantics, the protected operations under
``hero``) are fast but can disagree through rounding alone, so every disagreement is recomputed in
50-digit precision (:mod:`.precise`) before it counts: a counterexample is a difference of the
programs, never of their rounding. The input sequences cover what breaks optimizers:

- ``normal``: weights and gradients ~ N(0, 1), lr in [0.1, 2], two tensors (so per-tensor ``norm``
  and model-wide ``global_norm`` differ);
- ``sparse``: gradients and weights with exact zeros, and whole steps of zero gradient;
- ``tiny`` / ``huge``: magnitudes around 1e-12 and 1e8 (the ``hero`` protection 1e-8 matters);
- ``mixed``: every entry its own magnitude from 1e-12 to 1e8, random signs, some zeros;
- ``training``: the built-in least-squares problem trained by program A with ``w = w - update``.

Two updates differ when ``max |a - b| > rtol * max(|a|, |b|)`` over all entries of the step (or
their NaN/inf patterns differ). The counterexample is then minimised: the earliest step (shorter
input sequences are tried), one tensor entry, as many zero inputs as possible, and small integers
(or few significant digits) where they still show the difference.

>>> from simplifier.parse import parse
>>> a = parse("def f(w, g, m):\\n  m = interp(g, m, 0.9)\\n  return m, m\\n")
>>> b = parse("def f(w, g, m):\\n  m = interp(g, m, 0.8)\\n  return m, m\\n")
>>> cex = refute(a, b)
>>> cex.step, cex.inputs[0].g
(1, [[1.0]])
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from simplifier.equiv import precise
from simplifier.equiv.precise import Inputs
from simplifier.equiv.verdict import Counterexample, StepInputs
from simplifier.ir import Program
from simplifier.numeric import Problem, Semantics, initial_states, run, step

DEFAULT_RTOL = 1e-9
DEFAULT_STEPS = 24
MINIMISE_BUDGET_S = 3.0
SHAPES = (3, 2)  # two parameter tensors


# -- input sequences -----------------------------------------------------------------------------
def _tensors(rng: np.random.Generator, draw: Callable[[int], np.ndarray]) -> list[list[float]]:
    return [draw(n).tolist() for n in SHAPES]


def _scenario(name: str, rng: np.random.Generator, steps: int) -> list[Inputs]:
    def normal(n: int) -> np.ndarray:
        return rng.normal(size=n)

    def sparse(n: int) -> np.ndarray:
        x = rng.normal(size=n)
        x[rng.random(n) < 0.5] = 0.0
        return x

    def scaled(scale: float) -> Callable[[int], np.ndarray]:
        return lambda n: scale * rng.normal(size=n)

    def mixed(n: int) -> np.ndarray:
        x = rng.choice([-1.0, 1.0], size=n) * 10.0 ** rng.uniform(-12, 8, size=n)
        x[rng.random(n) < 0.2] = 0.0
        return x

    draws: dict[str, tuple[Callable[[int], np.ndarray], Callable[[int], np.ndarray]]] = {
        "normal": (normal, normal),
        "sparse": (sparse, sparse),
        "tiny": (scaled(1e-10), scaled(1e-12)),
        "huge": (scaled(1e6), scaled(1e8)),
        "mixed": (mixed, mixed),
    }
    draw_w, draw_g = draws[name]
    out = []
    for t in range(steps):
        g = _tensors(rng, draw_g)
        if name == "sparse" and t % 5 == 2:
            g = [[0.0] * n for n in SHAPES]
        out.append(Inputs(_tensors(rng, draw_w), g, float(rng.uniform(0.1, 2.0))))
    return out


SCENARIOS = ("normal", "sparse", "tiny", "huge", "mixed")


def _float_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The float64 version of :func:`precise.relative_difference`."""
    worst = scale = 0.0
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        nx, ny = np.isnan(x), np.isnan(y)
        if np.any(nx != ny):
            return math.inf
        finite = np.isfinite(x) & np.isfinite(y)
        if np.any(~finite & ~nx & (x != y)):
            return math.inf
        if np.any(finite):
            worst = max(worst, float(np.max(np.abs(x[finite] - y[finite]))))
            scale = max(scale, float(np.max(np.abs(x[finite]))), float(np.max(np.abs(y[finite]))))
    return 0.0 if worst == 0 else worst / scale


def _float_mismatch(
    a: Program, b: Program, inputs: list[Inputs], semantics: Semantics, rtol: float
) -> int | None:
    """The first step (1-based) where float64 updates differ by more than ``rtol``, if any."""
    sizes = [len(t) for t in inputs[0].w]
    sa, sb = initial_states(a, sizes), initial_states(b, sizes)
    with np.errstate(all="ignore"):
        for t, x in enumerate(inputs):
            w = [np.asarray(v, dtype=np.float64) for v in x.w]
            g = [np.asarray(v, dtype=np.float64) for v in x.g]
            ua, sa = step(a, w, g, sa, x.lr, t + 1, semantics=semantics)
            ub, sb = step(b, w, g, sb, x.lr, t + 1, semantics=semantics)
            if _float_difference(ua, ub) > rtol:
                return t + 1
    return None


def _training(
    a: Program, b: Program, semantics: Semantics, steps: int, rtol: float
) -> list[Inputs] | None:
    """Train the least-squares problem with A; the inputs up to the first float64 mismatch."""
    problem = Problem(seed=3)
    grads_fn = problem.gradient_fn()
    seen: list[list[np.ndarray]] = []

    def grads(t: int, w: list[np.ndarray]) -> list[np.ndarray]:
        g = grads_fn(t, w)
        seen.append(g)
        return g

    def lr(t: int) -> float:
        return 0.05 * (1.0 - t / (2 * steps))

    with np.errstate(all="ignore"):
        ta = run(a, problem.init(), grads, lr, steps, semantics=semantics)
        tb = run(b, problem.init(), problem.gradient_fn(), lr, steps, semantics=semantics)
    for t in range(steps):
        if _float_difference(ta.updates[t], tb.updates[t]) > rtol:
            return [
                Inputs(
                    [np.ravel(x).tolist() for x in ta.weights[k]],
                    [np.ravel(x).tolist() for x in seen[k]],
                    lr(k),
                )
                for k in range(t + 1)
            ]
    return None


# -- confirmation in high precision --------------------------------------------------------------
def confirm(
    a: Program, b: Program, inputs: list[Inputs], semantics: Semantics, rtol: float
) -> Counterexample | None:
    """The first step where the 50-digit updates differ by more than ``rtol``, if any."""
    if not inputs:
        return None
    ua, _ = precise.run(a, inputs, semantics)
    ub, _ = precise.run(b, inputs, semantics)
    for t, (x, y) in enumerate(zip(ua, ub, strict=True)):
        rel = precise.relative_difference(x, y)
        if rel > rtol:
            fa, fb = precise.to_floats(x), precise.to_floats(y)
            diff = [[p - q for p, q in zip(r, s, strict=True)] for r, s in zip(fa, fb, strict=True)]
            steps = [
                StepInputs(k + 1, _lists(i.w), _lists(i.g), i.lr)
                for k, i in enumerate(inputs[: t + 1])
            ]
            return Counterexample(t + 1, steps, fa, fb, diff, rel)
    return None


def _lists(x: object) -> list[list[float]]:
    return [[float(v) for v in t] for t in x]  # type: ignore[attr-defined]


def _as_inputs(cex: Counterexample) -> list[Inputs]:
    return [Inputs(s.w, s.g, s.lr) for s in cex.inputs]


# -- the search ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """Where the numeric search looked: scenario names and steps per trajectory."""

    scenarios: tuple[str, ...]
    steps: int
    trajectories: int


def refute(
    a: Program,
    b: Program,
    semantics: Semantics = "math",
    rtol: float = DEFAULT_RTOL,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    hints: list[list[Inputs]] | None = None,
) -> Counterexample | None:
    """A minimised counterexample, or None when every trajectory agrees within ``rtol``.

    ``hints`` are candidate input sequences to try first (e.g. from a z3 model).
    """
    best: Counterexample | None = None
    for inputs in _candidates(a, b, semantics, rtol, steps, seed, hints or []):
        cex = confirm(a, b, inputs, semantics, rtol)
        if cex is not None and _better(cex, best):
            best = cex
            if math.isfinite(cex.relative_difference) and cex.step <= 2:
                break  # cannot get much better; save the remaining scenarios' time
    return None if best is None else minimise(a, b, best, semantics, rtol)


def search_plan(steps: int = DEFAULT_STEPS) -> Search:
    return Search((*SCENARIOS, "training"), steps, len(SCENARIOS) + 1)


def _candidates(
    a: Program,
    b: Program,
    semantics: Semantics,
    rtol: float,
    steps: int,
    seed: int,
    hints: list[list[Inputs]],
) -> Iterator[list[Inputs]]:
    yield from hints
    for k, name in enumerate(SCENARIOS):
        inputs = _scenario(name, np.random.default_rng([seed, k]), steps)
        t = _float_mismatch(a, b, inputs, semantics, rtol)
        if t is not None:
            yield inputs[:t]
    found = _training(a, b, semantics, steps, rtol)
    if found is not None:
        yield found


def _better(cex: Counterexample, best: Counterexample | None) -> bool:
    """Prefer finite differences (NaN on one side only says a domain differs), then early steps."""
    if best is None:
        return True
    key = (not math.isfinite(cex.relative_difference), cex.step)
    return key < (not math.isfinite(best.relative_difference), best.step)


# -- minimisation --------------------------------------------------------------------------------
def minimise(
    a: Program, b: Program, cex: Counterexample, semantics: Semantics, rtol: float
) -> Counterexample:
    """Earliest step, one entry, fewest non-zero inputs, simplest numbers (each kept if the
    difference survives and stays finite when it was finite).

    Every trial is a 50-digit run; after ``MINIMISE_BUDGET_S`` seconds the simplest
    counterexample found so far is returned.
    """
    finite = math.isfinite(cex.relative_difference)
    deadline = time.monotonic() + MINIMISE_BUDGET_S

    def check(inputs: list[Inputs]) -> Counterexample | None:
        if time.monotonic() > deadline:
            return None
        found = confirm(a, b, inputs, semantics, rtol)
        if found is None or (finite and not math.isfinite(found.relative_difference)):
            return None
        return found

    current = cex
    for shorter in _suffixes(_as_inputs(current)):
        found = check(shorter)
        if found is not None:
            current = found
            break
    for smaller in _projections(_as_inputs(current)):
        found = check(smaller)
        if found is not None:
            current = found
            break
    best = _simplify(current, check)
    integral = all(float(v).is_integer() for x in best.inputs for t in x.g for v in t)
    if finite and not integral:
        # Sign-like programs are scale-invariant in g: scaled gradients may round to integers.
        for factor in (10.0, 100.0, 1000.0):
            scaled = [
                Inputs(x.w, [[v * factor for v in t] for t in x.g], x.lr)
                for x in _as_inputs(current)
            ]
            found = check(scaled)
            if found is not None and found.step == current.step:
                candidate = _simplify(found, check)
                if _cost(candidate) < _cost(best):
                    best = candidate
    return best


def _simplify(
    cex: Counterexample, check: Callable[[list[Inputs]], Counterexample | None]
) -> Counterexample:
    """Each input in turn replaced by zero or a simpler number while the difference survives.

    Bulk moves first (every lr 1, every weight 0, a whole step's inputs 0): on long
    counterexamples they do most of the work in few trials.
    """
    current = cex
    inputs = _as_inputs(current)

    def zero(t: Sequence[Sequence[float]]) -> list[list[float]]:
        return [[0.0] * len(x) for x in t]

    def zero_step(xs: list[Inputs], k: int) -> list[Inputs]:
        return [*xs[:k], Inputs(zero(xs[k].w), zero(xs[k].g), xs[k].lr), *xs[k + 1 :]]

    bulk: list[Callable[[list[Inputs]], list[Inputs]]] = [
        lambda xs: [Inputs(x.w, x.g, 1.0) for x in xs],
        lambda xs: [Inputs(zero(x.w), x.g, x.lr) for x in xs],
    ]
    for k in range(len(inputs) - 1):
        bulk.append(functools.partial(zero_step, k=k))
    for move in bulk:
        trial = move(inputs)
        if trial == inputs:
            continue
        found = check(trial)
        if found is not None and found.step == len(trial):
            inputs, current = trial, found
    for t in range(len(inputs)):
        for field_name in ("g", "w", "lr"):
            for position in _positions(inputs[t], field_name):
                original = _get(inputs[t], field_name, position)
                for value in _simpler(original, field_name):
                    trial = list(inputs)
                    trial[t] = _set(inputs[t], field_name, position, value)
                    found = check(trial)
                    if found is not None and found.step == len(trial):
                        inputs, current = trial, found
                        break
    return current


def _cost(cex: Counterexample) -> tuple[int, int, float]:
    """Non-zero inputs, then significant digits, then the largest magnitude."""
    values = [v for s in cex.inputs for t in (*s.w, *s.g) for v in t]
    nonzero = sum(1 for v in values if v != 0)
    digits = sum(_complexity(v)[0] for v in values)
    return (nonzero, digits, max((abs(v) for v in values), default=0.0))


def _suffixes(inputs: list[Inputs]) -> Iterator[list[Inputs]]:
    """The last k steps alone (from zero state), shortest first."""
    for k in range(1, len(inputs)):
        yield inputs[len(inputs) - k :]


def _projections(inputs: list[Inputs]) -> Iterator[list[Inputs]]:
    """Every step reduced to one entry of one tensor, then to one whole tensor."""
    first = inputs[0]
    if len(first.w) == 1 and len(first.w[0]) == 1:
        return
    for i, tensor in enumerate(first.w):
        for j in range(len(tensor)):
            yield [Inputs([[x.w[i][j]]], [[x.g[i][j]]], x.lr) for x in inputs]
    if len(first.w) > 1:
        for i in range(len(first.w)):
            yield [Inputs([list(x.w[i])], [list(x.g[i])], x.lr) for x in inputs]


def _positions(x: Inputs, field_name: str) -> list[tuple[int, int]]:
    if field_name == "lr":
        return [(0, 0)]
    tensors = x.w if field_name == "w" else x.g
    return [(i, j) for i, t in enumerate(tensors) for j in range(len(t))]


def _get(x: Inputs, field_name: str, pos: tuple[int, int]) -> float:
    if field_name == "lr":
        return x.lr
    return (x.w if field_name == "w" else x.g)[pos[0]][pos[1]]


def _set(x: Inputs, field_name: str, pos: tuple[int, int], value: float) -> Inputs:
    if field_name == "lr":
        return Inputs(x.w, x.g, value)
    tensors = [list(t) for t in (x.w if field_name == "w" else x.g)]
    tensors[pos[0]][pos[1]] = value
    return Inputs(tensors, x.g, x.lr) if field_name == "w" else Inputs(x.w, tensors, x.lr)


def _simpler(v: float, field_name: str) -> list[float]:
    """Simpler replacements for ``v``, simplest first (only those that are simpler than ``v``)."""
    if field_name == "lr":
        options = [1.0, 2.0, 0.5, 0.1]
    else:
        if v == 0:
            return []
        s = math.copysign(1.0, v) if math.isfinite(v) else 1.0
        options = [
            0.0,
            s,
            2 * s,
            3 * s,
            5 * s,
            10 * s,
            -s,
            float(round(v)) if math.isfinite(v) else s,
        ]
        options += [_significant(v, 1), _significant(v, 2)]
    out: list[float] = []
    for o in options:
        if o != v and o not in out and _complexity(o) < _complexity(v):
            out.append(o)
    return out


def _significant(v: float, digits: int) -> float:
    if v == 0 or not math.isfinite(v):
        return v
    return float(f"{v:.{digits - 1}e}")


def _complexity(v: float) -> tuple[int, float]:
    """Fewer significant digits first, then smaller magnitude."""
    if v == 0:
        return (0, 0.0)
    if not math.isfinite(v):
        return (99, math.inf)
    digits = len(f"{abs(v):.15g}".replace(".", "").replace("-", "").split("e")[0].strip("0"))
    return (digits, abs(v) if abs(v) >= 1 else 1 / abs(v))
