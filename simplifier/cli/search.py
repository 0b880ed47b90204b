"""``simplifier search``: discover an optimizer program by evolution from a warm start."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simplifier.cli.backend import add_backend_arguments, executor_from_args
from simplifier.cli.common import print_json
from simplifier.errors import ProgramError, UsageError

if TYPE_CHECKING:
    from simplifier.search.config import SearchConfig
    from simplifier.search.engine import SearchState

# The options that configure a search (None: not given). With --resume none may be given: the
# saved configuration is continued.
CONFIG_OPTIONS = (
    "warm_start",
    "task",
    "budget",
    "evaluations",
    "population",
    "tournament",
    "max_length",
    "restarts",
    "seed",
    "baseline",
    "device",
    "semantics",
    "round_size",
    "stagnation",
    "meta_top",
    "checkpoint_every",
    "cache_size",
    "time_limit",
)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n


def _seconds(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not x > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return x


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser(
        "search",
        help="discover an optimizer program by evolution (the Lion paper's search)",
        description="Regularized evolution of optimizer programs from a warm start (default: "
        "the paper's Program 3, AdamW): the paper's mutations, invalid children never "
        "evaluated, dead code pruned, a fitness cache by structural hash and numeric "
        "fingerprint, fitness = proxy validation loss at the best of a small lr grid (all "
        "children of a round trained in one batch), restarts, baselines at equal evaluations, "
        "meta-validation of the top programs on a larger task, and the winner simplified. "
        "Checkpoints to --out; --resume continues (see docs/search.md).",
    )
    p.add_argument(
        "--warm-start",
        metavar="FILE",
        default=None,
        help="initial program (default: Program 3, AdamW, as corpus/program3_adamw.py)",
    )
    p.add_argument("--task", choices=("mlp", "lm"), default=None, help="proxy task (default mlp)")
    p.add_argument(
        "--budget",
        choices=("tiny", "small", "full"),
        default=None,
        help="small (default; a CPU, minutes), full (a GPU) or tiny (a smoke test, seconds)",
    )
    p.add_argument(
        "--evaluations",
        type=_positive,
        metavar="N",
        default=None,
        help="programs trained per run (cache hits are free; default: the budget's)",
    )
    p.add_argument(
        "--population",
        type=_positive,
        metavar="P",
        default=None,
        help="population size (paper: 1000; default: the budget's)",
    )
    p.add_argument(
        "--tournament",
        type=_positive,
        metavar="T",
        default=None,
        help="tournament size (paper: 2; default: the budget's)",
    )
    p.add_argument(
        "--max-length",
        type=_positive,
        metavar="L",
        default=None,
        help="statements at most; insertion is disabled there (default 30, the paper's)",
    )
    p.add_argument(
        "--restarts",
        type=_positive,
        metavar="K",
        default=None,
        help="independent runs from the warm start, per algorithm (default 1)",
    )
    p.add_argument("--seed", type=int, metavar="S", default=None, help="random seed (default 0)")
    p.add_argument(
        "--baseline",
        action="append",
        choices=("evolution", "hypers", "random"),
        default=None,
        help="also run this algorithm at the same evaluations (repeatable): hypers (mutate "
        "constants only) or random (random valid programs); evolution always runs",
    )
    p.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    add_backend_arguments(p)
    p.add_argument(
        "--semantics",
        choices=("math", "hero"),
        default=None,
        help="numeric semantics (default math)",
    )
    p.add_argument(
        "--round-size",
        type=_positive,
        metavar="N",
        default=None,
        help="programs trained per run and round, in one batch (default: the budget's)",
    )
    p.add_argument(
        "--stagnation",
        type=_count,
        metavar="N",
        default=None,
        help="restart a run from its best after N evaluations without improvement "
        "(0: never; default: the budget's)",
    )
    p.add_argument(
        "--meta-top",
        type=_positive,
        metavar="K",
        default=None,
        help="top programs per run re-evaluated on the meta-validation task",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_positive,
        metavar="N",
        default=None,
        help="save the state every N evaluations (default 50)",
    )
    p.add_argument(
        "--cache-size",
        type=_positive,
        metavar="N",
        default=None,
        help="entries per fitness-cache table (default 100000, about 40 MB)",
    )
    p.add_argument(
        "--time-limit",
        type=_seconds,
        metavar="S",
        default=None,
        help="seconds a program's training may take before it is a failed child (default 600)",
    )
    p.add_argument(
        "--out", metavar="DIR", default=None, help="output directory (default search-out)"
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the search saved in DIR, with its configuration",
    )
    p.add_argument(
        "--force", action="store_true", help="start over in an --out that holds another search"
    )
    p.add_argument(
        "--ablate",
        action="store_true",
        help="also ablate the winner by training before simplifying it (minutes)",
    )
    p.add_argument(
        "--json", action="store_true", help="print search.json instead of the text report"
    )
    p.add_argument(
        "--no-plots",
        action="store_true",
        help="do not draw fitness.png, cache.png, meta.png (no matplotlib needed)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> SearchConfig:
    from simplifier.search import make_config

    def given(name: str, default: Any) -> Any:
        value = getattr(args, name)
        return default if value is None else value

    try:
        return make_config(
            args.warm_start,
            task=given("task", "mlp"),
            budget=given("budget", "small"),
            evaluations=args.evaluations,
            population=args.population,
            tournament=args.tournament,
            max_length=given("max_length", 30),
            restarts=given("restarts", 1),
            seed=given("seed", 0),
            baselines=given("baseline", ()),
            device=given("device", "cpu"),
            semantics=given("semantics", "math"),
            round_size=args.round_size,
            stagnation=args.stagnation,
            meta_top=args.meta_top,
            checkpoint_every=given("checkpoint_every", 50),
            cache_size=given("cache_size", 100_000),
            time_limit=given("time_limit", 600.0),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


class _Progress:
    """A tqdm line on stderr: evaluations, best fitness, cache hit rate, ETA."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="eval", file=sys.stderr, dynamic_ncols=True, leave=True)

    def __call__(self, state: SearchState) -> None:
        best = min(r.best.fitness for r in state.runs)
        hit = state.hits / state.generated if state.generated else 0.0
        if state.phase == "done":
            self.bar.set_description("meta-validated")
        self.bar.set_postfix_str(f"best {best:.4f}, hits {100 * hit:.0f}%", refresh=False)
        self.bar.update(state.evaluations - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def run(args: argparse.Namespace) -> int:
    from simplifier.search import OutDirError, saved_config

    if args.resume is not None:
        extra = [f"--{n.replace('_', '-')}" for n in CONFIG_OPTIONS if getattr(args, n) is not None]
        if extra:
            raise UsageError(
                f"--resume continues with the saved configuration; drop {', '.join(extra)}"
            )
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise UsageError("--resume DIR writes to DIR; drop --out")
        out = Path(args.resume)
        try:
            config = saved_config(out)
        except OutDirError as e:
            raise ProgramError(e.message, e.path) from None
    else:
        out = Path(args.out or "search-out")
        config = build_config(args)
    if config.device != "cpu" and args.backend == "local":  # ray: the cluster's GPUs
        from simplifier.cli.ablate import check_device

        check_device(config.device)
    # SIGTERM as SIGINT: the search saves its state and the command exits 130 (the search
    # installs its own handlers while it runs; this one covers the report at the end).
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args, config, out)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, config: SearchConfig, out: Path) -> int:
    from simplifier.search import OutDirError, search

    show = not args.quiet and sys.stderr.isatty()
    executor = executor_from_args(args)  # None: the in-process batched engine
    progress = (
        _Progress(config.evaluations * config.restarts * len(config.algorithms)) if show else None
    )
    try:
        report = search(
            config=config,
            out=out,
            resume=args.resume is not None,
            force=args.force,
            ablate=args.ablate,
            plots=not args.no_plots,
            executor=executor,
            progress=progress,
        )
    except OutDirError as e:
        raise ProgramError(e.message, e.path) from None
    except KeyboardInterrupt:
        print(f"interrupted: the state is saved; continue with --resume {out}", file=sys.stderr)
        return 130
    except ValueError as e:
        raise UsageError(str(e)) from None
    finally:
        if progress is not None:
            progress.close()
        if executor is not None:
            executor.close()
    if args.json:
        import json

        print_json(json.loads((out / "search.json").read_text(encoding="utf-8")))
    else:
        sys.stdout.write(report.text())
    sys.stdout.flush()  # the report before the notes on stderr, also when both are one pipe
    if report.plots_skipped and not args.no_plots:
        print(f"simplifier search: note: {report.plots_skipped}", file=sys.stderr)
    if not args.quiet:
        print(f"written to {out}/", file=sys.stderr)
    return 0
