"""Benchmark: ``simplify`` on every corpus program, in-process, SymPy import excluded.

Targets (issue 4): every corpus program under 1 s, Program 4 under 0.3 s. Columns, in ms:

- ``parse``: parsing the file (an anchor measured in the same run);
- ``cold``: the pipeline (DCE, rules, SymPy folding, reconstruction, DCE) right after SymPy's
  cache is cleared: the time a first ``simplifier simplify`` call pays;
- ``warm``: the pipeline's median over ``--repeat`` runs;
- ``checked``: the pipeline plus its checks (equivalence checker when present, and the
  8-step numeric comparison), median: what the command does;
- ``x parse``: cold / parse, the ratio against the anchor;
- ``target``: whether ``checked`` and ``cold`` are both under the target.

A second anchor line times SymPy's general ``simplify()`` on Program 4's update expression,
the call the pipeline avoids. Timings on a shared machine are noisy: compare ratios.

Run: ``python bench/simplify.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
TARGETS = {"program4": 0.3, "program4_raw": 0.3}
DEFAULT_TARGET = 1.0


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import sympy  # excluded from every timing
    from sympy.core.cache import clear_cache

    from simplifier.parse import parse_file
    from simplifier.simplify import simplify
    from simplifier.symbolic.translate import translate

    parse_file(str(CORPUS / "sgd.py"))  # build the Lark parser once (excluded)
    simplify(parse_file(str(CORPUS / "sgd.py")))  # import the pipeline's modules (excluded)

    header = (
        f"{'program':<16}{'parse':>8}{'cold':>9}{'warm':>9}{'checked':>9}{'x parse':>9}  target"
    )
    print(header)
    print("-" * len(header))
    failed = []
    for path in sorted(CORPUS.glob("*.py")):
        parse_s = statistics.median(timed(partial(parse_file, str(path))) for _ in range(3))
        program = parse_file(str(path))
        pipeline = partial(simplify, program, check=False)
        clear_cache()
        cold = timed(pipeline)
        warm = statistics.median(timed(pipeline) for _ in range(args.repeat))
        checked = statistics.median(timed(partial(simplify, program)) for _ in range(args.repeat))
        target = TARGETS.get(path.stem, DEFAULT_TARGET)
        ok = max(cold, checked) < target
        if not ok:
            failed.append(path.stem)
        verdict = "ok" if ok else "MISSED"
        print(
            f"{path.stem:<16}{parse_s * 1e3:>8.1f}{cold * 1e3:>9.1f}{warm * 1e3:>9.1f}"
            f"{checked * 1e3:>9.1f}{cold / parse_s:>9.1f}  < {target:g} s {verdict}"
        )
    update = translate(parse_file(str(CORPUS / "program4.py"))).update
    clear_cache()
    general = timed(lambda: sympy.simplify(update))
    print("-" * len(header))
    print(f"anchor: sympy.simplify() of Program 4's update alone, cold: {general * 1e3:.1f} ms")
    print("all targets met" if not failed else f"targets missed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
