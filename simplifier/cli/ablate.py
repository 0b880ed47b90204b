"""``simplifier ablate FILE``: which live statements can go, measured by training a proxy task."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from simplifier.cli.backend import add_backend_arguments, executor_from_args
from simplifier.cli.common import (
    add_json_option,
    add_program_options,
    check_output,
    file_option,
    load,
    print_json,
    write_output,
)
from simplifier.errors import UsageError
from simplifier.ir import Program

if TYPE_CHECKING:
    from simplifier.ablation import Ablation, AblationReport
    from simplifier.simplify import SimplifyResult


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser(
        "ablate",
        help="remove the statements that training shows do not matter",
        description="Train the program (and the program without each live statement) on a "
        "built-in proxy task, at several lr multipliers and seeds, in one batched computation; "
        "remove, one per round, the statement whose removal hurts least if the loss stays "
        "within tolerance. Prints a table and the final program (see docs/ablation.md).",
    )
    p.add_argument("file", metavar="FILE")
    add_ablation_options(p)
    p.add_argument(
        "--plot", metavar="OUT.png", type=file_option, help="write a PNG plot of the table"
    )
    p.add_argument("--force", action="store_true", help="overwrite the --plot file")
    add_program_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def add_ablation_options(p: argparse._ActionsContainer) -> None:
    """The measurement options (shared with ``simplify --ablate``)."""
    p.add_argument(
        "--task",
        choices=("mlp", "lm"),
        default="mlp",
        help="proxy task: MLP classifier (default) or small transformer LM",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument(
        "--budget",
        choices=("small", "full"),
        default="small",
        help="small (default; minutes on a CPU) or full (for a GPU)",
    )
    p.add_argument(
        "--seeds",
        type=_positive,
        default=None,
        metavar="N",
        help="seeds per lr multiplier (default: the budget's, 3 for small)",
    )
    p.add_argument(
        "--steps",
        type=_positive,
        default=None,
        metavar="N",
        help="training steps per replica (default: the budget's; fewer is a quicker, "
        "less reliable look)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        metavar="REL",
        help="accept a loss increase up to this fraction of the loss (default 0.01)",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=1.0,
        metavar="K",
        help="... or up to K standard errors of the baseline, if larger (default 1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    add_backend_arguments(p)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def check_device(device: str) -> None:
    """Refuse a device that this machine does not have (a usage error, exit code 2)."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise UsageError(f"unknown device {device!r} (use cpu or cuda)")
    import torch

    if not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine")


@contextmanager
def ablation_pass(args: argparse.Namespace) -> Iterator[Ablation]:
    """The ablation pass with the command-line options (checked: a bad one is a usage error),
    on the executor ``--backend`` asks for, which is closed when the block ends. An executor's
    RuntimeError (a batch it could not train: a lost worker) is a usage error too."""
    from simplifier.ablation import Ablation, Tolerance

    if args.backend == "local" or not args.device.startswith("cuda"):  # ray: the cluster's GPUs
        check_device(args.device)
    if args.tolerance < 0 or args.noise < 0:
        raise UsageError("--tolerance and --noise must not be negative")
    executor = executor_from_args(args)
    try:
        yield Ablation(
            task=args.task,
            budget=args.budget,
            device=args.device,
            seeds=args.seeds,
            semantics=args.semantics,
            tolerance=Tolerance(rel=args.tolerance, noise=args.noise),
            steps=args.steps,
            verbose=not args.quiet,
            executor=executor,
        )
    except RuntimeError as e:
        if executor is None:
            raise
        raise UsageError(str(e)) from None
    finally:
        if executor is not None:
            executor.close()


def measure(program: Program, args: argparse.Namespace) -> AblationReport:
    """Run the ablation with the command-line options; a ValueError becomes a usage error."""
    with ablation_pass(args) as ablation:
        try:
            report = ablation.run(program).report
        except ValueError as e:
            raise UsageError(str(e)) from None
    assert report is not None
    return report


def run(args: argparse.Namespace) -> int:
    from simplifier.ablation.report import PlotUnavailable, plot_png, require_matplotlib, table

    program = load(args.file, args)
    if args.plot:
        check_output(args.plot, args.force)
        try:
            require_matplotlib()  # before minutes of training, not after
        except PlotUnavailable as e:
            raise UsageError(str(e)) from None
    report = measure(program, args)
    if args.plot:
        try:
            write_output(args.plot, plot_png(report), args.force)
        except PlotUnavailable as e:
            raise UsageError(str(e)) from None
    if args.json:
        print_json(report.as_json())
    else:
        print(table(report))
    if args.plot and not args.quiet:
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def add_simplify_options(p: argparse.ArgumentParser) -> None:
    """``--ablate`` and the measurement options, for ``simplifier simplify``."""
    group = p.add_argument_group(
        "ablation (with --ablate)",
        "dead-code removal -> ablation by training -> folding -> verification; the log marks "
        "the removals that were measured (level 'measured') apart from the exact steps",
    )
    group.add_argument(
        "--ablate",
        action="store_true",
        help="also remove live statements that training shows do not matter (slow: minutes)",
    )
    add_ablation_options(group)


def simplify_with_ablation(
    program: Program, args: argparse.Namespace
) -> tuple[SimplifyResult, AblationReport]:
    """``simplify --ablate``: the simplifier's pipeline with the ablation pass in its slot
    (DCE -> ablation -> DCE -> rules -> folding -> DCE); its checks compare the output with the
    *ablated* program (ablation changes what the program computes, by design), and its verdict
    says so. Returns the simplifier's result and the ablation report.
    """
    from simplifier.ablation.ablate import AblationResult
    from simplifier.simplify import simplify

    with ablation_pass(args) as ablation:
        try:
            result = simplify(
                program,
                args.semantics,
                args.allow,
                ablation=ablation,
                time_limit=None,  # training takes what its budget says; --time-limit is for folding
            )
        except ValueError as e:
            raise UsageError(str(e)) from None
    reports = [s.result.report for s in result.steps if isinstance(s.result, AblationResult)]
    assert reports and reports[0] is not None
    return result, reports[0]
