"""The reference interpreter: run a program for N steps over a list of parameter tensors.

Every value is a list with one entry per parameter tensor (a scalar is a 0-d entry, the same for
every tensor unless it came from the per-tensor ``norm``). Element-wise ops act per tensor;
``global_norm``, ``dot``, ``cosine_sim`` and ``clip`` reduce over the whole list. Two backends:
NumPy (float64) and PyTorch (any dtype, any device); two semantics: ``math`` and ``hero``.

>>> import numpy as np
>>> from simplifier.parse import parse
>>> p = parse("def sgd(w, g, lr):\\n  return g * lr\\n")
>>> trace = run(p, [np.ones(2)], grads=[[np.array([1.0, -2.0])]], lrs=[0.1])
>>> trace.updates[0][0].tolist()
[0.1, -0.2]
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from simplifier.interpret import bind_inputs, forward
from simplifier.ir import Const, Program, Stmt
from simplifier.ops import EPS, OPS, Kind

Semantics = Literal["math", "hero"]
SEMANTICS: tuple[Semantics, ...] = ("math", "hero")
Array = Any  # np.ndarray or torch.Tensor
Value = list[Array]  # one entry per parameter tensor

# -- element-wise rules, one table per backend --------------------------------------------------
NUMPY_IMPL: dict[str, Callable[..., Array]] = {
    "abs": np.abs,
    "cos": np.cos,
    "sin": np.sin,
    "tan": np.tan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "arcsinh": np.arcsinh,
    "arccosh": np.arccosh,
    "arctanh": np.arctanh,
    "exp": np.exp,
    "exp2": np.exp2,
    "exp10": lambda x: np.power(10.0, x),
    "expm1": np.expm1,
    "log": np.log,
    "log10": np.log10,
    "log2": np.log2,
    "log1p": np.log1p,
    "square": np.square,
    "sqrt": np.sqrt,
    "cube": lambda x: x * x * x,
    "cbrt": np.cbrt,
    "sign": np.sign,
    "reciprocal": lambda x: 1.0 / x,
    "negative": np.negative,
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "power": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "interp": lambda x, y, a: (1.0 - a) * x + a * y,
}


def _torch_impl() -> dict[str, Callable[..., Array]]:
    import torch

    return {
        "abs": torch.abs,
        "cos": torch.cos,
        "sin": torch.sin,
        "tan": torch.tan,
        "arcsin": torch.asin,
        "arccos": torch.acos,
        "arctan": torch.atan,
        "sinh": torch.sinh,
        "cosh": torch.cosh,
        "tanh": torch.tanh,
        "arcsinh": torch.asinh,
        "arccosh": torch.acosh,
        "arctanh": torch.atanh,
        "exp": torch.exp,
        "exp2": torch.exp2,
        "exp10": lambda x: torch.pow(10.0, x),
        "expm1": torch.expm1,
        "log": torch.log,
        "log10": torch.log10,
        "log2": torch.log2,
        "log1p": torch.log1p,
        "square": torch.square,
        "sqrt": torch.sqrt,
        "cube": lambda x: x * x * x,
        "cbrt": lambda x: torch.sign(x) * torch.abs(x).pow(1.0 / 3.0),
        "sign": torch.sign,
        "reciprocal": lambda x: 1.0 / x,
        "negative": torch.neg,
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "power": torch.pow,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
        "interp": lambda x, y, a: (1.0 - a) * x + a * y,
    }


def hero_overrides(impl: dict[str, Callable[..., Array]]) -> dict[str, Callable[..., Array]]:
    """The protected operations of the paper's released search space (``hero`` semantics)."""
    # Bind the unprotected functions now: the result is merged into the same table.
    absf, div, sqrt, log = impl["abs"], impl["div"], impl["sqrt"], impl["log"]
    log2, log10 = impl["log2"], impl["log10"]
    return {
        "div": lambda a, b: div(a, b + EPS),
        "sqrt": lambda x: sqrt(absf(x)),
        "log": lambda x: log(absf(x)),
        "log2": lambda x: log2(absf(x)),
        "log10": lambda x: log10(absf(x)),
        "log1p": lambda x: log(absf(1.0 + x)),
    }


CONSTANTS: dict[str, float] = {"get_pi": math.pi, "get_e": math.e, "get_eps": EPS}


@dataclass(frozen=True)
class Backend:
    """How to make arrays: NumPy float64, or torch with a dtype and device."""

    name: Literal["numpy", "torch"] = "numpy"
    dtype: Any = None
    device: Any = None

    def impl(self, semantics: Semantics) -> dict[str, Callable[..., Array]]:
        base = dict(NUMPY_IMPL) if self.name == "numpy" else _torch_impl()
        if semantics == "hero":
            base.update(hero_overrides(base))
        return base

    def scalar(self, x: float) -> Array:
        if self.name == "numpy":
            return np.float64(x)
        import torch

        return torch.tensor(x, dtype=self.dtype or torch.float64, device=self.device)

    def array(self, x: Array) -> Array:
        if self.name == "numpy":
            return np.asarray(x, dtype=np.float64)
        import torch

        return torch.as_tensor(x, dtype=self.dtype or torch.float64, device=self.device)

    def total(self, xs: Sequence[Array]) -> Array:
        """The sum of all entries of all arrays, as a 0-d array."""
        if self.name == "numpy":
            return np.float64(sum(np.sum(x) for x in xs))
        import torch

        return torch.stack([x.sum() for x in xs]).sum()

    def sum(self, x: Array) -> Array:
        return np.sum(x) if self.name == "numpy" else x.sum()

    def broadcast(self, x: Array, like: Array) -> Array:
        """``x`` as a full array of ``like``'s shape (a scalar update is applied to every entry)."""
        if self.name == "numpy":
            return np.broadcast_to(x, np.shape(like)).copy()
        return x.expand_as(like).clone()


NUMPY = Backend()


def torch_backend(dtype: Any = None, device: Any = None) -> Backend:
    """A torch backend (float64 on the CPU unless told otherwise)."""
    import torch

    return Backend("torch", dtype or torch.float64, device or "cpu")


def step_rules(backend: Backend, semantics: Semantics) -> Callable[[Stmt, list[Value]], Value]:
    """The rule that evaluates one statement over the list of parameter tensors."""
    impl = backend.impl(semantics)
    plain = backend.impl("math")  # norms and their divisions are unprotected under both semantics
    mul, minimum, sqrt, plain_div = impl["mul"], impl["minimum"], plain["sqrt"], plain["div"]

    def gnorm(xs: Value) -> Array:
        return sqrt(backend.total([mul(x, x) for x in xs]))

    def apply(s: Stmt, args: list[Value]) -> Value:
        op = OPS[s.op]
        n = len(args[0]) if args else 0
        if op.elementwise:
            f = impl[s.op]
            return [f(*(a[i] for a in args)) for i in range(n)]
        if s.op == "norm":
            return [sqrt(backend.sum(mul(x, x))) for x in args[0]]
        if s.op == "global_norm":
            return [gnorm(args[0])] * n
        if s.op == "dot":
            return [backend.total([mul(x, y) for x, y in zip(*args, strict=True)])] * n
        if s.op == "cosine_sim":
            d = backend.total([mul(x, y) for x, y in zip(*args, strict=True)])
            return [plain_div(d, mul(gnorm(args[0]), gnorm(args[1])))] * n
        if s.op == "clip":
            # One global norm; the threshold is per tensor when it is (a per-tensor ``norm``).
            gn, one = gnorm(args[0]), backend.scalar(1.0)
            return [mul(x, minimum(one, plain_div(c, gn))) for x, c in zip(*args, strict=True)]
        raise AssertionError(f"no numeric rule for {s.op}")  # constants are handled by const()

    return apply


@dataclass
class Trace:
    """What a run produced: per step, the update and the new states (each a list per tensor)."""

    updates: list[Value] = field(default_factory=list)
    states: list[dict[str, Value]] = field(default_factory=list)
    weights: list[Value] = field(default_factory=list)  # the weights before each step


def step(
    program: Program,
    weights: Value,
    grads: Value,
    states: dict[str, Value],
    lr: float = 1.0,
    step_number: int = 1,
    *,
    semantics: Semantics = "math",
    backend: Backend = NUMPY,
) -> tuple[Value, dict[str, Value]]:
    """One call of the program: (update, new states)."""
    n = len(weights)
    inputs = bind_inputs(
        program,
        weight=weights,
        gradient=grads,
        states=states,
        lr=lambda: [backend.scalar(lr)] * n,
        step=lambda: [backend.scalar(float(step_number))] * n,
        hyper=lambda v: [backend.scalar(float(v))] * n,
    )

    def const(c: Const) -> Value:
        return [backend.scalar(float(c.value))] * n

    rule = step_rules(backend, semantics)

    def apply(s: Stmt, args: list[Value]) -> Value:
        if OPS[s.op].kind is Kind.CONSTANT:
            return [backend.scalar(CONSTANTS[s.op])] * n
        return rule(s, args)

    quiet = np.errstate(all="ignore") if backend.name == "numpy" else contextlib.nullcontext()
    with quiet:  # inf and nan are results here, not warnings
        _, outs = forward(program, inputs, apply, const)
    update = [
        backend.broadcast(u, w) if _ndim(u) == 0 else u
        for u, w in zip(outs[0], weights, strict=True)
    ]
    return update, dict(zip(program.states, outs[1:], strict=True))


def to_numpy(x: Array) -> np.ndarray:
    """A float64 NumPy copy of a NumPy array or torch tensor (any dtype, any device)."""
    if hasattr(x, "detach"):
        return x.detach().to(device="cpu", dtype=_torch_float64()).numpy()
    return np.asarray(x, dtype=np.float64)


def _torch_float64() -> Any:
    import torch

    return torch.float64


def _ndim(x: Array) -> int:
    return int(x.ndim) if hasattr(x, "ndim") else 0


GradSource = Sequence[Value] | Callable[[int, Value], Value]


def run(
    program: Program,
    weights: Sequence[Array],
    grads: GradSource,
    lrs: Sequence[float] | Callable[[int], float] = (),
    steps: int | None = None,
    *,
    semantics: Semantics = "math",
    backend: Backend = NUMPY,
    apply_updates: bool = True,
) -> Trace:
    """Run ``steps`` steps from zero state; ``grads`` is a list per step or ``f(step, weights)``.

    With ``apply_updates`` the loop is the paper's: ``w = w - update`` after each step.
    ``lrs`` gives the lr schedule value per step (default 1.0). Steps are 0-based here; the
    program's ``step`` input is the 1-based count.
    """
    w = [backend.array(x) for x in weights]
    if steps is None:
        if callable(grads):
            raise ValueError("steps is required when grads is a function")
        steps = len(grads)
    zeros = [x * 0 for x in w]
    states: dict[str, Value] = {name: list(zeros) for name in program.states}
    trace = Trace()
    for t in range(steps):
        g = grads(t, w) if callable(grads) else grads[t]
        g = [backend.array(x) for x in g]
        lr = lrs(t) if callable(lrs) else (lrs[t] if t < len(lrs) else 1.0)
        trace.weights.append(w)
        update, states = step(
            program, w, g, states, lr, t + 1, semantics=semantics, backend=backend
        )
        trace.updates.append(update)
        trace.states.append(states)
        if apply_updates:
            with np.errstate(all="ignore"):  # inf/nan updates are results, not warnings
                w = [x - u for x, u in zip(w, update, strict=True)]
    trace.weights.append(w)
    return trace


# -- a small built-in training problem ---------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Least squares with two parameter tensors: ``loss = |X @ W + b - Y|^2 / (2 n)``.

    Its gradients are exact and cheap, so it can drive the real training loop in tests.
    """

    seed: int = 0
    n: int = 64
    d_in: int = 8
    d_out: int = 4

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        x = rng.normal(size=(self.n, self.d_in))
        true_w = rng.normal(size=(self.d_in, self.d_out))
        y = x @ true_w + 0.1 * rng.normal(size=(self.n, self.d_out))
        return x, y

    def init(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + 1)
        return [0.1 * rng.normal(size=(self.d_in, self.d_out)), np.zeros(self.d_out)]

    def loss(self, weights: Sequence[Array]) -> float:
        x, y = self.data()
        w, b = (np.asarray(v, dtype=np.float64) for v in weights)
        r = x @ w + b - y
        return float(np.sum(r * r) / (2 * self.n))

    def gradient_fn(self) -> Callable[[int, Value], Value]:
        x, y = self.data()

        def grads(step: int, weights: Value) -> Value:
            w, b = weights
            if not isinstance(w, np.ndarray):  # torch tensors: same formula
                xt, yt = (w.new_tensor(a) for a in (x, y))
                r = (xt @ w + b - yt) / self.n
                return [xt.T @ r, r.sum(0)]
            r = (x @ w + b - y) / self.n
            return [x.T @ r, r.sum(0)]

        return grads


def train(
    program: Program,
    steps: int = 100,
    lr: float | Callable[[int], float] = 1.0,
    *,
    problem: Problem | None = None,
    semantics: Semantics = "math",
    backend: Backend = NUMPY,
) -> tuple[Trace, float]:
    """Train the built-in least-squares problem with ``program``; return the trace and final loss.

    >>> from simplifier.parse import parse
    >>> sgd = parse("def sgd(w, g, lr):\\n  return g * lr\\n")
    >>> trace, loss = train(sgd, steps=200, lr=0.1)
    >>> loss < Problem().loss(Problem().init())
    True
    """
    problem = problem or Problem()
    lrs = lr if callable(lr) else (lambda t: float(lr))
    trace = run(
        program,
        problem.init(),
        problem.gradient_fn(),
        lrs,
        steps,
        semantics=semantics,
        backend=backend,
    )
    final = [to_numpy(x) for x in trace.weights[-1]]
    return trace, problem.loss(final)
