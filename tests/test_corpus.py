"""The corpus itself: provenance headers, the paper's texts, and the padded raw Program 4.

``program4_raw.py`` lists its padding lines in a ``# padding:`` comment and the ones that are
live within a step (dead only across steps) in ``# padding-across-steps:``. The claims are
checked here with a liveness walk written independently of the toolkit's passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_support import CORPUS, code

from simplifier.ir import Program, Ref
from simplifier.parse import parse

FILES = sorted(CORPUS.glob("*.py"))
RAW = CORPUS / "program4_raw.py"

PAPER_PROGRAM_4 = """\
def train(w, g, m, v, lr):
  g = clip(g, lr)
  g = arcsin(g)
  m = interp(g, v, 0.899)
  m2 = m * m
  v = interp(g, m, 1.109)
  abs_m = sqrt(m2)
  update = m / abs_m
  wd = w * 0.4602
  update = update + wd
  lr = lr * 0.0002
  m = cosh(update)
  update = update * lr
  return update, m, v
"""

PAPER_PROGRAM_3 = """\
def train(w, g, m, v, lr):
  g2 = square(g)
  m = interp(g, m, 0.9)
  v = interp(g2, v, 0.999)
  sqrt_v = sqrt(v)
  update = m / sqrt_v
  wd = w * 0.01
  update = update + wd
  lr = lr * 0.001
  update = update * lr
  return update, m, v
"""

PAPER_PROGRAM_1_BODY = """\
  update = interp(gradient, momentum, β1)
  update = sign(update)
  momentum = interp(gradient, momentum, β2)
  weight_decay = weight * λ
  update = update + weight_decay
  update = update * lr
  return update, momentum
"""


def numbers(path: Path, key: str) -> list[int]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"# {key}:"):
            return [int(n) for n in line.split(":", 1)[1].split()]
    raise AssertionError(f"no '# {key}:' line in {path.name}")


def live_within_step(p: Program) -> set[str]:
    """SSA values the outputs depend on (a backward walk from the outputs)."""
    defining = p.defining()
    live: set[str] = set()
    stack = [a.name for a in p.outputs if isinstance(a, Ref)]
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        if name in defining:
            stack += [a.name for a in defining[name].args if isinstance(a, Ref)]
    return live


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_file_starts_with_its_provenance(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 2, "a header comment says where the program comes from"
    assert lines[len(header)].startswith("def "), "one program, right after its header"


def test_the_paper_programs_are_the_paper_texts() -> None:
    assert code(CORPUS / "program4.py") == PAPER_PROGRAM_4
    assert code(CORPUS / "program3_adamw.py") == PAPER_PROGRAM_3
    assert code(CORPUS / "program1_lion.py").split("\n", 1)[1] == PAPER_PROGRAM_1_BODY


def test_the_corpus_has_the_classics() -> None:
    names = {p.stem for p in FILES}
    assert {"program1_lion", "program3_adamw", "program4", "program4_raw"} <= names
    classics = {"sgd", "sgd_momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"}
    classics |= {"adabelief", "signum", "powersign", "addsign", "lion"}
    assert classics <= names


def test_removing_the_padding_gives_program_4_exactly() -> None:
    padding = set(numbers(RAW, "padding"))
    lines = RAW.read_text(encoding="utf-8").splitlines()
    kept = [ln for i, ln in enumerate(lines, 1) if i not in padding and not ln.startswith("#")]
    assert "".join(ln + "\n" for ln in kept) == PAPER_PROGRAM_4
    assert parse("".join(ln + "\n" for ln in kept)) == parse(PAPER_PROGRAM_4)


def test_padding_is_at_least_ten_statements_of_different_kinds() -> None:
    padding = numbers(RAW, "padding")
    raw = parse(RAW.read_text(encoding="utf-8"), str(RAW))
    by_line: dict[int, list[str]] = {}
    for s in raw.body:
        assert s.loc is not None
        by_line.setdefault(s.loc.line, []).append(s.op)
    assert len(padding) >= 10
    assert all(by_line.get(n) for n in padding), "every padding line is a statement, no copy"
    ops = {op for n in padding for op in by_line[n]}
    assert {"global_norm", "dot"} & ops, "a dead reduction"
    assert len(ops) >= 8
    lines = RAW.read_text(encoding="utf-8").splitlines()
    assert any("+=" in lines[n - 1] for n in padding), "a dead augmented assignment"


def test_padding_lines_are_dead_and_the_rest_is_live() -> None:
    """Within one step: every padding statement is dead except those of padding-across-steps;
    every statement of Program 4 is live. Across steps, state m's input is never read by a live
    statement, so whatever the step leaves in m (the across-steps padding) is dead too."""
    padding = set(numbers(RAW, "padding"))
    across = set(numbers(RAW, "padding-across-steps"))
    assert across <= padding
    raw = parse(RAW.read_text(encoding="utf-8"), str(RAW))
    live = live_within_step(raw)
    for s in raw.body:
        assert s.loc is not None
        dead_here = s.loc.line in padding - across
        assert (s.target not in live) == dead_here, f"line {s.loc.line}: {s.target}"
    reads_m = [s for s in raw.body if s.target in live and Ref("m") in s.args]
    assert reads_m == []
    last = [s for s in raw.body if s.loc is not None and s.loc.line in across]
    assert [Ref(s.target) for s in last] == [raw.state_outputs()["m"]]
