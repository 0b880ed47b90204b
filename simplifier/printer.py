"""Canonical program text from the IR; ``parse(to_text(p)) == p`` for parsed programs.

Temporaries used once are printed inline as nested expressions; every other value is a line.
Names are the source names, renamed only where a later assignment would shadow a value that is
still read (which a pass that reorders statements can cause).

>>> from simplifier.parse import parse
>>> text = "def f(w, g, m):\\n  m = interp(g, m, .9)\\n  return -(m*2) + w, m"
>>> print(to_text(parse(text)), end="")
def f(w, g, m):
  m = interp(g, m, 0.9)
  return -(m * 2) + w, m
"""

from __future__ import annotations

from simplifier.ir import Atom, Const, Program, Ref, Role, Stmt, format_number, fresh_name
from simplifier.ops import OPS
from simplifier.parse import NAME_ROLES

_PREC = {"add": 1, "sub": 1, "mul": 2, "div": 2, "negative": 3, "power": 4}
_ATOM = 5


def _const_text(c: Const) -> tuple[str, int]:
    text = format_number(abs(c.value))
    return ("-" + text, 3) if c.value < 0 else (text, _ATOM)


def _param_text(p) -> str:
    text = p.name
    implied = NAME_ROLES.get(p.name) or (Role.HYPER if p.default is not None else Role.STATE)
    if p.role is not implied:
        text += f": {p.role.value}"
    if p.default is not None:
        text += f"={format_number(p.default.value)}"
    return text


class _Printer:
    def __init__(self, program: Program) -> None:
        self.p = program
        self.stmts = {s.target: s for s in program.body}
        uses: dict[str, int] = {}
        for s in program.body:
            for a in s.args:
                if isinstance(a, Ref):
                    uses[a.name] = uses.get(a.name, 0) + 1
        for a in program.outputs:
            if isinstance(a, Ref):
                uses[a.name] = uses.get(a.name, 0) + 1
        self.inline = {s.target for s in program.body if s.var is None and uses.get(s.target) == 1}
        taken = {p.name for p in program.params} | {s.var for s in program.body if s.var}
        self.names: dict[str, str] = {p.name: p.name for p in program.params}
        counter = 0
        for s in program.body:
            if s.var is not None:
                self.names[s.target] = s.var
            elif s.target not in self.inline:
                counter += 1
                while f"t{counter}" in taken:
                    counter += 1
                self.names[s.target] = f"t{counter}"
                taken.add(f"t{counter}")
        self.taken = taken

    # -- naming -------------------------------------------------------------------------------
    def _reads(self, atom: Atom, out: list[str]) -> None:
        """The named values an expression reads (through inlined temporaries)."""
        stack = [atom]
        while stack:
            a = stack.pop()
            if isinstance(a, Ref):
                if a.name in self.inline:
                    stack.extend(self.stmts[a.name].args)
                else:
                    out.append(a.name)

    def _fresh(self, base: str) -> str:
        name = fresh_name(base, self.taken)
        self.taken.add(name)
        return name

    def resolve_shadowing(self) -> None:
        """Rename values whose name is rebound before one of their reads."""
        params = {p.name for p in self.p.params}
        while True:
            bound: dict[str, str] = {n: n for n in params}
            conflict: tuple[str, str] | None = None
            lines: list[tuple[list[str], str | None]] = [
                ([*self._args_reads(s)], s.target)
                for s in self.p.body
                if s.target not in self.inline
            ]
            final: list[str] = []
            for a in self.p.outputs:
                self._reads(a, final)
            lines.append((final, None))
            for reads, target in lines:
                for v in reads:
                    if bound.get(self.names[v]) != v:
                        conflict = (v, bound.get(self.names[v], ""))
                        break
                if conflict or target is None:
                    break
                bound[self.names[target]] = target
            if conflict is None:
                return
            victim = conflict[1] if conflict[0] in params else conflict[0]
            self.names[victim] = self._fresh(self.names[victim])

    def _args_reads(self, s: Stmt) -> list[str]:
        out: list[str] = []
        for a in s.args:
            self._reads(a, out)
        return out

    # -- expressions -------------------------------------------------------------------------
    def expr(self, atom: Atom) -> tuple[str, int]:
        if isinstance(atom, Const):
            return _const_text(atom)
        if atom.name not in self.inline:
            return self.names[atom.name], _ATOM
        return self.call(self.stmts[atom.name])

    def call(self, s: Stmt) -> tuple[str, int]:
        op = OPS[s.op]
        if s.op == "negative" and not isinstance(s.args[0], Const):  # `-0.5` parses as a constant
            text, prec = self.expr(s.args[0])
            return "-" + (f"({text})" if prec < 3 else text), 3
        if op.infix:
            mine = _PREC[s.op]
            (lt, lp), (rt, rp) = self.expr(s.args[0]), self.expr(s.args[1])
            if s.op == "power":
                left_ok, right_ok = lp > mine, rp >= 3
            else:
                left_ok, right_ok = lp >= mine, rp > mine
            lt = lt if left_ok else f"({lt})"
            rt = rt if right_ok else f"({rt})"
            return f"{lt} {op.infix} {rt}", mine
        args = ", ".join(self.expr(a)[0] for a in s.args)
        return f"{s.op}({args})", _ATOM

    def text(self) -> str:
        self.resolve_shadowing()
        p = self.p
        out = [f"def {p.name}({', '.join(_param_text(q) for q in p.params)}):"]
        for s in p.body:
            if s.target in self.inline:
                continue
            out.append(f"  {self.names[s.target]} = {self.call(s)[0]}")
        out.append(f"  return {', '.join(self.expr(a)[0] for a in p.outputs)}")
        return "\n".join(out) + "\n"


def to_text(program: Program) -> str:
    """The program as canonical source text (2-space indent, one statement a line)."""
    return _Printer(program).text()
