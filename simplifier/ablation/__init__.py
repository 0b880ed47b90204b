"""Ablation by training: measure which statements of a program matter, on built-in proxy tasks.

:func:`ablate` runs the whole procedure; :mod:`.engine` trains many (program, lr multiplier,
seed) replicas in one batched computation; :mod:`.tasks` holds the proxy tasks and budgets.
See ``docs/ablation.md``.
"""

from __future__ import annotations

from .ablate import (
    Ablation,
    AblationReport,
    Candidate,
    Row,
    Score,
    Tolerance,
    ablate,
    candidates,
    statement_text,
)
from .engine import Replica, Result, step_batched, train
from .tasks import TASKS, Budget, Task, get_task

__all__ = [
    "TASKS",
    "Ablation",
    "AblationReport",
    "Budget",
    "Candidate",
    "Replica",
    "Result",
    "Row",
    "Score",
    "Task",
    "Tolerance",
    "ablate",
    "candidates",
    "get_task",
    "statement_text",
    "step_batched",
    "train",
]
