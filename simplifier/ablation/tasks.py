"""Built-in proxy tasks for ablation: small models, synthetic data, no downloads.

A task fixes everything but the optimizer: the model (as a function of one flat parameter vector
per replica), the data and its train/validation split, the batch size, the step budget and the lr
schedule (linear warmup then cosine decay; its value in (0, 1] is the program's ``lr`` input), and
the metric (validation cross-entropy). Every function works on ``R`` replicas at once: parameters
are a ``(R, P)`` tensor, the loss is a ``(R,)`` tensor, and no computation mixes replicas.

Two tasks:

- ``mlp``: a 2-hidden-layer GELU MLP classifying 16-d Gaussian inputs labelled by a random
  teacher network (16 tanh units, 10 classes, 5% label noise), 131072 training examples.
- ``lm``: a 1-layer, 2-head pre-LayerNorm transformer with tied embeddings predicting the next
  token of a synthetic language: a random second-order Markov chain over 16 symbols where each
  pair of previous symbols allows only a few successors (so the model must attend two back).

The models avoid ReLU and untied embedding rows on purpose: both give gradient entries that are
exactly zero, and programs such as the paper's Program 4 (``m / sqrt(m * m)``) turn those into NaN
under the ``math`` semantics; that would measure the task, not the optimizer.

>>> task = get_task("mlp")
>>> task.size, task.budget("small").steps
(5898, 400)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass(frozen=True)
class Budget:
    """How much training one replica gets, and how candidates are compared.

    ``grid`` is the lr-multiplier grid around the calibrated centre (see :mod:`.ablate`), a
    geometric sequence; ``extend`` is how many grid steps a program may be tried beyond it
    when its best multiplier is at an edge; ``calibration`` is the wide grid of centres tried
    once on the original program.
    """

    name: str
    steps: int
    seeds: int
    grid: tuple[float, ...]
    calibration: tuple[float, ...]
    extend: int = 3
    warmup_fraction: float = 0.1

    @property
    def warmup(self) -> int:
        return max(1, round(self.steps * self.warmup_fraction))

    def lr(self, step: int) -> float:
        """The schedule value at 0-based ``step``: linear warmup to 1, then cosine decay to 0.

        >>> b = Budget("t", steps=10, seeds=1, grid=(1.0,), calibration=(1.0,))
        >>> [round(b.lr(t), 3) for t in (0, 1, 5, 9)]
        [1.0, 0.976, 0.5, 0.024]
        """
        if step < self.warmup:
            return (step + 1) / self.warmup
        # Decays towards 0 at ``steps`` without reaching it: the last step's lr stays positive.
        progress = (step + 1 - self.warmup) / (self.steps - self.warmup + 1)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


# Powers of 4 from 1/64 to 16384: wide enough for an SGD-like program (peak lr ~ 0.1) and for the
# paper's programs whose peak-lr constant (1e-3, 2e-4) is tuned for large models.
_CALIBRATION = tuple(4.0**k for k in range(-3, 8))
# Around the calibrated centre: steps of sqrt(2) (small) and 2^(1/4) (full) up to 2x each way,
# which covers the gap between calibration points; a removal that moves the optimum further is
# followed by ``Budget.extend``.
_SMALL_GRID = tuple(2.0 ** (k / 2) for k in range(-2, 3))
_FULL_GRID = tuple(2.0 ** (k / 4) for k in range(-4, 5))


def _budgets(small_steps: int, full_steps: int = 3000) -> dict[str, Budget]:
    """A task's two budgets: ``small`` (3 seeds, the coarse grid), ``full`` (8, the fine one)."""
    return {
        "small": Budget(
            "small", steps=small_steps, seeds=3, grid=_SMALL_GRID, calibration=_CALIBRATION
        ),
        "full": Budget(
            "full", steps=full_steps, seeds=8, grid=_FULL_GRID, calibration=_CALIBRATION
        ),
    }


@dataclass(frozen=True)
class Data:
    """Train and validation tensors on one device (inputs and integer targets)."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor


class Task(ABC):
    """A proxy task: a model over flat per-replica parameters, its data and its budgets."""

    name: str
    batch_size: int
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    budgets: dict[str, Budget]

    @property
    def size(self) -> int:
        """P, the number of parameters of one replica."""
        return sum(math.prod(s) for _, s in self.shapes)

    @property
    def segments(self) -> tuple[int, ...]:
        """The sizes of the parameter tensors in the flat vector (for per-tensor ``norm``)."""
        return tuple(math.prod(s) for _, s in self.shapes)

    def budget(self, name: str) -> Budget:
        if name not in self.budgets:
            raise ValueError(f"unknown budget {name!r} (choose from {', '.join(self.budgets)})")
        return self.budgets[name]

    def unflatten(self, flat: Tensor) -> list[Tensor]:
        """``(R, P)`` -> one ``(R, *shape)`` view per parameter tensor."""
        parts = flat.split(self.segments, dim=1)
        return [p.reshape(flat.shape[0], *s) for p, (_, s) in zip(parts, self.shapes, strict=True)]

    def init(self, seed: int) -> Tensor:
        """Initial flat parameters of one replica (float64, CPU), a function of ``seed`` only."""
        gen = torch.Generator().manual_seed(1_000_003 * seed + 17)
        parts = [self._init_one(name, shape, gen).reshape(-1) for name, shape in self.shapes]
        return torch.cat(parts)

    @abstractmethod
    def _init_one(self, name: str, shape: tuple[int, ...], gen: torch.Generator) -> Tensor: ...

    @abstractmethod
    def data(self, device: Any, dtype: torch.dtype) -> Data:
        """The dataset (deterministic: it does not depend on the replicas' seeds)."""

    @abstractmethod
    def loss(self, flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy per replica: ``flat`` ``(R, P)``, ``x``/``y`` batched per replica."""

    def val_loss(self, flat: Tensor, data: Data, chunk: int = 512) -> Tensor:
        """Validation loss per replica (every replica sees the whole validation set)."""
        r = flat.shape[0]
        total = torch.zeros(r, dtype=flat.dtype, device=flat.device)
        n = data.val_x.shape[0]
        for lo in range(0, n, chunk):
            x, y = data.val_x[lo : lo + chunk], data.val_y[lo : lo + chunk]
            xs = x.unsqueeze(0).expand(r, *x.shape)
            ys = y.unsqueeze(0).expand(r, *y.shape)
            total += self.loss(flat, xs, ys) * x.shape[0]
        return total / n


def _normal(shape: tuple[int, ...], std: float, gen: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64) * std


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy per replica; ``logits`` is ``(R, ..., C)``, ``y`` is ``(R, ...)``."""
    r, c = logits.shape[0], logits.shape[-1]
    flat = F.cross_entropy(logits.reshape(-1, c), y.reshape(-1), reduction="none")
    return flat.view(r, -1).mean(dim=1)


class MLPTask(Task):
    """Teacher-student classification: 16 -> 64 -> 64 -> 10, GELU, 5% label noise."""

    name = "mlp"
    batch_size = 64
    d_in, hidden, classes = 16, 64, 10
    # Enough examples that no budget sees one twice (small) or more than ~3 times (full): the
    # proxy measures optimisation speed, not how well an optimizer regularises memorisation.
    n_train, n_val = 131072, 2048

    def __init__(self) -> None:
        d, h, c = self.d_in, self.hidden, self.classes
        self.shapes = (
            ("w1", (d, h)),
            ("b1", (h,)),
            ("w2", (h, h)),
            ("b2", (h,)),
            ("w3", (h, c)),
            ("b3", (c,)),
        )
        self.budgets = _budgets(small_steps=400)

    def _init_one(self, name: str, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
        if name.startswith("b"):
            return torch.zeros(shape, dtype=torch.float64)
        return _normal(shape, 1.0 / math.sqrt(shape[0]), gen)

    def data(self, device: Any, dtype: torch.dtype) -> Data:
        gen = torch.Generator().manual_seed(20230213)  # the Lion paper's arXiv date
        n = self.n_train + self.n_val
        x = torch.randn(n, self.d_in, generator=gen, dtype=torch.float64)
        t1 = torch.randn(self.d_in, 16, generator=gen, dtype=torch.float64) / math.sqrt(self.d_in)
        t2 = torch.randn(16, self.classes, generator=gen, dtype=torch.float64)
        y = (torch.tanh(x @ t1) @ t2).argmax(dim=1)
        noisy = torch.rand(n, generator=gen, dtype=torch.float64) < 0.05
        y = torch.where(noisy, torch.randint(0, self.classes, (n,), generator=gen), y)
        x = x.to(device=device, dtype=dtype)
        y = y.to(device=device)
        return Data(x[: self.n_train], y[: self.n_train], x[self.n_train :], y[self.n_train :])

    def loss(self, flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        w1, b1, w2, b2, w3, b3 = self.unflatten(flat)
        h = F.gelu(torch.baddbmm(b1.unsqueeze(1), x, w1))
        h = F.gelu(torch.baddbmm(b2.unsqueeze(1), h, w2))
        return _cross_entropy(torch.baddbmm(b3.unsqueeze(1), h, w3), y)


class LMTask(Task):
    """Next-token prediction on a synthetic second-order Markov language, 1-layer transformer."""

    name = "lm"
    batch_size = 16
    vocab, context, width, heads, mlp = 16, 16, 32, 2, 64
    n_train, n_val = 16384, 256

    def __init__(self) -> None:
        v, t, d, m = self.vocab, self.context, self.width, self.mlp
        self.shapes = (
            ("embed", (v, d)),
            ("pos", (t, d)),
            ("ln1", (d,)),
            ("qkv", (d, 3 * d)),
            ("proj", (d, d)),
            ("ln2", (d,)),
            ("fc1", (d, m)),
            ("fc1_b", (m,)),
            ("fc2", (m, d)),
            ("fc2_b", (d,)),
            ("lnf", (d,)),
        )
        self.budgets = _budgets(small_steps=300)

    def _init_one(self, name: str, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
        if name.startswith("ln"):
            return torch.ones(shape, dtype=torch.float64)
        if name.endswith("_b"):
            return torch.zeros(shape, dtype=torch.float64)
        if name in ("embed", "pos"):
            return _normal(shape, 0.1, gen)
        return _normal(shape, 1.0 / math.sqrt(shape[0]), gen)

    def data(self, device: Any, dtype: torch.dtype) -> Data:
        gen = torch.Generator().manual_seed(20230213)
        v = self.vocab
        # Each (previous, current) pair allows 3 successors with random probabilities.
        probs = torch.zeros(v, v, v, dtype=torch.float64)
        for a in range(v):
            for b in range(v):
                succ = torch.randperm(v, generator=gen)[:3]
                probs[a, b, succ] = torch.rand(3, generator=gen, dtype=torch.float64) + 0.2
        probs /= probs.sum(dim=2, keepdim=True)
        n, length = self.n_train + self.n_val, self.context + 1
        seq = torch.zeros(n, length, dtype=torch.long)
        seq[:, 0] = torch.randint(0, v, (n,), generator=gen)
        seq[:, 1] = torch.randint(0, v, (n,), generator=gen)
        for t in range(2, length):
            seq[:, t] = torch.multinomial(
                probs[seq[:, t - 2], seq[:, t - 1]], 1, generator=gen
            ).squeeze(1)
        seq = seq.to(device)
        x, y = seq[:, :-1], seq[:, 1:]
        return Data(x[: self.n_train], y[: self.n_train], x[self.n_train :], y[self.n_train :])

    def loss(self, flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        embed, pos, ln1, qkv, proj, ln2, fc1, fc1_b, fc2, fc2_b, lnf = self.unflatten(flat)
        r, b, t = x.shape
        d, nh = self.width, self.heads
        # One-hot matmul instead of indexing: its backward has no scatter-add, so it is
        # deterministic on CUDA as well.
        onehot = F.one_hot(x, self.vocab).to(flat.dtype).view(r, b * t, self.vocab)
        h = torch.bmm(onehot, embed).view(r, b, t, d) + pos[:, None, :t, :]
        a = _layer_norm(h, ln1).view(r, b * t, d)
        q, k, v = torch.bmm(a, qkv).view(r * b, t, 3, nh, d // nh).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // nh)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        att = scores.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        att = att.permute(0, 2, 1, 3).reshape(r, b * t, d)
        h = h + torch.bmm(att, proj).view(r, b, t, d)
        a = _layer_norm(h, ln2).view(r, b * t, d)
        a = F.gelu(torch.baddbmm(fc1_b.unsqueeze(1), a, fc1))
        h = h + torch.baddbmm(fc2_b.unsqueeze(1), a, fc2).view(r, b, t, d)
        out = _layer_norm(h, lnf).view(r, b * t, d)
        logits = torch.bmm(out, embed.transpose(1, 2))  # tied output embedding
        return _cross_entropy(logits, y.reshape(r, b * t))


def _layer_norm(h: Tensor, gain: Tensor) -> Tensor:
    """LayerNorm over the last dim with a per-replica gain (``gain`` is ``(R, d)``)."""
    shape = (gain.shape[0],) + (1,) * (h.dim() - 2) + (gain.shape[1],)
    return F.layer_norm(h, h.shape[-1:]) * gain.view(shape)


class LargeMLPTask(MLPTask):
    """The MLP task with 2x wider hidden layers (3.4x the parameters): the search meta task."""

    name = "mlp-large"
    hidden = 128


class LargeLMTask(LMTask):
    """The LM task with a 2x wider transformer: the search's meta-validation."""

    name = "lm-large"
    width, mlp = 64, 128


TASKS: dict[str, type[Task]] = {
    "mlp": MLPTask,
    "lm": LMTask,
    "mlp-large": LargeMLPTask,
    "lm-large": LargeLMTask,
}


def get_task(name: str) -> Task:
    """A task by name (``mlp``, ``lm``, or their ``-large`` variants)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (choose from {', '.join(TASKS)})")
    return TASKS[name]()
