"""The one expression printer: program text from the IR, and expression text from the DAG.

:func:`apply_text` writes one op applied to already-printed arguments (precedence and
parentheses); every printer of the toolkit is built on it: :func:`to_text` (canonical program
text, ``parse(to_text(p)) == p`` for parsed programs), :func:`expression_text` (one statement's
expression with its temporaries inlined, for tables and logs) and :class:`NodePrinter` (DAG
nodes, for change logs and conditions). Constants print exactly (:func:`number_text`).

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

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

from simplifier.ir import (
    Atom,
    Const,
    Node,
    Param,
    Program,
    Ref,
    Role,
    Stmt,
    format_number,
    fresh_name,
)
from simplifier.ops import OPS

# Python's: comparisons bind loosest and do not chain; % binds like * and /.
PRECEDENCE = {
    **{op.name: 0 for op in OPS.values() if op.truth},
    **{"add": 1, "sub": 1, "mul": 2, "div": 2, "mod": 2, "negative": 3, "power": 4},
}
ATOM = 5  # the precedence of a name, a call or a non-negative number
INFIX: dict[str, str] = {op.name: op.infix for op in OPS.values() if op.infix}  # add -> "+"

Text = tuple[str, int]  # printed text and its precedence


# -- numbers and one op ---------------------------------------------------------------------------
def number_text(value: Fraction) -> Text:
    """A constant: a negative one binds like a negation."""
    text = format_number(abs(value))
    return ("-" + text, PRECEDENCE["negative"]) if value < 0 else (text, ATOM)


def apply_text(op: str, args: Sequence[Text], *, call: bool = False) -> Text:
    """``op`` applied to printed arguments, parenthesised as the grammar needs; ``call`` writes
    it as a function call whatever the op (``negative(0.5)``: ``-0.5`` is a constant).

    >>> apply_text("mul", [("a + b", 1), ("c", ATOM)])
    ('(a + b) * c', 2)
    >>> apply_text("power", [("-x", 3), ("2", ATOM)])
    ('(-x) ** 2', 4)
    """
    if not call and op == "negative":
        text, prec = args[0]
        return "-" + (f"({text})" if prec < PRECEDENCE["negative"] else text), PRECEDENCE[op]
    if not call and op in INFIX:
        mine = PRECEDENCE[op]
        (lt, lp), (rt, rp) = args
        if op == "power":  # right-associative, and binds tighter than a unary minus on its left
            left_ok, right_ok = lp > mine, rp >= PRECEDENCE["negative"]
        elif OPS[op].truth:  # comparisons do not chain: a comparison operand is parenthesised
            left_ok, right_ok = lp > mine, rp > mine
        else:
            left_ok, right_ok = lp >= mine, rp > mine
        lt = lt if left_ok else f"({lt})"
        rt = rt if right_ok else f"({rt})"
        return f"{lt} {INFIX[op]} {rt}", mine
    return f"{op}({', '.join(t for t, _ in args)})", ATOM


# -- statements -----------------------------------------------------------------------------------
def _uses(program: Program) -> dict[str, int]:
    uses: dict[str, int] = {}
    for s in program.body:
        for a in s.args:
            if isinstance(a, Ref):
                uses[a.name] = uses.get(a.name, 0) + 1
    for a in program.outputs:
        if isinstance(a, Ref):
            uses[a.name] = uses.get(a.name, 0) + 1
    return uses


class StatementPrinter:
    """Expressions of a program's statements, with the ``inline`` temporaries nested into the
    expressions that read them and every other value printed by ``names``; each statement's
    text is built once (linear in the program's size)."""

    def __init__(self, program: Program, inline: set[str], names: Mapping[str, str]) -> None:
        self.stmts = {s.target: s for s in program.body}
        self.inline, self.names = inline, names
        self.memo: dict[str, Text] = {}

    def atom(self, a: Atom) -> Text:
        if isinstance(a, Const):
            return number_text(a.value)
        if a.name not in self.inline:
            return self.names[a.name], ATOM
        return self.statement(self.stmts[a.name])

    def statement(self, s: Stmt) -> Text:
        """The expression that ``s`` computes (iterative: nesting depth is not bounded)."""
        done = self.memo.get(s.target)
        if done is not None:
            return done
        stack = [s]
        while stack:
            top = stack[-1]
            pending = [
                self.stmts[a.name]
                for a in top.args
                if isinstance(a, Ref) and a.name in self.inline and a.name not in self.memo
            ]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if top.target in self.memo:
                continue
            literal = top.op == "negative" and isinstance(top.args[0], Const)
            self.memo[top.target] = apply_text(
                top.op, [self.atom(a) for a in top.args], call=literal
            )
        return self.memo[s.target]


def expression_text(program: Program, stmt: Stmt) -> str:
    """``var = expression`` for a statement, its temporaries inlined (for tables and logs).

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, m):\\n  u = sign(interp(g, m, 0.9)) * 2\\n  return u, m\\n")
    >>> expression_text(p, p.body[-1])
    'u = sign(interp(g, m, 0.9)) * 2'
    """
    inline = {s.target for s in program.body if s.var is None}
    names = {p.name: p.name for p in program.params}
    names.update({s.target: s.var for s in program.body if s.var is not None})
    text = StatementPrinter(program, inline, names).statement(stmt)[0]
    return f"{stmt.var} = {text}" if stmt.var is not None else text


# -- programs -------------------------------------------------------------------------------------
def _param_text(p: Param) -> str:
    from simplifier.parse import NAME_ROLES

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
        uses = _uses(program)
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
        lines: list[tuple[list[str], str | None]] = [
            (self._args_reads(s), s.target) for s in self.p.body if s.target not in self.inline
        ]
        final: list[str] = []
        for a in self.p.outputs:
            self._reads(a, final)
        lines.append((final, None))
        while True:
            bound: dict[str, str] = {n: n for n in params}
            conflict: tuple[str, str] | None = None
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

    def text(self) -> str:
        self.resolve_shadowing()
        p = self.p
        exprs = StatementPrinter(p, self.inline, self.names)
        out = [f"def {p.name}({', '.join(_param_text(q) for q in p.params)}):"]
        for s in p.body:
            if s.target in self.inline:
                continue
            out.append(f"  {self.names[s.target]} = {exprs.statement(s)[0]}")
        out.append(f"  return {', '.join(exprs.atom(a)[0] for a in p.outputs)}")
        return "\n".join(out) + "\n"


def to_text(program: Program) -> str:
    """The program as canonical source text (2-space indent, one statement a line)."""
    return _Printer(program).text()


# -- DAG nodes ------------------------------------------------------------------------------------
class NodePrinter:
    """Text of DAG nodes, for change logs and conditions; ``name_of`` names the nodes that have
    a name (printed as that name, except the node asked for itself).

    Texts are memoised per node, so printing many nodes of one DAG costs each node once; a
    node's text is built iteratively (no recursion limit on depth).

    >>> lr, two = Node.make("input", (), "lr"), Node.make("const", (), Fraction(2))
    >>> NodePrinter().text(Node.make("mul", (lr, two)))
    'lr * 2'
    """

    def __init__(self, name_of: Callable[[Node], str | None] = lambda n: None) -> None:
        self.name_of = name_of
        self.memo: dict[int, tuple[Node, Text]] = {}  # id -> (node kept alive, its text)

    def text(self, node: Node) -> str:
        """The node's expression (its own name is not used; its arguments' names are)."""
        return self._expression(node)[0]

    def label(self, node: Node) -> str:
        """The node's name if it has one, else its expression."""
        return self.name_of(node) or self.text(node)

    def operand(self, node: Node) -> Text:
        """The node as an operand: its name when it has one, else its expression."""
        hit = self.memo.get(id(node))
        if hit is not None:
            return hit[1]
        name = None if node.op in ("input", "const") else self.name_of(node)
        text = (name, ATOM) if name is not None else self._expression(node)
        self.memo[id(node)] = (node, text)
        return text

    def _expression(self, node: Node) -> Text:
        if node.op == "input":
            return str(node.leaf), ATOM
        if node.op == "const":
            assert isinstance(node.leaf, Fraction)
            return number_text(node.leaf)
        stack = [a for a in node.args if id(a) not in self.memo]
        while stack:  # operands first, children before parents
            top = stack[-1]
            if id(top) in self.memo:
                stack.pop()
                continue
            name = None if top.op in ("input", "const") else self.name_of(top)
            if name is not None or not top.args:
                stack.pop()
                self.operand(top)
                continue
            pending = [a for a in top.args if id(a) not in self.memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            self.memo[id(top)] = (top, apply_text(top.op, [self.memo[id(a)][1] for a in top.args]))
        return apply_text(node.op, [self.operand(a) for a in node.args])


def render(node: Node, name_of: Callable[[Node], str | None] = lambda n: None) -> str:
    """A node as program text; ``name_of`` gives names for the nodes that have one.

    >>> lr, two = Node.make("input", (), "lr"), Node.make("const", (), Fraction(2))
    >>> render(Node.make("mul", (lr, two)))
    'lr * 2'
    """
    return NodePrinter(name_of).text(node)
