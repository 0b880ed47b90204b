"""Fixtures shared by the test modules, and the Hypothesis profiles.

The default profile is derandomized: every run (CI's included) tries the same examples, so a
green suite stays green and a red one is reproducible. ``HYPOTHESIS_PROFILE=explore`` draws new
random examples each run (and more of them): run it when changing a generator or an
interpreter, and keep what it finds as an explicit ``@example``.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch
from hypothesis import settings

settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def eager_compile():  # type: ignore[no-untyped-def]
    """Compile the fused path with Dynamo and AOTAutograd but no Inductor codegen (fast)."""
    used: list[tuple[dict, dict]] = []  # type: ignore[type-arg]

    def use(cls: type[torch.optim.Optimizer]) -> None:
        module = vars(sys.modules[cls.__module__])
        saved = dict(module["COMPILE_OPTIONS"])
        module["COMPILE_OPTIONS"].pop("options", None)  # Inductor's own
        module["COMPILE_OPTIONS"]["backend"] = "aot_eager"
        module["_COMPILED"].clear()
        used.append((module, saved))

    yield use
    for module, saved in used:  # the next user of this class compiles for real
        module["COMPILE_OPTIONS"].clear()
        module["COMPILE_OPTIONS"].update(saved)
        module["_COMPILED"].clear()
