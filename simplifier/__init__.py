"""Simplify, analyse, verify and compile optimizer programs of the Lion paper's language.

>>> import simplifier
>>> p = simplifier.parse("def train(w, g, lr):\\n  return g * lr\\n")
>>> print(simplifier.to_text(p), end="")
def train(w, g, lr):
  return g * lr

The public names are imported on first use, so that ``import simplifier`` (and the command
line) start fast. ``simplifier.parse`` and ``simplifier.simplify`` are the functions, also after
their modules (:mod:`simplifier.parse`, :mod:`simplifier.simplify`) have been imported.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public API: name -> the module that defines it.
_EXPORTS = {
    "parse": "simplifier.parse",
    "parse_file": "simplifier.parse",
    "Program": "simplifier.ir",
    "ProgramError": "simplifier.errors",
    "as_program": "simplifier.source",
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
    "Budget": "simplifier.ablation",
    "emit_torch": "simplifier.emit",
    "compile_torch": "simplifier.emit",
    "search": "simplifier.search",
    "SearchReport": "simplifier.search",
    "example_path": "simplifier.examples",
    "example_names": "simplifier.examples",
}

if TYPE_CHECKING:
    from simplifier.ablation import AblationReport, Budget, ablate
    from simplifier.analysis.fingerprint import fingerprint
    from simplifier.analysis.hashing import structural_hash
    from simplifier.analysis.liveness import live_values, liveness
    from simplifier.analysis.types import infer_types
    from simplifier.emit import compile_torch, emit_torch
    from simplifier.equiv.api import equivalent
    from simplifier.equiv.verdict import Verdict
    from simplifier.errors import ProgramError
    from simplifier.examples import example_names, example_path
    from simplifier.ir import Program
    from simplifier.numeric import run, train
    from simplifier.parse import parse, parse_file
    from simplifier.passes.dce import DeadCodeElimination, eliminate_dead_code
    from simplifier.printer import to_text
    from simplifier.search import SearchReport, search
    from simplifier.simplify import SimplifyResult, simplify
    from simplifier.source import as_program


class _Package(types.ModuleType):
    """The package's module type: importing a submodule named like a public function
    (``simplifier.parse``, ``simplifier.simplify``) binds that function, not the module, to the
    package's attribute (the import system would otherwise replace the function by the module).
    The module itself stays importable (``from simplifier.simplify import SimplifyResult``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simplifier' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


sys.modules[__name__].__class__ = _Package

__all__ = [
    "AblationReport",
    "Budget",
    "DeadCodeElimination",
    "Program",
    "ProgramError",
    "SearchReport",
    "SimplifyResult",
    "Verdict",
    "__version__",
    "ablate",
    "as_program",
    "compile_torch",
    "eliminate_dead_code",
    "emit_torch",
    "equivalent",
    "example_names",
    "example_path",
    "fingerprint",
    "infer_types",
    "live_values",
    "liveness",
    "parse",
    "parse_file",
    "run",
    "search",
    "simplify",
    "structural_hash",
    "to_text",
    "train",
]
