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
import functools
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
from simplifier.source import ProgramSource, as_program

if TYPE_CHECKING:
    import torch

__all__ = ["compile_torch", "default_class_name", "emit_torch"]


# Optimizers a class is named after when the program is one of them (up to names, statement
# order, constants and hyperparameter values): torch.optim's spelling, and Lion's (with and
# without weight decay).
_KNOWN: tuple[tuple[str, str], ...] = (
    (
        "Lion",
        """def lion(w, g, m, lr, beta1=0.9, beta2=0.99, weight_decay=0.0):
  c = interp(g, m, beta1)
  update = lr * (sign(c) + weight_decay * w)
  m = interp(g, m, beta2)
  return update, m
""",
    ),
    (
        "Adam",
        """def adam(w, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8):
  m = interp(g, m, beta1)
  v = interp(g * g, v, beta2)
  update = lr * (m / (1 - beta1 ** step)) / (sqrt(v / (1 - beta2 ** step)) + eps)
  return update, m, v
""",
    ),
    (
        "AdamW",
        """def adamw(w, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01):
  m = interp(g, m, beta1)
  v = interp(g * g, v, beta2)
  m_hat = m / (1 - beta1 ** step)
  update = lr * (m_hat / (sqrt(v / (1 - beta2 ** step)) + eps) + wd * w)
  return update, m, v
""",
    ),
    (
        "Lion",
        """def lion(w, g, m, lr, beta1=0.9, beta2=0.99):
  update = lr * sign(interp(g, m, beta1))
  m = interp(g, m, beta2)
  return update, m
""",
    ),
    ("SGD", "def sgd(w, g, lr):\n  return lr * g\n"),
    (
        "RMSprop",
        """def rmsprop(w, g, v, lr, alpha=0.99, eps=1e-8):
  v = interp(g * g, v, alpha)
  return lr * g / (sqrt(v) + eps), v
""",
    ),
    (
        "Adagrad",
        """def adagrad(w, g, acc, lr, eps=1e-10):
  acc = acc + g * g
  return lr * g / (sqrt(acc) + eps), acc
""",
    ),
)


def _shape(program: Program) -> str:
    """The structural hash of ``program`` after hyperparameter extraction, with every
    hyperparameter's value erased and its name replaced by its place in the signature: equal
    for programs that are the same optimizer with other constants."""
    from dataclasses import replace

    from simplifier.analysis.hashing import structural_hash
    from simplifier.emit.hypers import extract_hypers
    from simplifier.ir import Param, Ref, Role
    from simplifier.passes.dce import prune

    extracted = extract_hypers(prune(program))
    sig = extracted.signature
    slots = [
        *(f"beta{i}" for i in range(len(sig.betas))),
        *(f"eps{i}" for i in range(len(sig.eps))),
    ]
    slots += ["weight_decay"] if sig.weight_decay else []
    slots += [f"h{i}" for i in range(len(sig.named))]
    names = dict(zip((h.name for h in sig.hypers()), slots, strict=True))
    p = extracted.program
    params = tuple(
        Param(names[q.name], Role.HYPER) if q.role is Role.HYPER else q for q in p.params
    )

    def atom(a: object) -> object:
        return Ref(names[a.name]) if isinstance(a, Ref) and a.name in names else a

    body = tuple(replace(s, args=tuple(atom(a) for a in s.args)) for s in p.body)  # type: ignore[misc]
    outputs = tuple(atom(a) for a in p.outputs)
    return structural_hash(replace(p, params=params, body=body, outputs=outputs))  # type: ignore[arg-type]


@functools.cache
def _known_shapes() -> dict[str, str]:
    from simplifier.parse import parse

    return {_shape(parse(text)): name for name, text in _KNOWN}


def default_class_name(program: Program) -> str:
    """CamelCase of the program's name (of its file's name when the program is called
    ``train``), in torch.optim's spelling when it names an optimizer the program is (``AdamW``,
    ``SGD``); ``EmittedOptimizer`` when it names one the program is not (Program 4 simplified
    into ``lion.py`` still has ``arcsin(clip(g, lr))``: it is not ``Lion``). A program called
    ``train`` without a file is named after the optimizer it is, if it is a known one.

    >>> from simplifier.parse import parse
    >>> default_class_name(parse("def sgd_momentum(w, g, m):\\n  return g, m\\n"))
    'SgdMomentum'
    >>> default_class_name(parse("def train(w, g, m, lr):\\n  u = lr * sign(interp(g, m, 0.8))\\n"
    ...     "  m = interp(g, m, 0.95)\\n  return u, m\\n"))
    'Lion'
    >>> default_class_name(parse("def lion(w, g, m, lr):\\n  return lr * sign(arcsin(g)), m\\n"))
    'EmittedOptimizer'
    """
    name = program.name
    if name == "train" and program.path not in ("", "<program>"):
        name = Path(program.path).stem
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    camel = "".join(w[:1].upper() + w[1:] for w in words)
    if not camel or camel[0].isdigit() or keyword.iskeyword(camel) or camel == "Train":
        return _known_shapes().get(_shape(program), "EmittedOptimizer")
    spelled = {known.lower(): known for known, _ in _KNOWN}.get(camel.lower())
    if spelled is None:
        return camel
    return spelled if _known_shapes().get(_shape(program)) == spelled else "EmittedOptimizer"


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
    >>> "class SGD(torch.optim.Optimizer):" in text
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
    program: ProgramSource, *, semantics: Semantics = "math", class_name: str | None = None
) -> type[torch.optim.Optimizer]:
    """The optimizer class of :func:`emit_torch`, executed in a fresh module.

    The module is registered as ``simplifier.emit.compiled.<key>``, where the key encodes the
    program's text: the class pickles by reference like any importable class (``torch.save(opt)``
    and ``pickle`` work, and a process that unpickles it re-creates the module from its name).
    """
    from simplifier.printer import to_text

    program = as_program(program)
    name = class_name or default_class_name(program)
    source = emit_torch(program, semantics=semantics, class_name=name)
    key = _encode(to_text(program), semantics, name, program.path)
    importlib.import_module(COMPILED_PACKAGE)
    module = types.ModuleType(f"{COMPILED_PACKAGE}.{key}_{next(_counter)}")
    _run(module, source, name)
    sys.modules[module.__name__] = module
    cls: type[torch.optim.Optimizer] = getattr(module, name)
    return cls
