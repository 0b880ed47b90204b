"""Emit a runnable PyTorch optimizer from a program.

:func:`emit_torch` writes the source of a standalone module that imports only torch (and the
standard library's ``collections.abc``) and defines an ordinary ``torch.optim.Optimizer``
subclass; :func:`compile_torch` executes it and returns the class.

The pipeline: dead-code removal (:mod:`simplifier.passes.dce`), hyperparameter extraction
(:mod:`simplifier.emit.hypers`), lowering to per-path instructions (:mod:`simplifier.emit.lower`),
stage and buffer planning (:mod:`simplifier.emit.plan`), then source generation from the op
tables of :mod:`simplifier.emit.torch_source` (:mod:`simplifier.emit.module`).

>>> import simplifier
>>> p = simplifier.parse("def sgd(w, g, lr):\\n  return lr * 0.1 * g\\n")
>>> SGD = compile_torch(p)
>>> import torch
>>> w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
>>> w.grad = torch.tensor([1.0, -2.0], dtype=torch.float64)
>>> SGD([w]).step(); w.tolist()
[0.9, 1.2]
"""

from __future__ import annotations

import keyword
import linecache
import re
import types
from pathlib import Path
from typing import TYPE_CHECKING

from simplifier.emit.lower import lower
from simplifier.emit.module import generate
from simplifier.emit.plan import plan
from simplifier.errors import UsageError
from simplifier.ir import Program
from simplifier.numeric import SEMANTICS, Semantics
from simplifier.source import ProgramSource, as_program

if TYPE_CHECKING:
    import torch

__all__ = ["compile_torch", "default_class_name", "emit_torch"]


def default_class_name(program: Program) -> str:
    """CamelCase of the program's name (of its file's name when the program is called ``train``).

    >>> from simplifier.parse import parse
    >>> default_class_name(parse("def sgd_momentum(w, g, m):\\n  return g, m\\n"))
    'SgdMomentum'
    """
    name = program.name
    if name == "train" and program.path not in ("", "<program>"):
        name = Path(program.path).stem
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    camel = "".join(w[:1].upper() + w[1:] for w in words)
    if not camel or camel[0].isdigit() or keyword.iskeyword(camel):
        return "EmittedOptimizer"
    return camel


def _check_class_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise UsageError(f"--class-name {name!r} is not a valid Python class name")


def emit_torch(
    program: ProgramSource, *, semantics: Semantics = "math", class_name: str | None = None
) -> str:
    """Python source of a ``torch.optim.Optimizer`` subclass that runs ``program``.

    ``semantics`` is ``math`` or ``hero`` (the protected operations are emitted as such). The
    source is deterministic: the same program gives the same text.

    >>> from simplifier.parse import parse
    >>> text = emit_torch(parse("def sgd(w, g, lr):\\n  return lr * g\\n"))
    >>> "class Sgd(torch.optim.Optimizer):" in text
    True
    """
    program = as_program(program)
    if semantics not in SEMANTICS:
        raise UsageError(f"unknown semantics {semantics!r}")
    name = class_name or default_class_name(program)
    _check_class_name(name)
    low = lower(program, semantics)
    from simplifier.printer import to_text

    source_path = program.path if program.path not in ("", "<program>") else "a program"
    return generate(plan(low), name, semantics, source_path, to_text(low.program))


_counter = [0]


def compile_torch(
    program: ProgramSource, *, semantics: Semantics = "math", class_name: str | None = None
) -> type[torch.optim.Optimizer]:
    """The optimizer class of :func:`emit_torch`, executed in a fresh module."""
    program = as_program(program)
    source = emit_torch(program, semantics=semantics, class_name=class_name)
    name = class_name or default_class_name(program)
    _counter[0] += 1
    module_name = f"simplifier_emitted_{_counter[0]}"
    filename = f"<{module_name}>"
    # Register the source so that tracebacks and torch.compile can show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(module_name)
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    cls: type[torch.optim.Optimizer] = getattr(module, name)
    return cls
