"""flat=True: a group's parameters, gradients and states as views of one buffer each.

The flat layout must not change what a step computes: element-wise programs give bit-identical
weights with and without it (on every path), programs with global reductions match the reference
interpreter; and the layout must survive what users do to parameters and gradients between steps
(autograd replacing gradients, ``zero_grad``, ``load_state_dict``, ``p.data = ...``, a
parameter without a gradient).
"""

from __future__ import annotations

import io

import pytest
import torch
from emit_support import (
    CORPUS,
    assert_close_steps,
    emitted,
    group_lr,
    inputs,
    run_emitted,
    run_reference,
    signature,
)

from simplifier.parse import parse

LION = next(f for f in CORPUS if f.stem == "lion").read_text(encoding="utf-8")
GLOBAL = """def f(w, g, m, lr, step):
  g = clip(g, 0.5)
  m = interp(g, m, 0.9) + w * dot(g, w) / (global_norm(g) + 1)
  update = lr * 0.01 * m / (1 - 0.9 ** step)
  return update, m
"""
PER_TENSOR = """def f(w, g, lr):
  return lr * g / (norm(g) + 1)
"""
PATHS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def _buffers(opt: torch.optim.Optimizer) -> list:  # type: ignore[type-arg]
    return [b for buffers in opt._flat.values() for b in buffers]  # type: ignore[attr-defined]


def _inside(t: torch.Tensor, buffer: torch.Tensor) -> bool:
    """Whether ``t`` shares ``buffer``'s memory."""
    start = buffer.data_ptr()
    return start <= t.data_ptr() < start + buffer.numel() * buffer.element_size()


def _all_fused(opt: torch.optim.Optimizer) -> None:
    opt.fused_min_numel = 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["single", "foreach"])
@pytest.mark.parametrize(
    "text", [*(f.read_text(encoding="utf-8") for f in CORPUS), GLOBAL], ids=lambda t: t[:24]
)
def test_flat_matches_the_reference(text: str, path: str) -> None:
    """Every corpus program (and one with global reductions and step-dependent scalars) over 20
    steps, with new gradient tensors each step (so every step copies them into the buffer)."""
    program = parse(text)
    data = inputs(torch.float64)
    expected = run_reference(program, data, "math", torch.float64)
    actual, opt, params = run_emitted(
        emitted(text), signature(program), data, flat=True, **PATHS[path]
    )
    assert_close_steps(actual, expected, 1e-10)
    (buffer,) = _buffers(opt)
    assert all(_inside(p, buffer.weight) and _inside(p.grad, buffer.grad) for p in params)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_flat_is_bitwise_the_per_parameter_step(path: str, eager_compile) -> None:  # type: ignore[no-untyped-def]
    cls = emitted(LION)
    if path == "fused":
        eager_compile(cls)
    data = inputs(torch.float32)
    sig = signature(parse(LION))
    plain, _, _ = run_emitted(cls, sig, data, configure=_all_fused, **PATHS[path])
    flat, _, _ = run_emitted(cls, sig, data, configure=_all_fused, flat=True, **PATHS[path])
    for xs, ys in zip(plain, flat, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(xs, ys, strict=True))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def test_training_keeps_parameters_and_gradients_as_views_of_the_buffers() -> None:
    """Backward accumulates into the gradient views in place once ``zero_grad(set_to_none=False)``
    has zeroed the buffer, so after the first step no gradient is copied; and training is
    bit-identical to the unflattened optimizer."""
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    y = x[:, :1] * 2 - x[:, 1:2]
    losses: dict[bool, list[float]] = {}
    for flat in (False, True):
        model = _model()
        opt = emitted(LION)(model.parameters(), lr=3e-3, flat=flat)
        losses[flat] = []
        for _ in range(150):
            opt.zero_grad(set_to_none=False)
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses[flat].append(loss.item())
            if flat:
                (buffer,) = _buffers(opt)
                for p, view in zip(model.parameters(), buffer.views(buffer.grad), strict=True):
                    assert p.grad.data_ptr() == view.data_ptr()
                    assert _inside(p, buffer.weight)
    assert losses[True] == losses[False]
    assert losses[True][-1] < 0.5 * losses[True][0]


def test_resume_from_a_state_dict_is_bit_identical() -> None:
    cls = emitted(GLOBAL)
    data = inputs(torch.float32)
    sig = signature(parse(GLOBAL))
    straight, _, _ = run_emitted(cls, sig, data, flat=True)
    half = len(data.grads) // 2
    first = type(data)(data.weights, data.grads[:half], data.lrs[:half])
    _, opt, params = run_emitted(cls, sig, first, flat=True)
    buffer = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "params": [p.detach() for p in params]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = [torch.nn.Parameter(w.clone()) for w in saved["params"]]
    opt2 = cls(resumed, flat=True)
    opt2.load_state_dict(saved["opt"])
    for t in range(half, len(data.grads)):
        for p, g in zip(resumed, data.grads[t], strict=True):
            p.grad = g.clone()
        for group in opt2.param_groups:
            group["lr"] = group_lr(sig, data.lrs[t])
        opt2.step()
    assert all(torch.equal(p.detach(), q) for p, q in zip(resumed, straight[-1], strict=True))
    (flat,) = _buffers(opt2)
    assert all(_inside(opt2.state[p]["m"], flat.states["m"]) for p in resumed)


@pytest.mark.parametrize("text", [GLOBAL, LION], ids=["reads_step", "no_step"])
def test_a_parameter_without_a_gradient_is_skipped_and_the_layout_survives(text: str) -> None:
    """A step where one parameter has no gradient runs parameter by parameter (that one left
    alone, its step count too); replacing ``p.data`` makes a new buffer that keeps the values.
    The skipped parameter's step count then differs: a program that reads it takes that
    parameter out of the buffer, one that does not keeps it in."""
    cls = emitted(text)
    data = inputs(torch.float64)
    twins: list[list[torch.nn.Parameter]] = []
    opts = []
    for flat in (False, True):
        params = [torch.nn.Parameter(w.clone()) for w in data.weights]
        twins.append(params)
        opts.append(cls(params, lr=0.5, flat=flat))
    for t, grads in enumerate(data.grads[:8]):
        before = twins[1][1].detach().clone()
        for params, opt in zip(twins, opts, strict=True):
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                p.grad = None if (t == 3 and i == 1) else g.clone()
            if t == 5:
                params[2].data = params[2].data.clone()
            opt.step()
        if t == 3:
            assert opts[1].state[twins[1][1]]["step"] == 3
            assert torch.equal(twins[1][1].detach(), before)
    for p, q in zip(*twins, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
    (buffer,) = _buffers(opts[1])
    inside = [_inside(p, buffer.weight) for p in twins[1]]
    assert inside == ([True, False, True, True] if text == GLOBAL else [True] * 4)


def test_zero_grad_keeps_set_to_none_semantics_and_zeroes_buffers_in_place() -> None:
    """set_to_none=False zeroes a flat buffer's gradients in place (one fill) and keeps them its
    views (a gradient replaced since is made a view again); set_to_none=True drops them, as
    torch.optim does, so that a parameter that gets no gradient is skipped by the next step."""
    flat = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2, 2))]
    plain = [torch.nn.Parameter(torch.ones(4))]
    opt = emitted(LION)([{"params": flat, "flat": True}, {"params": plain}])
    for p in [*flat, *plain]:
        p.grad = torch.full_like(p, 2.0)
    opt.step()
    grads = [p.grad for p in flat]
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is g and not p.grad.any() for p, g in zip(flat, grads, strict=True))
    assert not plain[0].grad.any()
    flat[0].grad = torch.ones(3)
    opt.zero_grad(set_to_none=False)
    assert flat[0].grad.data_ptr() == grads[0].data_ptr()
    opt.zero_grad()
    assert all(p.grad is None for p in [*flat, *plain])


def test_a_frozen_parameter_does_not_move_with_flat_buffers() -> None:
    """A parameter whose requires_grad is turned off gets no gradient after zero_grad(): the
    step skips it (its momentum must not move it), with and without flat buffers alike."""
    torch.manual_seed(0)
    runs = []
    for flat in (False, True):
        model = _model()
        opt = emitted(LION)(model.parameters(), lr=1e-2, flat=flat)
        x = torch.randn(16, 8, generator=torch.Generator().manual_seed(2))
        for t in range(4):
            if t == 2:
                model[0].weight.requires_grad_(False)
                frozen = model[0].weight.detach().clone()
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        assert torch.equal(model[0].weight.detach(), frozen)
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(p, q) for p, q in zip(*runs, strict=True))


def test_flat_is_refused_for_per_tensor_reductions() -> None:
    with pytest.raises(ValueError, match="per-tensor reductions"):
        emitted(PER_TENSOR)([torch.nn.Parameter(torch.ones(2))], lr=0.1, flat=True)
