"""The machinery of emitted optimizers, as real (type-checked, linted) Python.

:mod:`simplifier.emit.module` copies the definitions an emitted module uses from this file into
it, below the class and its step functions, so that the module stays standalone (it imports
only torch and the standard library). Nothing here is specific to a program: the emitted class
states what is (its states, whether it reads the step count, its reductions) as class attributes,
and defines ``__init__`` (its hyperparameters) and ``_step_group`` (its step).

Each top-level definition is copied with the comment lines right above it; a definition that
uses another one brings it along.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

# torch.compile options of the fused path: dynamic shapes (one compilation for every
# parameter size); on the CPU, an OpenMP parallel loop whatever size the first
# parameter had (Inductor otherwise sizes the thread count from that example), and
# the vector instructions the CPU reports taken as usable: Inductor otherwise builds
# and loads a probe library per candidate ISA, most of the first step's time with an
# empty Inductor cache (drop the entry if the C++ compiler lacks the CPU's ISA flags).
COMPILE_OPTIONS: dict[str, object] = {
    "dynamic": True,
    "fullgraph": True,
    "options": {"cpp.dynamic_threads": True, "cpp.vec_isa_ok": True},
}
# On the CPU, the kernel for states in another dtype than their parameter (state_dtype)
# is compiled for 256-bit vectors: with 512-bit ones Inductor writes a bfloat16 state
# half a vector at a time through masked stores, which ran it at half the speed on an
# AVX-512 AMD EPYC CPU (the kernel is memory-bound: 256-bit vectors lose nothing).
MIXED_DTYPE_OPTIONS: dict[str, object] = {"cpp.simdlen": 256}
# The compiled kernels, by kind of parameter (see _compiled_kernel).
_COMPILED: dict[tuple[object, ...], Callable[..., None] | None] = {}
# Devices whose foreach kernels torch.optim uses by default.
_FOREACH_DEVICES = ("cuda", "xpu", "mtia")
# Elements per block of the eager paths on the CPU: a few blocks fit in the cache.
BLOCK = 1 << 18
# Under fused=True, smaller parameters take the foreach path (per device type).
FUSED_MIN_NUMEL: dict[str, int] = {"cpu": 1 << 16}
# The keywords every emitted optimizer takes, with their defaults (as its param groups hold
# them; an optimizer pickled by an older version gets them when unpickled).
_KEYWORDS: dict[str, object] = {
    "maximize": False,
    "foreach": None,
    "fused": None,
    "state_dtype": None,
    "flat": False,
    "differentiable": False,
    "capturable": False,
}


def _check_keywords(cls: type, defaults: dict[str, Any]) -> None:
    """Refuse combinations of the common keywords as torch.optim does (or cannot follow)."""
    if defaults["foreach"] and defaults["fused"]:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if defaults["differentiable"] and (
        defaults["fused"] or defaults["foreach"] or defaults["flat"]
    ):
        raise RuntimeError(
            "differentiable=True runs the per-tensor path: it cannot be combined with "
            "fused, foreach or flat"
        )
    if defaults["capturable"]:
        raise ValueError(
            "capturable=True is not supported: the step computes its step counts "
            "and the scalars derived from them on the host (CUDA graphs cannot)"
        )
    if defaults["flat"] and getattr(cls, "_per_tensor", False):
        raise ValueError(
            "flat=True needs a program without per-tensor reductions "
            f"({', '.join(getattr(cls, '_reductions', ()))})"
        )


def _setup(opt: Any) -> None:
    """After ``Optimizer.__init__`` or ``__setstate__``: the flat buffers (none yet), the
    default of every common keyword, and the hook that keeps state_dtype through
    ``load_state_dict`` (hooks are not pickled, nor deep-copied: registered again)."""
    for group in opt.param_groups:
        for name, default in _KEYWORDS.items():
            group.setdefault(name, default)
    opt.__dict__.setdefault("_flat", {})  # flat=True: each group's buffers, by group index
    opt.register_load_state_dict_post_hook(_restore_state_dtype)


def _restore_state_dtype(opt: torch.optim.Optimizer) -> None:
    """load_state_dict casts states to their parameter's dtype; cast them back to state_dtype."""
    for group in opt.param_groups:
        dtype = group["state_dtype"]
        if dtype is None:
            continue
        for p in group["params"]:
            state = opt.state.get(p, {})
            for name, value in list(state.items()):
                if name != "step" and isinstance(value, Tensor) and value.is_floating_point():
                    state[name] = value.to(dtype)


def _step(opt: Any, closure: Callable[[], float] | None) -> float | None:
    """One optimization step of an emitted optimizer: ``closure`` (re-evaluating the model)
    under autograd, then each group's step, which autograd records only under
    differentiable=True."""
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    with torch.set_grad_enabled(bool(opt.defaults["differentiable"])):
        for index, group in enumerate(opt.param_groups):
            params, grads, states, steps = _gather(opt, group)
            if group["flat"] and params:
                buffers = opt._flat.setdefault(index, [])
                lists = (buffers, params, grads, states, steps, opt.state, opt._reads_step)
                params, grads, states, steps = _flat_lists(*lists)
            if params:
                opt._step_group(group, params, grads, states, steps)
    return loss


def _gather(
    opt: Any, group: dict[str, Any]
) -> tuple[list[Tensor], list[Tensor], dict[str, list[Tensor]], list[int]]:
    """The group's parameters that have a gradient, with their states (made lazily, at their
    initial values) and step counts (incremented). Complex parameters (element-wise programs
    only) as their real views, as torch.optim steps them."""
    name = type(opt).__name__
    params: list[Tensor] = []
    grads: list[Tensor] = []
    states: dict[str, list[Tensor]] = {s: [] for s in opt._states}
    steps: list[int] = []
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients")
        if torch.is_complex(p):
            if opt._reductions:
                raise RuntimeError(
                    f"{name} does not support complex parameters: its program reduces over "
                    f"tensors ({', '.join(opt._reductions)}): only element-wise programs treat "
                    "them as pairs of reals"
                )
            if group["state_dtype"] is not None:
                raise RuntimeError(
                    "state_dtype does not apply to complex parameters (their states are "
                    "complex, in the parameter's dtype)"
                )
        state = opt.state[p]
        if not state:
            state["step"] = 0
            dtype = group["state_dtype"] or p.dtype
            initial = dict(opt._initial)  # each state's value at step 0 (0 unless the program says)
            for s in opt._states:
                state[s] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
                if s in initial:  # a complex state: both parts, as its real view steps
                    _real(state[s]).fill_(initial[s])
        state["step"] += 1
        params.append(_real(p))
        grads.append(_real(p.grad))
        steps.append(state["step"])
        for s, values in states.items():
            values.append(_real(state[s]))
    return params, grads, states, steps


def _zero_grad(opt: Any, set_to_none: bool) -> None:
    """As torch.optim's. With set_to_none=False, the gradients of flat buffers (flat=True) are
    zeroed in place, one fill per buffer, and stay views of it, so that backward accumulates
    into the buffer (set_to_none=True drops them: the next step copies the new gradients into
    the buffer)."""
    flat: set[int] = set()
    if not set_to_none:
        for buffers in opt._flat.values():
            for buffer in buffers:
                if buffer.intact():
                    buffer.zero_grad()
                    flat.update(id(p) for p in buffer.params)
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is None or id(p) in flat:
                continue
            if set_to_none:
                p.grad = None
                continue
            if p.grad.grad_fn is not None:
                p.grad.detach_()
            else:
                p.grad.requires_grad_(False)
            p.grad.zero_()


def _path(group: dict[str, Any], params: list[Tensor]) -> str:
    """differentiable, fused, foreach or single: as torch.optim chooses when not told (foreach
    kernels where the device has them, so on CUDA; never fused by default)."""
    if group["differentiable"]:
        return "differentiable"
    if group["fused"]:
        return "fused"
    foreach = group["foreach"]
    if foreach is None:
        foreach = all(p.device.type in _FOREACH_DEVICES for p in params)
    return "foreach" if foreach else "single"


def _real(t: Tensor) -> Tensor:
    """A complex tensor as its real view (a trailing dimension of 2); other tensors as they are."""
    return torch.view_as_real(t) if t.is_complex() else t


def _f64(x: float) -> Tensor:
    """A float64 0-d tensor: scalar arithmetic with IEEE semantics (1 / 0 is inf)."""
    return torch.tensor(x, dtype=torch.float64)


# interp(x, y, w) = (1 - w) x + w y runs as torch.lerp(x, y, w) = x + w (y - x), one kernel,
# when the weight is finite; with an infinite or NaN weight the two differ (lerp gives +-inf
# where the program gives nan, and the other way round), so there the program's formula runs.
def _interp(x: Tensor, y: Tensor, w: float, out: Tensor | None = None) -> Tensor:
    """interp of two tensors and a number, into ``out`` (which may be ``x`` or ``y``)."""
    if not math.isfinite(w):
        value = (1.0 - w) * x + w * y
        return value if out is None else out.copy_(value)
    if out is x:
        return x.lerp_(y, w)
    if out is y:  # lerp(y, x, 1 - w) = w y + (1 - w) x
        return y.lerp_(x, 1 - w)
    return torch.lerp(x, y, w) if out is None else torch.lerp(x, y, w, out=out)


def _foreach_interp(
    xs: list[Tensor], ys: list[Tensor], w: float | list[float], out: list[Tensor] | None = None
) -> list[Tensor]:
    """``_interp`` over lists (``w`` one number or one per tensor) with the foreach kernels."""
    ws = w if isinstance(w, list) else [w] * len(xs)
    if not all(math.isfinite(a) for a in ws):
        values = [(1.0 - a) * x + a * y for x, y, a in zip(xs, ys, ws, strict=True)]
        if out is None:
            return values
        for o, v in zip(out, values, strict=True):
            o.copy_(v)
        return out
    if out is xs:
        torch._foreach_lerp_(xs, ys, w)
        return xs
    if out is ys:
        torch._foreach_lerp_(ys, xs, [1 - a for a in w] if isinstance(w, list) else 1 - w)
        return ys
    return list(torch._foreach_lerp(xs, ys, w))


def _stack(parts: list[Tensor]) -> Tensor:
    """Per-parameter partial results, stacked on the first one's device."""
    return torch.stack([p.to(parts[0].device) for p in parts])


def _work(buf: Tensor, like: Tensor) -> Tensor:
    """A state in its parameter's dtype: the buffer itself, or a copy (state_dtype)."""
    return buf if buf.dtype == like.dtype else buf.to(like.dtype)


def _store(buf: Tensor, value: Tensor) -> None:
    """Write a state's new value to its buffer, unless it was computed in place there."""
    if value is not buf:
        buf.copy_(value)


def _work_all(bufs: list[Tensor], like: list[Tensor]) -> list[Tensor]:
    """States in their parameters' dtype: the buffers themselves, or copies (state_dtype)."""
    return [b if b.dtype == p.dtype else b.to(p.dtype) for b, p in zip(bufs, like, strict=True)]


def _store_all(bufs: list[Tensor], values: list[Tensor]) -> None:
    """Write states' new values to their buffers, unless computed in place there."""
    for buf, value in zip(bufs, values, strict=True):
        if value is not buf:
            buf.copy_(value)


def _blocks(*items: Tensor | float) -> Iterator[tuple[Tensor | float, ...]]:
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
        yield tuple(x[lo : lo + BLOCK] if isinstance(x, Tensor) else x for x in flat)


def _blocks_all(*lists: list) -> Iterator[tuple[list, ...]]:
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
        yield group


def _buckets(*lists: list) -> list[tuple[list, ...]]:
    """The parallel lists split by the first one's device and dtype, as foreach kernels need
    (usually one bucket)."""
    keys: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(lists[0]):
        keys.setdefault((t.device, t.dtype), []).append(i)
    if len(keys) == 1:
        return [lists]
    return [tuple([xs[i] for i in idx] for xs in lists) for idx in keys.values()]


def _fusable(tensors: list[Tensor], min_numel: int | None) -> bool:
    """Whether the compiled kernel takes this parameter (with its gradient and states)."""
    if min_numel is None:
        min_numel = FUSED_MIN_NUMEL.get(tensors[0].device.type, 1 << 20)
    # Single-element tensors stay out too: Dynamo specialises on size 1 (a second compilation).
    numel = tensors[0].numel()
    return numel >= max(min_numel, 2) and all(t.is_contiguous() for t in tensors)


def _as_tensors(values: list[float], like: Tensor) -> tuple[Tensor, ...]:
    """Scalars as 0-d tensors on the parameter's device (float64 for float64 parameters,
    float32 otherwise), for the compiled kernel."""
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.tensor(values, dtype=dtype, device=like.device).unbind()


def _compiled_kernel(
    kernel: Callable[..., None], kind: tuple[object, ...]
) -> Callable[..., None] | None:
    """``kernel`` compiled for one kind of parameter: (device type, dtype, state dtype,
    maximize). Each kind compiles its own copy of the function, because Dynamo counts
    recompilations per code object (8 at most): one shared function would fail once it met 8
    kinds. Dynamic shapes: a new parameter size does not recompile. States in another dtype than
    their parameter use MIXED_DTYPE_OPTIONS. None for a kind that failed to compile."""
    if kind not in _COMPILED:
        options: dict[str, Any] = dict(COMPILE_OPTIONS)
        inductor = options.get("options")
        if kind[1] != kind[2] and isinstance(inductor, dict):
            options["options"] = {**inductor, **MIXED_DTYPE_OPTIONS}
        code = kernel.__code__.replace()  # a new code object: its own Dynamo cache
        copy = types.FunctionType(code, kernel.__globals__, kernel.__name__)
        _COMPILED[kind] = torch.compile(copy, **options)
    return _COMPILED[kind]


def _give_up(kind: tuple[object, ...], error: Exception) -> None:
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
    )


class _Flat:
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
        grads = [p.grad for p in self.params if p.grad is not None]  # all of them (zip: strict)
        self._repoint(self.grad, grads, state_of, None)
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
                state_of[p][key] = view


def _flat_lists(
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
    return out
