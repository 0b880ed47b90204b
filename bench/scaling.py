"""Benchmark: how each command's time grows with program size (issue 14, item 5).

Random valid programs of 10 to 3,000 statements (a fixed seed): each statement assigns one of a
few variables and states from an element-wise op over recently assigned values, so that most
statements are live and values chain through the program, with some dead code among them. Each
command runs in-process through the CLI's ``main`` (output discarded), on the same file:

- ``check``, ``hash``, ``emit`` (to a temporary file): the commands themselves;
- ``dce``: dead-code elimination with its reasons (``eliminate_dead_code``);
- ``simplify``: the whole command (its passes, the numeric and the equivalence checks), under
  its default ``--time-limit`` (60 s);
- ``equiv``: the program against the simplified one.

Columns are seconds (wall clock, one run each: on a shared machine, read the ratios). The last
row, ``slope``, is the growth exponent between the two largest sizes (``log(t2/t1) /
log(n2/n1)``: 1 is linear). A parse anchor (``parse`` column) is measured in the same run.

Run: ``python bench/scaling.py [--sizes 10,30,100,300,1000,3000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simplifier.cli import main
from simplifier.parse import parse_file
from simplifier.passes.dce import eliminate_dead_code

UNARY = ("sign", "abs", "sqrt", "exp", "cosh", "arcsinh", "tanh", "square")
BINARY = ("+", "-", "*", "/")
STATES = ("m", "v", "s")


def program_text(n: int, rng: random.Random) -> str:
    """A random valid program of ``n`` statements (see the module docstring)."""
    recent = ["g", "w"]
    names = ["a", "b", "c", "d", "e", "m", "v", "s"]
    lines = []
    for i in range(n):
        x = rng.choice(recent[-6:])
        y = rng.choice(recent[-6:])
        k = rng.choice(("0.9", "0.999", "2", "0.5", "1e-3"))
        shape = rng.random()
        if shape < 0.3:
            expr = f"interp({x}, {y}, {k})"
        elif shape < 0.5:
            expr = f"{rng.choice(UNARY)}({x})"
        elif shape < 0.8:
            expr = f"{x} {rng.choice(BINARY)} {y}"
        else:
            expr = f"{x} * {k}"
        target = names[i % len(names)] if rng.random() < 0.9 else rng.choice(STATES)
        lines.append(f"  {target} = {expr}")
        recent.append(target)
    update = recent[-1]
    body = "\n".join(lines)
    states = ", ".join(STATES)
    return f"def f(w, g, {states}, lr):\n{body}\n  return {update} * lr, {states}\n"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        fn()
    return time.perf_counter() - start


def measure(n: int, rng: random.Random, tmp: Path) -> dict[str, float]:
    src = tmp / f"p{n}.py"
    src.write_text(program_text(n, rng), encoding="utf-8")
    simplified = tmp / f"p{n}_simplified.py"
    out = tmp / f"p{n}_optim.py"
    row = {"parse": timed(lambda: parse_file(str(src)))}
    codes: list[int] = []
    row["check"] = timed(lambda: codes.append(main(["check", str(src)])))
    assert codes == [0], f"the generated program of {n} statements is invalid"
    program = parse_file(str(src))
    row["dce"] = timed(lambda: eliminate_dead_code(program))
    row["hash"] = timed(lambda: main(["hash", str(src)]))
    argv = ["simplify", str(src), "-o", str(simplified), "--force", "--accept-unchecked"]
    row["simplify"] = timed(lambda: main(argv))
    if not simplified.exists():  # the check disagreed: compare with the input itself
        simplified.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    row["equiv"] = timed(lambda: main(["equiv", str(src), str(simplified), "--reals"]))
    row["emit"] = timed(lambda: main(["emit", str(src), "-o", str(out), "--force"]))
    return row


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,30,100,300,1000,3000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    columns = ("parse", "check", "dce", "hash", "simplify", "equiv", "emit")
    header = f"{'statements':>10}" + "".join(f"{c:>10}" for c in columns)
    print(header)
    print("-" * len(header))
    rows: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            rows[n] = measure(n, random.Random(args.seed * 100_003 + n), Path(tmp))
            print(f"{n:>10}" + "".join(f"{rows[n][c]:>10.3f}" for c in columns), flush=True)
    if len(sizes) >= 2:
        n1, n2 = sizes[-2], sizes[-1]
        slopes = [
            math.log(max(rows[n2][c], 1e-6) / max(rows[n1][c], 1e-6)) / math.log(n2 / n1)
            for c in columns
        ]
        print("-" * len(header))
        print(f"{'slope':>10}" + "".join(f"{s:>10.2f}" for s in slopes))


if __name__ == "__main__":
    main_()
