"""What the public functions accept as a program: a :class:`Program`, its text, or its file.

>>> as_program("def f(w, g, lr):\\n  return g * lr\\n").name
'f'
>>> as_program("corpus/lion.py").path
'corpus/lion.py'
>>> from pathlib import Path
>>> as_program(Path("corpus/lion.py"), {"beta1": 0.95}).hypers[0].default.text
'0.95'
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from simplifier.ir import HyperValue, Program
from simplifier.parse import parse, parse_file

ProgramSource = Program | str | os.PathLike[str]
"""A program, the text of one (it has a newline), or the path of its file."""

__all__ = ["ProgramSource", "as_program"]


def as_program(source: ProgramSource, values: Mapping[str, HyperValue] | None = None) -> Program:
    """``source`` as a parsed program, with ``values`` bound to its hypers.

    A string with a newline is program text; any other string, and any path object, names a
    file (a missing one is a :class:`~simplifier.errors.ProgramError` ``no such file``).
    """
    if isinstance(source, Program):
        return source.bind(values) if values else source
    if isinstance(source, str) and "\n" in source:
        return parse(source, values=values)
    if isinstance(source, str | os.PathLike):
        return parse_file(os.fspath(source), values)
    raise TypeError(f"expected a Program, program text or a path, got {type(source).__name__}")
