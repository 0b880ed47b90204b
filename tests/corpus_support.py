"""Corpus files as the tests read them: program texts without their comments, the pairs of
``corpus/equiv/``, and Program 4 with the two lines the paper's ablation removes taken out."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PAIRS = CORPUS / "equiv"  # the programs of the equivalence tests and of bench/equiv.py

# The statements of Program 4 whose removal changes nothing measurable (the paper's ablation).
ABLATED = ("g = clip(g, lr)", "g = arcsin(g)")


def code(path: Path) -> str:
    """The file without its comment lines (for the paper's programs: the paper's text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "".join(line + "\n" for line in lines if not line.lstrip().startswith("#"))


def pair_text(name: str) -> str:
    """The text of ``corpus/equiv/NAME``, comments included."""
    return (PAIRS / name).read_text(encoding="utf-8")


def program4_ablated() -> str:
    """Program 4's text without its ``clip`` and ``arcsin`` lines (and without comments)."""
    lines = code(CORPUS / "program4.py").splitlines(keepends=True)
    kept = [ln for ln in lines if ln.strip() not in ABLATED]
    assert len(kept) == len(lines) - len(ABLATED), "Program 4 no longer has both lines"
    return "".join(kept)
