"""Where programs are trained: the executor interface the search and the ablation hand batches to.

A caller builds :class:`EvalRequest` values (a program, the proxy task, the training budget, the
seeds and lr multipliers, the device and the semantics) and hands a whole batch to an
:class:`Executor`; it gets one :class:`EvalResult` per request back, in request order. An
executor never raises for a bad program: a request that raises, diverges (NaN/inf at every
multiplier) or runs past its time limit comes back as a failed result with a reason, and the
other requests of the batch are unaffected.

:class:`LocalExecutor` is the in-process batched engine (:func:`simplifier.ablation.engine.train`):
all requests of a batch that share a task, budget, device, semantics and dtype are trained in one
batched computation. Other backends implement the same two methods (``evaluate``, ``close``);
:func:`make_executor` builds one by name.

>>> from simplifier.parse import parse
>>> from simplifier.ablation.tasks import Budget
>>> sgd = parse("def sgd(w, g, lr):\\n  return g * lr\\n")
>>> wild = parse("def wild(w, g, lr):\\n  return exp(g) * 1e30\\n")
>>> tiny = Budget("tiny", steps=3, seeds=1, grid=(1.0,), calibration=(1.0,))
>>> reqs = [EvalRequest(p, "mlp", tiny, seeds=(0,), multipliers=(0.1, 0.2)) for p in (sgd, wild)]
>>> with LocalExecutor() as ex:
...     results = ex.evaluate(reqs)
>>> [(r.ok, r.reason) for r in results]
[(True, None), (False, 'diverged (NaN/inf) at every lr multiplier')]
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import numpy as np

from simplifier.ablation.ablate import Curve, Score, learning_curve, score
from simplifier.ablation.tasks import Budget
from simplifier.ir import Program
from simplifier.numeric import Semantics

BACKENDS = ("local", "ray")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class EvalRequest:
    """Train ``program`` on ``task`` for ``budget.steps`` steps at every (multiplier, seed).

    ``time_limit`` is the wall-clock seconds this request may take when trained on its own
    (None: no limit); ``key`` is the caller's label, returned with the result. A request is a
    value (frozen, picklable): a remote executor ships it as is.
    """

    program: Program
    task: str
    budget: Budget
    seeds: tuple[int, ...]
    multipliers: tuple[float, ...]
    device: str = "cpu"
    semantics: Semantics = "math"
    dtype: str = "float32"
    time_limit: float | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if not self.seeds or not self.multipliers:
            raise ValueError("a request needs at least one seed and one lr multiplier")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")

    @property
    def replicas(self) -> int:
        return len(self.seeds) * len(self.multipliers)

    def group(self) -> tuple[object, ...]:
        """Requests with equal groups can be trained in one batched computation."""
        return (self.task, self.budget, self.device, self.semantics, self.dtype)


@dataclass(frozen=True)
class EvalResult:
    """One request's outcome: ``losses[i][j]`` is the validation loss at multiplier ``i`` and
    seed ``j`` (``inf`` where that replica diverged); ``score`` is the best multiplier's mean
    (:func:`simplifier.ablation.ablate.score`), None when the request failed; ``curves[i]`` is
    multiplier ``i``'s learning curve (:func:`simplifier.ablation.ablate.learning_curve`).

    ``reason`` says why a request failed (an exception, divergence at every multiplier, the time
    limit); ``seconds`` is the request's share of its batch's wall time.
    """

    key: str
    losses: tuple[tuple[float, ...], ...]
    score: Score | None
    reason: str | None = None
    seconds: float = 0.0
    replica_steps: int = 0
    curves: tuple[Curve, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def loss(self) -> float:
        """The fitness to minimise: the score's loss, ``inf`` for a failed request."""
        return self.score.loss if self.score is not None else math.inf

    @staticmethod
    def failure(request: EvalRequest, reason: str, seconds: float = 0.0) -> EvalResult:
        row = (math.inf,) * len(request.seeds)
        return EvalResult(request.key, (row,) * len(request.multipliers), None, reason, seconds)


@runtime_checkable
class Executor(Protocol):
    """Evaluates whole batches; results in request order; never raises for a bad request."""

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]: ...

    def close(self) -> None: ...


class Closing:
    """The ``with`` protocol of executors: the block closes the executor (``close`` releases
    what it holds: nothing, unless a subclass says otherwise)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        pass


class _TimeLimit(Exception):
    pass


def threads_for(replicas: int, available: int | None = None, load: float | None = None) -> int:
    """Torch CPU threads for a batch of ``replicas``: 2 from 64 replicas up when 2 cores are
    free, else 1.

    Measured in ``bench/search.py``: on an idle 2-core machine 2 threads train 64+ replicas
    1.4-1.7x faster; below 64 the threads' overhead cancels the gain; and on an oversubscribed
    machine (load above the core count) a second thread's busy-waiting made a step 3-10x
    *slower*. ``load`` is the 1-minute load average (read from the OS when None). The thread
    count does not change the numbers (the bench checks 1 and 2 threads bitwise).

    >>> threads_for(8), threads_for(200, available=2, load=0.5), threads_for(200, 2, load=6.0)
    (1, 2, 1)
    """
    cores = available if available is not None else len(os.sched_getaffinity(0))
    if replicas < 64 or cores < 2:
        return 1
    busy = load if load is not None else os.getloadavg()[0]
    return 2 if busy <= cores - 1 + 0.5 else 1


@dataclass
class LocalExecutor(Closing):
    """The in-process batched engine. ``threads``: torch CPU threads per batch, or ``"auto"``
    (:func:`threads_for`). ``batches`` counts the batched computations run (fallbacks included).
    """

    threads: int | str = "auto"
    batches: int = field(default=0, init=False)

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        results: list[EvalResult | None] = [None] * len(requests)
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.group(), []).append(i)
        for indices in groups.values():
            batch = [requests[i] for i in indices]
            for i, res in zip(indices, self._evaluate_group(batch), strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    def _evaluate_group(self, batch: list[EvalRequest]) -> list[EvalResult]:
        """One batched computation; if it raises or runs past the batch's limit (the sum of
        the requests' limits), each request on its own, so that one bad program fails alone."""
        limits = [r.time_limit for r in batch]
        limit = None if any(x is None for x in limits) else sum(x or 0.0 for x in limits)
        try:
            return self._train(batch, limit)
        except Exception as e:
            if len(batch) == 1:
                return [EvalResult.failure(batch[0], _describe(e))]
        out: list[EvalResult] = []
        for r in batch:
            try:
                out.extend(self._train([r], r.time_limit))
            except Exception as e:
                out.append(EvalResult.failure(r, _describe(e)))
        return out

    def _train(self, batch: list[EvalRequest], limit: float | None) -> list[EvalResult]:
        import torch

        from simplifier.ablation.engine import Replica, train
        from simplifier.ablation.tasks import get_task

        first = batch[0]
        if first.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available on this machine")
        reps = [
            Replica(k, float(m), s)
            for k, r in enumerate(batch)
            for m in r.multipliers
            for s in r.seeds
        ]
        start = time.perf_counter()

        def watch(done: int, total: int) -> None:
            if limit is not None and time.perf_counter() - start > limit:
                raise _TimeLimit(f"time limit of {limit:g} s exceeded at step {done}/{total}")

        threads = threads_for(len(reps)) if self.threads == "auto" else int(self.threads)
        self.batches += 1
        result = train(
            [r.program for r in batch],
            reps,
            get_task(first.task),
            first.budget,
            device=first.device,
            dtype=getattr(torch, first.dtype),
            semantics=first.semantics,
            progress=watch if limit is not None else None,
            cpu_threads=threads,
        )
        share = result.seconds / len(reps)
        out: list[EvalResult] = []
        at = 0
        for r in batch:
            n = r.replicas
            table = np.asarray(result.loss[at : at + n], dtype=np.float64)
            table = table.reshape(len(r.multipliers), len(r.seeds))
            per_step = result.train_loss[at : at + n].reshape(len(r.multipliers), len(r.seeds), -1)
            at += n
            losses = tuple(tuple(float(x) for x in row) for row in table)
            curves = tuple(learning_curve(c) for c in per_step)
            seconds = share * n
            steps = n * r.budget.steps
            sc = score(table, r.multipliers, curves)
            if not sc.finite:
                reason = "diverged (NaN/inf) at every lr multiplier"
                out.append(EvalResult(r.key, losses, None, reason, seconds, steps, curves))
            else:
                out.append(EvalResult(r.key, losses, sc, None, seconds, steps, curves))
        return out


def _describe(e: BaseException) -> str:
    if isinstance(e, _TimeLimit):
        return str(e)
    return f"{type(e).__name__}: {e}"


def make_executor(backend: str = "local", **options: object) -> Executor:
    """The executor of a backend name (``local``; other backends register here).

    >>> make_executor("local").threads
    'auto'
    """
    if backend == "local":
        threads = options.pop("threads", "auto")
        if options:
            raise ValueError(f"unknown options for the local backend: {', '.join(options)}")
        assert isinstance(threads, int | str)
        return LocalExecutor(threads)
    if backend == "ray":
        from simplifier.distributed import RayExecutor

        return RayExecutor.from_options(options)
    raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
