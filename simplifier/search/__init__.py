"""Program search: the Lion paper's evolution, with abstract-execution pruning and funnel selection.

:func:`search` runs the whole pipeline (see ``docs/search.md``): regularized evolution from a
warm start (Program 3, AdamW, by default) with the paper's mutations (:mod:`.mutate`), invalid
children never evaluated and dead code pruned before training, a fitness cache keyed by
structural hash and numeric fingerprint (:mod:`.cache`), fitness measured on a proxy task by the
batched engine through an executor (:mod:`simplifier.executor`), restarts, baselines (constants
only; random programs), meta-validation of the top programs on a larger task, checkpoints and
resume (:mod:`.engine`), and the winner simplified with its equivalence verdict.

This module imports nothing heavy: ``import simplifier`` stays fast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ALGORITHMS, BUDGETS, SearchBudget, SearchConfig

if TYPE_CHECKING:
    from simplifier.executor import Executor
    from simplifier.ir import Program

    from .engine import SearchState
    from .report import SearchReport

__all__ = [
    "ALGORITHMS",
    "BUDGETS",
    "PROGRAM3",
    "SearchBudget",
    "SearchConfig",
    "SearchReport",
    "search",
]

PROGRAM3_PATH = "corpus/program3_adamw.py"
# Program 3 of the paper (AdamW), the default warm start; the same text as corpus/program3_adamw.py
# (a test checks), kept here so that an installed package has it.
PROGRAM3 = """\
def train(w, g, m, v, lr):
  g2 = square(g)
  m = interp(g, m, 0.9)
  v = interp(g2, v, 0.999)
  sqrt_v = sqrt(v)
  update = m / sqrt_v
  wd = w * 0.01
  update = update + wd
  lr = lr * 0.001
  update = update * lr
  return update, m, v
"""
OUTPUTS = (
    "search.json",
    "history.jsonl",
    "state.pkl",
    "best.py",
    "best.simplified.py",
    "fitness.png",
    "cache.png",
    "meta.png",
)


def __getattr__(name: str) -> Any:
    if name == "SearchReport":
        from .report import SearchReport

        return SearchReport
    raise AttributeError(f"module 'simplifier.search' has no attribute {name!r}")


def make_config(
    warm_start: str | Path | Program | None = None,
    *,
    task: str = "mlp",
    budget: str | SearchBudget = "small",
    evaluations: int | None = None,
    population: int | None = None,
    tournament: int | None = None,
    max_length: int = 30,
    restarts: int = 1,
    seed: int = 0,
    baselines: Sequence[str] = (),
    device: str = "cpu",
    semantics: str = "math",
    round_size: int | None = None,
    stagnation: int | None = None,
    meta_top: int | None = None,
    checkpoint_every: int = 50,
    cache_size: int = 100_000,
    time_limit: float | None = 600.0,
) -> SearchConfig:
    """The configuration of a search (defaults from the budget); raises ValueError."""
    from simplifier.printer import to_text

    if warm_start is None:
        text, path = PROGRAM3, PROGRAM3_PATH
    elif isinstance(warm_start, str | Path):
        from simplifier.parse import read_source

        path = str(warm_start)
        text = read_source(path)
    else:
        text, path = to_text(warm_start), warm_start.path
    from simplifier.parse import parse

    parse(text, path)  # a ProgramError here is the user's to see
    if task not in ("mlp", "lm"):
        raise ValueError(f"unknown task {task!r} (choose from mlp, lm)")
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r} (choose from {', '.join(BUDGETS)})")
        budget = BUDGETS[budget]
    if semantics not in ("math", "hero"):
        raise ValueError(f"unknown semantics {semantics!r} (choose from math, hero)")
    algorithms = ("evolution", *(b for b in dict.fromkeys(baselines) if b != "evolution"))
    return SearchConfig(
        text,
        path,
        task,
        budget,
        evaluations or budget.evaluations,
        population or budget.population,
        tournament or budget.tournament,
        max_length=max_length,
        restarts=restarts,
        seed=seed,
        algorithms=algorithms,
        device=device,
        semantics=semantics,  # type: ignore[arg-type]
        round_size=round_size or budget.round_size,
        stagnation=budget.stagnation if stagnation is None else stagnation,
        meta_top=meta_top or budget.meta_top,
        checkpoint_every=checkpoint_every,
        cache_size=cache_size,
        time_limit=time_limit,
    )


def _saved_identity(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / "search.json").read_text(encoding="utf-8"))
        identity = data["identity"]
        return identity if isinstance(identity, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class OutDirError(ValueError):
    """``--out``/``--resume`` refused: the directory is not a search of this configuration."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = str(path), message


def saved_config(out: Path) -> SearchConfig:
    """The configuration of the search saved in ``out`` (for ``--resume``)."""
    try:
        data = json.loads((out / "search.json").read_text(encoding="utf-8"))
        return SearchConfig.from_json(data["config"])
    except (OSError, ValueError, KeyError, TypeError):
        raise OutDirError(out, "no saved search to resume (no readable search.json)") from None


def prepare_out(
    out: Path, config: SearchConfig, *, force: bool = False, resume: bool = False
) -> bool:
    """Make ``out`` ready; True when it holds a saved state of this configuration to continue.

    A directory with files that is not a search of the same configuration is refused (a
    ValueError) unless ``force``, which removes the search's own files there (nothing else).
    ``resume`` requires a saved state.
    """
    from .engine import STATE

    identity = json.loads(json.dumps(config.identity()))
    if out.exists() and not out.is_dir():
        raise OutDirError(out, "exists and is not a directory")
    saved = _saved_identity(out) if out.is_dir() else None
    has_state = (out / STATE).is_file()
    if resume:
        if saved is None or not has_state:
            raise OutDirError(out, "no saved search to resume (no search.json and state.pkl)")
        if saved != identity:
            raise OutDirError(out, "the saved search has another configuration")
        return True
    if out.is_dir() and any(out.iterdir()):
        if saved == identity and has_state:
            return True
        if not force:
            what = "a search of another configuration" if saved is not None else "not a search"
            raise OutDirError(out, f"exists and is {what}; pass --force to start over there")
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return False


def write_json(path: Path, data: Any) -> None:
    from .engine import write_atomic

    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


def search(
    warm_start: str | Path | Program | None = None,
    *,
    task: str = "mlp",
    budget: str | SearchBudget = "small",
    evaluations: int | None = None,
    population: int | None = None,
    tournament: int | None = None,
    max_length: int = 30,
    restarts: int = 1,
    seed: int = 0,
    baselines: Sequence[str] = (),
    device: str = "cpu",
    semantics: str = "math",
    backend: str = "local",
    out: str | Path = "search-out",
    resume: bool = False,
    force: bool = False,
    ablate: bool = False,
    plots: bool = True,
    round_size: int | None = None,
    stagnation: int | None = None,
    meta_top: int | None = None,
    checkpoint_every: int = 50,
    cache_size: int = 100_000,
    time_limit: float | None = 600.0,
    executor: Executor | None = None,
    progress: Callable[[SearchState], None] | None = None,
    config: SearchConfig | None = None,
) -> SearchReport:
    """Search for an optimizer program from ``warm_start`` (default: Program 3, AdamW).

    ``budget`` is ``tiny``, ``small`` (a CPU, minutes) or ``full`` (a GPU); ``evaluations``
    are per run; ``baselines`` adds ``hypers`` and/or ``random`` runs at the same budget;
    ``restarts`` independent runs per algorithm (their spread is the plots' bands). Everything
    is written to ``out`` (see ``docs/search.md``); an ``out`` holding a saved search of the same
    configuration is continued (``resume=True`` requires one); ``plots=False`` skips the PNGs
    (matplotlib). ``executor`` overrides
    ``backend`` (``local``: the in-process batched engine). Raises ValueError on a bad request.

    >>> from simplifier.search import search
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> r = search(budget="tiny", evaluations=4, out=d + "/s")  # doctest: +SKIP
    """
    from simplifier.executor import make_executor

    from .engine import Search, load_state, truncate_history

    if config is None:
        config = make_config(
            warm_start,
            task=task,
            budget=budget,
            evaluations=evaluations,
            population=population,
            tournament=tournament,
            max_length=max_length,
            restarts=restarts,
            seed=seed,
            baselines=baselines,
            device=device,
            semantics=semantics,
            round_size=round_size,
            stagnation=stagnation,
            meta_top=meta_top,
            checkpoint_every=checkpoint_every,
            cache_size=cache_size,
            time_limit=time_limit,
        )
    if config.device.startswith("cuda") and executor is None and backend == "local":
        import torch  # (another executor's GPUs are on its workers: it checks them itself)

        if not torch.cuda.is_available():
            raise ValueError("CUDA is not available on this machine (use --device cpu)")
    out_dir = Path(out)
    continuing = prepare_out(out_dir, config, force=force, resume=resume)
    ex = executor if executor is not None else make_executor(backend)
    state = None
    if continuing:
        state = load_state(out_dir)
        truncate_history(out_dir, state)
    else:
        write_json(
            out_dir / "search.json", {"identity": config.identity(), "config": config.as_json()}
        )
    engine = Search(config, out_dir, ex, progress)
    try:
        state = engine.run(state)
    finally:
        if executor is None:
            ex.close()
    return finish(config, out_dir, state, ablate=ablate, plots=plots)


def finish(
    config: SearchConfig, out: Path, state: SearchState, *, ablate: bool, plots: bool = True
) -> SearchReport:
    """The report of a finished search; writes best.py, best.simplified.py, plots, search.json."""
    from simplifier.passes.dce import prune
    from simplifier.printer import to_text
    from simplifier.simplify import simplify

    from .engine import MetaScore, write_atomic
    from .report import SearchReport, compare, pick, summaries

    runs = summaries(state)
    primary = "evolution" if "evolution" in config.algorithms else config.algorithms[0]
    best_run, best_score, best_member = None, MetaScore(math.inf, math.inf, None), state.warm
    for run in state.runs:
        if run.algorithm != primary:
            continue
        m, score = pick(run, state.meta)
        if best_run is None or (score.loss, m.fitness, m.id) < (
            best_score.loss,
            best_member.fitness,
            best_member.id,
        ):
            best_run, best_score, best_member = run, score, m
    warm_meta = state.meta.get(
        state.warm.genome.digest, MetaScore(math.inf, math.inf, None, "not run")
    )
    best = best_member.genome.program
    program = prune(best)
    ablation_text = None
    if ablate:
        from simplifier.ablation import ablate as run_ablation

        ab = run_ablation(
            program, config.task, "small", device=config.device, semantics=config.semantics
        )
        removed = [r.statement for r in ab.removed]
        ablation_text = f"ablation removed {len(removed)} statement(s)" + (
            ": " + "; ".join(removed) if removed else ""
        )
        program = ab.program
    simplified = simplify(program, config.semantics)
    verdict = simplified.verdict
    report = SearchReport(
        config,
        str(out),
        best,
        best_member.id,
        best_member.fitness,
        best_score,
        simplified.program,
        verdict,
        state.warm.fitness,
        warm_meta,
        state.evaluations,
        state.generated,
        state.hits / state.generated if state.generated else 0.0,
        state.redundant / state.statements if state.statements else 0.0,
        runs,
        compare(runs, warm_meta),
        state.seconds,
        ablation_text,
    )
    header = (
        f"# found by `simplifier search` (#{best_member.id}): "
        f"proxy loss {best_member.fitness:.4f}, meta loss {best_score.loss:.4f}\n"
    )
    write_atomic(out / "best.py", (header + to_text(best)).encode())
    write_atomic(
        out / "best.simplified.py",
        (
            f"# simplified from best.py; {' '.join(verdict.split())}\n"
            + to_text(simplified.program)
        ).encode(),
    )
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            report = replace(
                report,
                plots_skipped="no plots: matplotlib is not installed (pip install '.[plot]')",
            )
        else:
            from .report import plots as draw

            for name, data in draw(out, state, config).items():
                write_atomic(out / name, data)
    write_json(out / "search.json", {"identity": config.identity(), **report.as_json()})
    return report
