"""The reference interpreter: NumPy and torch agree, reductions span all tensors, both semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simplifier.numeric import (
    NUMPY,
    Problem,
    Semantics,
    initial_states,
    run,
    step,
    torch_backend,
    train,
)
from simplifier.parse import parse
from simplifier.testing import SAFE, programs


def _inputs(seed: int, steps: int = 5) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(3, 2)), rng.normal(size=4)]
    grads = [[rng.normal(size=(3, 2)), rng.normal(size=4)] for _ in range(steps)]
    return weights, grads


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    both_nan = np.isnan(a) & np.isnan(b)
    same = (a == b) | both_nan
    with np.errstate(all="ignore"):
        near = np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b))
    return bool(np.all(same | near))


@settings(max_examples=40, deadline=None)
@given(
    programs(max_statements=8, profile=SAFE),
    st.integers(0, 2**16),
    st.sampled_from(["math", "hero"]),
)
def test_numpy_and_torch_agree_step_by_step(text: str, seed: int, semantics: Semantics) -> None:
    """Each step from the same inputs and states agrees (whole trajectories of chaotic random
    programs may drift apart by rounding, which says nothing about the interpreters)."""
    program = parse(text)
    weights, grads = _inputs(seed)
    lrs = [0.1, 0.05, 0.02, 0.01, 0.005]
    ref = run(program, weights, grads, lrs, semantics=semantics, apply_updates=False)
    tb = torch_backend()
    states = initial_states(program, [x.shape for x in weights], tb)
    for t in range(len(grads)):
        w = [tb.array(x) for x in weights]
        g = [tb.array(x) for x in grads[t]]
        update, new_states = step(
            program, w, g, states, lrs[t], t + 1, semantics=semantics, backend=tb
        )
        for x, y in zip(ref.updates[t], update, strict=True):
            assert _close(np.asarray(x), y.numpy(), 1e-9)
        for name in program.states:
            for x, y in zip(ref.states[t][name], new_states[name], strict=True):
                assert _close(np.asarray(x), y.numpy(), 1e-9)
        states = {k: [tb.array(x) for x in v] for k, v in ref.states[t].items()}


def test_reductions_span_all_tensors_and_norm_is_per_tensor() -> None:
    p = parse("def f(w, g):\n  return g * global_norm(g) + w * norm(g)\n")
    g = [np.array([3.0, 0.0]), np.array([4.0])]
    w = [np.ones(2), np.ones(1)]
    update, _ = step(p, w, g, {})
    assert np.allclose(update[0], [3 * 5 + 3, 0 + 3])  # global norm 5, this tensor's norm 3
    assert np.allclose(update[1], [4 * 5 + 4])


def test_clip_rescales_by_the_global_norm() -> None:
    p = parse("def f(w, g, lr):\n  return clip(g, lr)\n")
    g = [np.array([3.0, 0.0]), np.array([4.0])]
    update, _ = step(p, [np.zeros(2), np.zeros(1)], g, {}, lr=1.0)
    assert np.allclose(update[0], [0.6, 0.0]) and np.allclose(update[1], [0.8])
    update, _ = step(p, [np.zeros(2), np.zeros(1)], g, {}, lr=10.0)  # under the bound: unchanged
    assert np.allclose(update[0], [3.0, 0.0])


def test_dot_and_cosine_sim() -> None:
    p = parse("def f(w, g):\n  return w * dot(g, w) + g * cosine_sim(g, g)\n")
    w, g = [np.array([1.0, 2.0])], [np.array([3.0, 4.0])]
    update, _ = step(p, w, g, {})
    assert np.allclose(update[0], np.array([1.0, 2.0]) * 11 + np.array([3.0, 4.0]))


def test_hero_semantics_protects_division_sqrt_and_logs() -> None:
    p = parse("def f(w, g):\n  return g / w + sqrt(g) + log(g) + log1p(g)\n")
    w, g = [np.array([0.0])], [np.array([-2.0])]
    math_update, _ = step(p, w, g, {}, semantics="math")
    hero_update, _ = step(p, w, g, {}, semantics="hero")
    assert np.isnan(math_update[0][0])  # sqrt(-2) and log(-2) are nan under math
    expected = -2.0 / (0.0 + 1e-8) + np.sqrt(2.0) + np.log(2.0) + np.log(abs(1.0 - 2.0))
    assert hero_update[0][0] == expected


def test_scalar_update_is_applied_to_every_entry() -> None:
    p = parse("def f(w, g, lr):\n  return lr * 2\n")
    update, _ = step(p, [np.zeros(3)], [np.ones(3)], {}, lr=0.5)
    assert update[0].tolist() == [1.0, 1.0, 1.0]


def test_states_start_at_zero_and_carry_over() -> None:
    p = parse("def f(w, g, m):\n  m = m + g\n  return m, m\n")
    trace = run(p, [np.zeros(1)], [[np.ones(1)]] * 3, apply_updates=False)
    assert [float(u[0][0]) for u in trace.updates] == [1.0, 2.0, 3.0]


def test_step_input_counts_from_one() -> None:
    p = parse("def f(w, g, step):\n  return g * step\n")
    trace = run(p, [np.zeros(1)], [[np.ones(1)]] * 3)
    assert [float(u[0][0]) for u in trace.updates] == [1.0, 2.0, 3.0]


def test_training_loop_applies_updates() -> None:
    sgd = parse("def sgd(w, g, lr):\n  return g * lr\n")
    problem = Problem()
    trace, loss = train(sgd, steps=100, lr=0.1, problem=problem)
    assert loss < 0.5 * problem.loss(problem.init())
    assert np.allclose(trace.weights[1][0], trace.weights[0][0] - trace.updates[0][0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torch_backend_keeps_dtype(dtype: torch.dtype) -> None:
    p = parse("def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return sign(m) * lr, m\n")
    trace, _ = train(p, steps=3, lr=0.01, backend=torch_backend(dtype))
    assert trace.updates[-1][0].dtype == dtype
    assert trace.states[-1]["m"][0].dtype == dtype


def test_numpy_backend_is_float64() -> None:
    assert NUMPY.array([1, 2]).dtype == np.float64
