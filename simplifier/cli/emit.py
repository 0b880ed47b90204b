"""``simplifier emit FILE [-o OUT.py] [--class-name NAME] [--force] [--semantics] [--set]``.

Writes a standalone Python module (it imports only torch) that defines a ``torch.optim.Optimizer``
subclass running the program: hyperparameters named from the program's constants, per-tensor,
foreach and torch.compile'd paths. Without ``-o`` the module goes to stdout; with it, the file is
written atomically (an existing one only with ``--force``) and a one-line summary is printed.
Exit 0 on success, 2 on bad input (nothing is written then).
"""

from __future__ import annotations

import argparse

from simplifier.cli.common import (
    add_program_options,
    check_output,
    load,
    output_option,
    write_output,
)
from simplifier.emit import default_class_name, emit_torch
from simplifier.emit.lower import lower


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emit",
        help="write a PyTorch optimizer (a torch.optim.Optimizer subclass) that runs a program",
        description="Write a standalone Python module defining a torch.optim.Optimizer "
        "subclass that runs the program. Constants become keyword arguments by their role (lr, "
        "betas, eps, weight_decay, other named constants); dead states are not allocated.",
    )
    p.add_argument("file", metavar="FILE", help="the program file")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT.py",
        type=output_option,
        help="write the module to OUT.py ('-': stdout)",
    )
    p.add_argument(
        "--class-name",
        metavar="NAME",
        help="the optimizer's class name (default: from the program's or the file's name)",
    )
    p.add_argument("--force", action="store_true", help="overwrite OUT.py if it exists")
    add_program_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.output:
        check_output(args.output, args.force)  # refuse before the work
    program = load(args.file, args)
    name = args.class_name or default_class_name(program)
    source = emit_torch(program, semantics=args.semantics, class_name=name)
    if args.output in (None, "-"):
        write_output("-", source, args.force)
        return 0
    write_output(args.output, source, args.force)
    low = lower(program, args.semantics)
    keywords = ", ".join(k if v is None else f"{k}={v}" for k, v in low.signature.keywords())
    states = ", ".join(low.states) or "none"
    print(f"{args.output}: class {name}(params, {keywords}); state per parameter: {states}")
    return 0
