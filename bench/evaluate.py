"""Benchmark: the batched ablation engine against training the same replicas one at a time.

Both sides train the same 64 MLP replicas (4 programs x 4 lr multipliers x 4 seeds) for the same
steps on the same device, in the same run; the anchor is the same engine called once per replica
(a Python loop over replicas, which is what a non-batched implementation does). Prints
replica-steps per second, the ratio, and the largest relative difference between the two sides'
validation losses (they must agree: batching is an implementation detail).

    python bench/evaluate.py [--device cpu|cuda] [--steps N] [--repeat K]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from simplifier.ablation.engine import Replica, train
from simplifier.ablation.tasks import Budget, get_task
from simplifier.parse import parse_file
from simplifier.passes.dce import eliminate_dead_code

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("program4", "program3_adamw", "program1_lion", "sgd_momentum")
MULTIPLIERS = {"program4": 16.0, "program3_adamw": 2.0, "program1_lion": 8.0, "sgd_momentum": 0.5}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=None, help="default: 50 (cpu), 400 (cuda)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per side (best is kept)")
    ap.add_argument("--task", default="mlp", choices=("mlp", "lm"))
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 2
    steps = args.steps or (400 if args.device.startswith("cuda") else 50)
    task = get_task(args.task)
    budget = Budget("bench", steps=steps, seeds=4, grid=(1.0,), calibration=(1.0,))
    programs = [
        eliminate_dead_code(parse_file(str(ROOT / "corpus" / f"{name}.py"))).program
        for name in PROGRAMS
    ]
    replicas = [
        Replica(k, MULTIPLIERS[name] * f, seed)
        for k, name in enumerate(PROGRAMS)
        for f in (0.5, 1.0, 2.0, 4.0)
        for seed in range(4)
    ]
    n = len(replicas)
    # Warm up both paths (data, initial weights, kernels) outside the timings.
    warm = Budget("warm", steps=2, seeds=1, grid=(1.0,), calibration=(1.0,))
    train(programs, replicas, task, warm, device=args.device)
    train(programs, replicas[:1], task, warm, device=args.device)

    def batched_run() -> np.ndarray:
        return train(programs, replicas, task, budget, device=args.device).loss

    def loop_run() -> np.ndarray:
        return np.concatenate(
            [train(programs, [r], task, budget, device=args.device).loss for r in replicas]
        )

    # The two sides alternate and each keeps its best time: the machine may be shared.
    times = {"batched": float("inf"), "loop": float("inf")}
    results: dict[str, np.ndarray] = {}
    for _ in range(args.repeat):
        for name, run in (("loop", loop_run), ("batched", batched_run)):
            _sync(args.device)
            t0 = time.perf_counter()
            results[name] = run()
            _sync(args.device)
            times[name] = min(times[name], time.perf_counter() - t0)
    t_batch, t_loop = times["batched"], times["loop"]
    loss_b, looped = results["batched"], results["loop"]
    finite = np.isfinite(loss_b) & np.isfinite(looped)
    same_failures = bool(np.array_equal(np.isfinite(loss_b), np.isfinite(looped)))
    diff = float(np.max(np.abs(loss_b[finite] - looped[finite]) / np.abs(looped[finite])))
    rate_b, rate_l = n * steps / t_batch, n * steps / t_loop
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"task {task.name} ({task.size} parameters per replica), {n} replicas "
        f"({len(PROGRAMS)} programs x 4 lr x 4 seeds), {steps} steps, device {device}, "
        f"{'1 CPU thread (the engine on CPU), ' if device == 'cpu' else ''}"
        f"best of {args.repeat}"
    )
    print()
    print(f"{'engine':<34} {'seconds':>9} {'replica-steps/s':>16} {'ratio':>7}")
    print(f"{'one replica at a time (anchor)':<34} {t_loop:9.2f} {rate_l:16.0f} {1.0:6.2f}x")
    print(
        f"{'batched, all replicas at once':<34} {t_batch:9.2f} {rate_b:16.0f} "
        f"{rate_b / rate_l:6.2f}x"
    )
    print()
    print(
        f"validation losses agree: max relative difference {diff:.2e}; "
        f"same replicas failed: {same_failures}; failed: {int(np.sum(~np.isfinite(loss_b)))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
