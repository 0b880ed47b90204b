"""Liveness within one step and across steps, with the reasons reported for dead code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings

from simplifier.analysis.liveness import Fact, live_values, liveness
from simplifier.ir import Ref
from simplifier.parse import parse, parse_file
from simplifier.testing import programs

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def dead_lines(text_or_program) -> dict[int, str]:
    p = parse(text_or_program) if isinstance(text_or_program, str) else text_or_program
    info = liveness(p)
    return {
        s.loc.line: info.values[s.target].reason
        for s in p.body
        if s.var is not None and not info.values[s.target].live
    }


def line_of(program, text: str) -> int:
    """The line of the statement that starts with ``text`` (comments mention statements too)."""
    lines = program.source.splitlines()
    return next(i for i, t in enumerate(lines, 1) if t.strip().startswith(text))


def test_program4_cosh_is_dead_across_steps():
    p = parse_file(str(CORPUS / "program4.py"))
    info = liveness(p)
    dead = dead_lines(p)
    assert list(dead) == [line_of(p, "m = cosh(update)")]
    interp_line = line_of(p, "m = interp(g, v, 0.899)")
    assert dead.popitem()[1] == (
        f"only feeds state 'm', whose value is overwritten at line {interp_line} "
        "before it is read in the next step"
    )
    assert info.states == {
        "m": Fact(False, f"overwritten at line {interp_line} before it is read"),
        "v": Fact(True),
    }


def test_program4_within_one_step_everything_is_live():
    p = parse_file(str(CORPUS / "program4.py"))
    info = liveness(p, across_steps=False)
    assert all(f.live for f in info.values.values())
    assert all(f.live for f in info.states.values())


def test_raw_program4_exactly_the_padding_and_cosh_are_dead():
    p = parse_file(str(CORPUS / "program4_raw.py"))
    padding = {int(n) for n in re.search(r"# padding: ([\d ]+)", p.source).group(1).split()}
    across = {
        int(n) for n in re.search(r"# padding-across-steps: ([\d ]+)", p.source).group(1).split()
    }
    cosh = line_of(p, "m = cosh(update)")
    dead = dead_lines(p)
    assert set(dead) == padding | {cosh}
    for line in across | {cosh}:
        assert dead[line].startswith("only feeds state 'm'"), dead[line]
    within = liveness(p, across_steps=False)
    dead_within = {
        s.loc.line for s in p.body if s.var is not None and not within.values[s.target].live
    }
    assert dead_within == padding - across


def test_reasons_within_a_step():
    text = (
        "def f(w, g, lr):\n"  # 1
        "  a = g * 2\n"  # 2: overwritten at 3
        "  a = g * 3\n"  # 3: read only by 4
        "  b = a + 1\n"  # 4: never read
        "  c = exp(g)\n"  # 5: live
        "  return c * lr\n"
    )
    assert dead_lines(text) == {
        2: "overwritten at line 3 before it is read",
        3: "read only by dead code (line 4)",
        4: "result never read",
    }


def test_chain_of_states_is_dead():
    # a feeds only b; b feeds nothing live: both dead, with their statements.
    text = (
        "def f(w, g, a, b, lr):\n"
        "  b = interp(a, b, 0.9)\n"
        "  a = interp(g, a, 0.5)\n"
        "  return g * lr, a, b\n"
    )
    info = liveness(parse(text))
    assert info.states == {
        "a": Fact(False, "read only to compute its own next value and dead state 'b'"),
        "b": Fact(False, "read only to compute its own next value"),
    }
    assert not any(f.live for v, f in info.values.items() if not v.startswith("%"))
    assert dead_lines(text)[2].startswith("only feeds state 'b', whose value is read in the next")


def test_state_read_by_live_code_makes_its_feeders_live():
    # The update reads b; b's new value reads a; so a and its statement are live.
    text = (
        "def f(w, g, a, b, lr):\n"
        "  u = sign(b) * lr\n"
        "  b = interp(a, b, 0.9)\n"
        "  a = interp(g, a, 0.5)\n"
        "  return u, a, b\n"
    )
    info = liveness(parse(text))
    assert all(f.live for f in info.states.values())
    assert all(f.live for f in info.values.values())


def test_swapped_states_and_passthrough():
    # a's new value is b's old one and vice versa; neither is read by the update.
    p = parse("def f(w, g, a, b):\n  return g, b, a\n")
    info = liveness(p)
    assert info.states["a"] == Fact(False, "read only to compute dead state 'b'")
    # A state returned unchanged that the update reads is live (it stays zero: not our job).
    p = parse("def f(w, g, m):\n  return g + m, m\n")
    assert live_values(p)[1] == ("m",)


def test_state_never_read_and_never_assigned():
    p = parse("def f(w, g, m, v):\n  return g, v, v\n")
    assert liveness(p).states["m"] == Fact(False, "never read")


def test_update_reading_state_through_self_loop():
    text = "def f(w, g, m):\n  m = m * 0.9 + g\n  return sign(m), m\n"
    info = liveness(parse(text))
    assert info.states["m"].live and all(f.live for f in info.values.values())
    # The same state when the update no longer reads it: only itself.
    text = "def f(w, g, m):\n  m = m * 0.9 + g\n  return g, m\n"
    info = liveness(parse(text))
    assert info.states["m"] == Fact(False, "read only to compute its own next value")


def test_live_values_includes_read_inputs_only():
    p = parse("def f(w, g, lr):\n  t = w * 2\n  return g * lr\n")
    used, states = live_values(p)
    assert {"g", "lr"} <= used and "w" not in used and "t.1" not in used and states == ()


@pytest.mark.parametrize(
    "path",
    sorted(p for p in CORPUS.glob("*.py") if "raw" not in p.name),  # raw: padded on purpose
    ids=lambda p: p.name,
)
def test_corpus_programs_other_than_raw_have_no_dead_statements_within_a_step(path):
    p = parse_file(str(path))
    info = liveness(p, across_steps=False)
    assert all(f.live for f in info.values.values()), path.name


def test_reasons_without_source_positions():
    # Programs built by passes may have no locations: reasons still say what happened.
    from dataclasses import replace

    p = parse("def f(w, g, m):\n  t = exp(g)\n  t = sin(g)\n  m = cosh(t)\n  return t, m\n")
    p = p.with_body(tuple(replace(s, loc=None) for s in p.body))
    info = liveness(p)
    assert info.values["t.1"].reason == "overwritten before it is read"
    assert info.states["m"].reason == "overwritten before it is read"


def reference_live(p):
    """Reachability from the update in the graph statement -> its arguments, state parameter ->
    the state's new value: an independent (worklist) formulation of the same least fixed point."""
    defining = p.defining()
    outs = p.state_outputs()
    seen, stack = set(), [p.outputs[0]]
    while stack:
        a = stack.pop()
        if not isinstance(a, Ref) or a.name in seen:
            continue
        seen.add(a.name)
        if a.name in defining:
            stack.extend(defining[a.name].args)
        elif a.name in outs:
            stack.append(outs[a.name])
    return seen, tuple(s for s in p.states if s in seen)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(text=programs(max_statements=14))
def test_live_values_is_the_least_fixed_point(text):
    p = parse(text)
    used, states = live_values(p)
    ref_used, ref_states = reference_live(p)
    assert states == ref_states
    assert {s.target for s in p.body} & used == {s.target for s in p.body} & ref_used
