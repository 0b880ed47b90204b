"""A program search from AdamW, in Python: evolve, compare with the baselines, simplify, train.

:func:`simplifier.search` runs the Lion paper's regularized evolution from Program 3 (AdamW) with
the hyperparameter-tuning and random-search baselines at the same number of evaluations, picks the
winner by the meta-validation task, and simplifies it; this script prints that report, emits the
simplified winner as a ``torch.optim.Optimizer`` and trains the example MLP of
``program4_to_lion.py`` with it next to ``torch.optim.AdamW``::

    python examples/search_from_adamw.py                                  # --budget small: minutes
    python examples/search_from_adamw.py --budget tiny --evaluations 8    # seconds (CI)

Everything the search writes (``search.json``, ``history.jsonl``, ``best.py``, the plots) goes to
``--out`` (default ``search-out``; an existing folder of another search is refused: ``--force``).
"""

from __future__ import annotations

import argparse
import sys

from program4_to_lion import train  # the same MLP and loop as the Program 4 example

import simplifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", choices=("tiny", "small", "full"), default="small")
    parser.add_argument("--evaluations", type=int, default=None, help="per run")
    parser.add_argument("--restarts", type=int, default=1, help="runs per algorithm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="search-out")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--train-steps", type=int, default=300, help="MLP training steps")
    args = parser.parse_args(argv)

    report = simplifier.search(
        budget=args.budget,
        evaluations=args.evaluations,
        restarts=args.restarts,
        seed=args.seed,
        baselines=("hypers", "random"),
        out=args.out,
        force=args.force,
        plots=False,
    )
    print(report.text().rstrip())

    Found = simplifier.compile_torch(report.best_simplified, class_name="Found")
    every = max(1, args.train_steps // 5)
    adamw = train(None, args.train_steps, every, lr=1e-3, weight_decay=0.01)
    found = train(Found, args.train_steps, every)  # the program's own lr and constants
    print("\nfull-batch MSE while training the MLP:")
    print(f"  {'step':>6}  {'AdamW':>10}  {'found':>10}")
    for (step, a), (_, b) in zip(adamw, found, strict=True):
        print(f"  {step:>6}  {a:>10.4f}  {b:>10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
