"""Name a program's constants as the hyperparameters of an optimizer's constructor.

The emitted optimizer's keyword arguments come from the program, by the role each number plays:

- **lr**: when the program reads its lr input only through a product with one constant (``lr *
  0.0002``), that product *is* the group's lr, with the constant (times the lr parameter's
  default, if it has one) as its default, so that an LR scheduler scales it as users expect.
  Otherwise lr is the program's lr input, with the default the program gives it (``lr=1e-3``),
  and a required argument when it gives none (a silent 1.0 would diverge); a program that never
  reads lr gets its update multiplied by the group's lr (default 1.0, so the program's meaning is
  unchanged) so that schedulers still have a handle.
- **betas**: the weights of interps that mix a state (``interp(g, m, 0.9)``), in torch.optim's
  order: (first-moment beta, second-moment beta), i.e. the moving average of the gradient that
  the update reads first, the moving average of a square second (a program without one takes
  a state's moving average of the gradient second: Lion's); other moving averages keep their own
  names. One tuple ``betas`` when there are two, a single keyword when there is one. A scalar
  expression that repeats a beta's exact value (``1 - 0.9 ** step``, bias correction) uses it.
- **weight_decay**: the coefficient of the weight in a product that is added (``w * 0.01``).
- **eps**: a small positive constant added to a divisor (``m / (sqrt(v) + 1e-8)``).
- every other non-integer constant becomes a keyword named after its variable and role
  (``lr = lr * 0.0002`` with lr also read elsewhere gives ``lr_scale``), one keyword for a value
  written several times (NAdam's 0.96), so that it cannot be set inconsistently; integers are
  structure (``1 - x``, ``x ** 2``) and stay literal. Hypers (role ``hyper``) keep their names
  unless they play one of the roles above.

>>> from simplifier.parse import parse
>>> lion = parse(
...     "def train(w, g, v, lr):\\n  c = interp(g, v, 0.899)\\n"
...     "  update = (sign(c) + w * 0.4602) * (lr * 0.0002)\\n  v = interp(g, v, 0.996991)\\n"
...     "  return update, v\\n"
... )
>>> sig = extract_hypers(lion).signature
>>> sig.keywords()
[('lr', '0.0002'), ('betas', '(0.899, 0.996991)'), ('weight_decay', '0.4602')]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from simplifier.analysis.types import Type, infer_types
from simplifier.emit.names import RESERVED, Namespace, identifier
from simplifier.ir import Atom, Const, Param, Program, Ref, Role, Stmt, format_number
from simplifier.ops import OPS, Kind

LrMode = Literal["product", "input", "absent"]
#: The range a hyper's value must lie in, where the program makes it clear (checked by the
#: constructor, which raises ValueError naming the argument): ``unit`` is [0, 1) (the weight of a
#: moving average: 1 would freeze it, outside [0, 1] it diverges), ``nonnegative`` is >= 0 (eps,
#: weight decay, a momentum factor of a state).
Bound = Literal["unit", "nonnegative"]
EPS_MAX = Fraction(1, 1000)  # a constant added to a divisor is called eps up to this size
_ROLE_WORDS = {
    "mul": ("scale", "scale"),
    "div": ("numerator", "divisor"),
    "add": ("shift", "shift"),
    "sub": ("shift", "shift"),
    "power": ("base", "exponent"),
    "maximum": ("bound", "bound"),
    "minimum": ("bound", "bound"),
    "interp": ("x", "y", "weight"),
    "clip": ("x", "max_norm"),
}


@dataclass(frozen=True, slots=True)
class Hyper:
    """A keyword argument: its identifier (in the program and the generated code) and default."""

    name: str
    default: Fraction
    bound: Bound | None = None


@dataclass(frozen=True, slots=True)
class Signature:
    """The constructor's hyperparameters, in signature order after ``params`` and ``lr``."""

    lr: Fraction | None  # the default of the group's lr (None: a required argument)
    lr_mode: LrMode
    lr_scale: Fraction = Fraction(1)  # product mode: the group's lr is the program's lr times this
    betas: tuple[Hyper, ...] = ()
    eps: tuple[Hyper, ...] = ()
    weight_decay: Hyper | None = None
    named: tuple[Hyper, ...] = ()  # user hypers and other constants

    @property
    def betas_keyword(self) -> str | None:
        """``betas`` for several betas, the beta's own name for one, None for none."""
        if not self.betas:
            return None
        return "betas" if len(self.betas) > 1 else self.betas[0].name

    @property
    def lion_shaped(self) -> bool:
        """``(params, lr, betas, weight_decay)``, the signature of lion-pytorch's Lion."""
        return (
            len(self.betas) == 2
            and self.weight_decay is not None
            and not self.eps
            and not self.named
        )

    def hypers(self) -> tuple[Hyper, ...]:
        """Every scalar the program reads by name, except lr."""
        wd = (self.weight_decay,) if self.weight_decay else ()
        return (*self.betas, *self.eps, *wd, *self.named)

    def keywords(self) -> list[tuple[str, str | None]]:
        """(keyword, default as Python source or None for none), in signature order."""
        out = [("lr", None if self.lr is None else _number(self.lr))]
        if self.betas_keyword == "betas":
            out.append(("betas", "(" + ", ".join(_number(b.default) for b in self.betas) + ")"))
        elif self.betas:
            out.append((self.betas[0].name, _number(self.betas[0].default)))
        out += [(h.name, _number(h.default)) for h in self.eps]
        if self.weight_decay:
            out.append(("weight_decay", _number(self.weight_decay.default)))
        out += [(h.name, _number(h.default)) for h in self.named]
        return out


@dataclass(frozen=True, slots=True)
class Extracted:
    """The program with its constants replaced by hypers, and the constructor's signature.

    In ``product`` mode the lr products are gone: the lr input stands for the group's lr.
    """

    program: Program
    signature: Signature


def _number(value: Fraction) -> str:
    """Python source for a default value (a float literal, so that ``2`` reads ``2.0``)."""
    text = format_number(value)
    return text if any(c in text for c in ".en") else text + ".0"


# -- small program helpers --------------------------------------------------------------------
def _substitute(program: Program, mapping: dict[str, Atom], drop: set[str]) -> Program:
    """Drop the statements in ``drop``; replace references by ``mapping`` (args and outputs)."""

    def sub(a: Atom) -> Atom:
        while isinstance(a, Ref) and a.name in mapping:
            a = mapping[a.name]
        return a

    body = tuple(
        replace(s, args=tuple(sub(a) for a in s.args)) for s in program.body if s.target not in drop
    )
    return replace(program, body=body, outputs=tuple(sub(a) for a in program.outputs))


def _tunable(a: Atom, hypers: set[str]) -> bool:
    """A constant that may become a keyword (non-integer), or a hyper."""
    if isinstance(a, Const):
        return a.value.denominator != 1
    return a.name in hypers


def _key(a: Atom) -> tuple[str, object]:
    return ("const", a.value) if isinstance(a, Const) else ("hyper", a.name)


def _state_dependent(program: Program) -> set[str]:
    """SSA values that depend (transitively) on a state's incoming value."""
    dep = set(program.states)
    for s in program.body:
        if any(isinstance(a, Ref) and a.name in dep for a in s.args):
            dep.add(s.target)
    return dep


def _consumer_var(
    program: Program, target: str, uses: dict[str, list[int]], defining: dict[str, Stmt]
) -> str:
    """The source variable a temporary ends up in (for naming its constants)."""
    seen: set[str] = set()
    while target not in seen:
        seen.add(target)
        stmt = defining[target]
        if stmt.var is not None:
            return stmt.var
        readers = uses.get(target, [])
        if not readers:
            break
        target = program.body[readers[0]].target
    return "c"


# -- lr ------------------------------------------------------------------------------------------
def _lr_product(program: Program) -> tuple[Program, LrMode, Fraction]:
    """Fold ``lr * c`` into the group's lr when that is the only way lr is read."""
    lr = program.input_named(Role.LR)
    uses = program.uses()
    if lr is None or (not uses.get(lr) and Ref(lr) not in program.outputs):
        return program, "absent", Fraction(1)
    if Ref(lr) in program.outputs:
        return program, "input", Fraction(1)
    hypers = {p.name: p for p in program.hypers}
    factors: set[Atom] = set()
    products: list[Stmt] = []
    for i in uses[lr]:
        s = program.body[i]
        others = [a for a in s.args if a != Ref(lr)]
        if s.op != "mul" or len(others) != 1:
            return program, "input", Fraction(1)
        factors.add(others[0])
        products.append(s)
    (factor,) = factors if len(factors) == 1 else (None,)
    if isinstance(factor, Ref):
        uses_of_factor = {program.body[i].target for i in uses.get(factor.name, [])}
        if (
            factor.name not in hypers
            or uses_of_factor != {s.target for s in products}
            or factor in program.outputs
        ):
            return program, "input", Fraction(1)
        default = hypers[factor.name].default
        assert default is not None  # the parser demands a value for every hyper
        value = default.value
        program = replace(program, params=tuple(p for p in program.params if p.name != factor.name))
    elif isinstance(factor, Const):
        value = factor.value
    else:
        return program, "input", Fraction(1)
    mapping: dict[str, Atom] = {s.target: Ref(lr) for s in products}
    return _substitute(program, mapping, set(mapping)), "product", value


# -- the other roles ----------------------------------------------------------------------------
def _nearest(program: Program, output: Atom, stops: set[str]) -> set[str]:
    """The SSA values ``output`` depends on within one step, not looking past the values in
    ``stops`` (those it reaches are included)."""
    defs = {s.target: s for s in program.body}
    seen: set[str] = set()
    todo = [output.name] if isinstance(output, Ref) else []
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        if name not in stops:
            todo += [a.name for a in defs[name].args if isinstance(a, Ref)]
    return seen


def _is_square(program: Program, a: Atom) -> bool:
    """``a`` is a square: ``square(x)``, ``x * x`` or ``x ** 2``."""
    stmt = next((s for s in program.body if isinstance(a, Ref) and s.target == a.name), None)
    if stmt is None:
        return False
    if stmt.op == "square" or (stmt.op == "mul" and stmt.args[0] == stmt.args[1]):
        return True
    return stmt.op == "power" and stmt.args[1] == Const(Fraction(2))


def _betas(program: Program, hypers: set[str]) -> list[tuple[str, object]]:
    """The weights of ``betas``, as torch.optim orders them: first the moving average of the
    gradient that feeds the update's direction, then the moving average of a square (the second
    moment); a program without a second moment takes, second, the weight of a state's moving
    average of the gradient (Lion's momentum). Other moving averages keep their own names."""
    dep = _state_dependent(program)
    emas = [
        s
        for s in program.body
        if s.op == "interp"
        and _tunable(s.args[2], hypers)
        and any(isinstance(a, Ref) and a.name in dep for a in s.args[:2])
    ]
    # The moving averages the update reads other than through another moving average.
    update = _nearest(program, program.outputs[0], {s.target for s in emas})
    states = {a.name for a in program.outputs[1:] if isinstance(a, Ref)}
    direction: list[tuple[str, object]] = []
    square: list[tuple[str, object]] = []
    momentum: list[tuple[str, object]] = []
    for s in emas:
        key = _key(s.args[2])
        if _is_square(program, s.args[0]):
            square.append(key)
        elif s.target in update:
            direction.append(key)
        elif s.target in states:
            momentum.append(key)
    first = direction[:1]
    second = [k for k in (square or momentum)[:1] if k not in first]
    found = [*first, *second]
    if not found:  # a single moving average, whatever its role
        found = [*dict.fromkeys([*direction, *square, *momentum])][:1]
    return found


def _is_wd_site(program: Program, stmt: Stmt, uses: dict[str, list[int]]) -> bool:
    """``stmt`` is ``w * k`` (or ``k * w``) and every reader of it adds it to something."""
    weight = Ref(program.input_named(Role.WEIGHT) or "")
    if stmt.op != "mul" or weight not in stmt.args:
        return False
    readers = [program.body[i] for i in uses.get(stmt.target, [])]
    return bool(readers) and all(r.op == "add" for r in readers)


def _weight_decay(
    program: Program, hypers: set[str], betas: list[tuple[str, object]]
) -> tuple[str, object] | None:
    uses = program.uses()
    weight = Ref(program.input_named(Role.WEIGHT) or "")
    for s in program.body:
        if not _is_wd_site(program, s, uses):
            continue
        other = s.args[1] if s.args[0] == weight else s.args[0]
        if _tunable(other, hypers) and _key(other) not in betas:
            return _key(other)
    return None


def _is_eps(program: Program, stmt: Stmt, uses: dict[str, list[int]]) -> bool:
    """``stmt`` adds to a value that ends up (through unary ops) as a divisor."""
    target = stmt.target
    for _ in range(len(program.body)):
        readers = uses.get(target, [])
        if len(readers) != 1:
            return False
        reader = program.body[readers[0]]
        if reader.op == "div":
            return reader.args[1] == Ref(target) and reader.args[0] != Ref(target)
        if OPS[reader.op].kind is not Kind.UNARY:
            return False
        target = reader.target
    return False


@dataclass
class _Naming:
    """The keyword each hyper and each tunable constant occurrence becomes."""

    program: Program
    ns: Namespace
    defaults: dict[str, Fraction]
    hypers: dict[str, str]  # user hyper -> its keyword / identifier
    sites: dict[tuple[str, int], str]  # (statement target, argument index) -> identifier
    betas: list[str]
    eps: list[str]
    others: list[str]

    def new(self, hint: str, default: Fraction, into: list[str]) -> str:
        name = self.ns.name(hint)
        self.defaults[name] = default
        into.append(name)
        return name


def extract_hypers(program: Program) -> Extracted:
    """Replace the program's tunable constants by named hypers; return it with its signature.

    The result computes exactly what ``program`` computes when every hyper has its default
    (in ``product`` mode, with the group's lr standing for ``lr * constant``).
    """
    given = next((p.default for p in program.params if p.role is Role.LR), None)
    program, lr_mode, lr_scale = _lr_product(program)
    lr_default: Fraction | None = None if given is None else given.value
    if lr_mode == "product":
        lr_default = lr_scale * (lr_default if lr_default is not None else 1)
    elif lr_mode == "absent":
        lr_default = Fraction(1)
    user = {p.name for p in program.hypers}
    beta_keys = _betas(program, user)
    wd_key = _weight_decay(program, user, beta_keys)
    types = infer_types(program)
    uses, defining = program.uses(), program.defining()
    dep = _state_dependent(program)

    ns = Namespace(RESERVED | {"lr", "betas", "weight_decay"})
    for p in program.params:  # the names lowering gives the inputs (same order, same rules)
        if p.role not in (Role.HYPER, Role.LR):
            ns.name(p.name)
    naming = _Naming(program, ns, {}, {}, {}, [], [], [])
    beta_const: dict[Fraction, str] = {}
    for i, (kind, value) in enumerate(beta_keys, 1):
        if kind == "hyper":
            naming.hypers[str(value)] = ns.name(str(value))
            naming.betas.append(naming.hypers[str(value)])
        else:
            hint = "beta" if len(beta_keys) == 1 else f"beta{i}"
            assert isinstance(value, Fraction)
            beta_const[value] = naming.new(hint, value, naming.betas)
    if wd_key is not None and wd_key[0] == "hyper":
        naming.hypers[str(wd_key[1])] = "weight_decay"
    elif wd_key is not None:
        naming.defaults["weight_decay"] = wd_key[1]  # type: ignore[assignment]
    user_names: list[str] = []
    for p in program.hypers:  # user hypers keep their names unless they took a role above
        if p.name not in naming.hypers:
            naming.hypers[p.name] = ns.name(p.name)
            eps_like = any(
                s.op == "add" and Ref(p.name) in s.args and _is_eps(program, s, uses)
                for s in program.body
            )
            (naming.eps if eps_like else user_names).append(naming.hypers[p.name])
    for p in program.hypers:
        assert p.default is not None  # the parser demands a value for every hyper
        naming.defaults[naming.hypers[p.name]] = p.default.value

    shared: dict[tuple[str, Fraction], str] = {}
    for s in program.body:
        for j, a in enumerate(s.args):
            if not isinstance(a, Const) or not _tunable(a, user):
                continue
            mixes_state = any(isinstance(x, Ref) and x.name in dep for x in s.args[:2])
            if a.value in beta_const and (
                (s.op == "interp" and j == 2 and mixes_state) or types[s.target] is Type.SCALAR
            ):
                naming.sites[(s.target, j)] = beta_const[a.value]
            elif wd_key == _key(a) and _is_wd_site(program, s, uses):
                naming.sites[(s.target, j)] = "weight_decay"
            elif s.op == "add" and 0 < a.value <= EPS_MAX and _is_eps(program, s, uses):
                if ("eps", a.value) not in shared:
                    shared[("eps", a.value)] = naming.new("eps", a.value, naming.eps)
                naming.sites[(s.target, j)] = shared[("eps", a.value)]
            else:  # a constant written several times is one hyper (set consistently)
                words = _ROLE_WORDS.get(s.op, ("arg",))
                var = (
                    s.var if s.var is not None else _consumer_var(program, s.target, uses, defining)
                )
                hint = f"{identifier(var)}_{words[min(j, len(words) - 1)]}"
                if ("other", a.value) not in shared:
                    shared[("other", a.value)] = naming.new(hint, a.value, naming.others)
                naming.sites[(s.target, j)] = shared[("other", a.value)]
    lr = (lr_mode, lr_default, lr_scale)
    return _apply(program, naming, lr, user_names, wd_key is not None)


def _bounds(program: Program, eps: list[str], defaults: dict[str, Fraction]) -> dict[str, Bound]:
    """The valid range of each hyper whose role makes one clear, when its default lies in it: an
    interp weight of a moving average (unit), eps, weight decay, and a factor of a state's
    incoming value (momentum; nonnegative)."""
    dep = _state_dependent(program)
    states = {Ref(s) for s in program.states}
    found: dict[str, Bound] = {n: "nonnegative" for n in (*eps, "weight_decay")}
    for s in program.body:
        names = [a.name for a in s.args if isinstance(a, Ref) and a.name in defaults]
        if s.op == "interp" and isinstance(s.args[2], Ref) and s.args[2].name in defaults:
            if any(isinstance(a, Ref) and a.name in dep for a in s.args[:2]):
                found[s.args[2].name] = "unit"
        elif s.op == "mul" and any(a in states for a in s.args):
            for n in names:
                found.setdefault(n, "nonnegative")
    inside = {
        "unit": lambda v: 0 <= v < 1,
        "nonnegative": lambda v: v >= 0,
    }
    return {n: b for n, b in found.items() if n in defaults and inside[b](defaults[n])}


def _apply(
    program: Program,
    naming: _Naming,
    lr: tuple[LrMode, Fraction | None, Fraction],
    user_names: list[str],
    has_wd: bool,
) -> Extracted:
    """Rewrite the program with the chosen names; build the signature."""

    def arg(s: Stmt, j: int, a: Atom) -> Atom:
        if isinstance(a, Ref):
            return Ref(naming.hypers.get(a.name, a.name))
        name = naming.sites.get((s.target, j))
        return a if name is None else Ref(name)

    body = tuple(
        replace(s, args=tuple(arg(s, j, a) for j, a in enumerate(s.args))) for s in program.body
    )
    outputs = tuple(
        Ref(naming.hypers.get(a.name, a.name)) if isinstance(a, Ref) else a for a in program.outputs
    )
    d = naming.defaults
    rewritten = replace(program, body=body, outputs=outputs)
    bounds = _bounds(rewritten, naming.eps, d)

    def hyper(n: str) -> Hyper:
        return Hyper(n, d[n], bounds.get(n))

    signature = Signature(
        lr=lr[1],
        lr_mode=lr[0],
        lr_scale=lr[2],
        betas=tuple(hyper(n) for n in naming.betas),
        eps=tuple(hyper(n) for n in naming.eps),
        weight_decay=hyper("weight_decay") if has_wd else None,
        named=tuple(hyper(n) for n in (*user_names, *naming.others)),
    )
    params = [p for p in program.params if p.role is not Role.HYPER]
    params += [
        Param(h.name, Role.HYPER, Const(h.default, format_number(h.default)))
        for h in signature.hypers()
    ]
    out = replace(program, params=tuple(params), body=body, outputs=outputs)
    return Extracted(out, signature)
