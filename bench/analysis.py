"""Benchmark: analyses on a search-like stream of programs (issue 3).

Generates a stream of programs the way the Lion paper's evolutionary search does: start from the
corpus programs (padded with random statements to 20-30 statements, like the paper's raw
programs), then repeatedly take a parent from an aging population and apply one mutation:
insert a random statement, delete one, or change one argument (to another variable, a new
N(0, 1) constant, or an existing constant times 2^N(0, 1)). Mutants that are not valid programs
(read before assignment, type errors; decided by ``verify`` and ``infer_types``) are retried.

It reports programs per second for (a) parsing the program text, (b) types + liveness +
structural hash on the IR, (c) the numeric fingerprint, with anchors measured in the same run,
and the cache hit rate each hash gives on the stream (the paper reports about 89% with its own
hash, on a stream with selection by fitness, which this stream does not have).

    python bench/analysis.py [--programs 10000] [--seed 0] [--profile]

Timings are the CPU time of this single-threaded process (``time.process_time``, best of
``--repeat`` runs), so that other processes on a shared machine disturb them less than they
would disturb wall-clock time; ``--wall`` measures wall-clock time instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from simplifier.analysis.fingerprint import fingerprint
from simplifier.analysis.hashing import DigestCache, structural_hash
from simplifier.analysis.liveness import live_values
from simplifier.analysis.types import infer_types
from simplifier.errors import ProgramError
from simplifier.ir import Const, IRError, Param, Program, Ref, Role, Stmt, dag
from simplifier.ops import OPS
from simplifier.parse import parse, parse_file
from simplifier.printer import to_text

ROOT = Path(__file__).resolve().parent.parent
Arg = str | Fraction
Flat = tuple[tuple[str, str, tuple[Arg, ...]], ...]  # (var, op, args): one op per statement


# -- programs as flat statement lists (the search space's view) ---------------------------------
class Genome:
    """A program as the search mutates it: params, statements ``var = op(args)``, return names."""

    def __init__(self, name: str, params: tuple[Param, ...], body: Flat, returns: tuple[str, ...]):
        self.name, self.params, self.body, self.returns = name, params, body, returns

    @staticmethod
    def of(program: Program) -> Genome:
        names = {p.name: p.name for p in program.params}
        body = []
        temps = 0
        for s in program.body:
            var = s.var
            if var is None:
                temps += 1
                var = f"t{temps}"
            names[s.target] = var
            args = tuple(a.value if isinstance(a, Const) else names[a.name] for a in s.args)
            body.append((var, s.op, args))
        returns = []
        for a in program.outputs:
            if isinstance(a, Const):  # a constant update: give it a name
                temps += 1
                body.append((f"t{temps}", "add", (a.value, Fraction(0))))
                returns.append(f"t{temps}")
            else:
                returns.append(names[a.name])
        return Genome(program.name, program.params, tuple(body), tuple(returns))

    def build(self) -> Program:
        """The SSA program, checked by ``verify`` and ``infer_types``; raises if invalid."""
        current = {p.name: p.name for p in self.params}
        count: dict[str, int] = {}
        body = []
        for var, op, args in self.body:
            atoms = tuple(Const(a) if isinstance(a, Fraction) else Ref(current[a]) for a in args)
            k = count[var] = count.get(var, 0) + 1
            target = f"{var}.{k}"
            body.append(Stmt(target, op, atoms, var))
            current[var] = target
        outputs = tuple(Ref(current[n]) for n in self.returns)
        program = Program(self.name, self.params, tuple(body), outputs)
        program.verify()
        infer_types(program)
        return program

    def available(self, i: int) -> list[str]:
        """Names readable before statement ``i``."""
        return [p.name for p in self.params] + sorted({v for v, _, _ in self.body[:i]})


class Mutator:
    """The paper's three mutations, on random positions, with a seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ops = sorted(OPS)

    def constant(self, existing: Sequence[Fraction]) -> Fraction:
        rng = self.rng
        if existing and rng.random() < 0.5:
            x = float(rng.choice(existing)) * 2.0 ** rng.gauss(0.0, 1.0)
        else:
            x = rng.gauss(0.0, 1.0)
        return Fraction(Decimal(f"{x:.4g}"))

    def arg(self, g: Genome, i: int, current: Arg | None = None) -> Arg:
        if self.rng.random() < 0.2:
            consts = [a for _, _, args in g.body for a in args if isinstance(a, Fraction)]
            return self.constant(consts)
        names = [n for n in g.available(i) if n != current]
        return self.rng.choice(names)

    def insert(self, g: Genome) -> Genome:
        rng = self.rng
        i = rng.randint(0, len(g.body))
        states = [p.name for p in g.params if p.role is Role.STATE]
        existing = sorted({v for v, _, _ in g.body} | set(states))
        var = rng.choice(existing) if existing and rng.random() < 0.6 else f"n{rng.randrange(99)}"
        op = rng.choice(self.ops)
        args = tuple(self.arg(g, i) for _ in range(OPS[op].arity))
        return Genome(g.name, g.params, (*g.body[:i], (var, op, args), *g.body[i:]), g.returns)

    def delete(self, g: Genome) -> Genome:
        i = self.rng.randrange(len(g.body))
        return Genome(g.name, g.params, g.body[:i] + g.body[i + 1 :], g.returns)

    def change(self, g: Genome) -> Genome:
        rng = self.rng
        candidates = [i for i, (_, _, args) in enumerate(g.body) if args]
        i = rng.choice(candidates)
        var, op, args = g.body[i]
        k = rng.randrange(len(args))
        args = (*args[:k], self.arg(g, i, args[k]), *args[k + 1 :])
        return Genome(g.name, g.params, (*g.body[:i], (var, op, args), *g.body[i + 1 :]), g.returns)

    def mutate(self, g: Genome, lo: int = 20, hi: int = 30) -> tuple[Genome, Program]:
        """A valid mutant of ``g`` whose length stays within [lo, hi]."""
        while True:
            n = len(g.body)
            kinds: list[Callable[[Genome], Genome]] = []
            if any(args for _, _, args in g.body):  # something to change
                kinds.append(self.change)
            if n < hi:
                kinds.append(self.insert)
            if n > lo:
                kinds.append(self.delete)
            child = self.rng.choice(kinds)(g)
            try:
                return child, child.build()
            except (KeyError, ProgramError, IRError):
                continue


def stream(n: int, seed: int) -> tuple[list[Program], list[str]]:
    """``n`` programs (and their texts) from the search-like process described above."""
    rng = random.Random(seed)
    mutator = Mutator(rng)
    corpus = [Genome.of(parse_file(str(p))) for p in sorted((ROOT / "corpus").glob("*.py"))]
    population: deque[Genome] = deque(maxlen=100)
    for g in corpus:  # pad each corpus program to a raw-looking 20-30 statements
        target = rng.randint(20, 30)
        while len(g.body) < target:
            g, _ = mutator.mutate(g, lo=0, hi=target)
        population.append(g)
    programs: list[Program] = []
    while len(programs) < n:
        parent = rng.choice(population)  # no fitness here: a tournament would be uniform
        child, program = mutator.mutate(parent)
        population.append(child)
        programs.append(program)
    return programs, [to_text(p) for p in programs]


# -- measurements --------------------------------------------------------------------------------
CLOCK = time.process_time


def rate(fn: Callable[[Any], object], items: Sequence[Any], repeat: int) -> float:
    """Items per second, best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        t = CLOCK()
        for x in items:
            fn(x)
        best = min(best, CLOCK() - t)
    return len(items) / best


# The stream's digest cache, owned by this benchmark as a search would own one for its stream.
CACHE = DigestCache()


def analyse(p: Program) -> str:
    """(b): types, liveness across steps, structural hash, each computed once."""
    infer_types(p)
    return structural_hash(p, live=live_values(p), cache=CACHE)


def within_step_hash(p: Program) -> str:
    """The structural hash with liveness of one call only (what the paper's released code has)."""
    return structural_hash(p, live=live_values(p, across_steps=False), cache=CACHE)


def hit_rate(keys: Sequence[object]) -> float:
    seen: set[object] = set()
    hits = 0
    for k in keys:
        hits += k in seen
        seen.add(k)
    return hits / len(keys)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--programs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fingerprints", type=int, default=2_000, help="programs timed for (c)")
    ap.add_argument("--parses", type=int, default=2_000, help="programs timed for (a)")
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    ap.add_argument("--profile", action="store_true", help="profile (b) and print the top")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.wall else time.process_time

    t = time.perf_counter()
    programs, texts = stream(args.programs, args.seed)
    sizes = sorted(len({s.loc.line if s.loc else s.target for s in p.body}) for p in programs)
    print(
        f"stream: {len(programs)} programs in {time.perf_counter() - t:.1f}s; statements per "
        f"program: min {sizes[0]}, median {sizes[len(sizes) // 2]}, max {sizes[-1]}"
    )
    assert parse(texts[0]) == programs[0], "the printed text must parse back to the program"

    def no_cache(p: Program) -> str:
        _clear_caches()
        return analyse(p)

    _clear_caches()
    cold = rate(analyse, programs, 1)  # first pass over the stream: sub-expression cache cold
    rows: list[tuple[str, float]] = [
        ("anchor: Program.verify()", rate(Program.verify, programs, args.repeat)),
        ("anchor: ir.dag() (interned DAG)", rate(dag, programs, args.repeat)),
        ("(a) parse text -> IR", rate(parse, texts[: args.parses], 1)),
        ("    infer_types", rate(infer_types, programs, args.repeat)),
        ("    live_values (across steps)", rate(live_values, programs, args.repeat)),
        (
            "    live_values + structural_hash",
            rate(
                lambda p: structural_hash(p, live=live_values(p), cache=CACHE),
                programs,
                args.repeat,
            ),
        ),
        ("(b) ... caches emptied before each program", rate(no_cache, programs, 1)),
        ("(b) ... first pass, caches empty at start", cold),
        ("(b) types + liveness + hash", rate(analyse, programs, args.repeat)),
        ("(c) fingerprint", rate(fingerprint, programs[: args.fingerprints], 1)),
    ]
    anchor = rows[0][1]
    clock = "wall-clock" if args.wall else "CPU"
    print(f"\n{'measure (' + clock + ' time)':<42} {'programs/s':>12} {'vs verify':>10}")
    for name, r in rows:
        print(f"{name:<42} {r:>12,.0f} {r / anchor:>10.2f}")
    b = rows[-2][1]
    verdict = "met" if b >= 20_000 else "NOT met"
    print(f"\ntarget (b) >= 20,000 programs/s: {verdict} ({b:,.0f})")

    keys = {
        "exact text": texts,
        "structural, liveness within a step only": [within_step_hash(p) for p in programs],
        "structural (liveness across steps)": [structural_hash(p, cache=CACHE) for p in programs],
        "numeric fingerprint": [fingerprint(p) for p in programs],
    }
    print(f"\n{'cache key':<42} {'hit rate':>9}")
    for name, ks in keys.items():
        print(f"{name:<42} {hit_rate(ks):>9.1%}")
    extra = _only_second(keys["structural (liveness across steps)"], keys["numeric fingerprint"])
    print(f"{'fingerprint hits the structural hash misses':<42} {extra:>9.1%}")

    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [analyse(p) for p in programs])
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(12)
    return 0


def _clear_caches() -> None:
    CACHE.clear()


def _only_second(first: Sequence[str], second: Sequence[str]) -> float:
    """Share of the stream that hits with ``second`` but not with ``first`` (algebraic twins)."""
    a_seen: set[str] = set()
    b_seen: set[str] = set()
    hits = 0
    for a, b in zip(first, second, strict=True):
        hits += a not in a_seen and b in b_seen
        a_seen.add(a)
        b_seen.add(b)
    return hits / len(first)


if __name__ == "__main__":
    sys.exit(main())
