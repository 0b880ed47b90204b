"""Progress of long work (ablation training) on stderr: one tqdm bar for the whole job.

The job is measured in work units (for the ablation, replica-steps: one training step of one
replica). The caller tells the bar how much work is left at most (:meth:`Progress.expect`), so
the time shown as left is for the whole job, across its rounds, and is an upper bound; each
batch of training reports its steps through the callback of :meth:`Progress.stage`.

The bar is drawn only on a terminal unless asked for (``enabled=True``); ``enabled=False``
(``--quiet``) draws nothing.

>>> import io
>>> out = io.StringIO()  # not a terminal: nothing is drawn unless enabled=True
>>> with Progress("ablation", file=out) as bar:
...     bar.expect(100)
...     step = bar.stage("round 0", weight=10)
...     for t in range(1, 11):
...         step(t, 10)
>>> out.getvalue()
''
>>> with Progress("ablation", enabled=True, file=out) as bar:
...     bar.expect(20)
...     bar.stage("round 0", weight=2)(10, 10)
>>> "ablation: 100%" in out.getvalue() and "20/20" in out.getvalue()
True
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress", "StepCallback"]

StepCallback = Callable[[int, int], None]
"""What a training loop calls after each step: ``(steps done, total steps)``."""

_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar:24}| {n_fmt}/{total_fmt} replica-steps "
    "[{elapsed} elapsed, at most {remaining} left{postfix}]"
)


class Progress:
    """One progress bar for a job of several stages; see the module docstring.

    ``enabled``: ``None`` (default) draws on a terminal only, ``True`` always, ``False`` never.
    """

    def __init__(
        self, desc: str = "", *, enabled: bool | None = None, file: TextIO | None = None
    ) -> None:
        stream = file if file is not None else sys.stderr
        on = stream.isatty() if enabled is None else enabled
        self._bar = tqdm(
            total=0,
            desc=desc,
            file=stream,
            disable=not on,
            bar_format=_FORMAT,
            dynamic_ncols=True,
            mininterval=0.2,
            leave=True,
        )

    @property
    def done(self) -> int:
        """Units done so far."""
        return int(self._bar.n)

    def expect(self, remaining: int) -> None:
        """At most ``remaining`` more units are left (the bar's total becomes done + that)."""
        self._bar.total = self._bar.n + max(0, remaining)
        self._bar.refresh()

    def stage(self, label: str, weight: int = 1) -> StepCallback:
        """Start a stage named ``label``; its callback counts ``weight`` units per step."""
        self._bar.set_postfix_str(label, refresh=True)
        last = 0

        def step(done: int, total: int) -> None:
            nonlocal last
            units = (done - last) * weight
            last = done
            if self._bar.n + units > (self._bar.total or 0):  # more work than expected
                self._bar.total = self._bar.n + units
            self._bar.update(units)

        return step

    def close(self) -> None:
        """Finish the bar: a job that ends early (fewer rounds than the bound) shows 100%."""
        if not self._bar.disable and self._bar.total != self._bar.n:
            self._bar.total = self._bar.n
            self._bar.refresh()
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
