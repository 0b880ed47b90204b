"""Split a lowered program into phases and stages, and plan buffer reuse for the eager paths.

Phases, in the order a step runs them (see :mod:`simplifier.emit.lower` for the kinds):

1. *numbers*: NUMBER instructions, once per group;
2. *step numbers*: STEPNUM instructions, once per distinct step count in the group;
3. stage 0, then group phase 1, stage 1, ... stage K: a stage runs per parameter (TENSOR and
   LOCAL instructions), a group phase combines the stage's per-parameter partial results over
   the whole group (GROUP instructions). Stage K writes the new weights and states.

Buffer planning (per stage, for the eager paths) decides where each tensor value is written:
into the buffer of an argument that is dead after the instruction (in place), into its own
state's buffer when the value is that state's new value and the old one is dead, into a free
temporary (per-tensor path, through ``out=``), or into a new tensor. Inputs are never written
except by their final values (the weight is written last), so every stage can read them.

>>> from simplifier.parse import parse
>>> from simplifier.emit.lower import lower
>>> p = plan(lower(parse("def f(w, g, m, lr):\\n  m = interp(g, m, 0.9)\\n  return lr * m, m\\n")))
>>> [i.op for i in p.stages[-1].instrs]
['interp', 'sub_scaled']
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from simplifier.emit.lower import Arg, Instr, Lowered, VKind

END = 1 << 30  # the position of the end of a stage: outputs are read there


@dataclass(frozen=True)
class Stage:
    """One pass over the parameters: per-parameter instructions, in order."""

    index: int
    instrs: tuple[Instr, ...]
    partials: tuple[str, ...]  # LOCAL results collected for the next group phase
    final: bool


@dataclass(frozen=True)
class Plan:
    low: Lowered
    numbers: tuple[Instr, ...]
    stepnums: tuple[Instr, ...]
    phases: dict[int, tuple[Instr, ...]]  # group phase j runs after stage j - 1
    stages: tuple[Stage, ...]

    @property
    def staged(self) -> bool:
        return len(self.stages) > 1

    def reads(self, instrs: Iterable[Instr], kind: VKind) -> list[str]:
        """Names of ``kind`` that ``instrs`` read, in first-read order."""
        out: dict[str, None] = {}  # an ordered set
        for i in instrs:
            for a in i.args:
                if isinstance(a, str) and a not in out and self.low.kinds[a] is kind:
                    out[a] = None
        return list(out)

    def computed_numbers(self) -> list[str]:
        """NUMBER values that ``_numbers`` returns: those read outside the numbers phase."""
        later = [*self.stepnums, *(i for p in self.phases.values() for i in p)]
        later += [i for s in self.stages for i in s.instrs]
        made = {i.name for i in self.numbers}
        return [n for n in self.reads(later, VKind.NUMBER) if n in made]

    def stage_stepnums(self) -> list[str]:
        """STEPNUM values the stages read, per parameter (the step input itself included)."""
        return self.reads([i for s in self.stages for i in s.instrs], VKind.STEPNUM)

    def group_values(self, stage: Stage) -> list[str]:
        return self.reads(stage.instrs, VKind.GROUP)


def _closure(
    roots: Iterable[str], by_name: dict[str, Instr], follow: Callable[[str], bool]
) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if follow(r)]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo += [a for a in by_name[name].args if isinstance(a, str) and follow(a)]
    return seen


def plan(low: Lowered) -> Plan:
    """Phases and stages of ``low`` (only what the outputs need)."""
    by_name = {i.name: i for i in low.instrs}
    outputs = [a for a in low.outputs.values() if isinstance(a, str)]
    needed = _closure(outputs, by_name, lambda a: True)
    kept = [i for i in low.instrs if i.name in needed]
    last = low.last_stage
    per_param = (VKind.TENSOR, VKind.LOCAL)
    stages: list[Stage] = []
    for k in range(last + 1):
        if k < last:
            roots = [
                str(i.args[0])
                for i in kept
                if i.op in ("combine_norm", "combine_sum") and i.level == k + 1
            ]
        else:
            roots = outputs
        cone = _closure(roots, by_name, lambda a: a in by_name and by_name[a].kind in per_param)
        instrs = tuple(i for i in kept if i.name in cone)
        stages.append(Stage(k, instrs, tuple(dict.fromkeys(roots)) if k < last else (), k == last))
    phases = {
        j: tuple(i for i in kept if i.kind is VKind.GROUP and i.level == j)
        for j in range(1, last + 1)
    }
    return Plan(
        low,
        tuple(i for i in kept if i.kind is VKind.NUMBER),
        tuple(i for i in kept if i.kind is VKind.STEPNUM),
        phases,
        tuple(stages),
    )


# -- buffers ------------------------------------------------------------------------------------
@dataclass
class Buffers:
    """Where each tensor value of a stage lives, as the stage's instructions run.

    ``fixed`` buffers (weight, gradient, states) hold the stage's inputs; only an output's final
    value may be written into its own fixed buffer. Temporaries are free once their value is.
    ``free`` lists the free temporaries in the order they were freed (the last is reused first).
    """

    holds: dict[str, str | None]  # buffer -> the value in it (None: free)
    where: dict[str, str]  # value -> its buffer
    fixed: set[str]
    last_use: dict[str, int]
    free: list[str]
    _free: set[str] = field(default_factory=set)  # the members of ``free``
    _order: dict[str, int] = field(default_factory=dict)  # buffer -> its creation index
    _dying: list[tuple[int, int, str, str]] = field(default_factory=list)  # heap: last use, ...

    @classmethod
    def start(
        cls, inputs: dict[str, str], instrs: tuple[Instr, ...], outputs: dict[str, Arg]
    ) -> Buffers:
        """``inputs`` maps input value -> buffer; ``outputs`` maps buffer -> final value."""
        last: dict[str, int] = {}
        for pos, i in enumerate(instrs):
            for a in i.args:
                if isinstance(a, str):
                    last[a] = pos
        for a in outputs.values():
            if isinstance(a, str):
                last[a] = END
        holds: dict[str, str | None] = dict(zip(inputs.values(), inputs, strict=True))
        order = {b: k for k, b in enumerate(holds)}
        return cls(holds, dict(inputs), set(inputs.values()), last, [], set(), order)

    def dead(self, value: str | None, pos: int) -> bool:
        return value is None or self.last_use.get(value, -1) <= pos

    def put(self, value: str, buffer: str) -> None:
        old = self.holds.get(buffer)
        if old is not None and self.where.get(old) == buffer:
            del self.where[old]
        self.holds[buffer] = value
        self.order_of(buffer)
        self.where[value] = buffer
        if buffer in self._free:
            self._free.discard(buffer)
            self.free.remove(buffer)
        if buffer not in self.fixed:
            heapq.heappush(
                self._dying, (self.last_use.get(value, -1), self._order[buffer], buffer, value)
            )

    def order_of(self, buffer: str) -> int:
        return self._order.setdefault(buffer, len(self._order))

    def release(self, pos: int) -> None:
        """Free the temporaries whose value is dead after ``pos``, in buffer creation order
        (each value is looked at once: the stage's planning is linear, not quadratic)."""
        dying: list[tuple[int, str]] = []
        while self._dying and self._dying[0][0] <= pos:
            _, order, buffer, value = heapq.heappop(self._dying)
            if self.holds.get(buffer) == value and buffer not in self._free:
                dying.append((order, buffer))
        for _, buffer in sorted(set(dying)):
            self._free.add(buffer)
            self.free.append(buffer)


class MoveKind(StrEnum):
    COPY = "copy"  # copy a value into a buffer
    CLONE = "clone"  # keep a buffer's current content under a new name


class Move(NamedTuple):
    """One step of putting the outputs into their buffers: ``(COPY, dest, value)`` copies the
    value into buffer ``dest``; ``(CLONE, name, buffer)`` saves the buffer's content as
    ``name`` before it is overwritten."""

    kind: MoveKind
    target: str
    source: str


def moves(
    outputs: dict[str, Arg], where: Callable[[str], str | None], fresh: Callable[[str], str]
) -> list[Move]:
    """The copies that put every output's final value into its buffer, in a safe order.

    ``where(value)`` is the buffer a value lives in (None for a value no buffer holds). A cycle,
    such as two states swapping values, needs one ``CLONE``.

    >>> steps = moves({"a": "b0", "b": "a0"}, {"a0": "a", "b0": "b"}.get, lambda h: h + "_old")
    >>> [f"{m.kind} {m.target} {m.source}" for m in steps]
    ['clone a_old a', 'copy a b0', 'copy b a_old']
    """
    pending = [(d, v) for d, v in outputs.items() if isinstance(v, str) and where(v) != d]
    located: dict[str, str | None] = {}

    def loc(value: str) -> str | None:
        return located[value] if value in located else where(value)

    out: list[Move] = []
    while pending:
        for dest, value in pending:
            if not any(loc(v) == dest for d, v in pending if d != dest):
                out.append(Move(MoveKind.COPY, dest, value))
                pending.remove((dest, value))
                break
        else:  # every destination is still read by another copy: save one first
            dest = pending[0][0]
            saved = fresh(dest)
            located[saved] = None
            out.append(Move(MoveKind.CLONE, saved, dest))
            pending = [(d, saved if loc(v) == dest else v) for d, v in pending]
    return out
