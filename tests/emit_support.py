"""Shared helpers of the emit tests: run an emitted optimizer and the reference interpreter side
by side on a multi-tensor model."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

from simplifier.emit import compile_torch
from simplifier.emit.hypers import Signature, extract_hypers
from simplifier.ir import Program
from simplifier.numeric import Semantics, run, torch_backend
from simplifier.parse import parse
from simplifier.passes.dce import prune

# A model in "realistic" miniature: a matrix, a vector, a 3-d tensor and a 0-d scalar.
SHAPES: tuple[tuple[int, ...], ...] = ((4, 3), (5,), (2, 3, 2), ())
STEPS = 20
CORPUS = sorted((Path(__file__).resolve().parent.parent / "corpus").glob("*.py"))


@functools.cache
def emitted(text: str, semantics: Semantics = "math") -> type[torch.optim.Optimizer]:
    return compile_torch(parse(text), semantics=semantics)


def signature(program: Program) -> Signature:
    return extract_hypers(prune(program)).signature


def schedule(t: int) -> float:
    """An lr schedule value that changes every step (cosine from 1 to 0.55)."""
    return 0.55 + 0.45 * math.cos(math.pi * t / STEPS)


@dataclass
class Inputs:
    weights: list[torch.Tensor]
    grads: list[list[torch.Tensor]]
    lrs: list[float]


def inputs(dtype: torch.dtype, seed: int = 0, steps: int = STEPS, lr: bool = True) -> Inputs:
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]
    grads = [
        [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]
        for _ in range(steps)
    ]
    return Inputs(weights, grads, [schedule(t) if lr else 1.0 for t in range(steps)])


def group_lr(sig: Signature, lr_input: float) -> float:
    """The group lr that makes the emitted optimizer see ``lr_input`` as the program's lr (a
    program that does not read lr gets 1.0: its update is scaled by the group lr)."""
    if sig.lr_mode == "absent":
        return 1.0
    return float(sig.lr_scale) * lr_input if sig.lr_mode == "product" else lr_input


def run_emitted(
    cls: type[torch.optim.Optimizer],
    sig: Signature,
    data: Inputs,
    *,
    configure: Callable[[torch.optim.Optimizer], None] | None = None,
    **kwargs: object,
) -> tuple[list[list[torch.Tensor]], torch.optim.Optimizer, list[torch.nn.Parameter]]:
    """The weights after each step (a copy per step), the optimizer and its parameters."""
    params = [torch.nn.Parameter(w.clone()) for w in data.weights]
    kwargs.setdefault("lr", group_lr(sig, data.lrs[0]))  # some programs' lr is required
    opt = cls(params, **kwargs)
    if configure:
        configure(opt)
    history = []
    for t, grads in enumerate(data.grads):
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        for group in opt.param_groups:
            group["lr"] = group_lr(sig, data.lrs[t])
        opt.step()
        history.append([p.detach().clone() for p in params])
    return history, opt, params


def run_reference(
    program: Program, data: Inputs, semantics: Semantics, dtype: torch.dtype
) -> list[list[torch.Tensor]]:
    trace = run(
        program,
        data.weights,
        data.grads,
        data.lrs,
        len(data.grads),
        semantics=semantics,
        backend=torch_backend(dtype),
    )
    return trace.weights[1:]


def assert_close_steps(
    actual: list[list[torch.Tensor]], expected: list[list[torch.Tensor]], rtol: float
) -> None:
    """Every tensor of every step within ``rtol`` of the reference, relative to its scale."""
    for t, (xs, ys) in enumerate(zip(actual, expected, strict=True)):
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            finite = y[torch.isfinite(y)]
            scale = max(1.0, float(finite.abs().max())) if finite.numel() else 1.0
            torch.testing.assert_close(
                x.to(y.dtype),
                y,
                rtol=rtol,
                atol=rtol * scale,
                equal_nan=True,
                msg=lambda m, t=t, i=i: f"step {t + 1}, tensor {i}: {m}",
            )


def bind(program: Program, **values: float) -> Program:
    """The program after hyper extraction, with some hypers set (a param group's values)."""
    extracted = extract_hypers(prune(program)).program
    return extracted.bind({k: Fraction(v) for k, v in values.items()})
