"""The ablation charts: each round's baseline drawn, the lr sweep, the learning curves, the loss
by round; and a missing matplotlib refused before any training."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from simplifier.ablation import AblationReport, Budget, ablate
from simplifier.ablation.report import plot_figure, plot_png
from simplifier.cli import main
from simplifier.parse import parse

TINY = Budget("tiny", steps=20, seeds=2, grid=(0.5, 1, 2), calibration=(0.25, 1, 4), extend=1)


@pytest.fixture(scope="module")
def toy_report() -> AblationReport:
    return ablate(parse("def f(w, g, lr):\n  g = g + 0\n  u = -g\n  return -u * lr\n"), budget=TINY)


def test_charts_show_round_baselines_sweep_and_rounds(toy_report: AblationReport) -> None:
    fig = plot_figure(toy_report)
    bars, sweep, _, rounds = fig.axes
    measured = [r for r in toy_report.rows if r.round is not None and math.isfinite(r.loss_with)]
    ticks = [ln for ln in bars.lines if ln.get_gid() == "round-base"]
    assert sorted(ln.get_xdata()[0] for ln in ticks) == sorted(r.loss_with for r in measured)
    original = next(ln for ln in sweep.lines if ln.get_label() == "original")
    finite = [(m, v) for m, v, _ in toy_report.baseline.by_multiplier if math.isfinite(v)]
    assert list(original.get_xdata()) == [m for m, _ in sorted(finite)]
    assert sweep.get_xscale() == "log"
    (by_round,) = [ln for ln in rounds.lines if ln.get_gid() == "by-round"]
    assert list(by_round.get_ydata()) == [r.baseline.loss for r in toy_report.rounds]
    labels = [t.get_text() for t in sweep.get_legend().get_texts()]
    assert len(labels) == len(set(labels))  # each curve says which statement it lacks
    # The legend of the bars sits below the axis label, overlapping no text.
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert not box.overlaps(bars.xaxis.label.get_window_extent(renderer))
    assert not any(box.overlaps(t.get_window_extent(renderer)) for t in bars.get_xticklabels())
    assert box.y0 >= 0 and box.x1 <= fig.bbox.x1
    assert plot_png(toy_report).startswith(b"\x89PNG")


def test_the_bars_title_stays_clear_of_the_sweeps_title(toy_report: AblationReport) -> None:
    from dataclasses import replace

    long = replace(toy_report.original, path="/home/someone/" + "experiments/" * 6 + "lion.py")
    fig = plot_figure(replace(toy_report, original=long))
    bars, sweep, _, _ = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = bars._left_title.get_window_extent(renderer)  # loc="left" titles: no public handle
    assert "lion.py" in bars.get_title(loc="left")
    assert not box.overlaps(sweep._left_title.get_window_extent(renderer))
    assert box.x1 <= sweep.get_window_extent(renderer).x0
    assert box.y1 <= fig.bbox.y1  # both lines inside the figure


def test_learning_curves_are_the_scores_curves(toy_report: AblationReport) -> None:
    """The learning-curve chart draws the original's and the final program's recorded curves
    (and the program without each kept statement), each point where the JSON puts it."""
    _, _, curves, _ = plot_figure(toy_report).axes
    lines = {ln.get_label(): ln for ln in curves.lines}
    assert toy_report.removed  # the toy's `g = g + 0` goes: the final program differs
    for label, sc in [
        ("original", toy_report.baseline),
        ("final program", toy_report.final),
    ]:
        assert list(lines[label].get_xdata()) == [t for t, _ in sc.curve]
        assert list(lines[label].get_ydata()) == [v for _, v in sc.curve]
    kept = [r for r in toy_report.rows if r.decision == "kept"]
    without = [label for label in lines if label.startswith("without line")]
    assert len(without) == len(kept) and all(f"line {r.line}" in " ".join(without) for r in kept)
    assert curves.get_xlabel() == "training step"


def test_missing_matplotlib_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import simplifier.cli.ablate as cli_ablate

    def no_training(*args: object) -> None:
        raise AssertionError("trained before checking for matplotlib")

    monkeypatch.setattr(cli_ablate, "measure", no_training)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "out.png"
    assert main(["ablate", "corpus/lion.py", "--plot", str(out)]) == 2
    assert "plotting needs matplotlib: pip install 'optsimplify[plot]'" in capsys.readouterr().err
    assert not out.exists()
