"""The batched training engine: many (program, lr multiplier, seed) replicas in one computation.

Every replica's parameters are one row of a ``(R, P)`` tensor (the task's parameter tensors
flattened and concatenated). The forward and backward pass of all replicas is one batched
computation (batched matmuls; replicas never mix, so the gradient of the summed loss is each
replica's own gradient). Replicas are grouped by program, each group a contiguous slice of rows;
each program's step runs on its slice with :func:`step_batched`, the batched interpreter, whose
reductions (``norm``, ``global_norm``, ``dot``, ``cosine_sim``, ``clip``) are taken per replica:
over that replica's row (all of its parameter tensors), never across rows.

The training loop is the paper's: ``w <- w - multiplier * update`` with ``update`` the program's
first output and ``lr`` its schedule value; the multiplier scales the step the way tuning a
program's peak-lr constant does, and leaves other uses of ``lr`` (Program 4's ``clip(g, lr)``)
alone. A replica whose loss or weights stop being finite (or whose states are not finite at the
end) is marked failed and its loss is ``inf``; it cannot poison the others, since no operation
mixes rows.

>>> import torch
>>> from simplifier.parse import parse
>>> from simplifier.ablation.tasks import get_task, Budget
>>> sgd = parse("def sgd(w, g, lr):\\n  return g * lr\\n")
>>> budget = Budget("tiny", steps=5, seeds=1, grid=(1.0,), calibration=(1.0,))
>>> res = train([sgd], [Replica(0, 0.1, 0), Replica(0, 1e9, 0)], get_task("mlp"), budget)
>>> res.failed.tolist()
[False, True]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from simplifier.interpret import bind_inputs, forward
from simplifier.ir import Const, Program, Stmt
from simplifier.numeric import CONSTANTS, Semantics, _torch_impl, hero_overrides
from simplifier.ops import OPS, Kind

from .tasks import Budget, Data, Task

Tensor = torch.Tensor
Progress = Callable[[int, int], None]  # (steps done, total steps)


@dataclass(frozen=True, slots=True)
class Replica:
    """One training run: which program (an index), its lr multiplier, and its seed."""

    program: int
    multiplier: float
    seed: int


@dataclass(frozen=True)
class Result:
    """Per replica, in the order the replicas were given: validation loss and failure flag.

    A failed replica's loss is ``inf``; ``failed_at`` is the 0-based step it failed at, or -1.
    """

    loss: np.ndarray
    failed: np.ndarray
    failed_at: np.ndarray
    seconds: float
    replica_steps: int

    @property
    def replica_steps_per_second(self) -> float:
        return self.replica_steps / self.seconds if self.seconds > 0 else math.inf


# -- the batched interpreter ----------------------------------------------------------------------
def batched_rules(
    semantics: Semantics, segments: Sequence[int]
) -> Callable[[Stmt, list[Tensor]], Tensor]:
    """The statement rule over stacked replicas (element-wise ops from :mod:`simplifier.numeric`).

    A tensor value is ``(R, P)``; a scalar is a 0-d tensor (the same for every replica) or
    ``(R, 1)`` (one per replica, e.g. a ``global_norm``); the per-tensor ``norm`` of the reference
    interpreter gives each entry its own tensor's norm, so it is ``(R, P)``. Reductions sum over
    the last dim only, so each replica reduces over its own row.
    """
    impl = _torch_impl()
    if semantics == "hero":
        impl.update(hero_overrides(impl))
    plain = _torch_impl()  # norms and their divisions are unprotected under both semantics
    mul, minimum, sqrt, plain_div = impl["mul"], impl["minimum"], plain["sqrt"], plain["div"]
    sizes = list(segments)
    cache: dict[tuple[object, ...], Tensor] = {}  # small constant tensors, one per device

    def _cached(key: tuple[object, ...], make: Callable[[], Tensor]) -> Tensor:
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def total(x: Tensor) -> Tensor:
        return x.sum(dim=-1, keepdim=True)

    def gnorm(x: Tensor) -> Tensor:
        return sqrt(total(mul(x, x)))

    def apply(s: Stmt, args: list[Tensor]) -> Tensor:
        op = OPS[s.op]
        if op.elementwise:
            return impl[s.op](*args)
        x = args[0]
        if s.op == "norm":
            parts = mul(x, x).split(sizes, dim=-1)
            sums = torch.cat([p.sum(dim=-1, keepdim=True) for p in parts], dim=-1)
            repeats = _cached(("sizes", x.device), lambda: torch.tensor(sizes, device=x.device))
            return sqrt(sums).repeat_interleave(repeats, dim=-1)
        if s.op == "global_norm":
            return gnorm(x)
        if s.op == "dot":
            return total(mul(x, args[1]))
        if s.op == "cosine_sim":
            return plain_div(total(mul(x, args[1])), mul(gnorm(x), gnorm(args[1])))
        if s.op == "clip":
            one = _cached(
                (x.dtype, x.device), lambda: torch.ones((), dtype=x.dtype, device=x.device)
            )
            # The threshold broadcasts entry-wise: per tensor when it is a per-tensor ``norm``.
            return mul(x, minimum(one, plain_div(args[1], gnorm(x))))
        raise AssertionError(f"no batched rule for {s.op}")  # constants are handled by the caller

    return apply


class Scalars:
    """0-d tensors for numbers, kept per (value, dtype, device) unless told not to.

    Made with ``torch.full``: on a GPU that is a fill kernel, where ``torch.tensor`` would be a
    blocking host-to-device copy for every constant of every program at every step.
    """

    def __init__(self) -> None:
        self.kept: dict[tuple[float, torch.dtype, torch.device], Tensor] = {}

    def __call__(
        self, x: float, dtype: torch.dtype, device: torch.device, keep: bool = True
    ) -> Tensor:
        key = (x, dtype, device)
        found = self.kept.get(key)
        if found is None:
            found = torch.full((), x, dtype=dtype, device=device)
            if keep:
                self.kept[key] = found
        return found


def step_batched(
    program: Program,
    weights: Tensor,
    grads: Tensor,
    states: dict[str, Tensor],
    lr: float,
    step_number: int,
    *,
    semantics: Semantics = "math",
    segments: Sequence[int] | None = None,
    rule: Callable[[Stmt, list[Tensor]], Tensor] | None = None,
    scalars: Scalars | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One program step for all replicas at once: ``(update (R, P), new states)``.

    ``weights``, ``grads`` and each state are ``(R, P)``; ``segments`` are the sizes of the
    parameter tensors within P (for the per-tensor ``norm``; default: one tensor). A training
    loop passes its ``rule`` and ``scalars`` so that they are made once, not every step.

    >>> import torch
    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, lr):\\n  return clip(g, 1)\\n")
    >>> g = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)  # two replicas
    >>> u, _ = step_batched(p, torch.zeros_like(g), g, {}, 1.0, 1)
    >>> u.round(decimals=6).tolist()  # each replica clipped by its own norm (5 and 0.5)
    [[0.6, 0.8], [0.3, 0.4]]
    """
    rule = rule or batched_rules(semantics, segments or (weights.shape[-1],))
    numbers = scalars or Scalars()
    dtype, device = weights.dtype, weights.device

    def scalar(x: float) -> Tensor:
        return numbers(x, dtype, device)

    # lr and step change every call: not kept in the scalar cache.
    inputs = bind_inputs(
        program,
        weight=weights,
        gradient=grads,
        states=states,
        lr=lambda: numbers(lr, dtype, device, keep=False),
        step=lambda: numbers(float(step_number), dtype, device, keep=False),
        hyper=lambda v: scalar(float(v)),
    )

    def const(c: Const) -> Tensor:
        return scalar(float(c.value))

    def apply(s: Stmt, args: list[Tensor]) -> Tensor:
        if OPS[s.op].kind is Kind.CONSTANT:
            return scalar(CONSTANTS[s.op])
        return rule(s, args)

    _, outs = forward(program, inputs, apply, const)
    update = outs[0].expand_as(weights) if outs[0].shape != weights.shape else outs[0]
    new_states = {
        name: v.expand_as(weights) if v.shape != weights.shape else v
        for name, v in zip(program.states, outs[1:], strict=True)
    }
    return update, new_states


# -- the training loop ----------------------------------------------------------------------------
class _Cache:
    """Datasets and initial weights are deterministic: build each once per process."""

    data: ClassVar[dict[tuple[str, str, torch.dtype], Data]] = {}
    init: ClassVar[dict[tuple[str, int], Tensor]] = {}

    @classmethod
    def get_data(cls, task: Task, device: torch.device, dtype: torch.dtype) -> Data:
        key = (task.name, str(device), dtype)
        if key not in cls.data:
            cls.data[key] = task.data(device, dtype)
        return cls.data[key]

    @classmethod
    def get_init(cls, task: Task, seed: int) -> Tensor:
        key = (task.name, seed)
        if key not in cls.init:
            cls.init[key] = task.init(seed)
        return cls.init[key]


def batch_indices(task: Task, seed: int, steps: int, n_train: int) -> Tensor:
    """The training examples of every step for one seed: ``(steps, batch)`` indices.

    A function of the seed only, so the replicas of one seed see the same batches whatever the
    program and multiplier (a paired comparison).
    """
    gen = torch.Generator().manual_seed(7_919 * seed + 3)
    return torch.randint(0, n_train, (steps, task.batch_size), generator=gen)


def train(
    programs: Sequence[Program],
    replicas: Sequence[Replica],
    task: Task,
    budget: Budget,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    state_dtype: torch.dtype = torch.float64,
    semantics: Semantics = "math",
    progress: Progress | None = None,
    cpu_threads: int | None = 1,
) -> Result:
    """Train every replica for ``budget.steps`` steps at once; return its validation loss.

    The model runs in ``dtype``; the weights, the program and its states in ``state_dtype``
    (float64 by default, like the reference interpreter: float32 would underflow ``m * m`` in
    Program 4's ``m / sqrt(m * m)`` near the end of the lr schedule and turn it into NaN).
    Replicas with equal seeds share initial weights and batches; a replica's result does not
    depend on the other replicas in the batch (up to floating-point reassociation in batched
    kernels), and the same call gives the same numbers on the same device.
    """
    if not replicas:
        return Result(np.zeros(0), np.zeros(0, bool), np.zeros(0, int), 0.0, 0)
    dev = torch.device(device)
    if dev.type != "cpu":
        return _train(
            programs, replicas, task, budget, dev, dtype, state_dtype, semantics, progress
        )
    # Subnormal floats are 10-100x slower on CPUs, and a large-weight replica's saturated GELU
    # makes plenty of them; flushing them to zero changes only values below 1e-38 (float32).
    # The flush applies to the calling thread only, so the CPU path also runs single-threaded
    # (``cpu_threads``): with intra-op threads the workers kept subnormals and a step could take
    # 20x longer; the replicas' tensors are small, so threads gain little anyway.
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    if cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    try:
        return _train(
            programs, replicas, task, budget, dev, dtype, state_dtype, semantics, progress
        )
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def _train(
    programs: Sequence[Program],
    replicas: Sequence[Replica],
    task: Task,
    budget: Budget,
    device: torch.device,
    dtype: torch.dtype,
    state_dtype: torch.dtype,
    semantics: Semantics,
    progress: Progress | None,
) -> Result:
    start = time.perf_counter()
    order = sorted(range(len(replicas)), key=lambda i: replicas[i].program)
    reps = [replicas[i] for i in order]
    groups = _groups(reps)
    data = _Cache.get_data(task, device, dtype)
    seeds = sorted({r.seed for r in reps})
    seed_row = {s: i for i, s in enumerate(seeds)}
    rows = torch.tensor([seed_row[r.seed] for r in reps], device=device)
    n_train = data.train_x.shape[0]
    batches = torch.stack([batch_indices(task, s, budget.steps, n_train) for s in seeds])
    batches = batches.to(device)
    w = torch.stack([_Cache.get_init(task, r.seed) for r in reps])
    w = w.to(device=device, dtype=state_dtype)
    mult = torch.tensor([r.multiplier for r in reps], dtype=state_dtype, device=device)
    mult = mult.unsqueeze(1)
    states = [{n: torch.zeros_like(w[a:b]) for n in programs[k].states} for k, a, b in groups]
    rules = batched_rules(semantics, task.segments)
    scalars = Scalars()
    failed = torch.zeros(len(reps), dtype=torch.bool, device=device)
    failed_at = torch.full((len(reps),), -1, dtype=torch.long, device=device)
    for t in range(budget.steps):
        idx = batches[rows, t]  # (R, batch)
        w_model = w.to(dtype).requires_grad_(True)
        with torch.enable_grad():
            losses = task.loss(w_model, data.train_x[idx], data.train_y[idx])
            (g,) = torch.autograd.grad(losses.sum(), w_model)
        with torch.no_grad():
            g = g.to(state_dtype)
            lr = budget.lr(t)
            updates = []
            for (k, a, b), st in zip(groups, states, strict=True):
                upd, new = step_batched(
                    programs[k],
                    w[a:b],
                    g[a:b],
                    st,
                    lr,
                    t + 1,
                    semantics=semantics,
                    rule=rules,
                    scalars=scalars,
                )
                updates.append(upd)
                st.update(new)
            w = w - mult * torch.cat(updates)
            # One pass over the weights: a row's sum is not finite iff the row is not (or it is
            # beyond 1e308, diverged too). No host sync (it would stall a GPU), no reset: a
            # failed row goes on computing NaNs that nothing carries to another row.
            ok = torch.isfinite(losses.detach()) & torch.isfinite(w.sum(dim=-1))
            failed_at = torch.where(~ok & ~failed, t, failed_at)
            failed |= ~ok
        if progress is not None:
            progress(t + 1, budget.steps)
    with torch.no_grad():
        val = task.val_loss(w.to(dtype), data).to(torch.float64)
        failed |= ~torch.isfinite(val)
        for (_, a, b), st in zip(groups, states, strict=True):
            for v in st.values():
                failed[a:b] |= ~torch.isfinite(v.sum(dim=-1))
        val = torch.where(failed, math.inf, val)
    inverse = np.empty(len(order), dtype=int)
    inverse[np.array(order)] = np.arange(len(order))
    seconds = time.perf_counter() - start
    return Result(
        val.cpu().numpy()[inverse],
        failed.cpu().numpy()[inverse],
        failed_at.cpu().numpy()[inverse],
        seconds,
        len(reps) * budget.steps,
    )


def _groups(reps: Sequence[Replica]) -> list[tuple[int, int, int]]:
    """``(program index, start row, end row)`` for each run of equal programs."""
    out: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(reps) + 1):
        if i == len(reps) or reps[i].program != reps[start].program:
            out.append((reps[start].program, start, i))
            start = i
    return out
