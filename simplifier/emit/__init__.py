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

import base64
import importlib
import importlib.abc
import importlib.machinery
import itertools
import json
import keyword
import linecache
import re
import sys
import types
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from simplifier.emit.lower import lower
from simplifier.emit.module import generate
from simplifier.emit.plan import plan
from simplifier.errors import UsageError
from simplifier.ir import Program
from simplifier.numeric import SEMANTICS, Semantics

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
    program: Program, *, semantics: Semantics = "math", class_name: str | None = None
) -> str:
    """Python source of a ``torch.optim.Optimizer`` subclass that runs ``program``.

    ``semantics`` is ``math`` or ``hero`` (the protected operations are emitted as such). The
    source is deterministic: the same program gives the same text.

    >>> from simplifier.parse import parse
    >>> text = emit_torch(parse("def sgd(w, g, lr):\\n  return lr * g\\n"))
    >>> "class Sgd(torch.optim.Optimizer):" in text
    True
    """
    if semantics not in SEMANTICS:
        raise UsageError(f"unknown semantics {semantics!r}")
    name = class_name or default_class_name(program)
    _check_class_name(name)
    low = lower(program, semantics)
    from simplifier.printer import to_text

    source_path = program.path if program.path not in ("", "<program>") else "a program"
    return generate(plan(low), name, semantics, source_path, to_text(low.program))


#: The package under which :func:`compile_torch` registers its modules. A module's name encodes
#: the program text, semantics and class name, so any process that can import simplifier can
#: re-create the module from its name alone: pickled optimizers (``torch.save(opt)``), spawn-based
#: multiprocessing and Ray workers find their class by the usual import.
COMPILED_PACKAGE = "simplifier.emit.compiled"
_counter = itertools.count(1)


def _encode(text: str, semantics: str, class_name: str, path: str) -> str:
    data = zlib.compress(json.dumps([text, semantics, class_name, path]).encode(), 9)
    return "m" + base64.b32encode(data).decode().rstrip("=").lower()


def _decode(key: str) -> tuple[str, Semantics, str, str]:
    blob = key[1:].split("_", 1)[0].upper()
    data = base64.b32decode(blob + "=" * (-len(blob) % 8))
    text, semantics, class_name, path = json.loads(zlib.decompress(data))
    return text, semantics, class_name, path


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``simplifier.emit.compiled.<key>``: the module emitted for the program, semantics
    and class name that ``key`` encodes (see :func:`compile_torch`)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == COMPILED_PACKAGE:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if fullname.startswith(COMPILED_PACKAGE + "."):
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__name__ == COMPILED_PACKAGE:
            module.__path__ = []
            return
        from simplifier.parse import parse

        text, semantics, class_name, path = _decode(module.__name__.rsplit(".", 1)[1])
        source = emit_torch(parse(text, path), semantics=semantics, class_name=class_name)
        _run(module, source, class_name)


def _run(module: types.ModuleType, source: str, class_name: str) -> None:
    """Execute an emitted module's source in ``module``."""
    filename = f"<{class_name} emitted by simplifier>"
    # Register the source so that tracebacks and torch.compile can show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.append(_Finder())


def compile_torch(
    program: Program, *, semantics: Semantics = "math", class_name: str | None = None
) -> type[torch.optim.Optimizer]:
    """The optimizer class of :func:`emit_torch`, executed in a fresh module.

    The module is registered as ``simplifier.emit.compiled.<key>``, where the key encodes the
    program's text: the class pickles by reference like any importable class (``torch.save(opt)``
    and ``pickle`` work, and a process that unpickles it re-creates the module from its name).
    """
    from simplifier.printer import to_text

    name = class_name or default_class_name(program)
    source = emit_torch(program, semantics=semantics, class_name=name)
    key = _encode(to_text(program), semantics, name, program.path)
    importlib.import_module(COMPILED_PACKAGE)
    module = types.ModuleType(f"{COMPILED_PACKAGE}.{key}_{next(_counter)}")
    _run(module, source, name)
    sys.modules[module.__name__] = module
    cls: type[torch.optim.Optimizer] = getattr(module, name)
    return cls
