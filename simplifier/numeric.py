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
from simplifier.ops import OPS, Kind, Op, Semantics, elementwise_table, hero_table
from simplifier.ops import SEMANTICS as SEMANTICS  # re-exported
from simplifier.passes.lower import Lower

Array = Any  # np.ndarray or torch.Tensor
Value = list[Array]  # one entry per parameter tensor

# The constants' values (float64), from the op table.
CONSTANTS: dict[str, float] = {
    name: op.value for name, op in OPS.items() if op.kind is Kind.CONSTANT and op.value is not None
}


# -- element-wise rules, one table per backend, from the op table's spellings ------------------
def _numpy_rule(op: Op) -> Callable[..., Array] | None:
    if not op.numpy:
        return None
    f = getattr(np, op.numpy)
    if op.truth:  # a comparison: booleans as 1.0 / 0.0
        return lambda x, y: f(x, y).astype(np.float64)
    return f


NUMPY_IMPL: dict[str, Callable[..., Array]] = elementwise_table(_numpy_rule, float)


def _torch_rule(op: Op) -> Callable[..., Array] | None:
    import torch

    if not op.torch:
        return None
    f = getattr(torch, op.torch)
    if op.truth:  # a comparison: booleans as 1.0 / 0.0 in the arguments' floating type
        return lambda x, y: f(x, y).to(torch.result_type(x, y))
    return f


def _torch_where(c: Array, a: Array, b: Array) -> Array:
    import torch

    return torch.where(c != 0, a, b)


def _torch_impl() -> dict[str, Callable[..., Array]]:
    return elementwise_table(_torch_rule, float, {"where": _torch_where})


def hero_overrides(impl: dict[str, Callable[..., Array]]) -> dict[str, Callable[..., Array]]:
    """The protected operations of the ``hero`` semantics, composed from the math rules ``impl``.

    The interpreters get them from :class:`~simplifier.passes.lower.Lower` instead; this is the
    same formulas as functions, for tests of rules on single values.
    """
    constants = {name: (lambda v=v: v) for name, v in CONSTANTS.items()}
    return hero_table({**impl, **constants}, float)


@dataclass(frozen=True)
class Backend:
    """How to make arrays: NumPy float64, or torch with a dtype and device."""

    name: Literal["numpy", "torch"] = "numpy"
    dtype: Any = None
    device: Any = None

    def impl(self) -> dict[str, Callable[..., Array]]:
        """The element-wise rules (``math`` semantics: programs are lowered first)."""
        return dict(NUMPY_IMPL) if self.name == "numpy" else _torch_impl()

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


def step_rules(backend: Backend) -> Callable[[Stmt, list[Value]], Value]:
    """The rule that evaluates one statement of a lowered program over the parameter tensors.

    Element-wise ops come from the backend's table; the primitive reductions are the table
    below. Compound and protected ops must have been lowered (:mod:`simplifier.passes.lower`).
    """
    impl = backend.impl()
    mul, sqrt = impl["mul"], impl["sqrt"]

    def gnorm(xs: Value) -> Array:
        return sqrt(backend.total([mul(x, x) for x in xs]))

    reductions: dict[str, Callable[[list[Value], int], Value]] = {
        "norm": lambda a, n: [sqrt(backend.sum(mul(x, x))) for x in a[0]],
        "sum": lambda a, n: [backend.sum(x) for x in a[0]],
        "numel": lambda a, n: [backend.scalar(float(math.prod(x.shape))) for x in a[0]],
        "ndim": lambda a, n: [backend.scalar(float(len(x.shape))) for x in a[0]],
        "global_norm": lambda a, n: [gnorm(a[0])] * n,
        "dot": lambda a, n: [backend.total([mul(x, y) for x, y in zip(*a, strict=True)])] * n,
    }

    def apply(s: Stmt, args: list[Value]) -> Value:
        n = len(args[0]) if args else 0
        f = impl.get(s.op)
        if f is not None:
            return [f(*(a[i] for a in args)) for i in range(n)]
        return reductions[s.op](args, n)

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
    lowered = Lower(semantics).run(program)
    return _step(lowered, step_rules(backend), weights, grads, states, lr, step_number, backend)


def _step(
    program: Program,
    rule: Callable[[Stmt, list[Value]], Value],
    weights: Value,
    grads: Value,
    states: dict[str, Value],
    lr: float,
    step_number: int,
    backend: Backend,
) -> tuple[Value, dict[str, Value]]:
    """One call of a lowered program."""
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


def initial_states(
    program: Program, shapes: Sequence[int | tuple[int, ...]], backend: Backend = NUMPY
) -> dict[str, Value]:
    """Every state at step 0 (:attr:`Program.initial`), one array per parameter shape.

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, m, v: state = 0.5):\\n  return g, m, v\\n")
    >>> {s: [x.tolist() for x in v] for s, v in initial_states(p, [2, 1]).items()}
    {'m': [[0.0, 0.0], [0.0]], 'v': [[0.5, 0.5], [0.5]]}
    """
    like = [backend.array(np.zeros(s)) for s in shapes]
    return {
        name: [backend.broadcast(backend.scalar(float(v)), x) for x in like]
        for name, v in program.initial.items()
    }


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
    """Run ``steps`` steps from the initial states (:attr:`Program.initial`, zero unless the
    program gives one); ``grads`` is a list per step or ``f(step, weights)``.

    With ``apply_updates`` the loop is the paper's: ``w = w - update`` after each step.
    ``lrs`` gives the lr schedule value per step (default 1.0). Steps are 0-based here; the
    program's ``step`` input is the 1-based count.
    """
    lowered, rule = Lower(semantics).run(program), step_rules(backend)
    w = [backend.array(x) for x in weights]
    if steps is None:
        if callable(grads):
            raise ValueError("steps is required when grads is a function")
        steps = len(grads)
    states = initial_states(program, [tuple(x.shape) for x in w], backend)
    trace = Trace()
    for t in range(steps):
        g = grads(t, w) if callable(grads) else grads[t]
        g = [backend.array(x) for x in g]
        lr = lrs(t) if callable(lrs) else (lrs[t] if t < len(lrs) else 1.0)
        trace.weights.append(w)
        update, states = _step(lowered, rule, w, g, states, lr, t + 1, backend)
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
