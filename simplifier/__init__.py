"""Simplify, analyse, verify and compile optimizer programs of the Lion paper's language.

>>> import simplifier
>>> p = simplifier.parse("def train(w, g, lr):\\n  return g * lr\\n")
>>> print(simplifier.to_text(p), end="")
def train(w, g, lr):
  return g * lr
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# `parse` is both a submodule and the function; importing it eagerly binds the function here.
from simplifier.parse import parse, parse_file
from simplifier.search import search  # eagerly, like parse: the name is also a subpackage

# Public API, imported lazily so that `import simplifier` (and the CLI) start fast.
_EXPORTS = {
    "Program": "simplifier.ir",
    "ProgramError": "simplifier.errors",
    "to_text": "simplifier.printer",
    "infer_types": "simplifier.analysis.types",
    "run": "simplifier.numeric",
    "train": "simplifier.numeric",
    "liveness": "simplifier.analysis.liveness",
    "live_values": "simplifier.analysis.liveness",
    "eliminate_dead_code": "simplifier.passes.dce",
    "DeadCodeElimination": "simplifier.passes.dce",
    "structural_hash": "simplifier.analysis.hashing",
    "fingerprint": "simplifier.analysis.fingerprint",
    "simplify": "simplifier.simplify",
    "SimplifyResult": "simplifier.simplify",
    "equivalent": "simplifier.equiv.api",
    "Verdict": "simplifier.equiv.verdict",
    "ablate": "simplifier.ablation",
    "AblationReport": "simplifier.ablation",
    "emit_torch": "simplifier.emit",
    "compile_torch": "simplifier.emit",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simplifier' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [*_EXPORTS, "__version__", "parse", "parse_file", "search"]
