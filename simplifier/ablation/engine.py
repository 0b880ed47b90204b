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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from simplifier.interpret import bind_inputs, forward
from simplifier.ir import Const, Program, Stmt
from simplifier.numeric import CONSTANTS, Semantics, _torch_impl
from simplifier.ops import OPS, Kind
from simplifier.passes.lower import Lower

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
    ``train_loss[i, t]`` is replica ``i``'s training loss on step ``t``'s batch, before that
    step's update (its learning curve; NaN/inf once it diverged).
    """

    loss: np.ndarray
    failed: np.ndarray
    failed_at: np.ndarray
    seconds: float
    replica_steps: int
    train_loss: np.ndarray

    @property
    def replica_steps_per_second(self) -> float:
        return self.replica_steps / self.seconds if self.seconds > 0 else math.inf


# -- the batched interpreter ----------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """A program ready for the batched interpreter: lowered (:mod:`simplifier.passes.lower`),
    and the ``global_norm`` statements that read a scalar (from ``clip`` of a scalar)."""

    program: Program
    scalar_norms: frozenset[str]


def prepare(program: Program, semantics: Semantics = "math") -> Prepared:
    lowered = Lower(semantics).run(program)
    norms = [s for s in lowered.body if s.op == "global_norm"]
    if not norms:
        return Prepared(lowered, frozenset())
    from simplifier.analysis.types import Type, infer_types

    types = infer_types(program)  # the lowered norms read values of the original program
    return Prepared(
        lowered,
        frozenset(
            s.target
            for s in norms
            if isinstance(s.args[0], Const) or types.get(s.args[0].name) is Type.SCALAR
        ),
    )


class BatchedRules:
    """The statement rule over stacked replicas (element-wise ops from :mod:`simplifier.numeric`).

    A tensor value is ``(R, P)``; a scalar is a 0-d tensor (the same for every replica) or
    ``(R, 1)`` (one per replica, e.g. a ``global_norm``); the per-tensor ``norm`` of the reference
    interpreter gives each entry its own tensor's norm, so it is ``(R, P)``. Reductions sum over
    the last dim only, so each replica reduces over its own row. Programs are lowered first.
    """

    def __init__(self, segments: Sequence[int | Sequence[int]]) -> None:
        self.impl = _torch_impl()
        # A segment is a parameter tensor's size, or its shape (for ``ndim``; a size is 1-d).
        shapes = [(s,) if isinstance(s, int) else tuple(s) for s in segments]
        self.sizes = [math.prod(s) for s in shapes]
        self.dims = [float(len(s)) for s in shapes]
        self.mul, self.sqrt = self.impl["mul"], self.impl["sqrt"]
        self.repeats: dict[torch.device, Tensor] = {}  # segment sizes, one tensor per device
        self.starts: dict[torch.device, Tensor] = {}  # first entry of each segment
        self.constants: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}
        self.reductions: dict[str, Callable[[list[Tensor]], Tensor]] = {
            "norm": self.norm,
            "sum": lambda a: self.spread(self.sums(a[0])),
            "numel": lambda a: self.per_tensor("numel", [float(n) for n in self.sizes], a[0]),
            "ndim": lambda a: self.per_tensor("ndim", self.dims, a[0]),
            "global_norm": lambda a: self.gnorm(a[0]),
            "dot": lambda a: self.total(self.mul(a[0], a[1])),
        }

    @staticmethod
    def total(x: Tensor) -> Tensor:
        return x.sum(dim=-1, keepdim=True)

    def gnorm(self, x: Tensor) -> Tensor:
        return self.sqrt(self.total(self.mul(x, x)))

    def norm(self, a: list[Tensor]) -> Tensor:
        x = a[0]
        return self.spread(self.sqrt(self.sums(self.mul(x, x))))

    def _repeats(self, device: torch.device) -> Tensor:
        repeats = self.repeats.get(device)
        if repeats is None:
            repeats = self.repeats[device] = torch.tensor(self.sizes, device=device)
        return repeats

    def sums(self, x: Tensor) -> Tensor:
        """Each parameter tensor's sum: ``(R, number of tensors)``."""
        parts = x.split(self.sizes, dim=-1)
        return torch.cat([p.sum(dim=-1, keepdim=True) for p in parts], dim=-1)

    def spread(self, per_tensor: Tensor) -> Tensor:
        """One value per tensor (last dim) repeated over the tensor's entries: ``(..., P)``."""
        return per_tensor.repeat_interleave(self._repeats(per_tensor.device), dim=-1)

    def per_tensor(self, name: str, values: Sequence[float], like: Tensor) -> Tensor:
        """One number per parameter tensor, repeated over its entries: ``(P,)``."""
        key = (name, like.dtype, like.device)
        found = self.constants.get(key)
        if found is None:
            row = torch.tensor(values, dtype=like.dtype, device=like.device)
            found = self.constants[key] = self.spread(row)
        return found

    def scalar_gnorm(self, x: Tensor) -> Tensor:
        """The global norm of a scalar: each parameter tensor counts it once."""
        if x.dim() == 0 or x.shape[-1] == 1:
            return self.sqrt(self.mul(self.mul(x, x), float(len(self.sizes))))
        starts = self.starts.get(x.device)  # a per-tensor scalar: one entry per tensor
        if starts is None:
            offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
            starts = self.starts[x.device] = torch.tensor(offsets, device=x.device)
        return self.gnorm(x.index_select(-1, starts))

    def __call__(self, s: Stmt, args: list[Tensor]) -> Tensor:
        f = self.impl.get(s.op)
        if f is not None:
            return f(*args)
        return self.reductions[s.op](args)


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
    program: Program | Prepared,
    weights: Tensor,
    grads: Tensor,
    states: dict[str, Tensor],
    lr: float,
    step_number: int,
    *,
    semantics: Semantics = "math",
    segments: Sequence[int | Sequence[int]] | None = None,
    rule: BatchedRules | None = None,
    scalars: Scalars | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One program step for all replicas at once: ``(update (R, P), new states)``.

    ``weights``, ``grads`` and each state are ``(R, P)``; ``segments`` are the sizes (or
    shapes) of the parameter tensors within P (for the per-tensor reductions; default: one
    tensor). A training
    loop passes the :func:`prepare`\\ d program, its ``rule`` and ``scalars`` so that they are
    made once, not every step (a prepared program is already lowered: ``semantics`` is unused).

    >>> import torch
    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, lr):\\n  return clip(g, 1)\\n")
    >>> g = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)  # two replicas
    >>> u, _ = step_batched(p, torch.zeros_like(g), g, {}, 1.0, 1)
    >>> u.round(decimals=6).tolist()  # each replica clipped by its own norm (5 and 0.5)
    [[0.6, 0.8], [0.3, 0.4]]
    """
    prepared = program if isinstance(program, Prepared) else prepare(program, semantics)
    program, scalar_norms = prepared.program, prepared.scalar_norms
    rules = rule or BatchedRules(segments or (weights.shape[-1],))
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
        if s.target in scalar_norms:
            return rules.scalar_gnorm(args[0])
        return rules(s, args)

    _, outs = forward(program, inputs, apply, const)
    update = outs[0].expand_as(weights) if outs[0].shape != weights.shape else outs[0]
    new_states = {
        name: v.expand_as(weights) if v.shape != weights.shape else v
        for name, v in zip(program.states, outs[1:], strict=True)
    }
    return update, new_states


# -- the training loop ----------------------------------------------------------------------------
class TaskCache:
    """A task's datasets (per device and dtype) and initial weights (per seed): deterministic,
    so each is built once by its owner, the task (:func:`task_cache`). Bounded: the oldest entry
    goes when a table is full."""

    def __init__(self, task: Task, max_data: int = 4, max_init: int = 256) -> None:
        self.task = task
        self.max_data, self.max_init = max_data, max_init
        self.data: dict[tuple[str, torch.dtype], Data] = {}
        self.init: dict[int, Tensor] = {}

    def get_data(self, device: torch.device, dtype: torch.dtype) -> Data:
        key = (str(device), dtype)
        if key not in self.data:
            _bound(self.data, self.max_data)
            self.data[key] = self.task.data(device, dtype)
        return self.data[key]

    def get_init(self, seed: int) -> Tensor:
        if seed not in self.init:
            _bound(self.init, self.max_init)
            self.init[seed] = self.task.init(seed)
        return self.init[seed]


def _bound(table: dict[Any, Any], size: int) -> None:
    while len(table) >= size:
        del table[next(iter(table))]


def task_cache(task: Task) -> TaskCache:
    """The task's own cache (made on first use, kept on the task object)."""
    found: TaskCache | None = task.__dict__.get("_engine_cache")
    if found is None:
        found = task.__dict__["_engine_cache"] = TaskCache(task)
    return found


@contextmanager
def cpu_settings(threads: int | None, flush_denormal: bool) -> Iterator[None]:
    """torch's intra-op thread count and this thread's denormal flushing, set for the block and
    restored after it (the thread count is process-wide: other threads see it meanwhile)."""
    saved_threads, saved_flush = torch.get_num_threads(), flushes_denormals()
    torch.set_flush_denormal(flush_denormal)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_flush_denormal(saved_flush)
        torch.set_num_threads(saved_threads)


def flushes_denormals() -> bool:
    """Whether this thread flushes denormals to zero (torch has no getter: probe it)."""
    tiny = torch.full((1,), 1e-39, dtype=torch.float32)  # a float32 subnormal
    return bool((tiny * 1.0).item() == 0.0)


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
        return Result(np.zeros(0), np.zeros(0, bool), np.zeros(0, int), 0.0, 0, np.zeros((0, 0)))
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
    with cpu_settings(cpu_threads, flush_denormal=True):
        return _train(
            programs, replicas, task, budget, dev, dtype, state_dtype, semantics, progress
        )


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
    batch = _Batch(programs, [replicas[i] for i in order], task, budget, device, dtype, state_dtype)
    batch.prepare(semantics)
    for t in range(budget.steps):
        batch.step(t)
        if progress is not None:
            progress(t + 1, budget.steps)
    val, failed, failed_at = batch.finish()
    inverse = np.empty(len(order), dtype=int)
    inverse[np.array(order)] = np.arange(len(order))
    return Result(
        val[inverse],
        failed[inverse],
        failed_at[inverse],
        time.perf_counter() - start,
        len(order) * budget.steps,
        batch.train_loss.cpu().numpy()[inverse],
    )


class _Batch:
    """The replicas of one training call, sorted by program: their weights ``(R, P)``, states,
    batches and failure flags, advanced one step at a time."""

    def __init__(
        self,
        programs: Sequence[Program],
        reps: Sequence[Replica],
        task: Task,
        budget: Budget,
        device: torch.device,
        dtype: torch.dtype,
        state_dtype: torch.dtype,
    ) -> None:
        self.task, self.budget, self.dtype, self.state_dtype = task, budget, dtype, state_dtype
        self.groups = _groups(reps)
        cache = task_cache(task)
        self.data = cache.get_data(device, dtype)
        seeds = sorted({r.seed for r in reps})
        seed_row = {s: i for i, s in enumerate(seeds)}
        self.rows = torch.tensor([seed_row[r.seed] for r in reps], device=device)
        n_train = self.data.train_x.shape[0]
        batches = torch.stack([batch_indices(task, s, budget.steps, n_train) for s in seeds])
        self.batches = batches.to(device)
        w = torch.stack([cache.get_init(r.seed) for r in reps])
        self.w = w.to(device=device, dtype=state_dtype)
        mult = torch.tensor([r.multiplier for r in reps], dtype=state_dtype, device=device)
        self.mult = mult.unsqueeze(1)
        self.programs = programs
        self.states = [
            {n: torch.full_like(self.w[a:b], float(v)) for n, v in programs[k].initial.items()}
            for k, a, b in self.groups
        ]
        self.rules = BatchedRules([shape for _, shape in task.shapes])
        self.prepared: list[Prepared] = []
        self.scalars = Scalars()
        self.failed = torch.zeros(len(reps), dtype=torch.bool, device=device)
        self.failed_at = torch.full((len(reps),), -1, dtype=torch.long, device=device)
        self.train_loss = torch.empty(len(reps), budget.steps, dtype=torch.float64, device=device)

    def prepare(self, semantics: Semantics) -> None:
        self.prepared = [prepare(p, semantics) for p in self.programs]

    def gradient(self, t: int) -> tuple[Tensor, Tensor]:
        """Every replica's losses and gradient on its step-``t`` batch (the model in ``dtype``)."""
        idx = self.batches[self.rows, t]  # (R, batch)
        w_model = self.w.to(self.dtype).requires_grad_(True)
        with torch.enable_grad():
            losses = self.task.loss(w_model, self.data.train_x[idx], self.data.train_y[idx])
            (g,) = torch.autograd.grad(losses.sum(), w_model)
        return losses.detach(), g

    def step(self, t: int) -> None:
        losses, g = self.gradient(t)
        with torch.no_grad():
            self.train_loss[:, t] = losses
            g = g.to(self.state_dtype)
            lr = self.budget.lr(t)
            updates = []
            for (k, a, b), st in zip(self.groups, self.states, strict=True):
                upd, new = step_batched(
                    self.prepared[k],
                    self.w[a:b],
                    g[a:b],
                    st,
                    lr,
                    t + 1,
                    rule=self.rules,
                    scalars=self.scalars,
                )
                updates.append(upd)
                st.update(new)
            self.w = self.w - self.mult * torch.cat(updates)
            # One pass over the weights: a row's sum is not finite iff the row is not (or it is
            # beyond 1e308, diverged too). No host sync (it would stall a GPU), no reset: a
            # failed row goes on computing NaNs that nothing carries to another row.
            ok = torch.isfinite(losses) & torch.isfinite(self.w.sum(dim=-1))
            self.failed_at = torch.where(~ok & ~self.failed, t, self.failed_at)
            self.failed |= ~ok

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validation losses (``inf`` where failed), failure flags and steps, in row order."""
        failed = self.failed
        with torch.no_grad():
            val = self.task.val_loss(self.w.to(self.dtype), self.data).to(torch.float64)
            failed |= ~torch.isfinite(val)
            for (_, a, b), st in zip(self.groups, self.states, strict=True):
                for v in st.values():
                    failed[a:b] |= ~torch.isfinite(v.sum(dim=-1))
            val = torch.where(failed, math.inf, val)
        return val.cpu().numpy(), failed.cpu().numpy(), self.failed_at.cpu().numpy()


def _groups(reps: Sequence[Replica]) -> list[tuple[int, int, int]]:
    """``(program index, start row, end row)`` for each run of equal programs."""
    out: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(reps) + 1):
        if i == len(reps) or reps[i].program != reps[start].program:
            out.append((reps[start].program, start, i))
            start = i
    return out
