"""The batched engine: per-replica semantics against the reference interpreter, independence of
replicas, failure isolation, determinism, and the proxy tasks."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from simplifier.ablation.engine import Replica, step_batched, train
from simplifier.ablation.tasks import Budget, get_task
from simplifier.numeric import initial_states, torch_backend
from simplifier.numeric import step as reference_step
from simplifier.parse import parse, parse_file
from simplifier.testing import SAFE, programs

SHAPES = ((2, 3), (4,))  # two parameter tensors per replica
SIZES = tuple(math.prod(s) for s in SHAPES)
TINY = Budget("tiny", steps=12, seeds=2, grid=(0.5, 1.0, 2.0), calibration=(1.0,))


def _split(row: torch.Tensor) -> list[torch.Tensor]:
    return [p.reshape(s) for p, s in zip(row.split(SIZES), SHAPES, strict=True)]


def _compare_with_reference(text: str, semantics: str = "math", steps: int = 3) -> None:
    """Run ``steps`` steps on 3 stacked replicas and on each replica alone with numeric.step."""
    program = parse(text)
    gen = torch.Generator().manual_seed(0)
    r, p = 3, sum(SIZES)
    w = torch.randn(r, p, generator=gen, dtype=torch.float64)
    grads = [torch.randn(r, p, generator=gen, dtype=torch.float64) for _ in range(steps)]
    states = {
        n: torch.full((r, p), float(v), dtype=torch.float64) for n, v in program.initial.items()
    }
    ref_states = [initial_states(program, SHAPES, torch_backend()) for _ in range(r)]
    backend = torch_backend()
    for t in range(steps):
        lr = 0.1 * (t + 1)
        upd, states = step_batched(
            program, w, grads[t], states, lr, t + 1, semantics=semantics, segments=SHAPES
        )  # type: ignore[arg-type]
        for i in range(r):
            ref_upd, ref_states[i] = reference_step(
                program,
                _split(w[i]),
                _split(grads[t][i]),
                ref_states[i],
                lr,
                t + 1,
                semantics=semantics,
                backend=backend,
            )  # type: ignore[arg-type]
            torch.testing.assert_close(
                upd[i],
                torch.cat([u.reshape(-1) for u in ref_upd]),
                equal_nan=True,
                rtol=1e-9,
                atol=1e-12,
            )
            for name in program.states:
                got = states[name][i]
                want = torch.cat([v.reshape(-1) for v in ref_states[i][name]])
                torch.testing.assert_close(got, want, equal_nan=True, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("semantics", ["math", "hero"])
@pytest.mark.parametrize(
    "text",
    [
        # every reduction, each per replica over both tensors (per tensor for norm)
        "def f(w, g, m, lr):\n  g = clip(g, lr)\n  m = interp(g, m, 0.9)\n"
        "  return m / sqrt(m * m + 1) + w * 0.1, m\n",
        "def f(w, g, lr):\n  n = norm(g)\n  return g / n * lr\n",
        "def f(w, g, lr):\n  return g / global_norm(g) * lr + dot(g, w) * w\n",
        "def f(w, g, m, lr):\n  m = interp(g, m, 0.5)\n  c = cosine_sim(g, m)\n"
        "  return g * c * lr, m\n",
        "def f(w, g, lr):\n  return clip(g, norm(w)) * get_pi()\n",
        "def f(w, g, v, lr, step):\n  v = v + g * g\n  return g / sqrt(v) * lr / step, v\n",
        "def f(w, g, lr):\n  return lr\n",  # a scalar update is applied to every entry
    ],
)
def test_step_batched_matches_reference_per_replica(text: str, semantics: str) -> None:
    _compare_with_reference(text, semantics)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_statements=6, profile=SAFE))
def test_step_batched_matches_reference_on_random_programs(text: str) -> None:
    _compare_with_reference(text)


def test_reductions_do_not_mix_replicas() -> None:
    program = parse("def f(w, g, lr):\n  return clip(g, 1) * global_norm(w)\n")
    g = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    upd, _ = step_batched(program, w, g, {}, 1.0, 1)
    torch.testing.assert_close(upd, torch.tensor([[0.6, 0.8], [0.6, 0.8]], dtype=torch.float64))


def _corpus(name: str):  # type: ignore[no-untyped-def]
    return parse_file(f"corpus/{name}.py")


def test_replicas_are_independent_of_the_batch() -> None:
    task = get_task("mlp")
    progs = [_corpus("program4"), _corpus("program3_adamw"), _corpus("sgd")]
    mults = {0: 16.0, 1: 2.0, 2: 0.5}
    reps = [Replica(k, mults[k] * f, s) for k in range(3) for f in (1.0, 2.0) for s in (0, 1)]
    together = train(progs, reps, task, TINY)
    assert not together.failed.any()
    for i, rep in enumerate(reps[::3]):
        alone = train(progs, [rep], task, TINY)
        np.testing.assert_allclose(alone.loss[0], together.loss[3 * i], rtol=1e-5)


def test_same_seeds_same_numbers() -> None:
    task = get_task("mlp")
    progs = [_corpus("program4"), _corpus("sgd")]
    reps = [Replica(0, 16.0, 0), Replica(1, 0.5, 1), Replica(0, 8.0, 1)]
    first = train(progs, reps, task, TINY)
    second = train(progs, list(reps), task, TINY)
    assert np.array_equal(first.loss, second.loss)
    # The order of the replicas in the call does not matter either.
    reordered = train(progs, reps[::-1], task, TINY)
    np.testing.assert_allclose(reordered.loss[::-1], first.loss, rtol=1e-6)


def test_diverging_replicas_fail_alone() -> None:
    task = get_task("mlp")
    sgd = _corpus("sgd")
    blowup = parse("def f(w, g, lr):\n  return g * 1e30\n")
    nan = parse("def f(w, g, lr):\n  return log(-abs(g))\n")
    reps = [Replica(0, 0.5, 0), Replica(1, 1.0, 0), Replica(2, 1.0, 0), Replica(0, 0.5, 1)]
    res = train([sgd, blowup, nan], reps, task, TINY)
    assert res.failed.tolist() == [False, True, True, False]
    assert math.isinf(res.loss[1]) and math.isinf(res.loss[2])
    assert res.failed_at[2] == 0 and res.failed_at[0] == -1
    alone = train([sgd], [Replica(0, 0.5, 0), Replica(0, 0.5, 1)], task, TINY)
    np.testing.assert_allclose(alone.loss, res.loss[[0, 3]], rtol=1e-5)


def test_schedule_warms_up_then_decays_and_stays_positive() -> None:
    b = Budget("b", steps=50, seeds=1, grid=(1.0,), calibration=(1.0,))
    lrs = [b.lr(t) for t in range(b.steps)]
    assert lrs[:5] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert all(x > y for x, y in itertools.pairwise(lrs[4:]))
    assert 0 < lrs[-1] < 0.01


@pytest.mark.parametrize("name", ["mlp", "lm"])
def test_tasks_learn_and_are_deterministic(name: str) -> None:
    task = get_task(name)
    assert task.size == sum(task.segments)
    assert torch.equal(task.init(3), task.init(3)) and not torch.equal(task.init(3), task.init(4))
    d1, d2 = task.data("cpu", torch.float32), task.data("cpu", torch.float32)
    assert torch.equal(d1.train_x, d2.train_x) and torch.equal(d1.val_y, d2.val_y)
    adam = _corpus("program3_adamw")
    budget = Budget("b", steps=40, seeds=1, grid=(1.0,), calibration=(1.0,))
    res = train([adam], [Replica(0, 4.0, 0)], task, budget)
    w0 = task.init(0).to(torch.float32).unsqueeze(0)
    initial = float(task.val_loss(w0, d1)[0])
    assert res.loss[0] < initial - 0.1


def test_unknown_task_and_budget() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        get_task("vit")
    with pytest.raises(ValueError, match="unknown budget"):
        get_task("mlp").budget("huge")


def test_the_learning_curve_is_each_replicas_training_loss_per_step() -> None:
    """``train_loss[i, t]`` is replica i's loss on step t's batch before step t's update: at
    step 0 every replica of a seed has that seed's initial loss; SGD's curve falls; a replica
    that diverges has a non-finite curve from its failure on, and the others are unaffected."""
    from simplifier.ablation.engine import batch_indices, task_cache

    task = get_task("mlp")
    budget = replace(task.budget("small"), steps=30)
    sgd = parse("def sgd(w, g, lr):\n  return g * lr\n")
    reps = [Replica(0, 1.0, 0), Replica(0, 4.0, 0), Replica(0, 1e12, 1)]
    res = train([sgd], reps, task, budget)
    assert res.train_loss.shape == (3, 30)
    cache = task_cache(task)
    data = cache.get_data(torch.device("cpu"), torch.float32)
    idx = batch_indices(task, 0, 30, data.train_x.shape[0])[0]
    w0 = cache.get_init(0).to(torch.float32).unsqueeze(0)
    first = task.loss(w0, data.train_x[idx].unsqueeze(0), data.train_y[idx].unsqueeze(0))
    assert res.train_loss[0, 0] == res.train_loss[1, 0] == pytest.approx(float(first[0]))
    assert res.train_loss[0, -5:].mean() < res.train_loss[0, :5].mean()
    assert res.failed[2] and not np.isfinite(res.train_loss[2, res.failed_at[2] + 1 :]).any()
    assert np.isfinite(res.train_loss[:2]).all()
