"""Render an :class:`~simplifier.ablation.ablate.AblationReport`: a text table and a PNG plot.

matplotlib is optional (the ``plot`` extra); it is imported only when a plot is asked for.

>>> from simplifier.ablation.ablate import Row
>>> print(format_row(Row("g.2", 3, "g = arcsin(g)", "removed", "ok", loss=1.01, stderr=0.004,
...                      loss_with=1.0, stderr_with=0.003, round=0)))
   3  g = arcsin(g)                    1.0000     1.0100   0.0040   +1.00%  removed (round 0)
"""

from __future__ import annotations

import io
import math
from collections import Counter
from typing import Any

from simplifier.printer import to_text

from .ablate import AblationReport, Row, Score, _pct, loss_text

_WIDTH = 28


def _f(x: float, width: int = 10) -> str:
    if not math.isfinite(x):
        return f"{'diverged':>{width}}"
    return f"{x:{width}.4f}" if abs(x) < 10 ** (width - 6) else f"{x:{width}.2e}"


def format_row(row: Row) -> str:
    """One table line: line, statement, loss with, loss without, its stderr, change, decision."""
    text = row.statement if len(row.statement) <= _WIDTH else row.statement[: _WIDTH - 3] + "..."
    line = f"{row.line:4d}" if row.line is not None else "   ?"
    if row.round is None:  # never a candidate (see the reasons)
        return (
            f"{line}  {text:<{_WIDTH}} {'':10} {'':10} {'':8} {'':8}  {row.decision} (not ablated)"
        )
    se = _f(row.stderr, 8) if math.isfinite(row.stderr) else f"{'':8}"
    change = f"{'':8}"
    if math.isfinite(row.loss) and math.isfinite(row.loss_with):
        change = f"{_pct(row.loss, row.loss_with):>8}"
    when = f" (round {row.round})" if row.round is not None else ""
    return (
        f"{line}  {text:<{_WIDTH}} {_f(row.loss_with)} {_f(row.loss)} {se} {change}"
        f"  {row.decision}{when}"
    )


def table(report: AblationReport) -> str:
    """The human-readable report: settings, baseline, one line per live statement, the result."""
    b, base = report.budget, report.baseline
    mults = ", ".join(f"{report.centre * m:.3g}" for m in b.grid)
    lines = [
        f"ablation of {report.original.path} on task {report.task!r}, budget {b.name!r} "
        f"({b.steps} steps, {len(report.seeds)} seeds, lr multipliers {mults}), "
        f"device {report.device}, semantics {report.semantics}",
        f"original program: val loss {loss_text(base.loss)} ± {loss_text(base.stderr)} "
        f"(best lr multiplier {base.multiplier:.3g}); tolerance "
        f"max({report.tolerance.noise:g} x stderr, {100 * report.tolerance.rel:g}% of loss) = "
        f"{loss_text(report.tolerance.limit(base))}",
        "",
        f"line  {'statement':<{_WIDTH}} {'with':>10} {'without':>10} {'± se':>8} {'change':>8}"
        "  decision",
    ]
    lines += [format_row(r) for r in report.rows]
    notes = [f"  line {r.line}: {r.reason}" for r in report.rows if r.reason]
    lines += ["", "reasons:", *notes]
    if report.calibration.at_edge:
        lines.append(
            "warning: the best calibration multiplier is at the edge of the calibration grid"
        )
    lines += [
        "",
        f"{len(report.rounds)} round(s), {report.replica_steps} replica-steps in "
        f"{report.seconds:.1f}s",
        "",
        "result:",
        to_text(report.program).rstrip("\n"),
    ]
    return "\n".join(lines)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise :class:`PlotUnavailable` now, before any training, if a plot cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise PlotUnavailable("plotting needs matplotlib: pip install 'optsimplify[plot]'") from e


_REMOVED, _KEPT, _BASE = "#3a923a", "#c44e52", "black"


def _round_scores(report: AblationReport) -> dict[str, Score]:
    """Each statement's score without it, in the round it was last measured."""
    out: dict[str, Score] = {}
    for rnd in report.rounds:
        out.update(dict(rnd.scores))
    return out


def plot_png(report: AblationReport) -> bytes:
    """The report's charts (:func:`plot_figure`) as PNG bytes."""
    import matplotlib.pyplot as plt

    fig = plot_figure(report)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def plot_figure(report: AblationReport) -> Any:
    """The report as four charts (a matplotlib Figure).

    Left, one bar per statement: the loss without it, its standard error, and a black tick at
    the loss of the program it was removed from *in its round* (the baseline it was judged
    against, which falls as statements go); the original's loss and the tolerance band.
    Right, top: the lr sweep, validation loss against the lr multiplier for the original and
    without each statement. Middle: learning curves (training loss by step, at the best
    multiplier, mean over the seeds) of the original, the final program and the program
    without each kept statement. Bottom: the program's loss round by round, marked with the
    lines each round removed. The bars' legend sits below their axis label, in the figure.
    """
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(report.rows)
    base = report.baseline
    limit = report.tolerance.limit(base)
    finite = [x for r in rows for x in (r.loss, r.loss_with) if math.isfinite(x)] + [base.loss]
    cap = min(max(finite), base.loss + max(8 * limit, 0.25 * abs(base.loss), 1e-9))
    lo = min(min(finite), base.loss - limit)
    xlim = (max(0.0, lo - 0.1 * (cap - lo)), cap * 1.08)
    fig = plt.figure(figsize=(13, max(7.5, 0.42 * len(rows) + 1.8)), dpi=100)
    grid = fig.add_gridspec(3, 2, width_ratios=(1.25, 1), hspace=0.55, wspace=0.08)
    ax = fig.add_subplot(grid[:, 0])
    ax.set_xlim(*xlim)
    for y, r in enumerate(rows):
        if r.round is None:  # never a candidate: no measurement to draw
            ax.text(xlim[0], y, "  not ablated", va="center", fontsize=8, color="grey")
            continue
        colour = _REMOVED if r.decision == "removed" else _KEPT
        width = min(r.loss, cap) if math.isfinite(r.loss) else cap
        ax.barh(y, width, color=colour, alpha=0.85 if math.isfinite(r.loss) else 0.3)
        if math.isfinite(r.stderr) and math.isfinite(r.loss) and r.loss <= cap:
            ax.errorbar(r.loss, y, xerr=r.stderr, color="black", capsize=3, lw=1)
        if not math.isfinite(r.loss) or r.loss > cap:
            tag = "diverged" if not math.isfinite(r.loss) else f"{r.loss:.3g}"
            ax.text(cap, y, f" {tag}", va="center", fontsize=8)
        if math.isfinite(r.loss_with) and r.loss_with <= cap:
            ax.plot([r.loss_with] * 2, [y - 0.42, y + 0.42], color=_BASE, lw=2.2, gid="round-base")
    ax.plot([], [], color=_BASE, lw=2.2, label="its round's program (with it)")
    ax.axvline(base.loss, color=_BASE, ls="--", lw=1, label="original")
    ax.axvspan(base.loss - limit, base.loss + limit, color="grey", alpha=0.2, label="tolerance")
    ax.set_yticks(
        range(len(rows)), [f"{r.line}: {r.statement}" for r in rows], fontsize=8, family="monospace"
    )
    ax.invert_yaxis()
    ax.set_xlabel(f"validation loss without the statement ({report.task}, {report.budget.name})")
    path = report.original.path  # on two lines, a long path cut from the left: clear of the sweep
    where = path if len(path) <= 48 else "..." + path[-45:]
    ax.set_title(f"ablation of {where}\ngreen = removed, red = kept", fontsize=10, loc="left")
    height = fig.get_figheight()
    bottom = 0.95 / height  # inches: tick labels and the axis label, then the legend below them
    fig.legend(
        *ax.get_legend_handles_labels(),
        loc="lower left",
        bbox_to_anchor=(0.2, 0.1 / height),
        ncol=3,
        fontsize=8,
        frameon=False,
    )

    sweep = fig.add_subplot(grid[0, 1])
    scores = _round_scores(report)

    def curve(sc: Score, **style: object) -> None:
        pts = [(m, v) for m, v, _ in sc.by_multiplier if math.isfinite(v)]
        if pts:
            xs, ys = zip(*sorted(pts), strict=True)
            sweep.plot(xs, ys, marker="o", ms=3, **style)  # type: ignore[arg-type]

    top = cap * 1.08

    on_line = Counter(r.line for r in rows)

    def label(r: Row) -> str:
        """The statement's line (and its text where two share the line); whether its curve is
        above the chart (or diverged at every multiplier)."""
        text = _without(r, on_line)
        pts = [v for _, v, _ in scores[r.target].by_multiplier if math.isfinite(v)]
        return text + (" (off the chart)" if not pts or min(pts) > top else "")

    for r in rows:
        if r.target in scores:
            colour = _REMOVED if r.decision == "removed" else _KEPT
            curve(scores[r.target], color=colour, lw=1, alpha=0.7, label=label(r))
    curve(base, color=_BASE, lw=2.4, label="original")
    sweep.set_xscale("log")
    sweep.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    sweep.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    tried = {m for sc in [base, *scores.values()] for m, _, _ in sc.by_multiplier}
    sweep.set_xticks(sorted(tried))
    sweep.tick_params(axis="x", labelsize=7)
    sweep.set_ylim(max(0.0, lo - 0.1 * (cap - lo)), top)
    sweep.yaxis.tick_right()
    sweep.set_xlabel("lr multiplier")
    sweep.set_ylabel("validation loss")
    sweep.yaxis.set_label_position("right")
    sweep.set_title("lr sweep (each in the round it was measured)", fontsize=10, loc="left")
    ncol = 1 if len(scores) < 4 else 2
    sweep.legend(fontsize=7, ncol=ncol, loc="best", framealpha=0.85, edgecolor="none")

    _learning_curves(fig.add_subplot(grid[1, 1]), report, rows, scores)

    by_round = fig.add_subplot(grid[2, 1])
    xs = [rnd.index for rnd in report.rounds]
    ys = [rnd.baseline.loss for rnd in report.rounds]
    es = [rnd.baseline.stderr if math.isfinite(rnd.baseline.stderr) else 0 for rnd in report.rounds]
    trend = by_round.errorbar(xs, ys, yerr=es, color=_BASE, marker="o", capsize=3, lw=1.5)
    trend.lines[0].set_gid("by-round")
    by_round.axhspan(base.loss - limit, base.loss + limit, color="grey", alpha=0.2)
    for rnd in report.rounds:
        lines = [str(r.line) for r in rows if r.decision == "removed" and r.round == rnd.index]
        removed = list(dict.fromkeys(lines))  # two statements of one line: the line once
        if rnd.accepted is not None and removed:  # a removal can take dead statements along
            by_round.annotate(
                f"-line {', '.join(removed)}",
                (rnd.index, rnd.baseline.loss),
                textcoords="offset points",
                xytext=(6, 6),
                fontsize=8,
                color=_REMOVED,
            )
    by_round.set_xticks(xs)
    _right_labels(
        by_round,
        "round (the program after the removals of the rounds before)",
        "validation loss",
        "the program's loss, round by round (band: tolerance)",
    )
    fig.subplots_adjust(left=0.2, right=0.93, top=1 - 0.55 / height, bottom=bottom)
    return fig


def _learning_curves(
    ax: Any, report: AblationReport, rows: list[Row], scores: dict[str, Score]
) -> None:
    """Training loss by step: the original, the final program, without each kept statement."""
    final = report.final
    drawn: list[float] = []
    on_line = Counter(r.line for r in rows)

    def curve(sc: Score, **style: object) -> None:
        pts = [(t, v) for t, v in sc.curve if math.isfinite(v)]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, **style)
            drawn.extend(ys)

    for r in rows:
        if r.decision == "kept" and r.target in scores:
            curve(scores[r.target], color=_KEPT, lw=1, alpha=0.6, label=_without(r, on_line))
    curve(report.baseline, color=_BASE, lw=2.4, label="original")
    if report.removed:
        curve(final, color=_REMOVED, lw=1.8, ls="--", label="final program")
    if not drawn:
        ax.text(0.5, 0.5, "no learning curve recorded", ha="center", transform=ax.transAxes)
    else:  # the original's start bounds the chart: a diverging curve leaves it upwards
        start = next((v for _, v in report.baseline.curve if math.isfinite(v)), max(drawn))
        low = min(drawn)
        ax.set_ylim(max(0.0, low - 0.05 * (start - low)), start + 0.1 * (start - low) + 1e-9)
        ax.legend(fontsize=7, ncol=1 if len(ax.lines) < 5 else 2, framealpha=0.85)
    _right_labels(
        ax,
        "training step",
        "training loss",
        "learning curves (best lr, mean over seeds, window-averaged)",
    )


def _without(r: Row, on_line: Counter[int | None]) -> str:
    """``without line N``, with the statement's text where two statements share the line."""
    text = f"without line {r.line}"
    if on_line[r.line] > 1:
        text += f" ({r.statement if len(r.statement) <= 16 else r.statement[:13] + '...'})"
    return text


def _right_labels(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """A right-column chart's labels: the y axis on the right, the title on the left."""
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left")
