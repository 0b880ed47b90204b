"""Benchmark: programs per second for parse + verify (the front end of every command).

Workloads: the corpus, 1,000 random 30-statement programs from a seeded RNG
(:func:`simplifier.testing.random_program`), and one 20,000-statement program. The anchor is
Python's own ``ast.parse`` on the same texts (the programs are valid Python), measured in the
same run; the ratio says how many times slower our front end is than CPython's C parser.

    python bench/parse.py [--repeat 3] [--seed 0] [--random 1000]
"""

from __future__ import annotations

import argparse
import ast
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from simplifier.parse import parse
from simplifier.testing import random_program

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def parse_and_verify(text: str) -> int:
    """Parse (lowering and type checking included), then check the IR invariants."""
    program = parse(text)
    program.verify()
    return len(program.body)


def python_ast(text: str) -> int:
    return len(ast.parse(text).body)


@dataclass(frozen=True)
class Row:
    workload: str
    programs: int
    statements: int  # SSA statements in all programs of the workload
    ours: float  # best wall time over the repeats, seconds
    anchor: float


def best_time(fn: Callable[[str], int], texts: Sequence[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - start)
    return best


def measure(name: str, texts: Sequence[str], repeat: int) -> Row:
    statements = sum(parse_and_verify(t) for t in texts)  # warm-up, and every text is valid
    ours = best_time(parse_and_verify, texts, repeat)
    anchor = best_time(python_ast, texts, repeat)
    return Row(name, len(texts), statements, ours, anchor)


def long_program(n: int) -> str:
    body = ["  m = interp(g, m, 0.9)"]
    body += [f"  x{i} = tanh(x{i - 1}) * 0.5 + m" if i else "  x0 = m * 2" for i in range(n - 2)]
    body.append(f"  update = sign(x{n - 3}) * lr")
    return "def train(w, g, m, lr):\n" + "\n".join(body) + "\n  return update, m\n"


def table(rows: Sequence[Row]) -> str:
    head = (
        f"{'workload':<34} {'programs':>8} {'stmts':>7} {'parse+verify':>14} "
        f"{'ast.parse':>12} {'ratio':>7} {'ours, s':>9}"
    )
    lines = [head, f"{'':<34} {'':>8} {'':>7} {'programs/s':>14} {'programs/s':>12}"]
    lines.append("-" * len(head))
    for r in rows:
        lines.append(
            f"{r.workload:<34} {r.programs:>8} {r.statements:>7} {r.programs / r.ours:>14,.1f} "
            f"{r.programs / r.anchor:>12,.1f} {r.ours / r.anchor:>6.1f}x {r.ours:>9.3f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random programs")
    ap.add_argument("--random", type=int, default=1000, help="number of random programs")
    ap.add_argument("--long", type=int, default=20_000, help="statements of the long program")
    args = ap.parse_args(argv)

    corpus = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.py"))]
    rng = random.Random(args.seed)
    randoms = [random_program(rng, statements=30) for _ in range(args.random)]
    rows = [
        measure(f"corpus ({len(corpus)} files)", corpus, args.repeat),
        measure(f"random, 30 statements (seed {args.seed})", randoms, args.repeat),
        measure(f"one program, {args.long:,} statements", [long_program(args.long)], 1),
    ]
    print(table(rows))
    print("ratio = our time / ast.parse time on the same texts (best of the repeats)")


if __name__ == "__main__":
    main()
