"""Evaluation on a Ray cluster: :class:`RayExecutor`, the ``ray`` backend of the executor interface.

A batch handed to :meth:`RayExecutor.evaluate` is grouped as
:class:`~simplifier.executor.LocalExecutor` groups it (requests with equal
:meth:`~simplifier.executor.EvalRequest.group` can share one batched computation); each group
becomes one or more Ray tasks, and each task trains its requests with the in-process batched
engine on its worker (:class:`~simplifier.executor.LocalExecutor`), so a GPU worker keeps its
batching and a failing request fails alone, as it does locally.

**How a group is split into tasks** (:func:`split`): into contiguous chunks of requests, in request
order, balanced by replica-steps (replicas x training steps), at most ``workers`` chunks (default:
the cluster's CPUs for a CPU group) and none below ``min_task_steps`` replica-steps (a Ray task
costs a few milliseconds, a cold worker seconds: tiny batches cost more than they gain; see
``docs/distributed.md``). A CUDA group goes whole to one GPU task by default (``workers`` overrides
it): the GPU keeps the whole batch (for these small models a step's time is mostly kernel
launches, not replicas; not measured here, no GPU was lent), parallelism across GPUs comes from
concurrent batches (restarts, several searches), and bit-identity of a split batch on CUDA is not
verified. On the CPU the split does not change the answers: the batched engine gives a replica
bit-identical numbers whichever replicas share its batch, at 1 or 2 threads (``tests/test_ray.py``
checks equality with the local executor bit for bit).

**Resources.** A CPU task runs one torch thread and declares ``num_cpus=1`` (Ray's model: one
task per core; ``threads=N`` gives N threads and declares N CPUs): two intra-op threads per task
measured ~10x slower than one on the loaded, shared 2-core machine (oversubscribed OpenMP
threads), while two one-thread tasks use both cores. A CUDA task declares ``num_gpus=1``. A
CUDA request on a cluster without GPUs fails at once with a reason (Ray would otherwise wait
forever for the resource).

**Faults.** A task whose worker dies (killed, out of memory, node lost) is retried by Ray up to
``retries`` times; then its requests come back as failed results with the reason, and the other
tasks' results are kept.

**Where Ray runs.** ``address=None``: a new local Ray instance sized to this machine (its CPUs and
GPUs), shut down by :meth:`close`; ``"auto"``: join the running cluster (``ray start --head``;
``RAY_ADDRESS``); ``HOST:PORT`` or ``ray://HOST:PORT``: join that cluster. When joining, the
driver's ``simplifier`` package is shipped to the workers (``runtime_env`` ``py_modules``), so the
workers run the driver's code; they need the dependencies installed (``pip install
'optsimplify[ray]'``). If Ray is already initialised in this process, it is used as it is, and left
running by :meth:`close`.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simplifier.executor import Closing, EvalRequest, EvalResult, LocalExecutor

#: The Ray task's name (its worker's process title while it runs is ``ray::`` + this name).
TASK_NAME = "optsimplify_evaluate"
#: A task trains at least this many replica-steps unless its group is smaller (measured in
#: ``bench/distributed.py``: a warm task's round trip is a few ms, ~200 replica-steps of the MLP).
MIN_TASK_STEPS = 4096


def split(batch: Sequence[EvalRequest], parts: int, min_steps: int) -> list[list[EvalRequest]]:
    """Contiguous chunks of ``batch`` in order, balanced by replica-steps: ``min(parts,
    len(batch), total // min_steps)`` chunks (at least one), none empty.

    >>> from simplifier.parse import parse
    >>> from simplifier.ablation.tasks import Budget
    >>> p = parse("def sgd(w, g, lr):\\n  return g * lr\\n")
    >>> b = Budget("b", steps=10, seeds=1, grid=(1.0,), calibration=(1.0,))
    >>> reqs = [EvalRequest(p, "mlp", b, (0,), (1.0,) * n, key=str(n)) for n in (1, 1, 2, 4)]
    >>> [[r.key for r in c] for c in split(reqs, 2, min_steps=10)]
    [['1', '1', '2'], ['4']]
    >>> [[r.key for r in c] for c in split(reqs, 8, min_steps=40)]
    [['1', '1', '2'], ['4']]
    """
    weights = [r.replicas * r.budget.steps for r in batch]
    total = sum(weights)
    k = max(1, min(parts, len(batch), total // max(1, min_steps)))
    chunks: list[list[EvalRequest]] = []
    current: list[EvalRequest] = []
    done = 0
    for i, (r, w) in enumerate(zip(batch, weights, strict=True)):
        current.append(r)
        done += w
        still = k - len(chunks) - 1  # chunks to open after this one
        left = len(batch) - i - 1  # requests not placed yet
        if still > 0 and (done * k >= total * (len(chunks) + 1) or left == still):
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def _evaluate_chunk(chunk: list[EvalRequest], threads: int) -> list[EvalResult]:
    """The body of a Ray task: the chunk on this worker's batched engine."""
    return LocalExecutor(threads).evaluate(chunk)


_REMOTE: Any = None


def _remote() -> Any:
    global _REMOTE
    if _REMOTE is None:
        import ray

        _REMOTE = ray.remote(_evaluate_chunk)
    return _REMOTE


def _package_dir() -> str:
    return str(Path(__file__).resolve().parent)


@dataclass
class RayExecutor(Closing):
    """Evaluates batches as Ray tasks (see the module docstring for the rules).

    ``address``: None (a new local instance), ``"auto"`` or a cluster address; ``workers``: the
    most tasks one group is split into (default: the cluster's CPUs for CPU groups, 1 for CUDA
    groups); ``retries``: Ray retries of a task whose worker died; ``threads``: torch threads (and
    declared CPUs) of a CPU task (``"auto"``: 1); ``init_options``:
    more :func:`ray.init` arguments (e.g. ``num_cpus``). ``tasks`` counts the tasks submitted
    (Ray's retries not included).
    """

    address: str | None = None
    workers: int | None = None
    retries: int = 2
    min_task_steps: int = MIN_TASK_STEPS
    threads: int | str = "auto"
    init_options: Mapping[str, Any] = field(default_factory=dict)
    tasks: int = field(default=0, init=False)
    _owned: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        import ray  # ImportError: the [ray] extra is not installed

        if self.retries < 0:
            raise ValueError("retries must not be negative")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be at least 1")
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.address is None:
            options.update(address="local", include_dashboard=False)
        else:
            _probe(self.address)
            options.update(address=self.address, runtime_env={"py_modules": [_package_dir()]})
        options.update(self.init_options)
        ray.init(**options)  # ConnectionError when there is no cluster at the address
        self._owned = True

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> RayExecutor:
        """Build from :func:`~simplifier.executor.make_executor`'s keyword options."""
        known = {"address", "workers", "retries", "min_task_steps", "threads", "init_options"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown options for the ray backend: {', '.join(sorted(unknown))}")
        return cls(**options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Shut down the Ray instance this executor started (or disconnect from a cluster)."""
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        return self.evaluate_many([requests])[0]

    def evaluate_many(self, batches: Sequence[Sequence[EvalRequest]]) -> list[list[EvalResult]]:
        """Independent batches at once (e.g. the rounds of concurrent restarts): every batch's
        tasks are submitted before any result is awaited; each batch's results as
        :meth:`evaluate` gives them."""
        import ray

        resources = ray.cluster_resources()
        submitted = [self._submit(batch, resources) for batch in batches]
        out = []
        for results, jobs in submitted:
            for where, chunk, ref in jobs:
                for i, res in zip(where, self._collect(chunk, ref), strict=True):
                    results[i] = res
            out.append([r for r in results if r is not None])
        return out

    def _submit(
        self, requests: Sequence[EvalRequest], resources: Mapping[str, float]
    ) -> tuple[list[EvalResult | None], list[tuple[list[int], list[EvalRequest], Any]]]:
        """Start a batch's tasks: the results known at once (no GPU) and the tasks' refs."""
        results: list[EvalResult | None] = [None] * len(requests)
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.group(), []).append(i)
        jobs: list[tuple[list[int], list[EvalRequest], Any]] = []
        threads = 1 if self.threads == "auto" else int(self.threads)
        for indices in groups.values():
            batch = [requests[i] for i in indices]
            cuda = batch[0].device.startswith("cuda")
            if cuda and resources.get("GPU", 0) < 1:
                for i, r in zip(indices, batch, strict=True):
                    results[i] = EvalResult.failure(r, "the Ray cluster has no GPU")
                continue
            parts = self.workers or (1 if cuda else max(1, int(resources.get("CPU", 1))))
            at = 0
            for chunk in split(batch, parts, self.min_task_steps):
                ref = (
                    _remote()
                    .options(
                        name=TASK_NAME,
                        num_cpus=1 if cuda else threads,
                        num_gpus=1 if cuda else 0,
                        max_retries=self.retries,
                        retry_exceptions=False,
                    )
                    .remote(chunk, threads)
                )
                self.tasks += 1
                jobs.append((indices[at : at + len(chunk)], chunk, ref))
                at += len(chunk)
        return results, jobs

    def _collect(self, chunk: list[EvalRequest], ref: Any) -> list[EvalResult]:
        import ray

        try:
            out: list[EvalResult] = ray.get(ref)
            return out
        except ray.exceptions.RayTaskError as e:  # raised by the task body: not retried
            reason = f"the Ray task raised {_first_line(e)}"
        except ray.exceptions.RayError as e:  # the worker or its node was lost
            attempts = self.retries + 1
            reason = (
                f"Ray worker lost ({attempts} attempt(s)): {type(e).__name__}: {_first_line(e)}"
            )
        return [EvalResult.failure(r, reason) for r in chunk]


def _probe(address: str, timeout: float = 5.0) -> None:
    """Raise ConnectionError unless something listens at the cluster's GCS address: Ray
    itself retries a dead address for minutes (e.g. a stale ``/tmp/ray/ray_current_cluster``)."""
    if address.startswith("ray://"):
        return  # a Ray Client server: Ray's own connect has a timeout
    target: str | None = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:  # private API moved: leave it to Ray
            return
        target = canonicalize_bootstrap_address(address)
        if target is None:
            raise ConnectionError(
                "no running Ray cluster found (start one with `ray start --head`)"
            )
    host, _, port = str(target).rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise ConnectionError(f"no Ray cluster answers at {target} ({e})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
