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

import itertools
import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from simplifier.emit.hypers import Hyper
from simplifier.emit.lower import Arg, Instr, Lit, Lowered, VKind
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
    helpers: set[str] = field(default_factory=set)

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
        if states:
            self.helpers |= {work, store} if stage.final else {work}
        blocked = stage.final and not any(i.op in ("norm", "tensor_dot") for i in stage.instrs)
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
            self.helpers |= {"_blocks"} if single else {"_blocks", "_blocks_all"}
            both = [(x, names.full[x]) for x in (low.weight, low.grad, *stepnums)]
            both += [(names.buf[s], names.full[s]) for s in states]
            inner = [(x, f) for x, f in both if _uses(lines, x)]
            target = ", ".join(x for x, _ in inner) + ("," if len(inner) == 1 else "")
            fn = "_blocks" if single else "_blocks_all"
            header = f"for {target} in {fn}({', '.join(f for _, f in inner)}):"
            lines = [header, *("    " + x for x in lines)]
        pairs = [(v, src) for v, src in pairs if _uses(lines, v)] or pairs[:1]
        targets = ", ".join(v for v, _ in pairs)
        sources = ", ".join(src for _, src in pairs)
        if single and len(pairs) == 1:
            header = f"for {targets} in {sources}:"
        elif single:
            header = f"for {targets} in zip({sources}, strict=True):"
        else:
            self.helpers.add("_buckets")
            targets = f"({targets},)" if len(pairs) == 1 else targets
            header = f"for {targets} in _buckets({sources}):"
        for p in stage.partials:
            code(f"{names.parts[p]}: list[Tensor] = []")
        code(header)
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
            if i.op.startswith("combine"):
                self.helpers.add("_stack")
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
            for s in low.states:
                if _uses(body.lines, s):
                    code(f"{s} = {names.buf[s]}.to({low.weight}.dtype)")
            for line in body.lines:
                code(line)
        return code.text()

    def fused_fn(self) -> str:
        low = self.low
        code = Code()
        extra = [f"{v}: Tensor" for v in self.plan.group_values(self.final)]
        for line in self.signature("_fused_step", [*extra, "min_numel: int | None"], "None"):
            code(line)
        self.helpers |= {"_fusable", "_as_tensors", "_compiled_kernel", "_give_up"}
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
                code("kernel = _compiled_kernel(kind)")
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
        self.helpers.add("_as_tensors")
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
        self.helpers.add("_f64")
        args = ", ".join(f"{n}: float" for n in inputs)
        with code.block(f"def _numbers({args}) -> dict[str, float]:"):
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
        self.helpers.add("_f64")
        args = ", ".join([f"{step}: int", *(f"{n}: float" for n in inputs)])
        with code.block(f"def _step_numbers({args}) -> tuple[float, ...]:"):
            code('"""Scalars that depend on a step count, in float64 with IEEE semantics."""')
            names = [step, *inputs]
            code(f"{', '.join(names)} = {', '.join(f'_f64({n})' for n in names)}")
            self._scalar_lines(code, plan.stepnums)
            items = [f"{n}.item()" for n in outs]
            code(f"return ({items[0]},)" if len(items) == 1 else f"return ({', '.join(items)})")
        code("")
        code("")
        args = ", ".join(["steps: list[int]", *(f"{n}: float" for n in inputs)])
        with code.block(f"def _per_param({args}) -> dict[str, list[float]]:"):
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
        code = Code()
        with code.block(f"class {self.class_name}(torch.optim.Optimizer):"):
            for line in self.class_doc():
                code(line)
            code("")
            code("#: Under fused=True, parameters with fewer elements than this take the foreach")
            code("#: path (None: 65536 on the CPU, 2**20 on accelerators).")
            code("fused_min_numel: int | None = None")
            code("")
            self.init(code)
            code("")
            with code.block("def __setstate__(self, state: dict[str, object]) -> None:"):
                code("super().__setstate__(state)")
                with code.block("for group in self.param_groups:"):
                    for name, _, default in KEYWORDS:
                        code(f'group.setdefault("{name}", {default})')
                code('self.__dict__.setdefault("_flat", {})')
                if self.low.states:
                    code("# Hooks are not pickled (nor deep-copied): register it again.")
                    code("self.register_load_state_dict_post_hook(_restore_state_dtype)")
            code("")
            self.step_method(code)
            code("")
            self.zero_grad_method(code)
            code("")
            self.init_group(code)
            code("")
            self.step_group(code)
            code("")
            code("@staticmethod")
            with code.block("def _path(group: dict[str, object], params: list[Tensor]) -> str:"):
                code('"""fused, foreach or single: as torch.optim chooses when not told (foreach')
                code('kernels where the device has them, so on CUDA; never fused by default)."""')
                with code.block('if group["differentiable"]:'):
                    code('return "differentiable"')
                with code.block('if group["fused"]:'):
                    code('return "fused"')
                code('foreach = group["foreach"]')
                with code.block("if foreach is None:"):
                    code("foreach = all(p.device.type in _FOREACH_DEVICES for p in params)")
                code('return "foreach" if foreach else "single"')
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
        sig, low = self.low.signature, self.low
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
            self.keyword_checks(code)
            code("defaults = {")
            for name, _ in sig.keywords():
                value = "tuple(betas)" if name == "betas" else name
                code(f'    "{name}": {value},')
            for name, _, _ in KEYWORDS:
                code(f'    "{name}": {name},')
            code("}")
            code("super().__init__(params, defaults)")
            code("# flat=True: the flat buffers of each group (by its index in param_groups).")
            code("self._flat: dict[int, list[_Flat]] = {}")
            self.helpers |= {"_Flat", "_flat_lists"}
            if low.states:
                code("self.register_load_state_dict_post_hook(_restore_state_dtype)")
                self.helpers.add("_restore_state_dtype")

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

    def keyword_checks(self, code: Code) -> None:
        """The checks of the keywords every emitted class takes, as torch.optim makes them."""
        with code.block("if foreach and fused:"):
            code('raise RuntimeError("`fused` and `foreach` cannot be `True` together.")')
        with code.block("if differentiable and (fused or foreach or flat):"):
            code("raise RuntimeError(")
            code('    "differentiable=True runs the per-tensor path: it cannot be combined with "')
            code('    "fused, foreach or flat"')
            code(")")
        with code.block("if capturable:"):
            code("raise ValueError(")
            code('    "capturable=True is not supported: the step computes its step counts "')
            code('    "and the scalars derived from them on the host (CUDA graphs cannot)"')
            code(")")
        if self.per_tensor:
            with code.block("if flat:"):
                message = "flat=True needs a program without per-tensor reductions (norm)"
                code(f'raise ValueError("{message}")')

    def step_method(self, code: Code) -> None:
        code("def step(self, closure: Callable[[], float] | None = None) -> float | None:")
        with code.indented():
            code('"""Perform one optimization step; ``closure`` re-evaluates the model and returns')
            code("the loss. Autograd does not record the step, unless the optimizer was made with")
            code('differentiable=True."""')
            code("loss = None")
            with code.block("if closure is not None:"):
                with code.block("with torch.enable_grad():"):
                    code("loss = closure()")
            with code.block('with torch.set_grad_enabled(bool(self.defaults["differentiable"])):'):
                with code.block("for index, group in enumerate(self.param_groups):"):
                    code("params, grads, states, steps = self._gather(group)")
                    with code.block('if group["flat"] and params:'):
                        code("buffers = self._flat.setdefault(index, [])")
                        by_step = self.low.step is not None
                        args = f"buffers, params, grads, states, steps, self.state, {by_step}"
                        code(f"params, grads, states, steps = _flat_lists({args})")
                    with code.block("if params:"):
                        code("self._step_group(group, params, grads, states, steps)")
            code("return loss")

    def zero_grad_method(self, code: Code) -> None:
        code("def zero_grad(self, set_to_none: bool = True) -> None:")
        with code.indented():
            code('"""As torch.optim\'s. With set_to_none=False, the gradients of flat buffers')
            code("(flat=True) are zeroed in place, one fill per buffer, and stay views of it, so")
            code("that backward accumulates into the buffer (set_to_none=True drops them: the next")
            code('step copies the new gradients into the buffer)."""')
            code("flat: set[int] = set()")
            with code.block("if not set_to_none:"):
                with code.block("for buffers in self._flat.values():"):
                    with code.block("for buffer in buffers:"):
                        with code.block("if buffer.intact():"):
                            code("buffer.zero_grad()")
                            code("flat.update(id(p) for p in buffer.params)")
            with code.block("for group in self.param_groups:"):
                with code.block('for p in group["params"]:'):
                    with code.block("if p.grad is None or id(p) in flat:"):
                        code("continue")
                    with code.block("if set_to_none:"):
                        code("p.grad = None")
                        code("continue")
                    with code.block("if p.grad.grad_fn is not None:"):
                        code("p.grad.detach_()")
                    with code.block("else:"):
                        code("p.grad.requires_grad_(False)")
                    code("p.grad.zero_()")

    def init_group(self, code: Code) -> None:
        low = self.low
        self.helpers.add("_real")
        code("def _gather(")
        code("    self, group: dict[str, object]")
        code(") -> tuple[list[Tensor], list[Tensor], dict[str, list[Tensor]], list[int]]:")
        with code.indented():
            code('"""The parameters that have a gradient, with their states (made lazily, zero)')
            code('and step counts (incremented)."""')
            code("params: list[Tensor] = []")
            code("grads: list[Tensor] = []")
            code(
                "states: dict[str, list[Tensor]] = {"
                + ", ".join(f'"{s}": []' for s in low.states)
                + "}"
            )
            code("steps: list[int] = []")
            with code.block('for p in group["params"]:'):
                with code.block("if p.grad is None:"):
                    code("continue")
                with code.block("if p.grad.is_sparse:"):
                    code(
                        f'raise RuntimeError("{self.class_name} does not support sparse gradients")'
                    )
                with code.block("if torch.is_complex(p):"):
                    name = self.class_name
                    if self.reductions:
                        what = ", ".join(self.reductions)
                        code("raise RuntimeError(")
                        code(f'    "{name} does not support complex parameters: its program "')
                        code(f'    "reduces over tensors ({what}): "')
                        code('    "only element-wise programs treat them as pairs of reals"')
                        code(")")
                    else:
                        with code.block('if group["state_dtype"] is not None:'):
                            code("raise RuntimeError(")
                            code('    "state_dtype does not apply to complex parameters (their "')
                            code('    "states are complex, in the parameter\'s dtype)"')
                            code(")")
                code("state = self.state[p]")
                with code.block("if not state:"):
                    code('state["step"] = 0')
                    if low.states:
                        code('dtype = group["state_dtype"] or p.dtype')
                    for s in low.states:
                        code(f'state["{s}"] = torch.zeros_like(')
                        code("    p, dtype=dtype, memory_format=torch.preserve_format")
                        code(")")
                code('state["step"] += 1')
                code("# Complex parameters (element-wise programs) as real views, as torch.optim.")
                code("params.append(_real(p))")
                code("grads.append(_real(p.grad))")
                code('steps.append(state["step"])')
                with code.block("for name, values in states.items():"):
                    code("values.append(_real(state[name]))")
            code("return params, grads, states, steps")

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
            code("path = self._path(group, params)")
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


def _fmt(value: object) -> str:
    from fractions import Fraction

    from simplifier.ir import format_number

    return format_number(value) if isinstance(value, Fraction) else str(value)


HELPERS: dict[str, str] = {
    "_f64": '''def _f64(x: float) -> Tensor:
    """A float64 0-d tensor: scalar arithmetic with IEEE semantics (1 / 0 is inf)."""
    return torch.tensor(x, dtype=torch.float64)''',
    "_real": '''def _real(t: Tensor) -> Tensor:
    """A complex tensor as its real view (a trailing dimension of 2); other tensors as they are."""
    return torch.view_as_real(t) if t.is_complex() else t''',
    "_stack": '''def _stack(parts: list[Tensor]) -> Tensor:
    """Per-parameter partial results, stacked on the first one's device."""
    return torch.stack([p.to(parts[0].device) for p in parts])''',
    "_work": '''def _work(buf: Tensor, like: Tensor) -> Tensor:
    """A state in its parameter's dtype: the buffer itself, or a copy (state_dtype)."""
    return buf if buf.dtype == like.dtype else buf.to(like.dtype)''',
    "_store": '''def _store(buf: Tensor, value: Tensor) -> None:
    """Write a state's new value to its buffer, unless it was computed in place there."""
    if value is not buf:
        buf.copy_(value)''',
    "_work_all": '''def _work_all(bufs: list[Tensor], like: list[Tensor]) -> list[Tensor]:
    """States in their parameters' dtype: the buffers themselves, or copies (state_dtype)."""
    return [b if b.dtype == p.dtype else b.to(p.dtype) for b, p in zip(bufs, like, strict=True)]''',
    "_store_all": '''def _store_all(bufs: list[Tensor], values: list[Tensor]) -> None:
    """Write states' new values to their buffers, unless computed in place there."""
    for buf, value in zip(bufs, values, strict=True):
        if value is not buf:
            buf.copy_(value)''',
    "_blocks": '''def _blocks(*items: Tensor | float) -> Iterator[tuple[Tensor | float, ...]]:
    """One parameter's tensors (and numbers) cut into blocks of BLOCK elements: on the CPU, each
    op then runs on a block that stays in cache instead of streaming whole tensors through
    memory once per op. Elsewhere, or for small or non-contiguous tensors, the items as they are.
    """
    tensors = [x for x in items if isinstance(x, Tensor)]
    n = tensors[0].numel()
    cpu = tensors[0].device.type == "cpu"
    if not cpu or n <= BLOCK or not all(t.is_contiguous() for t in tensors):
        yield items
        return
    flat = [x.view(-1) if isinstance(x, Tensor) else x for x in items]
    for lo in range(0, n, BLOCK):
        yield tuple(x[lo : lo + BLOCK] if isinstance(x, Tensor) else x for x in flat)''',
    "_blocks_all": '''def _blocks_all(*lists: list) -> Iterator[tuple[list, ...]]:
    """Parallel lists regrouped into lists of blocks of about BLOCK elements in all, on the CPU
    (see ``_blocks``); elsewhere the lists as they are (one foreach launch for all of them)."""
    anchor = next(xs for xs in lists if xs and isinstance(xs[0], Tensor))
    sizes = [t.numel() for t in anchor]
    if anchor[0].device.type != "cpu" or sum(sizes) <= BLOCK:
        yield lists
        return
    group: tuple[list, ...] = tuple([] for _ in lists)
    size = 0
    for n, items in zip(sizes, zip(*lists, strict=True), strict=True):
        for block in _blocks(*items) if n > BLOCK else (items,):
            for dst, x in zip(group, block, strict=True):
                dst.append(x)
            size += min(n, BLOCK)
            if size >= BLOCK:
                yield group
                group, size = tuple([] for _ in lists), 0
    if size:
        yield group''',
    "_buckets": '''def _buckets(*lists: list) -> list[tuple[list, ...]]:
    """The parallel lists split by the first one's device and dtype, as foreach kernels need
    (usually one bucket)."""
    keys: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(lists[0]):
        keys.setdefault((t.device, t.dtype), []).append(i)
    if len(keys) == 1:
        return [lists]
    return [tuple([xs[i] for i in idx] for xs in lists) for idx in keys.values()]''',
    "_fusable": '''def _fusable(tensors: list[Tensor], min_numel: int | None) -> bool:
    """Whether the compiled kernel takes this parameter (with its gradient and states)."""
    if min_numel is None:
        min_numel = FUSED_MIN_NUMEL.get(tensors[0].device.type, 1 << 20)
    # Single-element tensors stay out too: Dynamo specialises on size 1 (a second compilation).
    numel = tensors[0].numel()
    return numel >= max(min_numel, 2) and all(t.is_contiguous() for t in tensors)''',
    "_as_tensors": '''def _as_tensors(values: list[float], like: Tensor) -> tuple[Tensor, ...]:
    """Scalars as 0-d tensors on the parameter's device (float64 for float64 parameters,
    float32 otherwise), for the compiled kernel."""
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.tensor(values, dtype=dtype, device=like.device).unbind()''',
    "_Flat": '''class _Flat:
    """Parameters of one device and dtype kept, with their gradients and states, as views of one
    buffer each (flat=True), so that a step can run on the buffers as on one parameter: one
    kernel, one foreach bucket, instead of one per parameter. Parameters become views of the
    weight buffer (``p.data`` is replaced once); gradients and states that get replaced (autograd
    after ``p.grad = None``, ``load_state_dict``) are copied back in at the next step."""

    def __init__(
        self, params: list[Tensor], state_of: Mapping[Tensor, dict[str, Tensor]], names: list[str]
    ) -> None:
        self.params = params
        self.starts = [0]
        for p in params:
            self.starts.append(self.starts[-1] + p.numel())
        like, n = params[0], self.starts[-1]
        self.weight = torch.empty(n, dtype=like.dtype, device=like.device)
        self.grad = torch.empty_like(self.weight)
        self.states = {
            k: torch.empty(n, dtype=state_of[like][k].dtype, device=like.device) for k in names
        }
        for p, view in zip(params, self.views(self.weight), strict=True):
            view.copy_(p)
            p.data = view
        self.sync(state_of)

    def view(self, buffer: Tensor, i: int) -> Tensor:
        """Parameter ``i``'s part of the buffer, shaped like it."""
        return buffer[self.starts[i] : self.starts[i + 1]].view_as(self.params[i])

    def views(self, buffer: Tensor) -> list[Tensor]:
        """The buffer cut into one view per parameter."""
        return [self.view(buffer, i) for i in range(len(self.params))]

    def addresses(self, buffer: Tensor) -> list[int]:
        """Where each parameter's view of the buffer starts (the buffers never move)."""
        base, size = buffer.data_ptr(), buffer.element_size()
        return [base + lo * size for lo in self.starts[:-1]]

    def intact(self) -> bool:
        """Whether every parameter is still its view of the weight buffer."""
        at = self.addresses(self.weight)
        return all(p.data_ptr() == a for p, a in zip(self.params, at, strict=True))

    def sync(self, state_of: Mapping[Tensor, dict[str, Tensor]]) -> None:
        """Copy gradients and states that are no longer views into the buffers and view them
        again (every parameter has a gradient here)."""
        self._repoint(self.grad, [p.grad for p in self.params], state_of, None)
        for k, buffer in self.states.items():
            self._repoint(buffer, [state_of[p][k] for p in self.params], state_of, k)

    def zero_grad(self) -> None:
        """Zero the gradient buffer (one fill) and make every gradient its view again."""
        self.grad.zero_()
        for i, (p, a) in enumerate(zip(self.params, self.addresses(self.grad), strict=True)):
            if p.grad is None or p.grad.data_ptr() != a:
                p.grad = self.view(self.grad, i)

    def _repoint(
        self,
        buffer: Tensor,
        current: list[Tensor],
        state_of: Mapping[Tensor, dict[str, Tensor]],
        key: str | None,
    ) -> None:
        at = self.addresses(buffer)
        for i, (t, a) in enumerate(zip(current, at, strict=True)):
            if t.data_ptr() == a:
                continue
            p, view = self.params[i], self.view(buffer, i)
            view.copy_(t)
            if key is None:
                p.grad = view
            else:
                state_of[p][key] = view''',
    "_flat_lists": '''def _flat_lists(
    buffers: list[_Flat],
    params: list[Tensor],
    grads: list[Tensor],
    states: dict[str, list[Tensor]],
    steps: list[int],
    state_of: Mapping[Tensor, dict[str, Tensor]],
    by_step: bool,
) -> tuple[list[Tensor], list[Tensor], dict[str, list[Tensor]], list[int]]:
    """flat=True: the step's lists with each buffer in place of its parameters when they all have
    a gradient (otherwise they take this step one by one, as views). Parameters in no buffer (at
    the first step, after ``p.data`` was replaced or, when the program reads the step count
    (``by_step``), after their counts diverged) are gathered into new buffers first, by device,
    dtypes and (``by_step``) step count. Real views of complex parameters stay out of buffers."""
    position = {id(p): i for i, p in enumerate(params)}

    def keep(b: _Flat) -> bool:
        if not b.intact():
            return False
        idx = [position[id(p)] for p in b.params if id(p) in position]
        return not by_step or len({steps[i] for i in idx}) < 2

    buffers[:] = [b for b in buffers if keep(b)]
    inside = {id(p) for b in buffers for p in b.params}
    names = list(states)
    fresh: dict[tuple[object, ...], list[Tensor]] = {}
    for p, step in zip(params, steps, strict=True):
        if id(p) in inside or p not in state_of or p.numel() == 0 or not p.is_contiguous():
            continue
        state = state_of[p]
        if any(state[k].shape != p.shape for k in names):
            continue
        key = (p.device, p.dtype, step if by_step else 0, *(state[k].dtype for k in names))
        fresh.setdefault(key, []).append(p)
    buffers += [_Flat(ps, state_of, names) for ps in fresh.values() if len(ps) > 1]
    merged: set[int] = set()
    out: tuple[list[Tensor], list[Tensor], dict[str, list[Tensor]], list[int]]
    out = ([], [], {k: [] for k in names}, [])
    for b in buffers:
        idx = [position.get(id(p)) for p in b.params]
        if None in idx:
            continue
        b.sync(state_of)
        out[0].append(b.weight)
        out[1].append(b.grad)
        for k in names:
            out[2][k].append(b.states[k])
        out[3].append(steps[position[id(b.params[0])]])
        merged.update(i for i in idx if i is not None)
    for i, p in enumerate(params):
        if i not in merged:
            out[0].append(p)
            out[1].append(grads[i])
            for k in names:
                out[2][k].append(states[k][i])
            out[3].append(steps[i])
    return out''',
    "_compiled_kernel": '''def _compiled_kernel(
    kind: tuple[object, ...],
) -> Callable[..., None] | None:
    """``_kernel`` compiled for one kind of parameter: (device type, dtype, state dtype,
    maximize). Each kind compiles its own copy of the function, because Dynamo counts
    recompilations per code object (8 at most): one shared function would fail once it met 8
    kinds. Dynamic shapes: a new parameter size does not recompile. States in another dtype than
    their parameter use MIXED_DTYPE_OPTIONS. None for a kind that failed to compile."""
    if kind not in _COMPILED:
        options = dict(COMPILE_OPTIONS)
        inductor = options.get("options")
        if kind[1] != kind[2] and isinstance(inductor, dict):
            options["options"] = {**inductor, **MIXED_DTYPE_OPTIONS}
        code = _kernel.__code__.replace()  # a new code object: its own Dynamo cache
        copy = types.FunctionType(code, _kernel.__globals__, _kernel.__name__)
        _COMPILED[kind] = torch.compile(copy, **options)
    return _COMPILED[kind]''',
    "_give_up": '''def _give_up(kind: tuple[object, ...], error: Exception) -> None:
    """After torch.compile failed (before the kernel ran: the recompilation limit, a backend
    compiler's error), parameters of that kind take the foreach path from now on, with a
    warning. Any other error is raised again."""
    from torch._dynamo import exc

    if not isinstance(error, (exc.FailOnRecompileLimitHit, exc.BackendCompilerFailed)):
        raise error
    _COMPILED[kind] = None
    warnings.warn(
        f"fused=True: compiling the kernel for {kind} failed ({type(error).__name__}: {error}); "
        "these parameters take the foreach path",
        RuntimeWarning,
        stacklevel=3,
    )''',
}


def _restore_state_dtype_source(states: tuple[str, ...]) -> str:
    names = ", ".join(f'"{s}"' for s in states) + ("," if len(states) == 1 else "")
    return f'''def _restore_state_dtype(optimizer: torch.optim.Optimizer) -> None:
    """load_state_dict casts states to their parameter's dtype; cast them back to state_dtype."""
    for group in optimizer.param_groups:
        if group["state_dtype"] is None:
            continue
        for p in group["params"]:
            state = optimizer.state.get(p, {{}})
            for name in ({names}):
                if name in state:
                    state[name] = state[name].to(group["state_dtype"])'''


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
    parts: list[str] = []
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
    helpers = [HELPERS[h] for h in HELPERS if h in m.helpers]
    if "_restore_state_dtype" in m.helpers:
        helpers.append(_restore_state_dtype_source(plan.low.states))
    abc = ["Callable", *(["Iterator"] if "_blocks" in m.helpers else []), "Mapping"]
    head = [
        *_module_doc(m, program_text),
        "",
        "from __future__ import annotations",
        "",
        "import types",
        "import warnings",
        "from collections.abc import " + ", ".join(abc),
        "",
        "import torch",
        "from torch import Tensor",
        "",
        f'__all__ = ["{class_name}"]',
        "",
        "# torch.compile options of the fused path: dynamic shapes (one compilation for every",
        "# parameter size); on the CPU, an OpenMP parallel loop whatever size the first",
        "# parameter had (Inductor otherwise sizes the thread count from that example), and",
        "# the vector instructions the CPU reports taken as usable: Inductor otherwise builds",
        "# and loads a probe library per candidate ISA, most of the first step's time with an",
        "# empty Inductor cache (drop the entry if the C++ compiler lacks the CPU's ISA flags).",
        "COMPILE_OPTIONS: dict[str, object] = {",
        '    "dynamic": True,',
        '    "fullgraph": True,',
        '    "options": {"cpp.dynamic_threads": True, "cpp.vec_isa_ok": True},',
        "}",
        "# Devices whose foreach kernels torch.optim uses by default.",
        '_FOREACH_DEVICES = ("cuda", "xpu", "mtia")',
        "# Elements per block of the eager paths on the CPU: a few blocks fit in the cache.",
        "BLOCK = 1 << 18",
        "# Under fused=True, smaller parameters take the foreach path (per device type).",
        'FUSED_MIN_NUMEL: dict[str, int] = {"cpu": 1 << 16}',
        "# On the CPU, the kernel for states in another dtype than their parameter (state_dtype)",
        "# is compiled for 256-bit vectors: with 512-bit ones Inductor writes a bfloat16 state",
        "# half a vector at a time through masked stores, which ran it at half the speed on an",
        "# AVX-512 AMD EPYC CPU (the kernel is memory-bound: 256-bit vectors lose nothing).",
        'MIXED_DTYPE_OPTIONS: dict[str, object] = {"cpp.simdlen": 256}',
        "# The compiled kernels, by kind of parameter (see _compiled_kernel).",
        "_COMPILED: dict[tuple[object, ...], Callable[..., None] | None] = {}",
    ]
    parts = ["\n".join(head), cls, *functions, *helpers]
    return "\n\n\n".join(parts) + "\n"
