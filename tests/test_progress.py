"""The progress bar: tqdm, one bar for the whole ablation, off unless asked or on a terminal."""

from __future__ import annotations

import io

import pytest

from simplifier.ablation import ablate
from simplifier.ablation.tasks import Budget
from simplifier.parse import parse
from simplifier.progress import Progress

TINY = Budget("tiny", steps=12, seeds=2, grid=(0.5, 1, 2), calibration=(0.25, 1, 4), extend=0)
PROGRAM = "def f(w, g, lr):\n  g = g + 0\n  u = -g\n  return -u * lr\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_on_a_terminal_only_unless_forced() -> None:
    for stream, enabled, drawn in [
        (io.StringIO(), None, False),
        (Terminal(), None, True),
        (Terminal(), False, False),
        (io.StringIO(), True, True),
    ]:
        with Progress("job", enabled=enabled, file=stream) as bar:
            bar.expect(4)
            bar.stage("a", weight=2)(2, 2)
        assert ("job: 100%" in stream.getvalue()) is drawn


def test_total_is_an_upper_bound_that_grows_when_exceeded() -> None:
    out = Terminal()
    bar = Progress("job", file=out)
    bar.expect(10)
    bar.stage("a", weight=3)(4, 4)  # 12 units: more than expected
    assert bar.done == 12
    bar.expect(100)
    bar.stage("b")(1, 1)
    bar.close()  # ended early: the bar shows the work done as all of it
    assert out.getvalue().rstrip().endswith("]") and "13/13" in out.getvalue()


def test_ablate_progress_true_draws_one_bar_for_every_round(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ablate(parse(PROGRAM), budget=TINY, progress=True)
    err = capsys.readouterr().err
    assert "ablation: 100%" in err and "round 1" in err and "calibration" in err
    ablate(parse(PROGRAM), budget=TINY, verbose=True)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
