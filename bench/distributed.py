"""Benchmark: evaluations per second on the local executor and on Ray at 1 and 2 workers.

An *evaluation* is one request: one program trained at every (lr multiplier, seed) of its grid
(here 2 multipliers x 2 seeds, MLP task), i.e. one fitness of the search or one candidate score of
the ablation. All sides evaluate the same batch in the same run, alternating, best of
``--repeat``; the anchor is the local executor at one thread. Also measured: Ray's start-up
(``ray.init`` of a local instance, a cold worker's first task: torch import and task data) and
shutdown, the round trip of a warm no-op task, and the overhead of a tiny evaluation task over the
same evaluation in process (what a task costs beyond its training), and a sweep of batch sizes
(where a 2-worker split starts to pay).

    python bench/distributed.py [--steps N] [--programs N] [--repeat K] [--cpus N]

The answers are compared too: Ray's results must equal the local executor's bit for bit.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simplifier.ablation.tasks import Budget  # noqa: E402
from simplifier.distributed import RayExecutor  # noqa: E402
from simplifier.executor import EvalRequest, EvalResult, Executor, LocalExecutor  # noqa: E402
from simplifier.parse import parse_file  # noqa: E402
from simplifier.passes.dce import eliminate_dead_code  # noqa: E402

PROGRAMS = ("program4", "program3_adamw", "program1_lion", "sgd_momentum", "rmsprop", "adagrad")
CENTRE = {"program4": 16.0, "program3_adamw": 2.0, "program1_lion": 8.0, "sgd_momentum": 0.5}


def requests(n: int, steps: int) -> list[EvalRequest]:
    budget = Budget("bench", steps=steps, seeds=2, grid=(1.0,), calibration=(1.0,))
    out = []
    for i in range(n):
        name = PROGRAMS[i % len(PROGRAMS)]
        program = eliminate_dead_code(parse_file(str(ROOT / "corpus" / f"{name}.py"))).program
        c = CENTRE.get(name, 1.0) * (1 + 0.01 * i)  # distinct requests
        out.append(EvalRequest(program, "mlp", budget, (0, 1), (c, 2 * c), key=f"{name}#{i}"))
    return out


def best_time(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def answers(results: Sequence[EvalResult]) -> list[object]:
    return [(r.key, r.losses, r.score, r.reason) for r in results]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="training steps per replica (40)")
    ap.add_argument("--programs", type=int, default=16, help="evaluations per batch (16)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per side, best kept (3)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (2)")
    args = ap.parse_args(argv)
    import ray

    batch = requests(args.programs, args.steps)
    replica_steps = sum(r.replicas * r.budget.steps for r in batch)
    local1, local_auto = LocalExecutor(threads=1), LocalExecutor()
    local1.evaluate(batch[:2])  # task data and kernels, outside the timings

    # Start-up: a local instance, then the first task of each (cold) worker.
    t0 = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    t_init = time.perf_counter() - t0
    ray1 = RayExecutor(workers=1, threads=1)
    ray2 = RayExecutor(workers=2, min_task_steps=1)
    t0 = time.perf_counter()
    ray2.evaluate(batch[:2])  # two tasks: both workers import torch and build the task data
    t_cold = time.perf_counter() - t0

    @ray.remote
    def noop() -> None:
        return None

    ray.get(noop.remote())
    trips = []
    for _ in range(50):
        t0 = time.perf_counter()
        ray.get(noop.remote())
        trips.append(time.perf_counter() - t0)
    tiny = requests(1, 1)
    t_tiny_local = best_time(lambda: local1.evaluate(tiny), 10)
    t_tiny_ray = best_time(lambda: ray1.evaluate(tiny), 10)

    sides: list[tuple[str, Executor, str]] = [
        ("local, 1 thread (anchor)", local1, "1 batch"),
        ("local, threads auto", local_auto, "1 batch"),
        ("ray, 1 worker", ray1, "1 task"),
        ("ray, 2 workers", ray2, "2 tasks"),
    ]
    times = {name: float("inf") for name, _, _ in sides}
    results: dict[str, list[EvalResult]] = {}
    for _ in range(args.repeat):
        for name, ex, _ in sides:
            t0 = time.perf_counter()
            results[name] = ex.evaluate(batch)
            times[name] = min(times[name], time.perf_counter() - t0)
    same = all(answers(r) == answers(results[sides[0][0]]) for r in results.values())

    sweep = []
    for n in (1, 2, 4, 8, 16):
        part = requests(n, args.steps)
        sweep.append(
            (
                n,
                best_time(lambda p=part: local1.evaluate(p), args.repeat),  # type: ignore[misc]
                best_time(lambda p=part: ray2.evaluate(p), args.repeat),  # type: ignore[misc]
            )
        )
    sizes = (len(pickle.dumps(batch[0])), len(pickle.dumps(results[sides[0][0]][0])))
    t0 = time.perf_counter()
    ray.shutdown()
    t_shutdown = time.perf_counter() - t0

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"batch: {len(batch)} evaluations (MLP, {args.steps} steps, 2 lr x 2 seeds each: "
        f"{replica_steps} replica-steps); local Ray instance with {args.cpus} CPUs; "
        f"{os.cpu_count()} cores, load average {load:.1f}; best of {args.repeat}"
    )
    print()
    print(
        f"{'executor':<26} {'split':>8} {'seconds':>8} {'evals/s':>8} {'replica-steps/s':>16} "
        f"{'ratio':>6}"
    )
    anchor = times[sides[0][0]]
    for name, _, split in sides:
        t = times[name]
        print(
            f"{name:<26} {split:>8} {t:8.2f} {len(batch) / t:8.2f} {replica_steps / t:16.0f} "
            f"{anchor / t:5.2f}x"
        )
    print(f"\nRay's answers equal the local executor's bit for bit: {same}")
    print()
    print("Ray costs")
    print(f"  ray.init (local instance, {args.cpus} CPUs)        {t_init:7.2f} s")
    print(f"  first batch on cold workers (2 tasks, 2 evals) {t_cold:7.2f} s")
    print(f"  ray.shutdown                                  {t_shutdown:7.2f} s")
    print(
        f"  warm no-op task round trip                    {1e3 * statistics.median(trips):7.2f} ms"
        f" (median of 50)"
    )
    print(
        f"  tiny evaluation (1 replica, 1 step): local {1e3 * t_tiny_local:.1f} ms, as a Ray "
        f"task {1e3 * t_tiny_ray:.1f} ms: overhead {1e3 * (t_tiny_ray - t_tiny_local):.1f} ms "
        f"per task"
    )
    print(f"  pickled request {sizes[0]} bytes, result {sizes[1]} bytes ({batch[0].key})")
    rate = replica_steps / anchor
    print(
        f"  = {rate * (t_tiny_ray - t_tiny_local):.0f} replica-steps of training at the "
        f"anchor's {rate:.0f} replica-steps/s"
    )
    print()
    print(f"batch size sweep ({args.steps} steps, 4 replicas per evaluation)")
    print(f"{'evaluations':>11} {'local 1 thread s':>17} {'ray 2 workers s':>16} {'ratio':>6}")
    for n, tl, tr in sweep:
        print(f"{n:>11} {tl:17.3f} {tr:16.3f} {tl / tr:5.2f}x")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
