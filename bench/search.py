"""Benchmark: the search's proposal and evaluation throughput (issue 17), anchors in the same run.

1. **Proposals from the IR**: a regularized-evolution stream from AdamW (Program 3): pick a
   parent from an aging population, :meth:`Mutator.propose` (mutate until valid and
   hash-distinct), DCE (the live set and the pruned body, counted), structural hash, and a
   fitness-cache lookup. Anchors on the same children: the *analysis-only* rate (what checking
   a child from scratch costs: ``Program.verify`` + ``infer_types`` + ``live_values`` +
   ``structural_hash``) and *propose + full re-check* (the mutator with that check added, as a
   mutator that re-verifies would be). CPU time of this process (``time.process_time``), best of
   ``--repeat``.
2. **Evaluation**: the children of one round (``--children`` programs x the small budget's 3 lr
   multipliers x 2 seeds) trained in one :class:`~simplifier.executor.LocalExecutor` call
   versus one call per child; the fitnesses must agree. Wall-clock time.
3. **Threads by batch size**: replica-steps per second with 1 and 2 torch threads at several
   batch sizes, the load average at the time, and whether the two gave bitwise equal losses.
4. **Backends** (``--ray``): the same round through the local executor (1 thread, the anchor)
   and a :class:`~simplifier.distributed.RayExecutor` on a local Ray instance at 1 and 2 workers
   (warm workers: the first call is not timed); evaluations per second, the ratio, whether the
   answers are the local ones, and Ray's start-up seconds (paid once per search).

    python bench/search.py [--proposals 20000] [--children 16] [--steps 50] [--device cpu] [--ray]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from simplifier.ablation.engine import Replica, train
from simplifier.ablation.tasks import Budget, get_task
from simplifier.analysis.hashing import structural_hash
from simplifier.analysis.liveness import live_values
from simplifier.analysis.types import infer_types
from simplifier.executor import EvalRequest, EvalResult, LocalExecutor
from simplifier.parse import parse_file
from simplifier.passes.dce import prune
from simplifier.search.cache import Entry, FitnessCache
from simplifier.search.mutate import Genome, Mutator

ROOT = Path(__file__).resolve().parent.parent


def stream(n: int, seed: int, population: int = 100) -> list[Genome]:
    """``n`` children of an aging population from AdamW (the proposals measured below)."""
    rng = random.Random(seed)
    mutator = Mutator()
    pop: deque[Genome] = deque([Genome.of(parse_file(str(ROOT / "corpus/program3_adamw.py")))])
    out = []
    while len(out) < n:
        parent = pop[int(rng.random() * len(pop))]
        p = mutator.propose(parent, rng)
        if p is None:
            continue
        out.append(p.genome)
        pop.append(p.genome)
        if len(pop) > population:
            pop.popleft()
    return out


SEEN = Entry(0.0, 1.0, None, 0)  # a stand-in fitness: the bench counts hits, it trains nothing


def proposals(n: int, seed: int, start: list[Genome], check: bool) -> tuple[int, int]:
    """Propose ``n`` children (aging population seeded by ``start``); returns (hits, redundant)."""
    rng = random.Random(seed)
    mutator = Mutator()
    cache = FitnessCache(100_000)
    pop = deque(start)
    hits = redundant = 0
    for _ in range(n):
        parent = pop[int(rng.random() * len(pop))]
        p = mutator.propose(parent, rng)
        if p is None:
            continue
        g = p.genome
        if check:  # what a mutator that re-verifies every child would add
            g.program.verify()
            infer_types(g.program)
        used = g.live[0]
        body = tuple(s for s in g.program.body if s.target in used)  # DCE: the pruned body
        redundant += len(g.program.body) - len(body)
        if cache.by_hash.get(g.digest) is not None:
            hits += 1
        else:
            cache.by_hash.put(g.digest, SEEN)
        pop.append(g)
        pop.popleft()
    return hits, redundant


def analysis_only(children: list[Genome]) -> None:
    for g in children:
        p = g.program
        p.verify()
        infer_types(p)
        live = live_values(p)
        structural_hash(p, live=live)


def best_cpu(f, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.process_time()
        f()
        times.append(time.process_time() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proposals", type=int, default=20000)
    ap.add_argument("--children", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-threads", action="store_true")
    ap.add_argument("--ray", action="store_true", help="also time the round on Ray (1, 2 workers)")
    args = ap.parse_args(argv)
    n = args.proposals

    # 1. proposals ------------------------------------------------------------------------
    warm = stream(2000, args.seed)  # a population that has drifted from AdamW
    start = warm[-100:]
    children = stream(n, args.seed + 1)
    t_prop = best_cpu(lambda: proposals(n, args.seed, start, check=False), args.repeat)
    t_check = best_cpu(lambda: proposals(n, args.seed, start, check=True), args.repeat)
    t_anal = best_cpu(lambda: analysis_only(children), args.repeat)
    hits, redundant = proposals(n, args.seed, start, check=False)
    stmts = sum(len(g.program.body) for g in children)
    print(f"proposals from the IR ({n} children of an aging population of 100, from AdamW)")
    print(f"{'':44}{'per second':>12}{'ratio':>8}")
    rows = [
        ("propose + DCE + hash + cache lookup", n / t_prop),
        ("propose + full re-check (verify, types)", n / t_check),
        ("analysis only (verify+types+live+hash)", n / t_anal),
    ]
    for name, rate in rows:
        print(f"  {name:42}{rate:12,.0f}{rate / rows[0][1]:8.2f}")
    print(
        f"  stream: {hits / n:.1%} structural-hash cache hits (no selection), "
        f"{redundant / max(1, stmts):.0%} redundant statements, cpu {os.cpu_count()} cores"
    )

    # 2. batched evaluation -----------------------------------------------------------------
    task = "mlp"
    budget = Budget("bench", args.steps, 2, (0.5, 1.0, 2.0), (1.0,))
    progs = [prune(g.program) for g in children[:: max(1, n // args.children)][: args.children]]
    reqs = [
        EvalRequest(p, task, budget, (0, 1), (0.5, 1.0, 2.0), args.device, key=str(i))
        for i, p in enumerate(progs)
    ]
    ex = LocalExecutor(threads=1)
    ex.evaluate(reqs[:1])  # data, first-call costs
    t = time.perf_counter()
    batched = ex.evaluate(reqs)
    t_batch = time.perf_counter() - t
    t = time.perf_counter()
    single = [ex.evaluate([r])[0] for r in reqs]
    t_single = time.perf_counter() - t
    reps = sum(r.replicas for r in reqs) * args.steps
    diffs = [
        abs(a.loss - b.loss) / abs(b.loss)
        for a, b in zip(batched, single, strict=True)
        if np.isfinite(a.loss) and np.isfinite(b.loss)
    ]
    agree = sum(a.ok == b.ok for a, b in zip(batched, single, strict=True))
    print(
        f"\nevaluation: {len(reqs)} children x 6 replicas x {args.steps} steps, "
        f"{args.device}, 1 thread"
    )
    print(f"  batched (one executor call)   {reps / t_batch:10,.0f} replica-steps/s")
    print(f"  one call per child            {reps / t_single:10,.0f} replica-steps/s")
    print(f"  ratio batched / one at a time {t_single / t_batch:10.2f}x")
    print(
        f"  fitness agreement: {agree}/{len(reqs)} same failed/ok, max relative difference "
        f"{max(diffs, default=0.0):.1e}"
    )

    if args.ray:
        backends(reqs, ex, args.repeat)

    # 3. threads by batch size --------------------------------------------------------------
    if args.skip_threads or args.device != "cpu":
        return 0
    program = parse_file(str(ROOT / "corpus/program3_adamw.py"))
    t_obj = get_task(task)
    b = Budget("threads", 20, 1, (1.0,), (1.0,))
    print(f"\nthreads: replica-steps/s by batch size (load average {os.getloadavg()[0]:.1f})")
    print(f"  {'replicas':>8}{'1 thread':>12}{'2 threads':>12}{'2/1':>7}  bitwise equal")
    for r in (8, 32, 64, 128, 256):
        replicas = [Replica(0, 2.0 ** (i % 5 - 2), i % 4) for i in range(r)]
        rates, losses = [], []
        for threads in (1, 2):
            best = 0.0
            for _ in range(2):
                res = train([program], replicas, t_obj, b, cpu_threads=threads)
                best = max(best, res.replica_steps / res.seconds)
            rates.append(best)
            losses.append(res.loss)
        equal = bool(np.array_equal(losses[0], losses[1]))
        print(f"  {r:8}{rates[0]:12,.0f}{rates[1]:12,.0f}{rates[1] / rates[0]:7.2f}  {equal}")
    return 0


def backends(reqs: list[EvalRequest], local: LocalExecutor, repeat: int) -> None:
    """The round on the local executor and on Ray at 1 and 2 workers (best of ``repeat``)."""
    import ray
    from distributed import answers, best_time  # bench/distributed.py's timing and answers

    from simplifier.distributed import RayExecutor

    def timed(ex: LocalExecutor | RayExecutor) -> tuple[float, list[object]]:
        results: list[list[EvalResult]] = []
        best = best_time(lambda: results.append(ex.evaluate(reqs)), repeat)
        return best, answers(results[-1])

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - t0
    anchor, expected = timed(local)
    rows = [("local, 1 thread (anchor)", anchor, True)]
    for workers in (1, 2):
        with RayExecutor(workers=workers, min_task_steps=1) as rex:
            rex.evaluate(reqs)  # warm the workers (torch import, task data)
            t, got = timed(rex)
        rows.append((f"ray, {workers} worker(s)", t, got == expected))
    ray.shutdown()
    print(f"\nbackends: the round of {len(reqs)} children (load average {os.getloadavg()[0]:.1f})")
    print(f"  {'':28}{'seconds':>9}{'evals/s':>9}{'ratio':>7}  same answers")
    for name, t, same in rows:
        print(f"  {name:28}{t:9.2f}{len(reqs) / t:9.2f}{anchor / t:7.2f}  {same}")
    print(f"  ray.init of a local instance: {started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
