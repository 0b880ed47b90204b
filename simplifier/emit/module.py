"""Write the Python module of an emitted optimizer (see :func:`simplifier.emit.emit_torch`).

The module defines one ``torch.optim.Optimizer`` subclass and, like ``torch/optim/adamw.py``,
module-level functions for its code paths:

- ``_single_tensor_step``: a loop over the parameters, in-place ops, temporaries reused;
- ``_foreach_step``: the same over lists with ``torch._foreach_*`` kernels, per device and dtype;
- ``_fused_step``: ``_kernel`` compiled with ``torch.compile`` (dynamic shapes, so once per dtype
  and device, not per shape; scalars passed as tensors, so a changing lr does not recompile),
  called on each large parameter flattened to one dimension; small ones take the foreach path.

Programs with global reductions get ``_single_tensor_reduce`` / ``_foreach_reduce``, which run
the stages before the last one and return the group-wide values the last stage reads.

``flat=True`` (``_Flat``, ``_flat_lists``) keeps a group's parameters, gradients and states as
views of one buffer each, and hands the paths the buffers in place of the parameters.
"""

from __future__ import annotations

import ast
import functools
import itertools
import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Literal

from simplifier.emit.hypers import Hyper
from simplifier.emit.lower import PER_TENSOR_OPS, Arg, Instr, Lit, Lowered, VKind
from simplifier.emit.names import CLASS_KEYWORDS as KEYWORDS
from simplifier.emit.names import Namespace
from simplifier.emit.plan import Buffers, Plan, Stage, moves
from simplifier.emit.torch_source import EAGER, FUNCTIONAL, A, foreach_source
from simplifier.ops import OPS, Kind

Path = Literal["single", "foreach"]


LIMIT = 100  # line length of the generated code (the project's ruff setting)
_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _scan(line: str) -> list[tuple[int, int]]:
    """Bracket pairs (open, close) of ``line`` at any depth, string literals skipped."""
    pairs: list[tuple[int, int]] = []
    stack: list[int] = []
    quote: str | None = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in _PAIRS:
            stack.append(i)
        elif ch in ")]}" and stack:
            pairs.append((stack.pop(), i))
    return pairs


def _split_top(body: str) -> list[str]:
    """``body`` split at its top level: before the `` for ``/`` if `` clauses of a comprehension,
    else after each comma."""
    depth = 0
    quote: str | None = None
    commas, clauses = [], []
    for i, ch in enumerate(body):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch == ",":
            commas.append(i)
        elif depth == 0 and ch == " " and re.match(r" (for|if) ", body[i:]):
            clauses.append(i)
    if clauses:
        cuts = [0, *clauses, len(body)]
        return [body[a:b].strip() for a, b in itertools.pairwise(cuts)]
    cuts = [-1, *commas, len(body)]
    items = [body[a + 1 : b].strip() for a, b in itertools.pairwise(cuts)]
    items = [x for x in items if x]
    return [x + "," for x in items] if len(items) > 1 else items


def wrap(line: str, limit: int = LIMIT) -> list[str]:
    """``line`` (already indented) as one or more lines within ``limit``, broken inside the
    outermost brackets that close at its end, the way ruff format would."""
    if len(line) <= limit or line.lstrip().startswith("#"):
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    end = len(line.rstrip(":,"))
    for open_, close in sorted(_scan(line)):
        if close == end - 1 and close > open_ + 1:
            head, body, tail = line[: open_ + 1], line[open_ + 1 : close], line[close:]
            items = _split_top(body)
            out = [head]
            for item in items:
                out += wrap(indent + "    " + item, limit)
            return [*out, indent + tail]
    return [line]


class Code:
    """Lines of Python with an indentation level; long lines are wrapped."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, text: str = "") -> None:
        for line in text.split("\n"):
            self.lines += wrap("    " * self.depth + line) if line else [""]

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    @contextmanager
    def indented(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Names:
    """Identifiers of the generated code beyond the lowered program's values."""

    low: Lowered
    ns: Namespace
    buf: dict[str, str] = field(default_factory=dict)  # state -> its buffer variable
    parts: dict[str, str] = field(default_factory=dict)  # partial -> its list of parts
    full: dict[str, str] = field(default_factory=dict)  # a blocked input -> the whole tensor

    @classmethod
    def of(cls, plan: Plan) -> Names:
        low = plan.low
        ns = Namespace()
        for name in [*low.kinds]:
            ns.reserve(name)
        names = cls(low, ns)
        for s in low.states:
            names.buf[s] = ns.name(f"{s}_buf")
        for x in [low.weight, low.grad, *low.states, *plan.stage_stepnums()]:
            names.full[x] = ns.name(f"{x}_full")
        for stage in plan.stages:
            for p in stage.partials:
                names.parts[p] = ns.name(f"{p}s")
        return names


# -- argument kinds per path ----------------------------------------------------------------------
_SINGLE_KIND = {
    VKind.TENSOR: "T",
    VKind.LOCAL: "S",
    VKind.GROUP: "S",
    VKind.NUMBER: "N",
    VKind.STEPNUM: "N",
    VKind.CONST: "N",
}
_FOREACH_KIND = {**_SINGLE_KIND, VKind.LOCAL: "SL", VKind.STEPNUM: "NL"}
_KERNEL_KIND = {**_SINGLE_KIND, VKind.NUMBER: "S", VKind.STEPNUM: "S"}


def _src(a: Arg, where: dict[str, str] | None = None) -> str:
    if isinstance(a, Lit):
        return a.source
    return where.get(a, a) if where else a


def _uses(lines: list[str], name: str) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", line) for line in lines)


# -- one stage of an eager path -----------------------------------------------------------------
class _EagerStage:
    """The body of one stage's loop (per tensor) or bucket loop (foreach), with buffer reuse."""

    def __init__(self, plan: Plan, names: Names, stage: Stage, path: Path) -> None:
        self.plan, self.low, self.names, self.stage, self.path = plan, plan.low, names, stage, path
        self.kinds = _SINGLE_KIND if path == "single" else _FOREACH_KIND
        low = plan.low
        inputs = {low.weight: low.weight, low.grad: low.grad, **{s: s for s in low.states}}
        self.outputs = dict(low.outputs) if stage.final else {}
        self.bufs = Buffers.start(inputs, stage.instrs, self.outputs)

    def arg(self, a: Arg) -> A:
        kind = self.kinds[self.low.kind(a)]
        return A(_src(a, self.bufs.where), kind)

    def write(self, i: Instr, args: list[A], dest: str, pos: int | None) -> str | None:
        if self.path == "single":
            return EAGER[i.op].into(args, dest)
        if pos is None:
            return None
        return foreach_source(i.op, args, pos, self.low.weight)

    def tensor(self, i: Instr, pos: int) -> str:
        args = [self.arg(a) for a in i.args]
        bufs = self.bufs
        arg_pos = {bufs.where.get(a): p for p, a in enumerate(i.args) if isinstance(a, str)}
        finals = [b for b, v in self.outputs.items() if v == i.name]
        for b in finals:  # the new value of a state (or the weight), into its own buffer
            if bufs.dead(bufs.holds.get(b), pos):
                code = self.write(i, args, b, arg_pos.get(b))
                if code is not None:
                    bufs.put(i.name, b)
                    return code
        for p, a in enumerate(i.args):  # into a dead argument's temporary
            if isinstance(a, Lit):
                continue
            held = bufs.where.get(a)
            if held is not None and held not in bufs.fixed and bufs.dead(a, pos):
                code = self.write(i, args, held, p)
                if code is not None:
                    bufs.put(i.name, held)
                    return code
        if self.path == "single" and bufs.free:  # into a free temporary
            b = bufs.free[-1]
            code = self.write(i, args, b, None)
            if code is not None:
                bufs.put(i.name, b)
                return code
        bufs.put(i.name, i.name)
        return f"{i.name} = {self.expr(i, args)}"

    def expr(self, i: Instr, args: list[A]) -> str:
        if self.path == "foreach":
            code = foreach_source(i.op, args, None, self.low.weight)
            assert code is not None
            return code
        if i.op == "as_local":
            return (
                args[0].src
                if args[0].kind == "S"
                else f"{self.low.weight}.new_tensor({args[0].src})"
            )
        return EAGER[i.op].expr(args)

    def body(self) -> list[str]:
        code = Code()
        for pos, i in enumerate(self.stage.instrs):
            if i.kind is VKind.TENSOR:
                text = self.tensor(i, pos)
                written = self.bufs.where[i.name]
                if i.var and written != i.name and written != i.var:
                    text += f"  # {i.var}"
                code(text)
            else:
                code(f"{i.name} = {self.expr(i, [self.arg(a) for a in i.args])}")
            if i.name in self.stage.partials:
                part = self.names.parts[i.name]
                code(f"{part}.append({i.name})" if self.path == "single" else f"{part} += {i.name}")
            self.bufs.release(pos)
        if self.stage.final:
            self._end(code)
        return code.lines

    def _end(self, code: Code) -> None:
        where = self.bufs.where
        for op, a, b in moves(self.outputs, where.get, lambda d: self.names.ns.name(f"{d}_old")):
            if op == "clone":
                code(
                    f"{a} = {b}.clone()"
                    if self.path == "single"
                    else f"{a} = [_x.clone() for _x in {b}]"
                )
            elif self.path == "single":
                code(f"{a}.copy_({where.get(b, b)})")
            else:
                code(f"torch._foreach_copy_({a}, {where.get(b, b)})")


# -- whole functions ---------------------------------------------------------------------------
@dataclass
class _Module:
    """Everything the generated functions share: the plan, names and signature pieces."""

    plan: Plan
    names: Names
    class_name: str
    semantics: str
    source_path: str

    @property
    def low(self) -> Lowered:
        return self.plan.low

    @property
    def final(self) -> Stage:
        return self.plan.stages[-1]

    @property
    def per_tensor(self) -> bool:
        """Whether the program reduces over one tensor (a reduction that is not global, i.e.
        ``norm``): then a flat buffer cannot stand for its parameters."""
        reductions = (OPS[s.op] for s in self.low.program.body if OPS[s.op].kind is Kind.REDUCTION)
        return any(not op.global_reduction for op in reductions)

    def initial(self) -> str:
        """The states' nonzero initial values, as the source of a tuple of pairs."""
        items = [
            f'("{buf}", {Lit(v).source})'
            for buf, v in zip(self.low.states, self.low.initial, strict=True)
            if v != 0
        ]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"

    @property
    def reductions(self) -> list[str]:
        """The ops of the program that reduce over a tensor (or a group), in program order."""
        ops = [s.op for s in self.low.program.body]
        reducing = (o for o in ops if OPS[o].kind is Kind.REDUCTION or OPS[o].global_reduction)
        return list(dict.fromkeys(reducing))

    def scalars(self) -> list[str]:
        """Keyword scalars of the path functions: hypers, then derived numbers."""
        return [*self.low.hypers, *self.plan.computed_numbers()]

    def list_args(self) -> list[str]:
        args = ["params: list[Tensor]", "grads: list[Tensor]"]
        if self.low.states:
            args.append("states: dict[str, list[Tensor]]")
        if self.plan.stage_stepnums():
            args.append("per_param: dict[str, list[float]]")
        return args

    def call_args(self) -> str:
        args = ["params", "grads"]
        if self.low.states:
            args.append("states")
        if self.plan.stage_stepnums():
            args.append("per_param")
        return ", ".join(args)

    def signature(self, name: str, extra: list[str], returns: str) -> list[str]:
        kw = [f"{s}: float" for s in self.scalars()] + extra + ["maximize: bool"]
        return [
            f"def {name}(",
            *(f"    {a}," for a in self.list_args()),
            "    *,",
            *(f"    {a}," for a in kw),
            f") -> {returns}:",
        ]

    # -- loops --------------------------------------------------------------------------------
    def loop(self, code: Code, stage: Stage, path: Path) -> None:
        """The loop of one stage: per parameter, or per bucket of lists (foreach). The last
        stage, when it has no per-tensor reduction, also runs block by block (see ``_blocks``).
        """
        gen = _EagerStage(self.plan, self.names, stage, path)
        body = gen.body()
        low, names = self.low, self.names
        single = path == "single"
        states = [s for s in low.states if stage.final or _uses(body, s)]
        neg: list[str] = []
        if _uses(body, low.grad):
            op = "torch.neg" if single else "torch._foreach_neg"
            neg = ["if maximize:", f"    {low.grad} = {op}({low.grad})"]
        work, store = ("_work", "_store") if single else ("_work_all", "_store_all")
        blocked = stage.final and not any(i.op in PER_TENSOR_OPS for i in stage.instrs)
        stepnums = self.plan.stage_stepnums()
        loads = [f"{s} = {work}({names.buf[s]}, {low.weight})" for s in states]
        stores = [f"{store}({names.buf[s]}, {s})" for s in states] if stage.final else []
        lines = loads + neg + body + stores
        # Blocked: the loop over parameters yields whole tensors (named *_full), an inner loop
        # cuts them into blocks under the names the body uses (states load and store per block).
        outer_of = {x: names.full[x] if blocked else x for x in [low.weight, low.grad, *stepnums]}
        buf_of = {s: names.full[s] if blocked else names.buf[s] for s in low.states}
        pairs = [(outer_of[low.weight], "params"), (outer_of[low.grad], "grads")]
        pairs += [(buf_of[s], f'states["{s}"]') for s in low.states]
        pairs += [(outer_of[n], f'per_param["{n}"]') for n in stepnums]
        if blocked:
            both = [(x, names.full[x]) for x in (low.weight, low.grad, *stepnums)]
            both += [(names.buf[s], names.full[s]) for s in states]
            inner = [(x, f) for x, f in both if _uses(lines, x)]
            fn = "_blocks" if single else "_blocks_all"
            iterable = f"{fn}({', '.join(f for _, f in inner)})"
            header = _for([x for x, _ in inner], iterable)
            lines = [*header, *("    " + x for x in lines)]
        pairs = [(v, src) for v, src in pairs if _uses(lines, v)] or pairs[:1]
        targets = [v for v, _ in pairs]
        sources = ", ".join(src for _, src in pairs)
        if single and len(pairs) == 1:
            header = [f"for {targets[0]} in {sources}:"]
        elif single:
            header = _for(targets, f"zip({sources}, strict=True)")
        else:
            header = _for(targets, f"_buckets({sources})")
        for p in stage.partials:
            code(f"{names.parts[p]}: list[Tensor] = []")
        for line in header:
            code(line)
        with code.indented():
            for line in lines:
                code(line)

    def phase(self, code: Code, level: int) -> None:
        """The group-wide values of one level: combined partials and scalar arithmetic on them."""
        for i in self.plan.phases[level]:
            args = []
            for a in i.args:
                if isinstance(a, str) and a in self.names.parts:
                    args.append(A(self.names.parts[a], "S"))
                else:
                    args.append(A(_src(a), _SINGLE_KIND[self.low.kind(a)]))
            code(f"{i.name} = {EAGER[i.op].expr(args)}")

    # -- the path functions ---------------------------------------------------------------------
    def reduce_fn(self, path: Path) -> str:
        code = Code()
        name = "_single_tensor_reduce" if path == "single" else "_foreach_reduce"
        for line in self.signature(name, [], "dict[str, Tensor]"):
            code(line)
        with code.indented():
            how = "one parameter at a time" if path == "single" else "with foreach kernels"
            code(f'"""The group-wide reductions that the last stage reads ({how})."""')
            for stage in self.plan.stages[:-1]:
                self.loop(code, stage, path)
                self.phase(code, stage.index + 1)
            values = self.plan.group_values(self.final)
            code("return {" + ", ".join(f'"{v}": {v}' for v in values) + "}")
        return code.text()

    def step_fn(self, path: Path) -> str:
        code = Code()
        name = "_single_tensor_step" if path == "single" else "_foreach_step"
        extra = [f"{v}: Tensor" for v in self.plan.group_values(self.final)]
        for line in self.signature(name, extra, "None"):
            code(line)
        with code.indented():
            doc = {
                "single": "one parameter at a time, in place where possible",
                "foreach": "with torch._foreach_* kernels over lists of tensors",
            }[path]
            code(
                f'"""The last stage ({doc})."""' if self.plan.staged else f'"""One step ({doc})."""'
            )
            self.loop(code, self.final, path)
        return code.text()

    def kernel_numbers(self) -> list[str]:
        """The NUMBER values the last stage reads, in signature order."""
        read = set(self.plan.reads(self.final.instrs, VKind.NUMBER))
        return [n for n in self.scalars() if n in read]

    def kernel_scalars(self) -> list[str]:
        """The kernel's scalar arguments: numbers, per-parameter numbers, group values."""
        instrs = self.final.instrs
        return [
            *self.kernel_numbers(),
            *self.plan.reads(instrs, VKind.STEPNUM),
            *self.plan.reads(instrs, VKind.GROUP),
        ]

    def kernel_fn(self) -> str:
        low, names = self.low, self.names
        code = Code()
        tensors = [low.weight, low.grad, *(names.buf[s] for s in low.states)]
        code("def _kernel(")
        for t in tensors:
            code(f"    {t}: Tensor,")
        for s in self.kernel_scalars():
            code(f"    {s}: Tensor,")
        code("    maximize: bool,")
        code(") -> None:")
        with code.indented():
            code('"""The last stage for one parameter, flattened; torch.compile fuses it into one')
            code("kernel that reads each input once and writes each output once (scalars are 0-d")
            code('tensors, so new values of them do not recompile it)."""')
            body = Code()
            for i in self.final.instrs:
                args = [A(_src(a), _KERNEL_KIND[low.kind(a)]) for a in i.args]
                body(f"{i.name} = {FUNCTIONAL[i.op](args)}")
            where = {low.weight: low.weight, **{s: names.buf[s] for s in low.states}}
            outputs = {(names.buf.get(b, b)): v for b, v in low.outputs.items()}
            for op, a, b in moves(outputs, where.get, lambda d: names.ns.name(f"{d}_old")):
                body(f"{a} = {b}.clone()" if op == "clone" else f"{a}.copy_({b})")
            if _uses(body.lines, low.grad):
                with code.block("if maximize:"):
                    code(f"{low.grad} = -{low.grad}")
            # A copy (free once compiled): under differentiable=True the final writes into the
            # buffers must not change a value autograd kept (maximum(v_max, v) keeps v_max).
            for s in low.states:
                if _uses(body.lines, s):
                    code(f"{s} = {names.buf[s]}.to({low.weight}.dtype, copy=True)")
            for line in body.lines:
                code(line)
        return code.text()

    def fused_fn(self) -> str:
        low = self.low
        code = Code()
        extra = [f"{v}: Tensor" for v in self.plan.group_values(self.final)]
        for line in self.signature("_fused_step", [*extra, "min_numel: int | None"], "None"):
            code(line)
        states = [f'states["{s}"][idx]' for s in low.states]
        stepnums = self.plan.reads(self.final.instrs, VKind.STEPNUM)
        numbers = self.kernel_numbers()
        group = self.plan.group_values(self.final)
        with code.indented():
            code('"""The last stage through the compiled kernel, parameter by parameter; small or')
            code(
                "non-contiguous tensors take the foreach path (for them the kernel's call overhead"
            )
            code('costs more than the memory traffic it saves)."""')
            tensors = ", ".join(["params[idx]", "grads[idx]", *states])
            code("large = [")
            code("    idx")
            code("    for idx in range(len(params))")
            code(f"    if _fusable([{tensors}], min_numel)")
            code("]")
            code("rest = [idx for idx in range(len(params)) if idx not in set(large)]")
            if numbers:
                code("scalars: dict[tuple[torch.device, torch.dtype], tuple[Tensor, ...]] = {}")
            with code.block("for idx in large:"):
                like = states[0] if states else "params[idx]"
                code(f"kind = (params[idx].device.type, params[idx].dtype, {like}.dtype, maximize)")
                code("kernel = _compiled_kernel(_kernel, kind)")
                with code.block("if kernel is None:"):
                    code("rest.append(idx)")
                    code("continue")
                if numbers:
                    code("key = (params[idx].device, params[idx].dtype)")
                    with code.block("if key not in scalars:"):
                        code(f"scalars[key] = _as_tensors([{', '.join(numbers)}], params[idx])")
                with code.block("try:"):
                    code("kernel(")
                    for t in ["params[idx]", "grads[idx]", *states]:
                        code(f"    {t}.view(-1),")
                    if numbers:
                        code("    *scalars[key],")
                    if stepnums:
                        values = ", ".join(f'per_param["{n}"][idx]' for n in stepnums)
                        code(f"    *_as_tensors([{values}], params[idx]),")
                    for v in group:
                        code(f"    {v},")
                    code("    maximize,")
                    code(")")
                with code.block("except Exception as error:"):
                    code("_give_up(kind, error)  # or raise it")
                    code("rest.append(idx)")
            with code.block("if rest:"):
                code("_foreach_step(")
                code("    [params[idx] for idx in rest],")
                code("    [grads[idx] for idx in rest],")
                if low.states:
                    code("    {k: [v[idx] for idx in rest] for k, v in states.items()},")
                if self.plan.stage_stepnums():
                    code("    {k: [v[idx] for idx in rest] for k, v in per_param.items()},")
                for s in [*self.scalars(), *group]:
                    code(f"    {s}={s},")
                code("    maximize=maximize,")
                code(")")
        return code.text()

    def differentiable_fn(self) -> str:
        low = self.low
        code = Code()
        extra = [f"{v}: Tensor" for v in self.plan.group_values(self.final)]
        for line in self.signature("_differentiable_step", extra, "None"):
            code(line)
        stepnums = self.plan.reads(self.final.instrs, VKind.STEPNUM)
        numbers = self.kernel_numbers()
        with code.indented():
            code('"""The last stage through ``_kernel`` run eagerly, parameter by parameter: it is')
            code("functional up to its final copies, so autograd records the step")
            code('(differentiable=True)."""')
            with code.block("for idx in range(len(params)):"):
                code("_kernel(")
                states = [f'states["{s}"][idx]' for s in low.states]
                for t in ["params[idx]", "grads[idx]", *states]:
                    code(f"    {t},")
                if numbers:
                    code(f"    *_as_tensors([{', '.join(numbers)}], params[idx]),")
                if stepnums:
                    values = ", ".join(f'per_param["{n}"][idx]' for n in stepnums)
                    code(f"    *_as_tensors([{values}], params[idx]),")
                for v in self.plan.group_values(self.final):
                    code(f"    {v},")
                code("    maximize,")
                code(")")
        return code.text()

    # -- scalars ---------------------------------------------------------------------------------
    def _scalar_lines(self, code: Code, instrs: tuple[Instr, ...]) -> None:
        for i in instrs:
            args = [A(_src(a), "N" if isinstance(a, Lit) else "S") for a in i.args]
            if all(isinstance(a, Lit) for a in i.args):  # arithmetic on literals: make a tensor
                args[0] = A(f"_f64({args[0].src})", "S")
            code(f"{i.name} = {EAGER[i.op].expr(args)}")

    def numbers_fn(self) -> str:
        """``_numbers``: the NUMBER values, from the group's hyperparameters, once a step."""
        plan = self.plan
        inputs = [n for n in plan.reads(plan.numbers, VKind.NUMBER) if n in self.low.hypers]
        code = Code()
        *head, last = _def("_numbers", [f"{n}: float" for n in inputs], "dict[str, float]")
        for line in head:
            code(line)
        with code.block(last):
            code('"""Scalars computed from the hyperparameters, in float64 with IEEE semantics')
            code('(1 / 0 is inf, not an exception)."""')
            if inputs:
                code(f"{', '.join(inputs)} = {', '.join(f'_f64({n})' for n in inputs)}")
            self._scalar_lines(code, plan.numbers)
            out = plan.computed_numbers()
            code("return {" + ", ".join(f'"{n}": {n}.item()' for n in out) + "}")
        return code.text()

    def step_numbers_fn(self) -> str:
        """``_step_numbers`` (one step count) and ``_per_param`` (every parameter's)."""
        plan, low = self.plan, self.low
        inputs = [n for n in plan.reads(plan.stepnums, VKind.NUMBER)]
        step = low.step or "step"
        outs = plan.stage_stepnums()
        code = Code()
        args = [f"{step}: int", *(f"{n}: float" for n in inputs)]
        *head, last = _def("_step_numbers", args, "tuple[float, ...]")
        for line in head:
            code(line)
        with code.block(last):
            code('"""Scalars that depend on a step count, in float64 with IEEE semantics."""')
            names = [step, *inputs]
            line = f"{', '.join(names)} = {', '.join(f'_f64({n})' for n in names)}"
            for text in [line] if len(line) <= _WIDTH else [f"{n} = _f64({n})" for n in names]:
                code(text)
            self._scalar_lines(code, plan.stepnums)
            items = [f"{n}.item()" for n in outs]
            code(f"return ({items[0]},)" if len(items) == 1 else f"return ({', '.join(items)})")
        code("")
        code("")
        *head, last = _def(
            "_per_param",
            ["steps: list[int]", *(f"{n}: float" for n in inputs)],
            "dict[str, list[float]]",
        )
        for line in head:
            code(line)
        with code.block(last):
            code('"""Per-parameter scalars from each parameter\'s step count (usually one)."""')
            call = ", ".join(["_s", *inputs])
            code(f"by_step = {{_s: _step_numbers({call}) for _s in set(steps)}}")
            code("return {")
            for k, n in enumerate(outs):
                code(f'    "{n}": [by_step[_s][{k}] for _s in steps],')
            code("}")
        return code.text()

    # -- the class --------------------------------------------------------------------------------
    def class_def(self) -> str:
        low = self.low
        code = Code()
        with code.block(f"class {self.class_name}(torch.optim.Optimizer):"):
            for line in self.class_doc():
                code(line)
            code("")
            code("#: Under fused=True, parameters with fewer elements than this take the foreach")
            code("#: path (None: 65536 on the CPU, 2**20 on accelerators).")
            code("fused_min_numel: int | None = None")
            code("# What the shared machinery (_step, _gather...) needs to know of the program.")
            code(f"_states = {_tuple(low.states)}")
            code(f"_reads_step = {low.step is not None}")
            code(f"_reductions = {_tuple(self.reductions)}")
            code(f"_per_tensor = {self.per_tensor}")
            code(f"_initial = {self.initial()}  # (state, value) for states that do not start at 0")
            code("")
            self.init(code)
            code("")
            with code.block("def __setstate__(self, state: dict[str, object]) -> None:"):
                code("super().__setstate__(state)")
                code("_setup(self)")
            code("")
            with code.block(
                "def step(self, closure: Callable[[], float] | None = None) -> float | None:"
            ):
                code('"""Perform one optimization step; ``closure`` re-evaluates the model and')
                code('returns the loss."""')
                code("return _step(self, closure)")
            code("")
            with code.block("def zero_grad(self, set_to_none: bool = True) -> None:"):
                code('"""As torch.optim\'s (see ``_zero_grad`` for flat buffers)."""')
                code("_zero_grad(self, set_to_none)")
            code("")
            self.step_group(code)
        return code.text()

    def class_doc(self) -> list[str]:
        low, sig = self.low, self.low.signature
        lines = [
            f'"""{self.class_name}: an optimizer emitted by simplifier from {self.source_path}.',
            "",
        ]
        lines += [
            "Each step runs the program below on every parameter w (with g its gradient; states"
        ]
        lines += ["start at zero) and sets ``w = w - update``; see the module docstring.", ""]
        lines += [
            "Args:",
            "    params: an iterable of parameters or of dicts defining parameter groups.",
        ]
        default = "required" if sig.lr is None else f"default {_fmt(sig.lr)}"
        if sig.lr_mode == "product":
            scale = _fmt(sig.lr_scale)
            lines += [f"    lr: the learning rate: the program's lr input times {scale}"]
            lines += [f"        ({default}); an LR scheduler scales it."]
        elif sig.lr_mode == "input":
            lines += [f"    lr: the program's lr input ({default})."]
        else:
            lines += [
                "    lr: the program does not read lr; its update is scaled by lr (default 1.0)."
            ]
        if sig.betas_keyword == "betas":
            names = ", ".join(b.name for b in sig.betas)
            lines += [f"    betas: ({names}), the weights of the program's moving averages."]
        elif sig.betas:
            lines += [f"    {sig.betas[0].name}: the weight of the program's moving average."]
        for h in sig.eps:
            lines += [f"    {h.name}: added to a divisor."]
        if sig.weight_decay:
            lines += ["    weight_decay: the coefficient of w added to the update."]
        for h in sig.named:
            lines += [f"    {h.name}: a constant of the program."]
        lines += [
            "    maximize: maximize the objective instead of minimizing it.",
            "    foreach: use the torch._foreach_* path (default: on CUDA, as torch.optim).",
            "    fused: use the path compiled with torch.compile (compiles at the first step).",
            "    state_dtype: dtype of the state tensors (e.g. torch.bfloat16); arithmetic stays",
            "        in the parameter's dtype.",
            "    flat: keep each group's parameters, gradients and states as views of one buffer",
            "        per device and dtype (made at the first step), so that every path runs on",
            "        the buffer as on one parameter; ``zero_grad`` then zeroes gradients in place",
            "        (see ``_Flat``).",
            f"    (State per parameter: {', '.join(low.states) or 'none'}.)",
            '"""',
        ]
        return lines

    def init(self, code: Code) -> None:
        sig = self.low.signature
        code("def __init__(")
        code("    self,")
        code("    params: torch.optim.optimizer.ParamsT,")
        for name, default in sig.keywords():
            kind = "tuple[float, ...]" if name == "betas" else "float"
            code(f"    {name}: {kind}," if default is None else f"    {name}: {kind} = {default},")
        code("    *,")
        for name, kind, default in KEYWORDS:
            code(f"    {name}: {kind} = {default},")
        code(") -> None:")
        with code.indented():
            with code.block("if not lr >= 0.0:"):
                code('raise ValueError(f"invalid learning rate: {lr}")')
            if sig.betas_keyword == "betas":
                with code.block(f"if len(betas) != {len(sig.betas)}:"):
                    n = len(sig.betas)
                    code(f'raise ValueError(f"betas must have {n} values, got {{betas}}")')
            for arg, h in self.bounded():
                test, text = _BOUND_TESTS[h.bound]  # type: ignore[index]
                label = f"{arg} ({h.name})" if arg != h.name else arg
                with code.block(f"if not {test.format(arg)}:"):
                    code(f'raise ValueError(f"invalid {label}: {{{arg}}} is not {text}")')
            code("defaults = {")
            for name, _ in sig.keywords():
                value = "tuple(betas)" if name == "betas" else name
                code(f'    "{name}": {value},')
            for name, _, _ in KEYWORDS:
                code(f'    "{name}": {name},')
            code("}")
            code("_check_keywords(type(self), defaults)")
            code("super().__init__(params, defaults)")
            code("_setup(self)")

    def bounded(self) -> list[tuple[str, Hyper]]:
        """(the expression of the argument, its hyper) for each hyper with a valid range."""
        sig = self.low.signature
        out = []
        for h in sig.hypers():
            if h.bound is None:
                continue
            if sig.betas_keyword == "betas" and h in sig.betas:
                out.append((f"betas[{sig.betas.index(h)}]", h))
            else:
                out.append((h.name, h))
        return out

    def step_group(self, code: Code) -> None:
        low, sig, plan = self.low, self.low.signature, self.plan
        code("def _step_group(")
        code("    self,")
        code("    group: dict[str, object],")
        code("    params: list[Tensor],")
        code("    grads: list[Tensor],")
        code("    states: dict[str, list[Tensor]],")
        code("    steps: list[int],")
        code(") -> None:")
        with code.indented():
            code('"""One step for one parameter group."""')
            if len(sig.betas) > 1:
                code(f'{", ".join(b.name for b in sig.betas)} = group["betas"]')
            code("scalars = {")
            code('    "lr": float(group["lr"]),')
            for h in sig.hypers():
                key = h.name if len(sig.betas) < 2 or h not in sig.betas else None
                value = f'group["{key}"]' if key else h.name
                code(f'    "{h.name}": float({value}),')
            code("}")
            if plan.computed_numbers():
                inputs = [n for n in plan.reads(plan.numbers, VKind.NUMBER) if n in low.hypers]
                call = ", ".join(f'{n}=scalars["{n}"]' for n in inputs)
                code(f"scalars.update(_numbers({call}))")
            per_param = ""
            if plan.stage_stepnums():
                inputs = plan.reads(plan.stepnums, VKind.NUMBER)
                call = ", ".join(["steps", *(f'scalars["{n}"]' for n in inputs)])
                code(f"per_param = _per_param({call})")
                per_param = ", per_param"
            has_states = ", states" if low.states else ""
            lists = f"params, grads{has_states}{per_param}"
            code('maximize = bool(group["maximize"])')
            code("path = _path(group, params)")
            if plan.staged:
                code('foreach = path in ("foreach", "fused")')
                code("reduce = _foreach_reduce if foreach else _single_tensor_reduce")
                _call(code, "reduced = reduce", f"{lists}, maximize=maximize, **scalars")
                tail = ", **scalars, **reduced"
            else:
                tail = ", **scalars"
            with code.block('if path == "fused":'):
                code("min_numel = self.fused_min_numel")
                _call(code, "_fused_step", f"{lists}, maximize=maximize, min_numel=min_numel{tail}")
            with code.block('elif path == "foreach":'):
                _call(code, "_foreach_step", f"{lists}, maximize=maximize{tail}")
            with code.block('elif path == "differentiable":'):
                _call(code, "_differentiable_step", f"{lists}, maximize=maximize{tail}")
            with code.block("else:"):
                _call(code, "_single_tensor_step", f"{lists}, maximize=maximize{tail}")


# A hyper's valid range (see simplifier.emit.hypers.Bound): the test, and how the error says it.
_BOUND_TESTS = {
    "unit": ("0.0 <= {} < 1.0", "in [0, 1)"),
    "nonnegative": ("{} >= 0.0", ">= 0"),
}


def _call(code: Code, fn: str, args: str) -> None:
    """``fn(args)`` on one line, or one argument a line when that is too long."""
    line = f"{fn}({args})"
    if len(line) + 4 * code.depth <= 100:
        code(line)
        return
    code(f"{fn}(")
    for a in args.split(", "):
        code(f"    {a},")
    code(")")


_WIDTH = 88  # the longest generated line we write on one line (bodies are indented under it)


def _for(targets: list[str], iterable: str) -> list[str]:
    """A ``for`` header unpacking ``targets``: one line, or one target a line in parentheses
    (as ruff format writes it) when long; one target is a 1-tuple."""
    names = targets[0] + "," if len(targets) == 1 else ", ".join(targets)
    line = f"for {names} in {iterable}:"
    if len(line) <= _WIDTH:
        return [line]
    return ["for (", *(f"    {t}," for t in targets), f") in {iterable}:"]


def _def(name: str, args: list[str], returns: str) -> list[str]:
    """A ``def`` line, or one argument a line when it would be long (the last line ends it)."""
    line = f"def {name}({', '.join(args)}) -> {returns}:"
    if len(line) <= _WIDTH:
        return [line]
    return [f"def {name}(", *(f"    {a}," for a in args), f") -> {returns}:"]


def _tuple(names: list[str] | tuple[str, ...]) -> str:
    """A tuple of strings as Python source."""
    items = [f'"{n}"' for n in names]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _fmt(value: object) -> str:
    from fractions import Fraction

    from simplifier.ir import format_number

    return format_number(value) if isinstance(value, Fraction) else str(value)


def _module_doc(m: _Module, program_text: str) -> list[str]:
    from simplifier import __version__

    sig = m.low.signature
    lines = [
        f'"""{m.class_name}: a torch.optim optimizer emitted by simplifier {__version__}.',
        "",
        f"Source: {m.source_path} ({m.semantics} semantics). The program, with its constants named",
        "as hyperparameters (the constructor's keyword arguments, whose defaults are the",
        "program's values):",
        "",
    ]
    for line in program_text.rstrip("\n").split("\n"):
        body = line.lstrip()
        indent = "    " + line[: len(line) - len(body)]
        lines += textwrap.wrap(
            body,
            LIMIT - 4,
            initial_indent=indent,
            subsequent_indent=indent + "    ",
            break_long_words=False,
        )
    lines += ["", "Each step runs it on every parameter ``w`` and sets ``w = w - update``."]
    if sig.lr_mode == "product":
        scale, lr = _fmt(sig.lr_scale), _fmt(sig.lr)
        lines += [f"The group's ``lr`` stands for the program's ``lr * {scale}`` (default {lr})."]
    elif sig.lr_mode == "absent":
        lines += ["The program does not read lr: its update is multiplied by the group's ``lr``"]
        lines += ["(default 1.0), so that LR schedulers have an effect."]
    lines += ['"""']
    return lines


def generate(
    plan: Plan, class_name: str, semantics: str, source_path: str, program_text: str
) -> str:
    """The module's source (see :func:`simplifier.emit.emit_torch`)."""
    m = _Module(plan, Names.of(plan), class_name, semantics, source_path)
    cls = m.class_def()
    functions: list[str] = []
    if plan.staged:
        functions += [m.reduce_fn("single"), m.reduce_fn("foreach")]
    functions += [m.step_fn("single"), m.step_fn("foreach"), m.fused_fn()]
    functions += [m.differentiable_fn(), m.kernel_fn()]
    if plan.computed_numbers():
        functions.append(m.numbers_fn())
    if plan.stage_stepnums():
        functions.append(m.step_numbers_fn())
    code = "\n\n\n".join([cls, *functions])
    imports, machinery = runtime_source(code)
    head = [
        *_module_doc(m, program_text),
        "",
        "from __future__ import annotations",
        "",
        *imports,
        "",
        f'__all__ = ["{class_name}"]',
    ]
    tail = [
        "# -- The machinery below is copied from simplifier/emit/runtime.py, where it is",
        "# -- type-checked and tested; nothing in it is specific to this program.",
        machinery,
    ]
    return "\n\n\n".join(["\n".join(head), code, "\n".join(tail)]) + "\n"


# -- the runtime, copied ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Definition:
    names: tuple[str, ...]  # what it defines
    source: str  # with the comment lines right above it
    uses: frozenset[str]  # every name it reads


@functools.cache
def _runtime() -> tuple[list[ast.Import | ast.ImportFrom], list[_Definition]]:
    """simplifier/emit/runtime.py: its imports and its top-level definitions, in file order."""
    text = (FilePath(__file__).parent / "runtime.py").read_text(encoding="utf-8")
    lines = text.split("\n")
    imports: list[ast.Import | ast.ImportFrom] = []
    defs: list[_Definition] = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                imports.append(node)
            continue
        if isinstance(node, ast.Expr):  # the module docstring
            continue
        start = node.lineno - 1
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.decorator_list:
            start = node.decorator_list[0].lineno - 1
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        source = "\n".join(lines[start : node.end_lineno])
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names: tuple[str, ...] = (node.name,)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = tuple(t.id for t in targets if isinstance(t, ast.Name))
        else:
            raise AssertionError(f"runtime.py:{node.lineno}: not a definition")
        uses = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        defs.append(_Definition(names, source, uses))
    return imports, defs


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def runtime_source(code: str) -> tuple[list[str], str]:
    """The import lines and the runtime definitions that ``code`` needs (and those they need),
    in runtime.py's order; only the imports the module then uses."""
    imports, defs = _runtime()
    by_name = {n: d for d in defs for n in d.names}
    needed: set[str] = set()
    todo = [n for n in _words(code) if n in by_name]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo += [n for n in by_name[name].uses if n in by_name]
    chosen = [d for d in defs if set(d.names) & needed]
    machinery = "\n\n\n".join(d.source for d in chosen)
    used = _words(code) | _words(machinery)
    lines = []
    for node in imports:
        if isinstance(node, ast.Import):
            lines += [f"import {a.name}" for a in node.names if a.name in used]
        else:
            kept = [a.name for a in node.names if a.name in used]
            if kept:
                lines.append(f"from {node.module} import {', '.join(kept)}")
    return _import_blocks(lines), machinery


def _import_blocks(lines: list[str]) -> list[str]:
    """Standard library imports, a blank line, then torch's (isort's order)."""
    std = [x for x in lines if not x.split()[1].startswith("torch")]
    third = [x for x in lines if x.split()[1].startswith("torch")]
    return [*std, *([""] if std and third else []), *third]
