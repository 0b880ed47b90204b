"""What a search found: :class:`SearchReport` (``search.json``), its text, and its plots.

The plots are drawn from ``history.jsonl`` (streamed, so a long search's history is never held in
memory) and from the final state: ``fitness.png`` (best proxy fitness vs evaluations, per
algorithm, the median over restarts with a min-max band), ``cache.png`` (cache hit rate and
redundant-statement share vs programs generated, per window of programs, as the paper's
Figure 2 right) and ``meta.png`` (proxy fitness and meta-validation loss of each evolution run's
best-so-far programs: meta-overfitting shows as the proxy improving while the meta loss rises).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simplifier.ir import Program
from simplifier.printer import to_text

from .config import SearchConfig
from .engine import HISTORY, MetaScore, RunState, SearchState, sample_trajectory


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


@dataclass(frozen=True)
class RunSummary:
    """One run: its counters, its best proxy fitness, and its final pick (best meta score among
    its top programs by proxy fitness)."""

    label: str
    algorithm: str
    evaluations: int
    generated: int
    hits: int
    failed: int
    restarts: int
    best_fitness: float
    pick_id: int
    pick_fitness: float
    pick_meta: MetaScore
    pick_program: str

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.label,
            "algorithm": self.algorithm,
            "evaluations": self.evaluations,
            "generated": self.generated,
            "cache_hits": self.hits,
            "failed": self.failed,
            "restarts_from_best": self.restarts,
            "best_fitness": _num(self.best_fitness),
            "pick": {
                "id": self.pick_id,
                "fitness": _num(self.pick_fitness),
                "meta": _num(self.pick_meta.loss),
                "meta_stderr": _num(self.pick_meta.stderr),
                "program": self.pick_program,
            },
        }


@dataclass(frozen=True)
class Comparison:
    """One algorithm over its restarts: the mean (and standard error) of the picks' meta loss,
    and the difference to the lr-tuned warm start in units of the combined standard error."""

    algorithm: str
    runs: int
    meta_mean: float
    meta_stderr: float
    meta_best: float
    proxy_mean: float
    vs_warm: float  # (warm - mean) / sqrt(se_mean^2 + se_warm^2); > 2: better by 2 SE

    def as_json(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "runs": self.runs,
            "meta_mean": _num(self.meta_mean),
            "meta_stderr": _num(self.meta_stderr),
            "meta_best": _num(self.meta_best),
            "proxy_mean": _num(self.proxy_mean),
            "better_than_warm_start_in_se": _num(self.vs_warm),
        }


@dataclass(frozen=True)
class SearchReport:
    """The search's result. ``best`` is the final pick of the primary algorithm (evolution when
    it ran) by meta-validation; ``best_simplified`` is :func:`simplifier.simplify` of it (after
    the ablation when asked), with ``verdict`` its equivalence verdict."""

    config: SearchConfig
    out: str
    best: Program
    best_id: int
    best_fitness: float
    best_meta: MetaScore
    best_simplified: Program
    verdict: str
    warm_fitness: float
    warm_meta: MetaScore
    evaluations: int
    generated: int
    cache_hit_rate: float
    redundant_fraction: float
    runs: tuple[RunSummary, ...]
    comparison: tuple[Comparison, ...]
    wall_s: float
    ablation: str | None = None
    plots_skipped: str | None = None  # why the PNGs were not drawn

    @property
    def baselines(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparison if c.algorithm != "evolution")

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.config.as_json(),
            "best": to_text(self.best),
            "best_id": self.best_id,
            "best_simplified": to_text(self.best_simplified),
            "verdict": self.verdict,
            "ablation": self.ablation,
            "best_fitness": _num(self.best_fitness),
            "best_meta": _num(self.best_meta.loss),
            "best_meta_stderr": _num(self.best_meta.stderr),
            "warm_start_fitness": _num(self.warm_fitness),
            "warm_start_meta": _num(self.warm_meta.loss),
            "warm_start_meta_stderr": _num(self.warm_meta.stderr),
            "evaluations": self.evaluations,
            "generated": self.generated,
            "cache_hit_rate": self.cache_hit_rate,
            "redundant_fraction": self.redundant_fraction,
            "runs": [r.as_json() for r in self.runs],
            "comparison": [c.as_json() for c in self.comparison],
            "baselines": [c.as_json() for c in self.baselines] or None,
            "wall_s": round(self.wall_s, 2),
        }

    def text(self) -> str:
        meta = self.best_meta
        lines = [
            f"search: {self.evaluations} evaluations, {self.generated} programs generated, "
            f"cache hit rate {100 * self.cache_hit_rate:.1f}%, redundant statements "
            f"{100 * self.redundant_fraction:.1f}%, {self.wall_s:.0f} s",
            f"warm start: proxy {self.warm_fitness:.4f}, meta {_fmt(self.warm_meta)}",
            f"best (#{self.best_id}): proxy {self.best_fitness:.4f}, meta {_fmt(meta)}",
            "",
        ]
        if len(self.comparison) > 1 or self.comparison[0].runs > 1:
            lines += [comparison_table(self), ""]
        lines += ["best program:", to_text(self.best).rstrip("\n"), ""]
        if self.ablation:
            lines += [self.ablation, ""]
        lines += [
            "simplified:",
            to_text(self.best_simplified).rstrip("\n"),
            f"verdict: {self.verdict}",
        ]
        return "\n".join(lines) + "\n"


def _fmt(m: MetaScore) -> str:
    if not math.isfinite(m.loss):
        return f"failed ({m.reason})"
    return f"{m.loss:.4f} ± {m.stderr:.4f}"


def comparison_table(report: SearchReport) -> str:
    """Markdown table: per algorithm, the picks' meta loss (mean ± SE over restarts; for a
    single run, its SE over the meta-validation seeds)."""
    warm = report.warm_meta
    rows = [
        "| algorithm | runs | proxy loss (mean) | meta loss (mean ± SE) | best meta "
        "| vs warm start |",
        "|---|---|---|---|---|---|",
        f"| warm start (lr-tuned) | - | {report.warm_fitness:.4f} | {_fmt(warm)} | - | - |",
    ]
    for c in report.comparison:
        vs = f"{c.vs_warm:+.1f} SE" if math.isfinite(c.vs_warm) else "-"
        rows.append(
            f"| {c.algorithm} | {c.runs} | {c.proxy_mean:.4f} | {c.meta_mean:.4f} ± "
            f"{c.meta_stderr:.4f} | {c.meta_best:.4f} | {vs} |"
        )
    return "\n".join(rows)


# -- building the report ------------------------------------------------------------------------
def pick(run: RunState, meta: dict[str, MetaScore]) -> tuple[Any, MetaScore]:
    """The run's top program with the best meta score (ties: the better proxy fitness)."""
    inf = MetaScore(math.inf, math.inf, None, "not meta-validated")
    scored = [(meta.get(m.genome.digest, inf), m) for m in run.top]
    best = min(scored, key=lambda x: (x[0].loss, x[1].fitness, x[1].id))
    return best[1], best[0]


def summaries(state: SearchState) -> tuple[RunSummary, ...]:
    out = []
    for run in state.runs:
        m, score = pick(run, state.meta)
        out.append(
            RunSummary(
                run.label,
                run.algorithm,
                run.evaluations,
                run.generated,
                run.hits,
                run.failed,
                run.restarts,
                run.best.fitness,
                m.id,
                m.fitness,
                score,
                to_text(m.genome.program),
            )
        )
    return tuple(out)


def compare(runs: tuple[RunSummary, ...], warm: MetaScore) -> tuple[Comparison, ...]:
    out = []
    for algorithm in dict.fromkeys(r.algorithm for r in runs):
        mine = [r for r in runs if r.algorithm == algorithm]
        metas = [r.pick_meta.loss for r in mine]
        n = len(metas)
        mean = sum(metas) / n
        if n > 1 and all(math.isfinite(x) for x in metas):
            var = sum((x - mean) ** 2 for x in metas) / (n - 1)
            se = math.sqrt(var / n)
        elif n == 1:  # one run: no spread over runs; its own SE over the meta seeds
            se = mine[0].pick_meta.stderr
        else:
            se = math.inf
        joint = math.hypot(se, warm.stderr)
        vs = (warm.loss - mean) / joint if joint > 0 and math.isfinite(mean) else math.nan
        proxy = sum(r.pick_fitness for r in mine) / n
        out.append(Comparison(algorithm, n, mean, se, min(metas), proxy, vs))
    return tuple(out)


# -- plots -------------------------------------------------------------------------------------
def history(out: Path) -> Iterator[dict[str, Any]]:
    with (out / HISTORY).open(encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _curves(out: Path) -> dict[str, list[tuple[int, float]]]:
    """Per run: (evaluations, best fitness so far) at each of its programs."""
    curves: dict[str, list[tuple[int, float]]] = {}
    state: dict[str, tuple[int, float]] = {}
    warm = math.inf
    for rec in history(out):
        run = rec["run"]
        fit = rec["fitness"] if rec["fitness"] is not None else math.inf
        if run is None:
            warm = fit
            continue
        n, best = state.get(run, (0, warm))
        n += 0 if rec["cached"] else 1
        best = min(best, fit)
        state[run] = (n, best)
        curves.setdefault(run, [(0, warm)]).append((n, best))
    return curves


def plots(out: Path, state: SearchState, config: SearchConfig) -> dict[str, bytes]:
    """``fitness.png``, ``cache.png`` and ``meta.png`` as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    result: dict[str, bytes] = {}

    def png(fig: Any) -> bytes:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        return buf.getvalue()

    # fitness.png
    curves = _curves(out)
    fig, ax = plt.subplots(figsize=(8.4, 4.2))
    xs = np.arange(config.evaluations + 1)
    colors = {"evolution": "tab:blue", "hypers": "tab:orange", "random": "tab:green"}
    for algorithm in config.algorithms:
        ys = []
        for label, points in curves.items():
            if label.split("/")[0] != algorithm:
                continue
            at = np.array([p[0] for p in points])
            vals = np.array([p[1] for p in points])
            idx = np.searchsorted(at, xs, side="right") - 1
            ys.append(vals[np.clip(idx, 0, len(vals) - 1)])
        if not ys:
            continue
        arr = np.array(ys)
        arr[~np.isfinite(arr)] = np.nan
        color = colors.get(algorithm)
        ax.plot(xs, np.nanmedian(arr, axis=0), color=color, label=f"{algorithm} ({len(ys)} runs)")
        if len(ys) > 1:
            ax.fill_between(
                xs, np.nanmin(arr, axis=0), np.nanmax(arr, axis=0), color=color, alpha=0.2
            )
    ax.axhline(state.warm.fitness, color="gray", ls="--", lw=1, label="warm start")
    ax.set_xlabel("evaluations (programs trained, per run)")
    ax.set_ylabel("best proxy validation loss")
    ax.set_title(f"{config.task}, budget {config.budget.name}: median and min-max over runs")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the bands
    result["fitness.png"] = png(fig)

    # cache.png
    primary = "evolution" if "evolution" in config.algorithms else config.algorithms[0]
    recs = [
        (r["cached"], r["redundant"], r["statements"])
        for r in history(out)
        if r["run"] is not None and r["run"].split("/")[0] == primary
    ]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if recs:
        window = max(1, len(recs) // 25)
        gx, hit, red = [], [], []
        for lo in range(0, len(recs), window):
            chunk = recs[lo : lo + window]
            gx.append(lo + len(chunk))
            hit.append(sum(c for c, _, _ in chunk) / len(chunk))
            stmts = sum(s for _, _, s in chunk)
            red.append(sum(r for _, r, _ in chunk) / stmts if stmts else 0.0)
        ax.plot(gx, hit, marker=".", label="cache hit rate")
        ax.plot(gx, red, marker=".", label="redundant statements")
        total_red = sum(r for _, r, _ in recs) / max(1, sum(s for _, _, s in recs))
        ax.set_title(
            f"{len(recs)} programs: {sum(c for c, _, _ in recs) / len(recs):.0%} cache hits, "
            f"{total_red:.0%} of statements redundant"
        )
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"programs generated ({primary}, all runs; per window of programs)")
    ax.set_ylabel("fraction")
    ax.legend()
    result["cache.png"] = png(fig)

    # meta.png
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for run in state.runs:
        if run.algorithm != primary:
            continue
        pts = [p for p in sample_trajectory(run.trajectory) if p.member.genome.digest in state.meta]
        if not pts:
            continue
        x = [p.evaluations for p in pts]
        proxy = [p.member.fitness for p in pts]
        meta = [_num(state.meta[p.member.genome.digest].loss) for p in pts]
        series: tuple[tuple[Any, list[Any], str | None], ...] = (
            (top, proxy, run.label),
            (bottom, meta, None),
        )
        for panel, values, tag in series:
            # a best so far holds until the next one, and to the run's end
            (line,) = panel.plot(x, values, "o", label=tag)
            end = ([*x, run.evaluations], [*values, values[-1]])
            panel.plot(*end, drawstyle="steps-post", color=line.get_color())
    warm_meta = state.meta.get(state.warm.genome.digest)
    if warm_meta is not None and math.isfinite(warm_meta.loss):
        bottom.axhline(warm_meta.loss, color="gray", ls="--", lw=1, label="warm start")
        bottom.legend()
    top.set_ylabel("proxy loss (best so far)")
    bottom.set_ylabel(f"meta loss ({config.meta_task})")
    bottom.set_xlabel("evaluations (programs trained by the run); a point: a new best of the run")
    if top.get_legend_handles_labels()[0]:
        top.legend(fontsize=8, loc="lower left")
    result["meta.png"] = png(fig)
    return result
