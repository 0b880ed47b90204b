"""Optimizer step time and state memory: the emitted Lion on each of its paths, against
torch.optim.AdamW (foreach and fused), lion-pytorch's Lion and a ``copy_`` of the same bytes;
and the emitted AdamW and Adam (from ``corpus/``) on their fused path against torch's fused
AdamW and Adam, parameter by parameter (no ``flat=True``).

The model has about 25M float32 parameters in realistic shapes: a large embedding, the
matrices of two transformer layers (d = 768) and many small vectors and gains. Every row is
measured in the same run (median step time after warm-up); ratios are against the anchors of
that run. "GB/s" counts the bytes an ideal implementation moves per step (AdamW reads w, g, m, v
and writes w, m, v: 28 bytes per float32 parameter; Lion reads w, g, m and writes w, m: 20),
so "% copy" compares it with what ``copy_`` achieves on the same machine. The "flat" rows keep
the parameters, gradients and state in one buffer each (``flat=True``): one kernel call a step.

The last lines time the compiled path's first step on a 128-tensor model (every tensor a
different shape), in a fresh process with an empty Inductor cache ("cold") and again with the
cache filled ("warm"); then a step with a new lr, which must not recompile.

lion-pytorch and torch's foreach AdamW allocate temporaries every step; whether glibc gives them
fresh pages (page faults: lion-pytorch about 120 ms here) or reuses its heap (about 40 ms) depends
on the process's allocation history, so those rows vary between runs far more than the others.

Usage: ``python bench/optimizer_step.py [--size N | --small] [--device cpu|cuda] [--steps K]``.
On a shared CPU the numbers are noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from simplifier.emit import compile_torch
from simplifier.parse import parse, parse_file

LION = """def train(w, g, v, lr):
  c = interp(g, v, 0.899)
  update = (sign(c) + w * 0.4602) * (lr * 0.0002)
  v = interp(g, v, 0.996991)
  return update, v
"""
HYPERS = {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.1}


def model_shapes(total: int) -> list[tuple[int, ...]]:
    """About ``total`` parameters: an embedding, two transformer layers, many small tensors."""
    d = max(64, round(768 * math.sqrt(total / 25e6) / 16) * 16)
    layer: list[tuple[int, ...]] = [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)]
    layer += [(3 * d,), (d,), (4 * d,), (d,), (d,), (d,), (d,), (d,)]
    small: list[tuple[int, ...]] = [(64, 16)] * 96 + [(d,), (d,)]
    used = 2 * sum(math.prod(s) for s in layer) + sum(math.prod(s) for s in small)
    vocab = max(16, (total - used) // d)
    return [(vocab, d), *layer, *layer, *small]


@dataclass
class Row:
    name: str
    ms: float
    floats_moved: int  # per parameter, for an ideal implementation
    state_ratio: float  # state bytes / parameter bytes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved_ms(
    steps: dict[str, Callable[[], object]], device: torch.device, rounds: int, warmup: int
) -> dict[str, float]:
    """Median time of each step function, measured round-robin (one step of each per round)
    so that every row sees the same machine load, which on a shared CPU changes by the second."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def state_ratio(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> float:
    state = sum(
        v.numel() * v.element_size()
        for p in params
        for v in opt.state[p].values()
        if torch.is_tensor(v) and v.numel() == p.numel()
    )
    return state / sum(p.numel() * p.element_size() for p in params)


def table(rows: list[Row], n: int) -> str:
    by = {r.name: r for r in rows}
    adamw = by["torch AdamW (fused)"].ms
    lion = by["lion-pytorch Lion"].ms
    copy = by["copy_ (bandwidth reference)"]
    copy_gbs = copy.floats_moved * 4 * n / copy.ms / 1e6
    width = max(len(r.name) for r in rows)
    head = (
        f"{'optimizer':<{width}} {'ms/step':>9} {'x AdamW-fused':>14} {'x lion-pytorch':>15} "
        f"{'GB/s':>7} {'% copy':>7} {'state/param':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        gbs = r.floats_moved * 4 * n / r.ms / 1e6
        lines.append(
            f"{r.name:<{width}} {r.ms:>9.2f} {adamw / r.ms:>14.2f} {lion / r.ms:>15.2f} "
            f"{gbs:>7.1f} {100 * gbs / copy_gbs:>6.0f}% {r.state_ratio:>12.2f}"
        )
    return "\n".join(lines)


def compile_probe(device: str) -> None:
    """In this (fresh) process: first fused step on 128 tensors, then a step with a new lr."""
    from torch._dynamo.utils import counters

    dev = torch.device(device)
    shapes = [(256 + 3 * i, 257 + 2 * i) for i in range(128)]
    params = [torch.nn.Parameter(torch.randn(s, device=dev)) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    cls = compile_torch(parse(LION), class_name="Lion")
    opt = cls(params, fused=True)
    opt.fused_min_numel = 0  # type: ignore[attr-defined]
    start = time.perf_counter()
    opt.step()
    _sync(dev)
    first = time.perf_counter() - start
    graphs = counters["stats"]["unique_graphs"]
    for _ in range(3):  # let Inductor's compile workers settle (they share the CPU)
        opt.step()
    for group in opt.param_groups:
        group["lr"] *= 0.5
    start = time.perf_counter()
    opt.step()
    _sync(dev)
    second = time.perf_counter() - start
    report = {
        "first_s": first,
        "second_s": second,
        "graphs_first": graphs,
        "graphs_after_new_lr": counters["stats"]["unique_graphs"],
        "params": sum(p.numel() for p in params),
    }
    print(json.dumps(report))


def run_probe(device: str, cache: str, threads: int) -> dict[str, float]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--compile-probe",
            "--device",
            device,
            "--threads",
            str(threads),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=25_000_000, help="parameters (about)")
    parser.add_argument("--small", action="store_true", help="500K parameters: a smoke test")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--steps", type=int, default=15, help="timed rounds (one step each)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (the first compiles)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (0: torch's default); 1 is steadier"
        " on a shared machine, where waiting for a descheduled OpenMP thread distorts timings",
    )
    parser.add_argument("--no-compile-probe", action="store_true", help="skip the 128-tensor probe")
    parser.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile_probe:
        compile_probe(args.device)
        return
    size = 500_000 if args.small else args.size
    device = torch.device(args.device)
    shapes = model_shapes(size)
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(s, generator=gen).to(device) for s in shapes]
    grads = [torch.randn(s, generator=gen).to(device) for s in shapes]
    n = sum(b.numel() for b in base)
    print(
        f"{n / 1e6:.1f}M float32 parameters in {len(shapes)} tensors on {device}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    from lion_pytorch import Lion as LucidrainsLion

    Lion = compile_torch(parse(LION), class_name="Lion")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    AdamW = compile_torch(parse_file(os.path.join(root, "corpus", "adamw.py")))
    Adam = compile_torch(parse_file(os.path.join(root, "corpus", "adam.py")))
    candidates: list[tuple[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer], int]]
    candidates = [
        ("torch AdamW (foreach)", lambda p: torch.optim.AdamW(p, lr=1e-3, foreach=True), 7),
        ("torch AdamW (fused)", lambda p: torch.optim.AdamW(p, lr=1e-3, fused=True), 7),
        ("emitted AdamW (fused)", lambda p: AdamW(p, lr=1e-3, fused=True), 7),
        ("torch Adam (fused)", lambda p: torch.optim.Adam(p, lr=1e-3, fused=True), 7),
        ("emitted Adam (fused)", lambda p: Adam(p, lr=1e-3, fused=True), 7),
        ("lion-pytorch Lion", lambda p: LucidrainsLion(p, **HYPERS), 5),
        ("emitted Lion (single-tensor)", lambda p: Lion(p, foreach=False, **HYPERS), 5),
        ("emitted Lion (foreach)", lambda p: Lion(p, foreach=True, **HYPERS), 5),
        ("emitted Lion (fused)", lambda p: Lion(p, fused=True, **HYPERS), 5),
        (
            "emitted Lion (fused, bf16 state)",
            lambda p: Lion(p, fused=True, state_dtype=torch.bfloat16, **HYPERS),
            4,
        ),
        ("emitted Lion (single-tensor, flat)", lambda p: Lion(p, flat=True, **HYPERS), 5),
        ("emitted Lion (fused, flat)", lambda p: Lion(p, fused=True, flat=True, **HYPERS), 5),
        (
            "emitted Lion (fused, flat, bf16 state)",
            lambda p: Lion(p, fused=True, flat=True, state_dtype=torch.bfloat16, **HYPERS),
            4,
        ),
    ]
    start = time.perf_counter()
    steps: dict[str, Callable[[], object]] = {}
    ratios: dict[str, float] = {}
    for name, make, _ in candidates:
        params = [torch.nn.Parameter(b.clone()) for b in base]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt = make(params)
        opt.step()  # the first step allocates the state (and compiles, for the fused rows)
        steps[name] = opt.step
        ratios[name] = state_ratio(opt, params)
    src = torch.randn(n, device=device)
    dst = torch.randn(n, device=device)  # touched, so its pages exist before timing
    steps["copy_ (bandwidth reference)"] = lambda: dst.copy_(src)
    ms = interleaved_ms(steps, device, args.steps, args.warmup)
    rows = [Row("copy_ (bandwidth reference)", ms["copy_ (bandwidth reference)"], 2, 0.0)]
    rows += [Row(name, ms[name], floats, ratios[name]) for name, _, floats in candidates]
    print(table(rows, n))
    print(
        f"({args.steps} rounds, medians; {time.perf_counter() - start:.0f} s in all. The bf16-state"
        " row moves 4 floats' worth of bytes per parameter: w and g in float32, m in bfloat16.)"
    )
    if args.no_compile_probe:
        return
    with tempfile.TemporaryDirectory() as cache:
        cold = run_probe(args.device, cache, args.threads)
        warm = run_probe(args.device, cache, args.threads)
    for label, r in (("cold Inductor cache", cold), ("warm Inductor cache", warm)):
        print(
            f"compiled path, 128 tensors ({r['params'] / 1e6:.1f}M), {label}: first step "
            f"{r['first_s']:.1f} s ({int(r['graphs_first'])} graph), step with a new lr "
            f"{r['second_s'] * 1e3:.1f} ms ({int(r['graphs_after_new_lr'])} graph in all)"
        )


if __name__ == "__main__":
    main()
