"""From Program 4 to a trained Lion, in Python: simplify with ablation, prove, emit, train.

Program 4 (the raw program the Lion paper's search found) is simplified with measured ablation
(``simplify(..., ablate=...)`` on the command line; here :func:`simplifier.ablate` then
:func:`simplifier.simplify`), proved equivalent to Lion with Program 4's constants, emitted as a
``torch.optim.Optimizer`` and used to train a small MLP next to ``torch.optim.AdamW``; both loss
curves are printed and, with ``--plot``, drawn::

    python examples/program4_to_lion.py --plot curves.png            # ~1 min on 2 CPU cores
    python examples/program4_to_lion.py --seeds 2 --train-steps 100  # quicker (CI)

Runs from a checkout or with the package installed (the program is the shipped corpus's).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

import simplifier


def train(
    make_optimizer: type[torch.optim.Optimizer] | None,
    steps: int,
    every: int,
    **hypers: Any,
) -> list[tuple[int, float]]:
    """Train a 2-layer MLP on a fixed synthetic regression task; the loss every ``every``
    steps. ``make_optimizer`` None means ``torch.optim.AdamW``."""
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    teacher = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    with torch.no_grad():
        y = teacher(x) + 0.05 * torch.randn(512, 1)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    cls = make_optimizer or torch.optim.AdamW
    opt = cls(model.parameters(), **hypers)
    curve = []
    for step in range(1, steps + 1):
        batch = torch.randint(0, 512, (64,))
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == 1:
            with torch.no_grad():
                curve.append((step, torch.nn.functional.mse_loss(model(x), y).item()))
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="ablation seeds (default 3)")
    parser.add_argument("--ablation-steps", type=int, default=None, help="default: 400")
    parser.add_argument("--train-steps", type=int, default=600, help="MLP training steps")
    parser.add_argument("--plot", metavar="OUT.png", help="draw both loss curves")
    args = parser.parse_args(argv)
    if args.plot:
        from simplifier.ablation.report import require_matplotlib

        require_matplotlib()  # before the minute of training

    program4 = simplifier.parse_file(str(simplifier.example_path("program4")))
    started = time.perf_counter()
    report = simplifier.ablate(
        program4, seeds=args.seeds, steps=args.ablation_steps, progress=sys.stderr.isatty()
    )
    removed = [r.statement for r in report.rows if r.decision == "removed"]
    print(f"1. ablation ({time.perf_counter() - started:.0f} s): removed {removed}")
    result = simplifier.simplify(report.program)
    lion = result.program
    print("2. simplified:\n" + simplifier.to_text(lion).rstrip())
    verdict = simplifier.equivalent(lion, simplifier.example_path("equiv/lion_scaled"))
    print(f"3. against Lion with Program 4's constants: {verdict.verdict}", end="")
    print(f" (where {' and '.join(verdict.conditions)})" if verdict.conditions else "")
    Emitted = simplifier.compile_torch(lion, class_name="EmittedLion")
    print(f"4. emitted: {Emitted.__name__}{tuple(Emitted.__init__.__defaults__ or ())[:3]}")

    every = max(1, args.train_steps // 10)
    adamw = train(None, args.train_steps, every, lr=1e-3, weight_decay=0.01)
    # Lion wants a smaller lr than AdamW (the paper: 3-10x); its lr is the group's lr.
    ours = train(Emitted, args.train_steps, every, lr=3e-4)
    print("5. full-batch MSE while training the MLP:")
    print(f"   {'step':>6}  {'AdamW':>10}  {'emitted Lion':>12}")
    for (step, a), (_, b) in zip(adamw, ours, strict=True):
        print(f"   {step:>6}  {a:>10.4f}  {b:>12.4f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
        ax.plot(*zip(*adamw, strict=True), marker="o", ms=3, label="torch.optim.AdamW (lr 1e-3)")
        ax.plot(*zip(*ours, strict=True), marker="o", ms=3, label="emitted Lion (lr 3e-4)")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("full-batch MSE (log scale)")
        ax.set_title("MLP regression: the Lion emitted from Program 4 vs AdamW", fontsize=10)
        ax.legend(frameon=False)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
