"""What a search is: its configuration (a value, saved in ``search.json``) and its budgets.

A :class:`SearchBudget` fixes how programs are measured: the proxy task's training (steps, seeds,
the lr-multiplier grid around the centre calibrated on the warm start) and the meta-validation
task's (a larger model, longer training), plus the defaults of the evolution (evaluations,
population, tournament, round size). ``small`` fits a 2-core CPU in minutes (the meta task: a
3.4x larger model trained 3x longer, about 10x the proxy's compute); ``full`` is sized for a
GPU; ``tiny`` is a smoke test (seconds, for tests and examples).

>>> BUDGETS["small"].proxy_steps, BUDGETS["small"].meta_steps
(200, 600)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simplifier.numeric import Semantics

ALGORITHMS = ("evolution", "hypers", "random")
# Powers of 4 from 1/64 to 16384, as the ablation's calibration: wide enough for an SGD-like
# program and for the paper's programs whose peak-lr constant is tuned for large models.
CALIBRATION = tuple(4.0**k for k in range(-3, 8))


@dataclass(frozen=True)
class SearchBudget:
    """How programs are measured, and the evolution's defaults at this budget.

    The proxy fitness of a program is its validation loss at the best of ``proxy_grid`` (times
    the centre calibrated on the warm start), averaged over ``proxy_seeds``; the meta score the
    same on ``meta_task`` (``{task}-large``: the task with a wider model) for ``meta_steps``.
    """

    name: str
    proxy_steps: int
    proxy_seeds: tuple[int, ...]
    proxy_grid: tuple[float, ...]
    meta_steps: int
    meta_seeds: tuple[int, ...]
    meta_grid: tuple[float, ...]
    evaluations: int
    population: int
    tournament: int
    round_size: int
    meta_top: int
    stagnation: int
    calibration: tuple[float, ...] = CALIBRATION


_HALF_OCTAVES = tuple(2.0 ** (k / 2) for k in range(-2, 3))

BUDGETS: dict[str, SearchBudget] = {
    "tiny": SearchBudget(
        "tiny",
        proxy_steps=8,
        proxy_seeds=(0,),
        proxy_grid=(0.5, 1.0, 2.0),
        meta_steps=16,
        meta_seeds=(100, 101),
        meta_grid=(0.5, 1.0, 2.0),
        evaluations=12,
        population=8,
        tournament=2,
        round_size=4,
        meta_top=2,
        stagnation=0,
    ),
    "small": SearchBudget(
        "small",
        proxy_steps=200,
        proxy_seeds=(0, 1),
        proxy_grid=(0.5, 1.0, 2.0),
        meta_steps=600,
        meta_seeds=(100, 101, 102),
        meta_grid=(2.0**-0.5, 1.0, 2.0**0.5),
        evaluations=80,
        population=24,
        tournament=4,
        round_size=8,
        meta_top=2,
        stagnation=40,
    ),
    "full": SearchBudget(
        "full",
        proxy_steps=400,
        proxy_seeds=(0, 1, 2),
        proxy_grid=_HALF_OCTAVES,
        meta_steps=4000,
        meta_seeds=(100, 101, 102, 103, 104, 105, 106, 107),
        meta_grid=_HALF_OCTAVES,
        evaluations=20000,
        population=1000,
        tournament=2,
        round_size=256,
        meta_top=10,
        stagnation=5000,
    ),
}


@dataclass(frozen=True)
class SearchConfig:
    """One search. ``evaluations`` is per run (each restart of each algorithm trains that many
    programs; cache hits are free), so the algorithms are compared at equal evaluations.

    ``algorithms`` are the runs: ``evolution`` (the search), ``hypers`` (the same evolution
    mutating constants only) and ``random`` (random valid programs, no selection); each gets
    ``restarts`` independent runs from the warm start. ``stagnation`` restarts a run's
    population from its best program after that many evaluations without improvement (0: off).
    ``cache_size`` bounds each fitness cache (structural hash, fingerprint) in entries.
    """

    warm_start: str  # the program's text
    warm_start_path: str
    task: str
    budget: SearchBudget
    evaluations: int
    population: int
    tournament: int
    max_length: int = 30
    restarts: int = 1
    seed: int = 0
    algorithms: tuple[str, ...] = ("evolution",)
    device: str = "cpu"
    semantics: Semantics = "math"
    round_size: int = 16
    stagnation: int = 0
    meta_top: int = 3
    checkpoint_every: int = 50
    cache_size: int = 100_000
    time_limit: float | None = 600.0
    random_mutations: int = 8
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in self.algorithms:
            if name not in ALGORITHMS:
                raise ValueError(
                    f"unknown algorithm {name!r} (choose from {', '.join(ALGORITHMS)})"
                )
        checks = {
            "evaluations": self.evaluations,
            "population": self.population,
            "tournament": self.tournament,
            "max-length": self.max_length,
            "restarts": self.restarts,
            "round size": self.round_size,
            "meta top": self.meta_top,
            "checkpoint interval": self.checkpoint_every,
            "cache size": self.cache_size,
        }
        for what, n in checks.items():
            if n < 1:
                raise ValueError(f"{what} must be at least 1, got {n}")
        if self.tournament > self.population:
            raise ValueError(
                f"tournament ({self.tournament}) cannot exceed the population ({self.population})"
            )
        if self.stagnation < 0:
            raise ValueError("stagnation must not be negative")

    @property
    def meta_task(self) -> str:
        return f"{self.task}-large"

    def identity(self) -> dict[str, Any]:
        """What makes two searches the same (``--resume`` and the ``--out`` check compare it):
        everything but where and how often it saves."""
        data = self.as_json()
        for key in ("checkpoint_every", "warm_start_path"):
            data.pop(key)
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> SearchConfig:
        """The configuration :meth:`as_json` wrote.

        >>> c = SearchConfig("def f(w, g):\\n  return g\\n", "f", "mlp", BUDGETS["tiny"], 4, 8, 2)
        >>> SearchConfig.from_json(c.as_json()) == c
        True
        """
        fields = dict(data)
        b = dict(fields.pop("budget"))
        for key in ("proxy_seeds", "proxy_grid", "meta_seeds", "meta_grid", "calibration"):
            b[key] = tuple(b[key])
        fields["algorithms"] = tuple(fields["algorithms"])
        return SearchConfig(budget=SearchBudget(**b), **fields)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("options")
        data["budget"] = asdict(self.budget)
        data["algorithms"] = list(self.algorithms)
        return data
