"""The shipped corpus: the Lion paper's programs and classic optimizers, by name.

The wheel carries ``corpus/`` inside the package (``simplifier/corpus``); a checkout reads the
repository's ``corpus/``. On the command line ``--example NAME`` stands for the file of
``NAME`` (``simplifier simplify --example program4``), so the README's examples run from an
installed package too.

>>> example_path("program4").name
'program4.py'
>>> "equiv/lion_scaled" in example_names()
True
"""

from __future__ import annotations

from pathlib import Path

from simplifier.errors import UsageError

__all__ = ["corpus_dir", "example_names", "example_path"]


def corpus_dir() -> Path:
    """The corpus folder: inside the installed package, else the checkout's ``corpus/``."""
    here = Path(__file__).resolve().parent
    packaged = here / "corpus"
    return packaged if packaged.is_dir() else here.parent / "corpus"


def example_names() -> list[str]:
    """Every shipped program's name (``program4``, ``equiv/lion_scaled``, ...), sorted."""
    root = corpus_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.py"))


def example_path(name: str) -> Path:
    """The file of the shipped program ``name`` (``program4`` or ``program4.py``).

    ``corpus/NAME.py`` when the working directory's ``corpus/`` is that folder (a checkout's
    root), so that reports name the file as the README shows it; else the full path.
    """
    stem = name.removesuffix(".py")
    path = corpus_dir() / f"{stem}.py"
    if not path.is_file() or stem not in example_names():
        raise UsageError(f"--example {name}: no such example (known: {', '.join(example_names())})")
    local = Path("corpus") / f"{stem}.py"
    return local if local.is_file() and local.resolve() == path.resolve() else path
