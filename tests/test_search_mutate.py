"""The search's mutations: every child is a valid program, distinct from its parent by hash."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from simplifier.analysis.hashing import structural_hash
from simplifier.analysis.liveness import live_values
from simplifier.analysis.types import infer_types
from simplifier.ir import Const, Ref
from simplifier.ops import OPS
from simplifier.parse import parse, parse_file
from simplifier.printer import to_text
from simplifier.search import PROGRAM3, PROGRAM3_PATH
from simplifier.search.mutate import Genome, Mutator, constant
from simplifier.testing import programs

ADAMW = Genome.of(parse_file("corpus/program3_adamw.py"))


def check_child(parent: Genome, child: Genome) -> None:
    """The full checks the mutator skips: IR invariants, types, liveness and hash."""
    p = child.program
    p.verify()
    types = infer_types(p)
    for name, t in types.items():
        assert child.types[name] is t, name
    assert live_values(p) == child.live
    assert structural_hash(p) == child.digest != parent.digest
    # The child prints as source that reads back as the same program.
    assert structural_hash(parse(to_text(p))) == child.digest


@settings(max_examples=60, deadline=None)
@given(programs(max_statements=8), st.integers(0, 2**32 - 1), st.booleans())
def test_children_of_random_programs_are_valid_and_hash_distinct(text, seed, constants) -> None:
    parent = Genome.of(parse(text))
    mutator = Mutator(max_length=10, constants_only=constants)
    rng = random.Random(seed)
    g = parent
    for _ in range(5):  # a short lineage: children of children
        proposal = mutator.propose(g, rng)
        if proposal is None:  # no valid distinct child within the tries (e.g. no constant)
            return
        check_child(g, proposal.genome)
        assert len(proposal.genome.program.body) <= max(10, len(g.program.body))
        if constants:
            before = [(s.op, [type(a) for a in s.args]) for s in g.program.body]
            after = [(s.op, [type(a) for a in s.args]) for s in proposal.genome.program.body]
            assert before == after  # only constants change
        g = proposal.genome


def test_long_lineage_from_adamw_stays_valid() -> None:
    mutator = Mutator()
    rng = random.Random(3)
    population = [ADAMW]
    kinds = set()
    for _ in range(400):
        parent = population[int(rng.random() * len(population))]
        proposal = mutator.propose(parent, rng)
        assert proposal is not None
        check_child(parent, proposal.genome)
        kinds.add(proposal.mutation.split()[0])
        population = [*population, proposal.genome][-20:]
    assert kinds == {"insert", "delete", "modify"}


def test_max_length_disables_insertion() -> None:
    mutator = Mutator(max_length=len(ADAMW.program.body))
    rng = random.Random(0)
    for _ in range(100):
        proposal = mutator.propose(ADAMW, rng)
        assert proposal is not None and not proposal.mutation.startswith("insert")
        assert len(proposal.genome.program.body) <= len(ADAMW.program.body)


def test_insertion_reads_the_new_value_downstream() -> None:
    """Inserting ``update = f(...)`` before the last use of ``update`` changes what it reads."""
    rng = random.Random(0)
    mutator = Mutator(ops=("sign",))
    seen = False
    for _ in range(200):
        drawn = mutator._insert(ADAMW, rng)
        if drawn is None:
            continue
        p = drawn.program
        new = next(s for s in p.body if s.target not in ADAMW.types)
        readers = [s for s in p.body if Ref(new.target) in s.args] + [
            a for a in p.outputs if a == Ref(new.target)
        ]
        assert readers, "a kept insertion is read"
        seen = True
    assert seen


def test_delete_keeps_the_previous_value_and_never_the_return() -> None:
    rng = random.Random(1)
    for _ in range(200):
        drawn = Mutator()._delete(ADAMW, rng)
        if drawn is None:
            continue
        p = drawn.program
        assert len(p.body) == len(ADAMW.program.body) - 1
        assert len(p.outputs) == len(ADAMW.program.outputs)


def test_modify_constant_draws() -> None:
    rng = random.Random(5)
    values = {float(constant(rng.gauss(0, 1)).value) for _ in range(50)}
    assert len(values) > 40
    assert float(constant(2.0**40).value) == 1e10
    assert float(constant(-1e30).value) == -1e10
    assert str(constant(0.123456)) == "0.1235"
    assert isinstance(constant(0.1), Const)


def test_ops_are_read_from_the_op_table() -> None:
    assert set(Mutator().ops) == set(OPS)
    rng = random.Random(0)
    used = set()
    for _ in range(3000):
        drawn = Mutator()._insert(ADAMW, rng)
        if drawn is not None:
            used |= {s.op for s in drawn.program.body}
    assert len(used) > len(OPS) * 0.8


def test_builtin_warm_start_is_the_corpus_program3() -> None:
    assert structural_hash(parse(PROGRAM3)) == structural_hash(parse_file(PROGRAM3_PATH))
    assert to_text(parse(PROGRAM3)) == to_text(parse_file(PROGRAM3_PATH))
