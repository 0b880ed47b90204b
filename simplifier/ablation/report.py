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

from simplifier.printer import to_text

from .ablate import AblationReport, Row, _pct, loss_text

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


def plot_png(report: AblationReport) -> bytes:
    """The table as a horizontal bar chart (PNG bytes): loss without each statement, its
    standard error, the original's loss and the tolerance band; removed statements in green.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise PlotUnavailable("plotting needs matplotlib: pip install 'optsimplify[plot]'") from e
    rows = list(report.rows)
    base = report.baseline
    limit = report.tolerance.limit(base)
    finite = [r.loss for r in rows if math.isfinite(r.loss)] + [base.loss]
    cap = max(base.loss + 6 * max(limit, 1e-12), min(max(finite), 2 * base.loss))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6), dpi=110)
    lo = min(min(finite), base.loss - limit)
    ax.set_xlim(max(0.0, lo - 0.1 * (cap - lo)), cap * 1.08)
    labels = [f"{r.line}: {r.statement}" for r in rows]
    for y, r in enumerate(rows):
        if r.round is None:  # never a candidate: no measurement to draw
            ax.text(ax.get_xlim()[0], y, "  not ablated", va="center", fontsize=8, color="grey")
            continue
        colour = "#3a923a" if r.decision == "removed" else "#c44e52"
        width = min(r.loss, cap) if math.isfinite(r.loss) else cap
        ax.barh(y, width, color=colour, alpha=0.85 if math.isfinite(r.loss) else 0.3)
        if math.isfinite(r.stderr) and math.isfinite(r.loss) and r.loss <= cap:
            ax.errorbar(r.loss, y, xerr=r.stderr, color="black", capsize=3, lw=1)
        if not math.isfinite(r.loss) or r.loss > cap:
            tag = "diverged" if not math.isfinite(r.loss) else f"{r.loss:.3g}"
            ax.text(cap, y, f" {tag}", va="center", fontsize=8)
    ax.axvline(base.loss, color="black", ls="--", lw=1, label="original")
    ax.axvspan(base.loss - limit, base.loss + limit, color="grey", alpha=0.2, label="tolerance")
    ax.set_yticks(range(len(rows)), labels, fontsize=8, family="monospace")
    ax.invert_yaxis()
    ax.set_xlim(max(0.0, lo - 0.1 * (cap - lo)), cap * 1.08)
    ax.set_xlabel(f"validation loss without the statement ({report.task}, {report.budget.name})")
    ax.set_title(f"ablation of {report.original.path}: green = removed", fontsize=10, loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
