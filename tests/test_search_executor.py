"""The executor interface: batches in, results in request order, failures isolated."""

from __future__ import annotations

import math
import pickle
from dataclasses import replace

import pytest

from simplifier.ablation.engine import Replica, train
from simplifier.ablation.tasks import Budget, get_task
from simplifier.executor import (
    EvalRequest,
    EvalResult,
    Executor,
    LocalExecutor,
    make_executor,
)
from simplifier.parse import parse

TINY = Budget("tiny", steps=4, seeds=2, grid=(1.0,), calibration=(1.0,))
SGD = parse("def sgd(w, g, lr):\n  return g * lr\n")
SIGN = parse("def signum(w, g, lr):\n  return sign(g) * lr * 0.01\n")
WILD = parse("def wild(w, g, lr):\n  return exp(g) * 1e30\n")
# A hyper without a value: binding its inputs raises inside the training loop.
_BOUND = parse("def f(w, g, lr, beta=0.5):\n  return g * beta * lr\n")
UNBOUND = replace(_BOUND, params=tuple(replace(p, default=None) for p in _BOUND.params))


def req(p, key="", **kw) -> EvalRequest:
    kw.setdefault("multipliers", (0.05, 0.1))
    return EvalRequest(p, "mlp", TINY, seeds=(0, 1), key=key, **kw)


def test_results_in_request_order_and_equal_to_the_engine() -> None:
    requests = [req(SGD, "a"), req(SIGN, "b"), req(SGD, "c", semantics="hero")]
    results = LocalExecutor().evaluate(requests)
    assert [r.key for r in results] == ["a", "b", "c"]
    direct = train(
        [SGD, SIGN],
        [Replica(k, m, s) for k in (0, 1) for m in (0.05, 0.1) for s in (0, 1)],
        get_task("mlp"),
        TINY,
    )
    flat = [x for r in results[:2] for row in r.losses for x in row]
    assert flat == pytest.approx(direct.loss.tolist(), rel=1e-6)
    assert all(r.ok and r.score is not None and math.isfinite(r.loss) for r in results)
    assert results[0].score is not None
    assert results[0].loss == min(sum(row) / 2 for row in results[0].losses)


def test_failed_requests_are_isolated_with_a_reason() -> None:
    ex = LocalExecutor()
    good, raising, diverged = ex.evaluate([req(SGD), req(UNBOUND), req(WILD)])
    alone = ex.evaluate([req(SGD)])[0]
    assert good.ok and sum(good.losses, ()) == pytest.approx(sum(alone.losses, ()), rel=1e-6)
    assert not raising.ok and "ValueError" in (raising.reason or "")
    assert raising.loss == math.inf and raising.score is None
    assert not diverged.ok and "diverged" in (diverged.reason or "")


def test_time_limit_is_a_failed_result_not_an_exception() -> None:
    (res,) = LocalExecutor().evaluate([req(SGD, time_limit=0.0)])
    assert not res.ok and "time limit" in (res.reason or "")


def test_unavailable_device_is_a_failed_result() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (res,) = LocalExecutor().evaluate([req(SGD, device="cuda")])
    assert not res.ok and "CUDA" in (res.reason or "")


def test_request_and_result_are_picklable_values() -> None:
    r = req(SGD, "k")
    assert pickle.loads(pickle.dumps(r)) == r
    res = EvalResult.failure(r, "boom")
    assert pickle.loads(pickle.dumps(res)) == res
    assert res.losses == ((math.inf, math.inf), (math.inf, math.inf))
    with pytest.raises(ValueError):
        EvalRequest(SGD, "mlp", TINY, seeds=(), multipliers=(1.0,))


def test_make_executor() -> None:
    assert isinstance(make_executor("local"), Executor)
    with pytest.raises(ValueError, match="unknown backend"):
        make_executor("nonexistent")
