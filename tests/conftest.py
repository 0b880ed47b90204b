"""Fixtures shared by the test modules."""

from __future__ import annotations

import sys

import pytest
import torch


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
