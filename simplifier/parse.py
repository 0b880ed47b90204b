"""Text -> surface AST (Lark LALR) -> SSA :class:`~simplifier.ir.Program`.

>>> p = parse("def train(w, g, m, lr):\\n  m = interp(g, m, 0.9)\\n  return sign(m) * lr, m\\n")
>>> [p.role_of(n).value for n in ("w", "g", "m", "lr")]
['weight', 'gradient', 'state', 'lr']
"""

from __future__ import annotations

import difflib
import functools
import keyword
import os
import re
import stat
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from importlib import resources
from pathlib import Path

import lark
from lark import Lark, Token, Transformer_NonRecursive, v_args

from simplifier.errors import ProgramError
from simplifier.ir import Atom, Const, HyperValue, Loc, Param, Program, Ref, Role, Stmt
from simplifier.ops import CALLABLE, INFIX, OPS, resolve

MAX_DEPTH = 200  # expressions nested deeper than this are refused with a clear error
MAX_LITERAL_DIGITS = 100  # significant digits of a number literal (its exact value stays small)
# Program files larger than 256 KiB are refused before they are parsed: 100 times the longest
# realistic program, and it bounds the time of the parse (Lark reads ~50-100 KB/s of dense code).
MAX_SOURCE_BYTES = 256 * 1024

NAME_ROLES: dict[str, Role] = {
    **dict.fromkeys(("w", "weight", "param", "params", "p", "theta"), Role.WEIGHT),
    **dict.fromkeys(("g", "grad", "gradient"), Role.GRADIENT),
    **dict.fromkeys(("lr", "learning_rate"), Role.LR),
    "step": Role.STEP,
}
ROLE_NAMES = {role.value: role for role in Role}


# -- surface AST --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SNum:
    text: str
    loc: Loc
    depth: int = 1


@dataclass(frozen=True, slots=True)
class SName:
    name: str
    loc: Loc
    depth: int = 1


@dataclass(frozen=True, slots=True)
class SCall:
    fn: str  # an op name for operators, the written name for calls
    args: tuple[SExpr, ...]
    loc: Loc
    depth: int
    written: bool = True  # False for infix/unary operators


@dataclass(frozen=True, slots=True)
class STuple:
    items: tuple[SExpr, ...]
    loc: Loc
    depth: int


SExpr = SNum | SName | SCall | STuple


@dataclass(frozen=True, slots=True)
class SAssign:
    target: str
    expr: SExpr
    loc: Loc
    aug: str | None  # "+", "-", "*", "/" for augmented assignment


@dataclass(frozen=True, slots=True)
class SReturn:
    items: tuple[SExpr, ...]
    loc: Loc


@dataclass(frozen=True, slots=True)
class SParam:
    name: str
    annotation: str | None
    default: SNum | None
    loc: Loc
    written: str  # the name as written (``name`` is its NFKC normal form)


@dataclass(frozen=True, slots=True)
class SFunc:
    name: str
    params: tuple[SParam, ...]
    body: tuple[SAssign, ...]
    ret: SReturn
    loc: Loc


def _tok(t: Token) -> Loc:
    return Loc(t.line or 1, t.column or 1)


def _depth(*args: SExpr) -> int:
    d = 1 + max((a.depth for a in args), default=0)
    if d > MAX_DEPTH:
        raise _TooDeep(args[0].loc)
    return d


class _TooDeep(Exception):
    def __init__(self, loc: Loc) -> None:
        self.loc = loc


@v_args(inline=True)
class _Build(Transformer_NonRecursive):
    """Builds the surface AST from Lark's tree without recursion (deep nesting is safe)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text  # the source, for the written spelling of names

    def start(self, func: SFunc) -> SFunc:
        return func

    def funcdef(self, name: Token, params, body) -> SFunc:
        stmts, ret = body
        return SFunc(str(name), tuple(params or ()), stmts, ret, _tok(name))

    def params(self, *ps: SParam) -> tuple[SParam, ...]:
        return ps

    def param(self, name: Token, ann: Token | None, default: SNum | None) -> SParam:
        written = self.text[name.start_pos : name.end_pos] if name.start_pos is not None else name
        return SParam(
            str(name), str(ann) if ann is not None else None, default, _tok(name), str(written)
        )

    def signed_number(self, n: Token) -> SNum:
        return SNum(str(n), _tok(n))

    def negative_number(self, minus: Token, n: Token) -> SNum:
        return SNum("-" + str(n), _tok(minus))

    def body(self, *items):
        return tuple(items[:-1]), items[-1]

    def assign(self, name: Token, expr: SExpr) -> SAssign:
        return SAssign(str(name), expr, _tok(name), None)

    def augassign(self, name: Token, op: Token, expr: SExpr) -> SAssign:
        return SAssign(str(name), expr, _tok(name), str(op)[0])

    def return_stmt(self, keyword: Token, *items: SExpr) -> SReturn:
        return SReturn(items, _tok(keyword))

    @staticmethod
    def _binary(op: str, a: SExpr, b: SExpr) -> SCall:
        return SCall(INFIX[op], (a, b), a.loc, _depth(a, b), written=False)

    def add(self, a, b):
        return self._binary("+", a, b)

    def sub(self, a, b):
        return self._binary("-", a, b)

    def mul(self, a, b):
        return self._binary("*", a, b)

    def div(self, a, b):
        return self._binary("/", a, b)

    def mod(self, a, b):
        return self._binary("%", a, b)

    def compare(self, a, op: Token, b):
        return self._binary(str(op), a, b)

    def pow(self, a, b):
        return self._binary("**", a, b)

    def neg(self, minus: Token, a: SExpr) -> SExpr:
        if isinstance(a, SNum):  # `-0.5` is a negative constant, not negative(0.5)
            text = a.text[1:] if a.text.startswith("-") else "-" + a.text
            return SNum(text, _tok(minus))
        return SCall("negative", (a,), _tok(minus), _depth(a), written=False)

    def pos(self, a: SExpr) -> SExpr:
        return a

    def call(self, name: Token, args: tuple[SExpr, ...] | None) -> SCall:
        args = args or ()
        return SCall(str(name), args, _tok(name), _depth(*args) if args else 1)

    def args(self, *items: SExpr) -> tuple[SExpr, ...]:
        return items

    def name(self, name: Token) -> SName:
        return SName(str(name), _tok(name))

    def number(self, n: Token) -> SNum:
        return SNum(str(n), _tok(n))

    def tuple(self, lpar: Token, *items: SExpr | None) -> STuple:
        kept = tuple(i for i in items if i is not None)
        return STuple(kept, _tok(lpar), _depth(*kept))


_KEYWORD_MESSAGES = {
    "import": "imports are not part of the language",
    "from": "imports are not part of the language",
    "lambda": "'lambda' is a Python keyword: lambdas are not part of the language",
    **{
        k: f"'{k}' (control flow) is not part of the language: a program is straight-line code"
        for k in (
            "if",
            "elif",
            "else",
            "for",
            "while",
            "try",
            "except",
            "with",
            "break",
            "continue",
            "match",
        )
    },
}


def normalize_name(name: str) -> str:
    """A name's NFKC normal form: names equal after it are the same name, as in Python.

    >>> normalize_name("𝔤"), normalize_name("ﬁ"), normalize_name("β1")
    ('g', 'fi', 'β1')
    """
    return unicodedata.normalize("NFKC", name)


_LOOKALIKES = {"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "⁄": "/", "＝": "="}


def _bad_character(written: str) -> tuple[int, str]:
    """The first character of a NAME token that cannot be in a Python identifier."""
    for i, c in enumerate(written):
        if not written[: i + 1].isidentifier():
            hint = f" (use '{_LOOKALIKES[c]}')" if c in _LOOKALIKES else ""
            where = "" if i == 0 or hint else " (it cannot be part of a name)"
            return i, f"unexpected character {c!r} (U+{ord(c):04X}){hint}{where}"
    return 0, f"{written!r} is not a valid Python identifier"


def _name_callback(tok: Token) -> Token:
    if not tok.value.isidentifier():  # as Python: the written name is an identifier, then NFKC
        i, message = _bad_character(tok.value)
        raise _LexError(tok, message, i)
    name = normalize_name(tok.value)
    spelled = "" if name == tok.value else f" (written {tok.value!r})"
    if keyword.iskeyword(name):
        raise _LexError(
            tok,
            _KEYWORD_MESSAGES.get(
                name, f"'{name}'{spelled} is a Python keyword and cannot be used here"
            ),
        )
    if name.startswith("__"):
        raise _LexError(tok, f"names starting with '__' are reserved: {name!r}{spelled}")
    return tok if name == tok.value else Token.new_borrow_pos(tok.type, name, tok)


class _LexError(Exception):
    def __init__(self, tok: Token, message: str, offset: int = 0) -> None:
        self.tok, self.message, self.offset = tok, message, offset

    @property
    def loc(self) -> Loc:
        at = _tok(self.tok)
        return Loc(at.line, at.col + self.offset)


def grammar_text() -> str:
    """The Lark grammar: shipped inside the package (wheel) or at the repo's grammar/ (editable)."""
    packaged = resources.files("simplifier") / "grammar" / "optimizer.lark"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "grammar" / "optimizer.lark").read_text(
        encoding="utf-8"
    )


@functools.cache
def _parser() -> Lark:
    # Every AST node takes its position from a token (RETURN, MINUS and LPAR are named terminals
    # for that), so Lark's propagate_positions, which doubles the parse time of long programs,
    # is off.
    return Lark(
        grammar_text(),
        parser="lalr",
        propagate_positions=False,
        lexer_callbacks={"NAME": _name_callback},
        maybe_placeholders=True,
    )


# -- syntax errors --------------------------------------------------------------------------------
_CHAR_MESSAGES = {
    '"': "strings are not part of the language",
    "'": "strings are not part of the language",
    ".": "attribute access is not part of the language",
    "[": "subscripts are not part of the language",
    "]": "subscripts are not part of the language",
    ";": "one statement per line: ';' is not allowed",
    "@": "decorators are not part of the language",
    "{": "dicts and sets are not part of the language",
    "!": "'!' is not an operator of the language ('!=' compares; there is no 'not')",
}

_TERMINAL_TEXT = {
    "NAME": "a name",
    "NUMBER": "a number",
    "_NL": "end of line",
    "$END": "end of file",
    "<END-OF-FILE>": "end of file",
    "AUGOP": "'+=', '-=', '*=', '/=' or '%='",
    "COMPARE": "a comparison ('<', '<=', '>', '>=', '==' or '!=')",
}


def _expected(parser: Lark, names: set[str]) -> str:
    words: set[str] = set()
    for n in names:
        if n in _TERMINAL_TEXT:
            words.add(_TERMINAL_TEXT[n])
            continue
        try:
            pattern = parser.get_terminal(n).pattern
        except KeyError:
            continue
        if isinstance(pattern, lark.lexer.PatternStr):
            words.add(f"'{pattern.value}'")
    return ", ".join(sorted(words)) or "something else"


def _syntax_error(e: lark.exceptions.UnexpectedInput, parser: Lark) -> tuple[str, int, int]:
    line, col = e.line if e.line and e.line > 0 else 1, e.column if e.column and e.column > 0 else 1
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        ch = e.char
        if ch in _CHAR_MESSAGES:
            return _CHAR_MESSAGES[ch], line, col
        if ch == "=":
            return "'=' is not allowed here (no keyword arguments; '==' compares)", line, col
        return (
            f"unexpected character {ch!r}; expected {_expected(parser, set(e.allowed))}",
            line,
            col,
        )
    if isinstance(e, lark.exceptions.UnexpectedToken):
        tok = e.token
        expected = set(e.expected)
        if tok.type == "$END":
            if "RETURN" in expected or "NAME" in expected:
                return "missing return statement at the end of the body", line, col
            return f"unexpected end of file; expected {_expected(parser, expected)}", line, col
        if tok.type == "COMPARE":
            return (
                "comparisons do not chain: write (a < b) * (b < c) for a < b < c",
                line,
                col,
            )
        if tok.type == "EQUAL" and "RPAR" in expected:
            return "keyword arguments are not part of the language", line, col
        if tok.type == "COLON" and "DEF" not in expected:
            return "unexpected ':' (annotations only in the parameter list; no blocks)", line, col
        shown = "end of line" if tok.type == "_NL" else repr(str(tok))
        if expected <= {"$END", "<END-OF-FILE>"}:  # Lark names the end terminal either way
            return (
                f"unexpected {shown} after the return statement: 'return' ends the program "
                "(one program per file)",
                line,
                col,
            )
        if tok.type == "_NL":
            line, col = tok.line or line, tok.column or col
        return f"unexpected {shown}; expected {_expected(parser, expected)}", line, col
    return "unexpected end of file", line, col


# -- public entry points ---------------------------------------------------------------------
def literal_value(text: str) -> Fraction:
    """The exact value of a number literal such as ``0.899``, ``-1e-8`` or ``3``.

    The language accepts a literal of at most ``MAX_LITERAL_DIGITS`` significant digits whose
    value, rounded to float64, is finite and (unless it is 0) not 0: every constant then runs as
    written and its exact value stays small. Any other raises ``ValueError`` saying why.

    >>> literal_value("0.5"), literal_value("-1e-8")
    (Fraction(1, 2), Fraction(-1, 100000000))
    >>> literal_value("1e400")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: number 1e400 is out of range: a literal must be a finite float64 (...)
    """
    shown = text if len(text) <= 24 else text[:20] + "..."
    too_large = (
        f"number {shown} is out of range: a literal must be a finite float64 "
        f"(magnitude at most {sys.float_info.max!r})"
    )
    too_small = (
        f"number {shown} is too small: it rounds to 0 in float64 (the smallest nonzero "
        "magnitude is 5e-324); write 0 if zero is meant"
    )
    try:
        d = Decimal(text)
    except InvalidOperation:  # malformed, or an exponent beyond what Decimal can hold
        if not _NUMBER_SHAPE.match(text):
            raise ValueError(f"{text!r} is not a number") from None
        raise ValueError(too_small if "e-" in text.lower() else too_large) from None
    if not d.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    if d.is_zero():
        return Fraction(0)
    if d.adjusted() > 308:  # checked on the exponent first: 10**999999999 is never built
        raise ValueError(too_large)
    if d.adjusted() < -325:
        raise ValueError(too_small)
    digits = "".join(map(str, d.as_tuple().digits)).strip("0")
    if len(digits) > MAX_LITERAL_DIGITS:
        raise ValueError(
            f"number {shown} has {len(digits)} significant digits; at most "
            f"{MAX_LITERAL_DIGITS} are allowed"
        )
    value = Fraction(d)
    try:
        rounded = float(value)
    except OverflowError:
        raise ValueError(too_large) from None
    if rounded == 0:
        raise ValueError(too_small)
    return value


def is_literal(value: Fraction) -> bool:
    """Whether an exact number obeys the rule of :func:`literal_value` (a finite decimal of at
    most ``MAX_LITERAL_DIGITS`` significant digits, finite and not 0 as a float64 unless 0): the
    constants a program may hold, folded ones included.

    >>> [is_literal(Fraction(v)) for v in ("0.996991", "1/3", 7**150, 10**400)]
    [True, False, False, False]
    """
    if value == 0:
        return True
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1 or max(twos, fives) > 1100:
        return False
    try:
        rounded = float(value)
    except OverflowError:
        return False
    if rounded == 0:
        return False
    scale = max(twos, fives)  # value * 10**scale is an integer: its digits are the literal's
    digits = str(abs(value.numerator) * 2 ** (scale - twos) * 5 ** (scale - fives)).strip("0")
    return len(digits) <= MAX_LITERAL_DIGITS


_NUMBER_SHAPE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def read_source(path: str) -> str:
    """The text of a program file; missing, unreadable and non-UTF-8 files raise ProgramError.

    Only regular files are read (a FIFO or a device such as ``/dev/zero`` is refused without
    reading it), and at most ``MAX_SOURCE_BYTES``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    except FileNotFoundError:
        raise ProgramError("no such file", path) from None
    except IsADirectoryError:
        raise ProgramError("is a directory, not a program file", path) from None
    except OSError as e:
        raise ProgramError(f"cannot read file: {e.strerror}", path) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ProgramError("is a directory, not a program file", path)
        raise ProgramError(f"not a regular file ({file_kind(mode)}): not read", path)
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_SOURCE_BYTES + 1)
        except OSError as e:
            raise ProgramError(f"cannot read file: {e.strerror}", path) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise ProgramError(
            f"file is larger than {MAX_SOURCE_BYTES // 1024} KiB, the limit for a program file",
            path,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise ProgramError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x})", path, line, col
        ) from None


def file_kind(mode: int) -> str:
    """What a file that is not a regular file or a directory is, for messages."""
    kinds = [
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def parse_file(
    path: str, values: Mapping[str, HyperValue] | None = None, *, ignore_unknown: bool = False
) -> Program:
    """Read and parse a program file (see :func:`parse`)."""
    return parse(read_source(path), path, values, ignore_unknown=ignore_unknown)


def parse(
    text: str,
    path: str = "<program>",
    values: Mapping[str, HyperValue] | None = None,
    *,
    ignore_unknown: bool = False,
) -> Program:
    """Parse program text into a verified, typed SSA program.

    A name in ``values`` that is not a hyper of the program is an error, unless
    ``ignore_unknown`` (for commands that read several programs with one ``--set``).

    ``values`` gives hypers their values (``--set``; numbers or their text, see
    :meth:`Program.bind`). Raises :class:`ProgramError` (with line and
    column) for any invalid program.
    """
    lines = text.splitlines()

    def fail(message: str, loc: Loc | None) -> ProgramError:
        line, col = (loc.line, loc.col) if loc else (1, 1)
        return ProgramError.at(message, path, text, line, col)

    if text.startswith("\ufeff"):
        text = text[1:]
    if not any(ln.strip() and not ln.strip().startswith("#") for ln in lines):
        raise fail(
            "empty file: expected a program 'def NAME(PARAMS): ... return UPDATE, ...'", None
        )
    parser = _parser()
    try:
        tree = parser.parse(text + ("\n" if not text.endswith("\n") else ""))
        func = _Build(text).transform(tree)
    except lark.exceptions.VisitError as e:
        inner = e.orig_exc
        if isinstance(inner, _TooDeep):
            raise fail(f"expression nested more than {MAX_DEPTH} levels deep", inner.loc) from None
        raise
    except _LexError as e:
        raise fail(e.message, e.loc) from None
    except lark.exceptions.UnexpectedInput as e:
        if isinstance(e.__context__, _LexError):
            raise fail(e.__context__.message, e.__context__.loc) from None
        message, line, col = _syntax_error(e, parser)
        raise fail(message, Loc(line, col)) from None
    except _TooDeep as e:
        raise fail(f"expression nested more than {MAX_DEPTH} levels deep", e.loc) from None
    program = _Lower(func, path, text, fail).program()
    hypers = {p.name for p in program.hypers}
    if ignore_unknown and values:
        values = {k: v for k, v in values.items() if k in hypers}
    program = _bind_values(program, values or {}, fail)
    from simplifier.analysis.types import infer_types

    infer_types(program)
    return program


def _bind_values(program: Program, values: Mapping[str, HyperValue], fail) -> Program:
    hypers = {p.name: p for p in program.hypers}
    for name in values:
        if name not in hypers:
            known = ", ".join(hypers) or "none"
            raise fail(
                f"--set {name}: the program has no hyper named {name!r} (hypers: {known})", None
            )
    program = program.bind(dict(values))
    for p in program.hypers:
        if p.default is None:
            raise fail(
                f"hyper {p.name!r} has no value: give it a default ({p.name}=0.9) or pass "
                f"--set {p.name}=VALUE",
                p.loc,
            )
    return program


# Functions a misspelling may suggest either of: the hint says what both do.
_EASILY_CONFUSED = {
    "clamp": "clamp(x, lo, hi) bounds each entry to [lo, hi]",
    "clip": "clip(x, c) rescales x so that its global norm is at most c",
}


class _Lower:
    """Surface AST -> SSA statements, with the name, arity and role checks."""

    def __init__(self, func: SFunc, path: str, text: str, fail) -> None:
        self.func, self.path, self.text, self.fail = func, path, text, fail
        self.env: dict[str, str] = {}
        self.count: dict[str, int] = {}
        self.ntemp = 0
        self.body: list[Stmt] = []
        self.aliases: dict[str, Atom] = {}  # names bound by a plain copy `x = y` / `x = 0.5`

    def program(self) -> Program:
        f = self.func
        params = self._params()
        self._check_indentation()
        for st in f.body:
            self._assign(st)
        items: list[SExpr] = list(f.ret.items)
        if len(items) == 1 and isinstance(items[0], STuple):
            items = list(items[0].items)
        states = [p.name for p in params if p.role is Role.STATE]
        if len(items) != 1 + len(states):
            want = ", ".join(["update", *states])
            implied = [p.name for p in params if p.role is Role.STATE and p.annotation is None]
            hint = (
                f"; a parameter without a default that is not w, g, lr or step is a state "
                f"({', '.join(implied)}): mark a hyperparameter '{implied[-1]}: hyper' or give "
                f"it a default ('{implied[-1]}=0.9')"
                if implied and len(items) < 1 + len(states)
                else ""
            )
            raise self.fail(
                f"return gives {len(items)} value(s); expected {1 + len(states)} ({want}){hint}",
                f.ret.loc,
            )
        outputs = tuple(self._expr(e, None) for e in items)
        return Program(
            f.name,
            params,
            tuple(self.body),
            outputs,
            tuple(self._at(e) for e in items),
            self.path,
            self.text,
        )

    def _const(self, e: SNum) -> Const:
        try:
            return Const(literal_value(e.text), e.text)
        except ValueError as err:
            raise self.fail(str(err), e.loc) from None

    @staticmethod
    def _at(e: SExpr) -> Loc:
        return e.loc

    def _check_name(self, name: str, loc: Loc) -> None:
        if keyword.iskeyword(name):
            raise self.fail(f"'{name}' is a Python keyword and cannot be a name", loc)
        if name.startswith("__"):
            raise self.fail(f"names starting with '__' are reserved: {name!r}", loc)

    def _params(self) -> tuple[Param, ...]:
        seen: dict[str, SParam] = {}
        params: list[Param] = []
        for sp in self.func.params:
            self._check_name(sp.name, sp.loc)
            if sp.name in seen:
                spellings = {seen[sp.name].written, sp.written}
                same = (
                    f" ({' and '.join(repr(w) for w in sorted(spellings))} are the same name "
                    "after Unicode NFKC normalisation, as in Python)"
                    if len(spellings) > 1
                    else ""
                )
                raise self.fail(f"duplicate parameter {sp.name!r}{same}", sp.loc)
            seen[sp.name] = sp
            role = self._role(sp)
            default = self._const(sp.default) if sp.default is not None else None
            if default is not None and role in (Role.WEIGHT, Role.GRADIENT, Role.STEP):
                raise self.fail(
                    f"the {role.value} parameter {sp.name!r} cannot have a default", sp.loc
                )
            params.append(Param(sp.name, role, default, sp.annotation, sp.loc))
            self.env[sp.name] = sp.name
        for role in (Role.WEIGHT, Role.GRADIENT, Role.LR, Role.STEP):
            found = [p for p in params if p.role is role]
            if len(found) > 1:
                raise self.fail(
                    f"more than one {role.value} parameter: "
                    f"{', '.join(repr(p.name) for p in found)}",
                    found[1].loc,
                )
            if not found and role in (Role.WEIGHT, Role.GRADIENT):
                examples = {Role.WEIGHT: "w", Role.GRADIENT: "g"}[role]
                raise self.fail(
                    f"no {role.value} parameter: name one {examples!r} or annotate it "
                    f"': {role.value}'",
                    self.func.loc,
                )
        return tuple(params)

    @staticmethod
    def _role(sp: SParam) -> Role:
        if sp.annotation in ROLE_NAMES:
            return ROLE_NAMES[sp.annotation]
        named = NAME_ROLES.get(sp.name)
        if named is not None:
            return named
        return Role.HYPER if sp.default is not None else Role.STATE

    def _check_indentation(self) -> None:
        lines = [*(s.loc for s in self.func.body), self.func.ret.loc]
        first = lines[0]
        if first.col <= self.func.loc.col - 4 or first.line == self.func.loc.line:
            raise self.fail("the body must be indented under 'def'", first)
        for loc in lines[1:]:
            if loc.col != first.col:
                raise self.fail(
                    f"inconsistent indentation: expected column {first.col}, like "
                    f"line {first.line}",
                    loc,
                )

    def _assign(self, st: SAssign) -> None:
        self._check_name(st.target, st.loc)
        if st.target not in self.env and st.aug is not None:
            raise self.fail(f"name {st.target!r} is not defined before '{st.aug}='", st.loc)
        if st.aug is not None:
            expr: SExpr = SCall(
                INFIX[st.aug],
                (SName(st.target, st.loc), st.expr),
                st.loc,
                st.expr.depth + 1,
                written=False,
            )
        else:
            expr = st.expr
        k = self.count.get(st.target, 0) + 1
        target = f"{st.target}.{k}"
        atom = self._expr(expr, (st.target, target))
        if isinstance(atom, Const) or atom.name != target:
            # `x = y` or `x = 0.5` computes nothing: x becomes another name for the value.
            self.aliases[st.target] = atom
            self.env[st.target] = atom.name if isinstance(atom, Ref) else f"={atom}"
            return
        self.aliases.pop(st.target, None)
        self.count[st.target] = k
        self.env[st.target] = target

    def _expr(self, e: SExpr, dest: tuple[str, str] | None) -> Atom:
        """Lower ``e``; if ``dest`` = (var, target) is given, the top node is assigned to it."""
        if isinstance(e, SNum):
            return self._const(e)
        if isinstance(e, SName):
            if e.name in self.aliases:
                return self.aliases[e.name]
            if e.name in self.env:
                return Ref(self.env[e.name])
            if resolve(e.name) is not None:
                raise self.fail(f"{e.name!r} is a function: call it as {e.name}(...)", e.loc)
            hint = difflib.get_close_matches(e.name, list(self.env), n=1)
            more = f"; did you mean {hint[0]!r}?" if hint else ""
            raise self.fail(f"name {e.name!r} is not defined{more}", e.loc)
        if isinstance(e, STuple):
            raise self.fail("a tuple is only allowed as the return value", e.loc)
        op = resolve(e.fn) if e.written else OPS[e.fn]
        if op is None:
            if e.fn in self.env:
                raise self.fail(f"{e.fn!r} is a variable, not a function", e.loc)
            hint = difflib.get_close_matches(e.fn, list(CALLABLE), n=1, cutoff=0.5)
            more = f"; did you mean {hint[0]!r}?" if hint else ""
            if hint and CALLABLE[hint[0]] in _EASILY_CONFUSED:  # say what each one does
                more += " (" + "; ".join(_EASILY_CONFUSED.values()) + ")"
            raise self.fail(f"unknown function {e.fn!r}{more}", e.loc)
        if len(e.args) != op.arity:
            plural = "argument" if op.arity == 1 else "arguments"
            raise self.fail(f"{e.fn}() takes {op.arity} {plural}, got {len(e.args)}", e.loc)
        args = tuple(self._expr(a, None) for a in e.args)
        if dest is None:
            self.ntemp += 1
            var, target = None, f"%{self.ntemp}"
        else:
            var, target = dest
        self.body.append(Stmt(target, op.name, args, var, e.loc))
        return Ref(target)


assert set(INFIX.values()) <= set(OPS)
